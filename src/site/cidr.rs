//! Client address lists: CIDR blocks or single addresses (`10.0.0.0/8`, `::1`).

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses each entry; a bare address is a block of one. The error names the bad entry.
pub fn parse_list(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries.iter().map(|entry| parse(entry)).collect()
}

fn parse(entry: &str) -> Result<IpNet, String> {
    let text = entry.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{entry:?} is not an address or a CIDR block"))
}

/// Whether a client address is in one of the blocks. An IPv4 client reached over an IPv6
/// socket (`::ffff:a.b.c.d`) counts as its IPv4 address.
pub fn contains(nets: &[IpNet], addr: IpAddr) -> bool {
    let addr = addr.to_canonical();
    nets.iter().any(|net| net.contains(&addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<IpNet> {
        parse_list(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn blocks_and_single_addresses() {
        let nets = list(&["127.0.0.0/8", "::1", "10.1.2.3"]);
        assert!(contains(&nets, "127.0.0.2".parse().unwrap()));
        assert!(contains(&nets, "::1".parse().unwrap()));
        assert!(contains(&nets, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(contains(&nets, "10.1.2.3".parse().unwrap()));
        assert!(!contains(&nets, "10.1.2.4".parse().unwrap()));
        assert!(!contains(&list(&[]), "127.0.0.1".parse().unwrap()));
        let everyone = list(&["0.0.0.0/0", "::/0"]);
        assert!(contains(&everyone, "203.0.113.9".parse().unwrap()));
        assert!(contains(&everyone, "2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn bad_entries_are_named() {
        let err = parse_list(&["10.0.0.0/33".to_string()]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(parse_list(&["example.com".to_string()]).is_err());
        assert!(parse_list(&["10.0.0.0/8/2".to_string()]).is_err());
    }
}
