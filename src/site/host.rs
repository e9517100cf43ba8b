//! The Host header as RFC 9110 section 7.2 and RFC 3986 section 3.2.2 define it: a reg-name,
//! an IPv4 address or a bracketed IP literal, then an optional `:port` of digits.

use std::net::Ipv6Addr;

/// Why a Host value is refused (answered 400 before any site is chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    BadPort,
    BadLiteral,
    BadName,
}

/// The longest host name compared with the site names; longer ones match no name.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a Host value and returns its name part: the port and one trailing dot removed,
/// case left as sent (compare with `eq_ignore_ascii_case` or lower it).
pub fn name(host: &str) -> Result<&str, HostError> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']').ok_or(HostError::BadLiteral)?;
        let literal = &rest[..end];
        let valid = literal.parse::<Ipv6Addr>().is_ok() || future_literal(literal);
        if !valid {
            return Err(HostError::BadLiteral);
        }
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(HostError::BadLiteral),
        };
        (&host[..end + 2], port)
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostError::BadPort);
        }
    }
    if !name.starts_with('[') && !reg_name(name) {
        return Err(HostError::BadName);
    }
    Ok(name.strip_suffix('.').unwrap_or(name))
}

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn future_literal(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else {
        return false;
    };
    let Some((hex, tail)) = rest.split_once('.') else {
        return false;
    };
    !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && !tail.is_empty()
        && tail
            .bytes()
            .all(|b| unreserved(b) || sub_delim(b) || b == b':')
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (an IPv4 address is one too).
fn reg_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(unreserved(b) || sub_delim(b)) {
            return false;
        }
        i += 1;
    }
    true
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn sub_delim(b: u8) -> bool {
    b"!$&'()*+,;=".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ports_and_literals() {
        assert_eq!(name("Example.TEST"), Ok("Example.TEST"));
        assert_eq!(name("example.test."), Ok("example.test"));
        assert_eq!(name("example.test:8080"), Ok("example.test"));
        assert_eq!(name("example.test.:80"), Ok("example.test"));
        assert_eq!(name("example.test:"), Ok("example.test"));
        assert_eq!(name("127.0.0.1:80"), Ok("127.0.0.1"));
        assert_eq!(name("[::1]:8080"), Ok("[::1]"));
        assert_eq!(name("[::1]"), Ok("[::1]"));
        assert_eq!(name("[v1.x:y]"), Ok("[v1.x:y]"));
        assert_eq!(name(""), Ok(""));
    }

    #[test]
    fn bad_values() {
        assert_eq!(name("example.test:80a"), Err(HostError::BadPort));
        assert_eq!(name("example.test:123456"), Err(HostError::BadPort));
        assert_eq!(name("a:1:2"), Err(HostError::BadPort));
        assert_eq!(name("[::1"), Err(HostError::BadLiteral));
        assert_eq!(name("[::1]x"), Err(HostError::BadLiteral));
        assert_eq!(name("[not-ip]"), Err(HostError::BadLiteral));
        assert_eq!(name("exa mple"), Err(HostError::BadName));
        assert_eq!(name("a/b"), Err(HostError::BadName));
        assert_eq!(name("a@b"), Err(HostError::BadName));
        assert_eq!(name("a%zz"), Err(HostError::BadName));
    }
}
