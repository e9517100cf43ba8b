//! The PROXY protocol (v1 text and v2 binary, as HAProxy sends them) before the first request
//! on a `proxy_protocol` listener: the client's real address, from a trusted peer only.

use std::net::SocketAddr;

use ppp::{v1, v2, HeaderResult, PartialResult};

/// What the bytes at the start of a connection hold.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// Not all of the header has arrived.
    Incomplete,
    /// Not a PROXY header, or a malformed one.
    Bad(String),
    /// A header of `len` bytes; `client` is the address it gives (none for `LOCAL`/`UNKNOWN`,
    /// a health check from the proxy itself).
    Found {
        client: Option<SocketAddr>,
        len: usize,
    },
}

pub fn parse(bytes: &[u8]) -> ProxyHeader {
    match HeaderResult::parse(bytes) {
        result if result.is_incomplete() => ProxyHeader::Incomplete,
        HeaderResult::V1(Ok(header)) => {
            let client = match header.addresses {
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Unknown => None,
            };
            ProxyHeader::Found {
                client,
                len: header.header.len(),
            }
        }
        HeaderResult::V2(Ok(header)) => {
            let client = match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                (_, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                _ => None,
            };
            ProxyHeader::Found {
                client,
                len: header.len(),
            }
        }
        HeaderResult::V1(Err(e)) => ProxyHeader::Bad(format!("PROXY v1: {e}")),
        HeaderResult::V2(Err(e)) => ProxyHeader::Bad(format!("PROXY v2: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_one_gives_the_client_and_its_length() {
        let text = b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 80\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(text),
            ProxyHeader::Found {
                client: Some("203.0.113.7:51234".parse().unwrap()),
                len: 43,
            }
        );
        assert_eq!(
            parse(b"PROXY TCP4 203.0.113.7 127.0"),
            ProxyHeader::Incomplete
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            ProxyHeader::Bad(_)
        ));
        assert!(matches!(
            parse(b"PROXY UNKNOWN\r\n"),
            ProxyHeader::Found { client: None, .. }
        ));
    }

    #[test]
    fn version_two_gives_the_client_and_its_length() {
        let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        header.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&bytes),
            ProxyHeader::Found {
                client: Some("198.51.100.9:8080".parse().unwrap()),
                len: header.len(),
            }
        );
        assert_eq!(parse(&header[..20]), ProxyHeader::Incomplete);
    }

    #[test]
    fn trust_is_by_block() {
        use crate::site::cidr::{contains, parse_list};
        let trusted = parse_list(&["127.0.0.1/32".to_string(), "10.0.0.0/8".to_string()]).unwrap();
        assert!(contains(&trusted, "127.0.0.1".parse().unwrap()));
        assert!(contains(&trusted, "10.2.3.4".parse().unwrap()));
        assert!(contains(&trusted, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!contains(&trusted, "127.0.0.2".parse().unwrap()));
        assert!(!contains(&[], "127.0.0.1".parse().unwrap()));
        assert!(parse_list(&["10.0.0.0/33".to_string()]).is_err());
    }
}
