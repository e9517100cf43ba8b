//! Browser identity without a server-side session store: the player's name travels in a
//! token signed with HMAC-SHA256 (the continuation-in-the-client idea of the Racket and
//! Common Cold servers). A token made before a restart still verifies after it, as long as
//! the key is the same; the key comes from the config or is generated once and kept in the
//! state directory.
//!
//! A token is `v1.<name>.<mac>`, both parts base64url without padding, the MAC taken over
//! `v1.<name>`.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const VERSION: &str = "v1";
/// The generated key's file in the state directory.
pub const KEY_FILE: &str = "token.key";

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not of the form `v1.<name>.<mac>`.
    Malformed,
    /// The MAC does not match: the token was altered or signed with another key.
    BadSignature,
    /// The key cannot key an HMAC.
    BadKey,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed => f.write_str("the token is malformed"),
            TokenError::BadSignature => f.write_str("the token's signature does not verify"),
            TokenError::BadKey => f.write_str("the token key is unusable"),
        }
    }
}

impl std::error::Error for TokenError {}

/// The signing key, ready to MAC.
#[derive(Clone)]
pub struct TokenKey {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(key: &[u8]) -> Result<TokenKey, TokenError> {
        let keyed = Hmac::<Sha256>::new_from_slice(key).map_err(|_| TokenError::BadKey)?;
        Ok(TokenKey { keyed })
    }

    /// The configured key, or the one kept in `state_dir`, generated there on first use
    /// (32 random bytes, hex, mode 0600).
    pub fn configured_or_kept(configured: Option<&str>, state_dir: &Path) -> io::Result<TokenKey> {
        if let Some(key) = configured {
            return TokenKey::new(key.as_bytes()).map_err(invalid);
        }
        let path = state_dir.join(KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let key = HEXLOWER.decode(text.trim().as_bytes()).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: not a hex key: {e}", path.display()),
                    )
                })?;
                if key.len() < 16 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: key too short", path.display()),
                    ));
                }
                return TokenKey::new(&key).map_err(invalid);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::create_dir_all(state_dir)?;
        let mut key = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let temporary = state_dir.join(format!("{KEY_FILE}.tmp"));
        let mut file = owner_only_file(&temporary)?;
        file.write_all(HEXLOWER.encode(&key).as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, &path)?;
        TokenKey::new(&key).map_err(invalid)
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(signed.as_bytes());
        mac
    }

    /// A token naming this player.
    pub fn sign(&self, name: &str) -> String {
        let signed = format!("{VERSION}.{}", BASE64URL_NOPAD.encode(name.as_bytes()));
        let tag = self.mac(&signed).finalize().into_bytes();
        format!("{signed}.{}", BASE64URL_NOPAD.encode(&tag))
    }

    /// The player a token names, if its signature verifies (compared in constant time).
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (version, name) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if version != VERSION {
            return Err(TokenError::Malformed);
        }
        let tag = BASE64URL_NOPAD
            .decode(tag.as_bytes())
            .map_err(|_| TokenError::Malformed)?;
        let name = BASE64URL_NOPAD
            .decode(name.as_bytes())
            .map_err(|_| TokenError::Malformed)?;
        self.mac(signed)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        String::from_utf8(name).map_err(|_| TokenError::Malformed)
    }
}

fn invalid(e: TokenError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(unix)]
fn owner_only_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn owner_only_file(path: &Path) -> io::Result<fs::File> {
    fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_name_verifies() {
        let key = TokenKey::new(b"a key of sixteen bytes or more").unwrap();
        let token = key.sign("alice");
        assert_eq!(key.verify(&token), Ok("alice".to_string()));
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let key = TokenKey::new(b"a key of sixteen bytes or more").unwrap();
        let token = key.sign("alice");
        let forged = token.replace(
            &BASE64URL_NOPAD.encode(b"alice"),
            &BASE64URL_NOPAD.encode(b"mallory"),
        );
        assert_eq!(key.verify(&forged), Err(TokenError::BadSignature));
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            key.verify(std::str::from_utf8(&flipped).unwrap()),
            Err(TokenError::BadSignature)
        );
        let other = TokenKey::new(b"another key of sixteen bytes").unwrap();
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
        assert_eq!(key.verify("garbage"), Err(TokenError::Malformed));
        assert_eq!(key.verify("v2.YWxpY2U.AAAA"), Err(TokenError::Malformed));
    }

    #[test]
    fn a_generated_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenKey::configured_or_kept(None, dir.path()).unwrap();
        let again = TokenKey::configured_or_kept(None, dir.path()).unwrap();
        assert_eq!(again.verify(&first.sign("bob")), Ok("bob".to_string()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured =
            TokenKey::configured_or_kept(Some("configured key 123"), dir.path()).unwrap();
        assert_eq!(
            configured.verify(&first.sign("bob")),
            Err(TokenError::BadSignature)
        );
    }
}
