//! `[tls.acme] state_dir`: the ACME account and each name's certificate chain and key,
//! private to the server (directories 0700, files 0600), each file written whole and
//! renamed into place. No threads, no channels.
//!
//! ```text
//! state_dir/
//!   account-<directory URL, sanitised>.json   the account's key and id (instant-acme)
//!   certs/<name>/cert.pem                      the chain: certificate, then intermediates
//!   certs/<name>/key.pem                       its private key (PKCS#8, ECDSA P-256)
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;

/// A certificate in `state_dir`, loaded and checked.
pub struct Held {
    pub key: Arc<CertifiedKey>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Hexadecimal, as `openssl x509 -serial` prints it.
    pub serial: String,
}

impl Held {
    /// When a third of the certificate's lifetime remains.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_after - lifetime / 3
    }
}

/// Creates `dir` (and `dir/certs`) if missing and makes both private (0700).
pub fn prepare(dir: &Path) -> Result<(), String> {
    for path in [dir.to_path_buf(), dir.join("certs")] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The account file for an ACME directory: one account per directory URL, so moving from a
/// staging CA to a production one makes a new account and keeps the old.
pub fn account_path(dir: &Path, directory: &str) -> PathBuf {
    let url = directory
        .strip_prefix("https://")
        .or_else(|| directory.strip_prefix("http://"))
        .unwrap_or(directory);
    let tag: String = url
        .trim_end_matches('/')
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    dir.join(format!("account-{tag}.json"))
}

fn cert_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("certs").join(name)
}

/// Every file and directory in `state_dir`, for handing them to the unprivileged user.
pub fn owned_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths = vec![dir.to_path_buf()];
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path.clone());
            }
            paths.push(path);
        }
    }
    paths
}

/// The certificate kept for `name`: `Ok(None)` when there is none yet; an error when the
/// files are there but unusable (unreadable, not matching, or not for `name`).
pub fn load(dir: &Path, name: &str) -> Result<Option<Held>, String> {
    let at = cert_dir(dir, name);
    let (cert, key) = (at.join("cert.pem"), at.join("key.pem"));
    if !cert.exists() && !key.exists() {
        return Ok(None);
    }
    let provider = rustls::crypto::ring::default_provider();
    let certified = crate::support::tls::certified_key(&cert, &key, &provider)?;
    let leaf = certified
        .cert
        .first()
        .ok_or_else(|| format!("{}: empty chain", cert.display()))?;
    let (not_before, not_after, serial) =
        inspect(leaf.as_ref(), name).map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(Some(Held {
        key: Arc::new(certified),
        not_before,
        not_after,
        serial,
    }))
}

/// Writes a new chain and key for `name`, then loads them back (which checks them).
pub fn save(dir: &Path, name: &str, chain_pem: &str, key_pem: &str) -> Result<Held, String> {
    let at = cert_dir(dir, name);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&at)
        .map_err(|e| format!("{}: {e}", at.display()))?;
    write_private(&at.join("key.pem"), key_pem.as_bytes())?;
    write_private(&at.join("cert.pem"), chain_pem.as_bytes())?;
    load(dir, name)?.ok_or_else(|| format!("{}: not written", at.display()))
}

/// Writes `bytes` to a fresh 0600 file beside `path`, syncs it, and renames it over `path`.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let temporary = path.with_extension("new");
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&temporary, path).map_err(fail)
}

/// A certificate's validity and serial number; an error unless its subject alternative
/// names include `name`.
pub fn inspect(der: &[u8], name: &str) -> Result<(SystemTime, SystemTime, String), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let time = |t: x509_parser::time::ASN1Time| {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
    };
    let validity = cert.validity();
    let covered = cert
        .subject_alternative_name()
        .map_err(|e| e.to_string())?
        .is_some_and(|san| {
            san.value.general_names.iter().any(|general| {
                matches!(general, x509_parser::extensions::GeneralName::DNSName(dns)
                    if dns.eq_ignore_ascii_case(name))
            })
        });
    if !covered {
        return Err(format!("the certificate is not for {name}"));
    }
    let serial = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    Ok((time(validity.not_before), time(validity.not_after), serial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_file_per_directory_url() {
        let dir = Path::new("/state");
        assert_eq!(
            account_path(dir, "https://acme-v02.api.letsencrypt.org/directory"),
            Path::new("/state/account-acme-v02.api.letsencrypt.org_directory.json")
        );
        assert_eq!(
            account_path(dir, "https://127.0.0.1:14000/dir"),
            Path::new("/state/account-127.0.0.1_14000_dir.json")
        );
    }

    #[test]
    fn private_files_and_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("acme");
        prepare(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("certs")), 0o700);
        let file = dir.join("account.json");
        write_private(&file, b"one").unwrap();
        write_private(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(mode(&file), 0o600);
        assert!(load(&dir, "a.example").unwrap().is_none());
    }

    #[test]
    fn renewal_is_due_when_a_third_of_the_lifetime_remains() {
        let key = Arc::new(CertifiedKey::new(vec![], Arc::new(NoKey)));
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let held = Held {
            key,
            not_before: start,
            not_after: start + Duration::from_secs(90 * 86_400),
            serial: String::new(),
        };
        assert_eq!(held.renew_at(), start + Duration::from_secs(60 * 86_400));
    }

    #[derive(Debug)]
    struct NoKey;

    impl rustls::sign::SigningKey for NoKey {
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
}
