//! TLS settings: the certificates named by `[tls]` and `[[tls.certs]]`, the name-based
//! choice among them (SNI), and the rustls server settings every HTTPS connection starts
//! from. Not a process: built in `main.rs`, read by the acceptor, and re-read by the config
//! process on SIGHUP.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::support::acme::Obtained;
use crate::support::config::TlsConfig;

/// Sessions remembered for resumption by session ID (TLS 1.2); tickets need no memory.
const SESSION_CACHE_ENTRIES: usize = 16 * 1024;

/// The certificates in use and the rustls settings that read them.
pub struct Tls {
    /// Shared by every HTTPS connection; its resolver reads `certificates`.
    pub server: Arc<ServerConfig>,
    certificates: Arc<Certificates>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

/// The certificates, swapped whole on reload; a handshake reads the set current when it
/// begins.
struct Certificates {
    set: ArcSwap<CertificateSet>,
    /// Those `[tls.acme]` obtained, by name (empty without it).
    obtained: Arc<Obtained>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Certificates")
    }
}

/// The default certificate, and the others by name.
struct CertificateSet {
    /// `[tls] cert` and `key`; none when `[tls.acme]` provides the certificates.
    default: Option<Arc<CertifiedKey>>,
    /// Exact names (lower case), in `[[tls.certs]]` order.
    exact: Vec<(String, Arc<CertifiedKey>)>,
    /// `*.b.example` as `.b.example`: matches one more label on the left.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
}

impl CertificateSet {
    fn count(&self) -> usize {
        usize::from(self.default.is_some()) + self.exact.len() + self.wildcard.len()
    }

    /// Exact names, then names with an ACME certificate, then wildcards, then the default
    /// (or, without one, the first ACME certificate). None: no certificate yet, and the
    /// handshake is refused.
    fn choose(&self, name: Option<&str>, obtained: &Obtained) -> Option<Arc<CertifiedKey>> {
        let fallback = || self.default.clone().or_else(|| obtained.first());
        let Some(name) = name else {
            return fallback();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some((_, key)) = self.exact.iter().find(|(n, _)| *n == name) {
            return Some(key.clone());
        }
        if let Some(key) = obtained.for_name(&name) {
            return Some(key);
        }
        if let Some(dot) = name.find('.') {
            let parent = &name[dot..];
            if let Some((_, key)) = self.wildcard.iter().find(|(n, _)| n == parent) {
                return Some(key.clone());
            }
        }
        fallback()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().choose(hello.server_name(), &self.obtained)
    }
}

impl Tls {
    /// Loads every certificate `cfg` names and builds the server settings: TLS 1.2 and 1.3,
    /// ALPN `h2` then `http/1.1`, resumption by tickets and by session IDs, the server's
    /// cipher order.
    pub fn load(cfg: &TlsConfig) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let set = load_set(cfg, &provider)?;
        let certificates = Arc::new(Certificates {
            set: ArcSwap::from_pointee(set),
            obtained: Arc::new(Obtained::default()),
        });
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        // HTTP/2 first (h2/), then HTTP/1.1 (RFC 7301: the client's order decides among them).
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // The server's order of cipher suites (strongest first) decides, not the client's.
        server.ignore_client_order = true;
        server.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        server.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| format!("tls tickets: {e}"))?;
        Ok(Tls {
            server: Arc::new(server),
            certificates,
            provider,
        })
    }

    /// Re-reads the certificates; on any error the old ones stay. Returns how many are loaded.
    pub fn reload(&self, cfg: &TlsConfig) -> Result<usize, String> {
        let set = load_set(cfg, &self.provider)?;
        let count = set.count();
        self.certificates.set.store(Arc::new(set));
        Ok(count)
    }

    /// Where `[tls.acme]` publishes the certificates it obtains; handshakes read them.
    pub fn obtained(&self) -> Arc<Obtained> {
        self.certificates.obtained.clone()
    }
}

/// Which `meters::TLS_FAILURES` reason a refused handshake counts under.
pub fn failure_reason(error: &rustls::Error) -> &'static str {
    use rustls::{Error, InvalidMessage};
    match error {
        Error::InvalidMessage(InvalidMessage::InvalidContentType)
        | Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion) => "not_tls",
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::DecryptError => "bad_message",
        Error::PeerIncompatible(_) | Error::NoApplicationProtocol => "incompatible",
        Error::AlertReceived(_) => "client_alert",
        Error::PeerMisbehaved(_) => "misbehaved",
        _ => "other",
    }
}

