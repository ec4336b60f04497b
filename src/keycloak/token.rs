//! The sync's service-account token, cached until shortly before it expires (the
//! `keycloak` crate's own retriever asks for a new token on every call).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::config::KeycloakConfig;

/// Renew this long before expiry, so a token never runs out mid-request.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// Clones share one cache.
#[derive(Clone)]
pub struct CachedServiceToken {
    http: reqwest::Client,
    config: KeycloakConfig,
    cached: std::sync::Arc<Mutex<Option<(String, Instant)>>>,
}

impl CachedServiceToken {
    pub fn new(http: reqwest::Client, config: KeycloakConfig) -> Self {
        CachedServiceToken {
            http,
            config,
            cached: std::sync::Arc::new(Mutex::new(None)),
        }
    }

    pub async fn token(&self) -> Result<String, super::KeycloakError> {
        // Held across the fetch: concurrent callers wait for one refresh, not N.
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + RENEW_BEFORE < *expires
        {
            return Ok(token.clone());
        }
        let discovery = super::discover(&self.http, &self.config).await?;
        let fresh = super::service_account_token(&self.http, &self.config, &discovery).await?;
        let expires = Instant::now() + Duration::from_secs(fresh.expires_in);
        *cached = Some((fresh.access_token.clone(), expires));
        Ok(fresh.access_token)
    }
}

/// The `sub` of a token this process just obtained from Keycloak itself: which user
/// id the service account acts as.
pub fn subject_of(token: &str) -> Option<String> {
    let claims = crate::jwt::unverified_claims(token)?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

#[async_trait]
impl keycloak::KeycloakTokenSupplier for CachedServiceToken {
    async fn get(&self, _url: &str) -> Result<String, keycloak::KeycloakError> {
        self.token()
            .await
            .map_err(|e| keycloak::KeycloakError::HttpFailure {
                status: 401,
                body: None,
                text: e.to_string(),
            })
    }
}
