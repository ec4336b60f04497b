//! Keycloak: discovery, the service account, and (for the sync) the admin API.

pub(crate) mod accounts;
pub mod directory;
pub mod providers;
pub(crate) mod token;

use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::config::KeycloakConfig;

#[derive(Debug, thiserror::Error)]
pub enum KeycloakError {
    #[error("Keycloak at {url} is unreachable: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Keycloak answered {status} for {what}")]
    Status {
        what: &'static str,
        status: reqwest::StatusCode,
    },
    #[error("Keycloak's {what} could not be read: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("Keycloak's issuer is {actual}, but KEYCLOAK_URL and KEYCLOAK_REALM give {expected}")]
    IssuerMismatch { expected: String, actual: String },
    #[error(
        "no TLS trust store: {cause}. wizbrand verifies Keycloak's certificate against the \
         system's CA roots (/etc/ssl/certs); install the ca-certificates package, or set \
         SSL_CERT_FILE to a PEM bundle (SSL_CERT_DIR to a folder of them)"
    )]
    TrustStore { cause: String },
}

/// The parts of the OpenID discovery document wizbrand relies on.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub end_session_endpoint: Option<String>,
}

fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("wizbrand/", env!("CARGO_PKG_VERSION")))
}

/// The HTTP client for Keycloak, or why none can be built. With the fixed options
/// above, the one thing that fails at run time is the trust store: the platform
/// verifier refuses to start without a CA root (a container image without
/// ca-certificates, an empty SSL_CERT_FILE).
pub fn try_http_client(timeout: Duration) -> Result<reqwest::Client, KeycloakError> {
    client_builder(timeout).build().map_err(|e| {
        // reqwest says only "builder error"; the cause is further down the chain.
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            cause = format!("{cause}: {inner}");
            source = inner.source();
        }
        KeycloakError::TrustStore { cause }
    })
}

/// Stops start-up with a clear error when no client can be built (see
/// [`try_http_client`]); the commands that talk to Keycloak call it first.
pub fn check_trust_store() -> Result<(), KeycloakError> {
    try_http_client(Duration::from_secs(1)).map(|_| ())
}

/// The HTTP client for Keycloak: short time-outs, no redirects to follow. Start-up has
/// passed [`check_trust_store`]; should the store vanish later, a client that trusts no
/// server (every call fails, and /readyz says so) instead of reqwest's panicking
/// `Client::new()`.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    try_http_client(timeout).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the HTTP client for Keycloak trusts no server");
        client_builder(timeout)
            .tls_certs_only(Vec::new())
            .build()
            .unwrap_or_default()
    })
}

/// Fetches the realm's discovery document and checks its issuer.
pub async fn discover(
    http: &reqwest::Client,
    config: &KeycloakConfig,
) -> Result<Discovery, KeycloakError> {
    let url = config.backchannel(&format!(
        "{}/.well-known/openid-configuration",
        config.issuer()
    ));
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|source| KeycloakError::Unreachable {
            url: url.clone(),
            source,
        })?;
    if !response.status().is_success() {
        return Err(KeycloakError::Status {
            what: "the realm's discovery document (is KEYCLOAK_REALM right?)",
            status: response.status(),
        });
    }
    let discovery: Discovery = response
        .json()
        .await
        .map_err(|source| KeycloakError::Decode {
            what: "discovery document",
            source,
        })?;
    if discovery.issuer != config.issuer() {
        return Err(KeycloakError::IssuerMismatch {
            expected: config.issuer(),
            actual: discovery.issuer,
        });
    }
    Ok(discovery)
}

#[derive(Debug, Deserialize)]
pub struct ServiceToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// Asks for a service-account token of the sync client (client credentials grant).
pub async fn service_account_token(
    http: &reqwest::Client,
    config: &KeycloakConfig,
    discovery: &Discovery,
) -> Result<ServiceToken, KeycloakError> {
    let token_endpoint = config.backchannel(&discovery.token_endpoint);
    let response = http
        .post(&token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", config.sync_client_id.as_str()),
            ("client_secret", config.sync_client_secret.expose_secret()),
        ])
        .send()
        .await
        .map_err(|source| KeycloakError::Unreachable {
            url: token_endpoint.clone(),
            source,
        })?;
    if !response.status().is_success() {
        return Err(KeycloakError::Status {
            what: "the sync client's credentials (WIZBRAND_SYNC_CLIENT_ID / WIZBRAND_SYNC_CLIENT_SECRET)",
            status: response.status(),
        });
    }
    response
        .json()
        .await
        .map_err(|source| KeycloakError::Decode {
            what: "token response",
            source,
        })
}