fn load_set(cfg: &TlsConfig, provider: &CryptoProvider) -> Result<CertificateSet, String> {
    let default = match (&cfg.cert, &cfg.key) {
        (Some(cert), Some(key)) => Some(Arc::new(certified_key(cert, key, provider)?)),
        _ if cfg.acme.is_some() => None,
        _ => return Err("[tls] needs cert and key".to_string()),
    };
    let mut set = CertificateSet {
        default,
        exact: Vec::new(),
        wildcard: Vec::new(),
    };
    for entry in &cfg.certs {
        let loaded = Arc::new(certified_key(&entry.cert, &entry.key, provider)?);
        for name in &entry.names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix('*') {
                Some(parent) if parent.starts_with('.') => {
                    set.wildcard.push((parent.to_string(), loaded.clone()))
                }
                _ => set.exact.push((name, loaded.clone())),
            }
        }
    }
    Ok(set)
}

/// Reads a PEM certificate chain and its private key (RSA, ECDSA or Ed25519), and checks
/// that they belong together.
pub(crate) fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = read_chain(cert)?;
    let private = read_key(key)?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    Ok(certified)
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chain = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key in it", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let cfg = TlsConfig {
            listen: None,
            cert: Some("/nonexistent/cert.pem".into()),
            key: Some("/nonexistent/key.pem".into()),
            ..TlsConfig::default()
        };
        let err = Tls::load(&cfg).unwrap_err();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }

    /// A key that never signs: enough to tell certificates apart by their bytes.
    #[derive(Debug)]
    struct Unsigning;

    impl rustls::sign::SigningKey for Unsigning {
        fn choose_scheme(
            &self,
            _offered: &[rustls::SignatureScheme],
        ) -> Option<Box<dyn rustls::sign::Signer>> {
            None
        }
        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            rustls::SignatureAlgorithm::ECDSA
        }
    }

    fn key(tag: u8) -> Arc<CertifiedKey> {
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![tag])],
            Arc::new(Unsigning),
        ))
    }

    fn tag(key: &CertifiedKey) -> u8 {
        key.cert[0].as_ref()[0]
    }

    #[test]
    fn names_choose_exact_then_wildcard_then_default() {
        let set = CertificateSet {
            default: Some(key(0)),
            exact: vec![("a.example".to_string(), key(1))],
            wildcard: vec![(".b.example".to_string(), key(2))],
        };
        let none = Obtained::default();
        let choose = |name| tag(&set.choose(name, &none).unwrap());
        assert_eq!(choose(None), 0);
        assert_eq!(choose(Some("a.example")), 1);
        assert_eq!(choose(Some("A.Example.")), 1);
        assert_eq!(choose(Some("x.b.example")), 2);
        // A wildcard covers one label only, and not the bare parent.
        assert_eq!(choose(Some("y.x.b.example")), 0);
        assert_eq!(choose(Some("b.example")), 0);
        assert_eq!(choose(Some("other.example")), 0);
    }

    #[test]
    fn acme_certificates_come_after_exact_names_and_stand_in_for_no_default() {
        let obtained = Obtained::default();
        let mut set = CertificateSet {
            default: None,
            exact: vec![("a.example".to_string(), key(1))],
            wildcard: vec![(".b.example".to_string(), key(2))],
        };
        // Nothing obtained yet and no default: the handshake is refused.
        assert!(set.choose(Some("c.example"), &obtained).is_none());
        assert!(set.choose(None, &obtained).is_none());
        obtained.publish(vec![
            ("c.example".to_string(), key(3)),
            ("x.b.example".to_string(), key(4)),
        ]);
        let choose = |set: &CertificateSet, name| tag(&set.choose(name, &obtained).unwrap());
        assert_eq!(choose(&set, Some("a.example")), 1);
        assert_eq!(choose(&set, Some("c.example")), 3);
        assert_eq!(choose(&set, Some("x.b.example")), 4);
        assert_eq!(choose(&set, Some("y.b.example")), 2);
        // The first obtained certificate is the default when the config names none.
        assert_eq!(choose(&set, Some("other.example")), 3);
        assert_eq!(choose(&set, None), 3);
        set.default = Some(key(0));
        assert_eq!(choose(&set, Some("other.example")), 0);
    }
}
