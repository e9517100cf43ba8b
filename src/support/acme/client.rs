//! One ACME order for one name, with instant-acme: the account (kept in `state_dir`), the
//! order, its http-01 challenge (put on the `Board`, where the plain listener answers it from
//! memory), the key and CSR, and the certificate. Async code, run by the acme process on its
//! own current-thread tokio runtime; nothing here is on a request path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountBuilder, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};

use super::{store, AcmeConfig, Board};

/// How long the CA may take to validate a challenge, and then to issue.
const POLL_LIMIT: Duration = Duration::from_secs(90);

/// A certificate just issued: the PEM chain and its private key.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// The HTTP client that talks to the ACME directory: trusting only `ca_file` when it is
/// set (a test CA such as pebble's, or a private one), else the system's roots.
fn account_builder(cfg: &AcmeConfig) -> Result<AccountBuilder, String> {
    let Some(ca_file) = &cfg.ca_file else {
        return Account::builder().map_err(|e| format!("HTTP client: {}", describe(&e)));
    };
    let roots = trust_anchors(ca_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let http: HyperClient<_, BodyWrapper<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector);
    Ok(Account::builder_with_http(
        Box::new(http) as Box<dyn HttpClient>
    ))
}

/// Every certificate in `ca_file`, as trust anchors.
pub fn trust_anchors(ca_file: &Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("{}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no PEM certificate in it", ca_file.display()));
    }
    Ok(roots)
}

/// The account for `cfg.directory`: the one kept in `state_dir`, or a new one (registered
/// with `email` as contact, agreeing to the CA's terms of service) that is then kept.
/// Returns whether it is new.
pub async fn account(cfg: &AcmeConfig) -> Result<(Account, bool), String> {
    let path = store::account_path(&cfg.state_dir, &cfg.directory);
    if let Ok(json) = std::fs::read(&path) {
        let credentials: AccountCredentials =
            serde_json::from_slice(&json).map_err(|e| format!("{}: {e}", path.display()))?;
        let account = account_builder(cfg)?
            .from_credentials(credentials)
            .await
            .map_err(|e| format!("directory {}: {}", cfg.directory, describe(&e)))?;
        return Ok((account, false));
    }
    let contact = cfg.contact();
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = account_builder(cfg)?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("new account at {}: {}", cfg.directory, describe(&e)))?;
    let json = serde_json::to_vec_pretty(&credentials).map_err(|e| e.to_string())?;
    store::write_private(&path, &json)?;
    Ok((account, true))
}

/// Orders a certificate for `name` and sees it through: the challenge is published on the
/// board while the CA validates it and withdrawn afterwards, whatever the outcome.
pub async fn obtain(account: &Account, name: &str, board: &Board) -> Result<Issued, String> {
    let identifiers = [Identifier::Dns(name.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {}", describe(&e)))?;
    let mut tokens = Vec::new();
    let issued = validate_and_finalize(&mut order, board, &mut tokens).await;
    for token in &tokens {
        board.withdraw_challenge(token);
    }
    issued
}

async fn validate_and_finalize(
    order: &mut Order,
    board: &Board,
    tokens: &mut Vec<String>,
) -> Result<Issued, String> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization =
            authorization.map_err(|e| format!("authorization: {}", describe(&e)))?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("authorization is {other:?}")),
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or("the CA offers no http-01 challenge")?;
        let token = challenge.token.clone();
        board.publish_challenge(&token, challenge.key_authorization().as_str());
        tokens.push(token);
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge: {}", describe(&e)))?;
    }
    let poll = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(POLL_LIMIT);
    let status = order
        .poll_ready(&poll)
        .await
        .map_err(|e| format!("validation failed: {}", describe(&e)))?;
    if status != OrderStatus::Ready {
        return Err(format!(
            "validation failed: {}",
            why_invalid(order)
                .await
                .unwrap_or_else(|| format!("{status:?}"))
        ));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {}", describe(&e)))?;
    let chain_pem = order
        .poll_certificate(&poll)
        .await
        .map_err(|e| format!("certificate: {}", describe(&e)))?;
    Ok(Issued { chain_pem, key_pem })
}

/// The CA's reasons for an invalid order: each failed challenge's problem.
async fn why_invalid(order: &mut Order) -> Option<String> {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(problem.to_string());
            }
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// An error with its causes: hyper's own message ("client error (Connect)") says little
/// without them.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}
