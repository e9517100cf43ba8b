//! `[tls.acme]` as read from the config file, its checks, and what `--check` adds.

use std::path::PathBuf;

use serde::Deserialize;

use super::client;

/// `[tls.acme]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's ACME directory URL (Let's Encrypt: `https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// The account's contact address; empty: none.
    #[serde(default)]
    pub email: String,
    /// The names to keep certificates for, one certificate each.
    pub names: Vec<String>,
    /// Where the account key, certificates and keys are kept (created 0700).
    pub state_dir: PathBuf,
    /// PEM trust anchors for the ACME directory's HTTPS (default: the system's).
    pub ca_file: Option<PathBuf>,
}

impl AcmeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.directory.starts_with("https://") {
            return Err(format!(
                "[tls.acme] directory {:?} must be an https:// URL",
                self.directory
            ));
        }
        if self.names.is_empty() {
            return Err("[tls.acme] names must not be empty".to_string());
        }
        for name in &self.names {
            if name.starts_with("*.") {
                return Err(format!(
                    "[tls.acme] {name}: wildcard names need the dns-01 challenge; \
                     only http-01 is offered"
                ));
            }
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.parse::<std::net::IpAddr>().is_err()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            if !valid {
                return Err(format!(
                    "[tls.acme] {name:?} is not a DNS name (lower case letters, digits, '-' and '.')"
                ));
            }
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err("[tls.acme] state_dir must be set".to_string());
        }
        Ok(())
    }

    pub(super) fn contact(&self) -> Vec<String> {
        match self.email.trim() {
            "" => Vec::new(),
            email if email.starts_with("mailto:") => vec![email.to_string()],
            email => vec![format!("mailto:{email}")],
        }
    }
}

/// What `--check` can tell without asking the CA: `ca_file` holds certificates, and
/// `state_dir` is a directory or can be made one.
pub fn check(cfg: &AcmeConfig) -> Result<(), String> {
    if let Some(ca_file) = &cfg.ca_file {
        client::trust_anchors(ca_file).map(|_| ())?;
    }
    let dir = &cfg.state_dir;
    if dir.exists() {
        if !dir.is_dir() {
            return Err(format!("state_dir {} is not a directory", dir.display()));
        }
    } else {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|p| !p.is_dir()) {
            return Err(format!(
                "state_dir {}: its parent directory does not exist",
                dir.display()
            ));
        }
    }
    Ok(())
}
