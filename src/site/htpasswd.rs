//! Apache htpasswd files and HTTP Basic credentials (RFC 7617).
//!
//! Accepted hashes: bcrypt (`$2y$`, `$2a$`, `$2b$`: `htpasswd -B`) and SHA-256/512 crypt
//! (`$5$`, `$6$`: `htpasswd -2`, `-5`). MD5-apr1 (`htpasswd`'s old default), `{SHA}`,
//! DES crypt and plain text are refused when the file is read, naming the line.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Longest password checked against a hash.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// The users of one htpasswd file.
#[derive(Default)]
pub struct Users {
    /// Distinguishes this reading of the file from every other, in the checked-credentials
    /// memory: after a reload, nothing checked against the old file counts.
    id: u64,
    hashes: HashMap<String, Hash>,
}

/// Credentials recently found right, per thread, as SHA-256 digests of (file reading, user,
/// password): a browser sends the same `Authorization` with every request, and bcrypt's cost
/// (milliseconds on the thread that serves a whole core's connections) is then paid once.
/// Wrong credentials are never remembered. Cleared when it holds `REMEMBERED` entries.
const REMEMBERED: usize = 1024;

thread_local! {
    static CHECKED: RefCell<HashSet<[u8; 32]>> = RefCell::new(HashSet::new());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
enum Hash {
    Bcrypt(String),
    Sha256Crypt(String),
    Sha512Crypt(String),
}

/// Names the users, never their hashes (a `Request` carries its site, and may be printed).
impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.hashes.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

impl Users {
    /// Reads a file; the error names the file and line.
    pub fn load(path: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("htpasswd {}: {e}", path.display()))?;
        Users::parse(&text).map_err(|e| format!("htpasswd {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Users, String> {
        let mut hashes = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let number = number + 1;
            let (user, hash) = line
                .split_once(':')
                .ok_or(format!("line {number}: not user:hash"))?;
            let hash =
                if hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")
                {
                    Hash::Bcrypt(hash.to_string())
                } else if hash.starts_with("$5$") {
                    Hash::Sha256Crypt(hash.to_string())
                } else if hash.starts_with("$6$") {
                    Hash::Sha512Crypt(hash.to_string())
                } else if hash.starts_with("$apr1$") {
                    return Err(format!(
                        "line {number} ({user}): MD5-apr1 hashes are refused; \
                     make it again with `htpasswd -B` (bcrypt)"
                    ));
                } else if hash.starts_with("{SHA}") {
                    return Err(format!(
                        "line {number} ({user}): unsalted {{SHA}} hashes are refused; \
                     make it again with `htpasswd -B` (bcrypt)"
                    ));
                } else {
                    return Err(format!(
                        "line {number} ({user}): unknown or insecure hash (crypt or plain text); \
                     make it again with `htpasswd -B` (bcrypt)"
                    ));
                };
            hashes.insert(user.to_string(), hash);
        }
        Ok(Users {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            hashes,
        })
    }

    /// Whether the password is right for the user. A password longer than
    /// `MAX_PASSWORD_BYTES` is wrong without hashing: SHA-crypt's work grows with its length.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        let digest: [u8; 32] = Sha256::new()
            .chain_update(self.id.to_le_bytes())
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        let known = CHECKED.with(|checked| checked.borrow().contains(&digest));
        if known {
            return true;
        }
        let right = match self.hashes.get(user) {
            Some(Hash::Bcrypt(hash)) => bcrypt::verify(password, hash).unwrap_or(false),
            Some(Hash::Sha256Crypt(hash)) => sha_crypt::sha256_check(password, hash).is_ok(),
            Some(Hash::Sha512Crypt(hash)) => sha_crypt::sha512_check(password, hash).is_ok(),
            None => false,
        };
        if right {
            CHECKED.with(|checked| {
                let mut checked = checked.borrow_mut();
                if checked.len() >= REMEMBERED {
                    checked.clear();
                }
                checked.insert(digest);
            });
        }
        right
    }
}

/// The user and password of an `Authorization: Basic` value; `None` for any other scheme or
/// a malformed value (wrong base64, no colon, not UTF-8).
pub fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = data_encoding::BASE64.decode(token.trim().as_bytes()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_and_sha_crypt() {
        let bcrypt = bcrypt::hash_with_result("secret", 4).unwrap();
        let line = format!(
            "alice:{}\n",
            bcrypt.format_for_version(bcrypt::Version::TwoY)
        );
        let sha =
            sha_crypt::sha512_simple("pw", &sha_crypt::Sha512Params::new(5000).unwrap()).unwrap();
        let users = Users::parse(&format!("{line}# comment\nbob:{sha}\n")).unwrap();
        assert!(users.verify("alice", "secret"));
        assert!(!users.verify("alice", "Secret"));
        assert!(users.verify("bob", "pw"));
        assert!(!users.verify("bob", "secret"));
        let shown = format!("{users:?}");
        assert!(
            shown.contains("alice") && !shown.contains("$2y$"),
            "{shown}"
        );
        assert!(!users.verify("carol", "secret"));
        assert!(!users.verify("bob", &"p".repeat(MAX_PASSWORD_BYTES + 1)));
        // Remembered, still right; a new reading of the file remembers nothing of the old.
        assert!(users.verify("alice", "secret") && users.verify("alice", "secret"));
        let without_alice = Users::parse(&format!("bob:{sha}\n")).unwrap();
        assert!(!without_alice.verify("alice", "secret"));
    }

    #[test]
    fn weak_hashes_are_refused_by_line() {
        let apr1 = Users::parse("a:$apr1$abc$def\n").unwrap_err();
        assert!(
            apr1.contains("line 1") && apr1.contains("MD5-apr1"),
            "{apr1}"
        );
        assert!(Users::parse("a:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=").is_err());
        assert!(Users::parse("a:plaintext").is_err());
        assert!(Users::parse("no colon").is_err());
    }

    #[test]
    fn credentials() {
        assert_eq!(
            basic_credentials(b"Basic YWxpY2U6czNjcjp0"),
            Some(("alice".into(), "s3cr:t".into()))
        );
        assert_eq!(
            basic_credentials(b"basic  YWxpY2U6czNjcjp0 "),
            Some(("alice".into(), "s3cr:t".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        assert_eq!(basic_credentials(b"Basic YWxpY2U="), None);
        assert_eq!(basic_credentials(b"Basic"), None);
        assert_eq!(basic_credentials(&[0xff, 0xfe]), None);
    }
}
