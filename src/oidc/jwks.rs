//! Access-token verification with a cached JWKS. An unknown `kid` refetches the key
//! set at most once per `REFETCH_INTERVAL`, so key rotation needs no restart and a flood
//! of made-up `kid`s cannot hammer Keycloak. While Keycloak is down, the cache serves.
//! A key set older than `max_age` (default `MAX_AGE`) is refetched on the next call,
//! so a key the realm removed stops verifying within that time.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::KeycloakConfig;
use crate::domain::Email;
use crate::domain::Principal;

const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
const LEEWAY_SECONDS: u64 = 30;
/// Access tokens already verified, so a client repeating its token (every request of
/// an API client or a gate call) costs a lookup, not an RSA verification. Bounded;
/// emptied whenever the key set is refetched.
const VERIFIED_CAPACITY: usize = 4096;
/// How long a fetched key set is trusted without looking again.
const MAX_AGE: Duration = Duration::from_secs(300);
/// Asymmetric algorithms only: no `none`, no HMAC (whose secret could be the public key).
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not allowed")]
    Algorithm,
    #[error("the token names a signing key the realm does not have")]
    UnknownKey,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the realm's keys cannot be fetched: {0}")]
    KeysUnavailable(String),
}

#[derive(Debug, Deserialize)]
struct AccessClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    preferred_org: Option<String>,
    #[serde(default)]
    realm_access: Option<RealmAccess>,
}

#[derive(Debug, Deserialize)]
struct RealmAccess {
    #[serde(default)]
    roles: Vec<String>,
}

struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    fetched: Option<Instant>,
}

pub struct TokenVerifier {
    http: reqwest::Client,
    jwks_url: String,
    issuer: String,
    audience: String,
    keys: RwLock<Keys>,
    refetch: tokio::sync::Mutex<()>,
    max_age: Duration,
    /// token → (who, `exp`), for tokens this verifier has checked in full.
    verified: RwLock<HashMap<Box<str>, (Principal, u64)>>,
}

impl TokenVerifier {
    pub fn new(http: reqwest::Client, config: &KeycloakConfig) -> Self {
        let issuer = config.issuer();
        TokenVerifier {
            http,
            jwks_url: config.backchannel(&format!("{issuer}/protocol/openid-connect/certs")),
            issuer,
            audience: config.api_audience.clone(),
            keys: RwLock::new(Keys {
                by_kid: HashMap::new(),
                fetched: None,
            }),
            refetch: tokio::sync::Mutex::new(()),
            max_age: MAX_AGE,
            verified: RwLock::new(HashMap::new()),
        }
    }

    /// Trust a fetched key set for `max_age` instead of `MAX_AGE` (tests use seconds).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    fn stale(&self) -> bool {
        self.keys
            .read()
            .map(|k| k.fetched.is_some_and(|at| at.elapsed() >= self.max_age))
            .unwrap_or(false)
    }

    /// Checks a JWT's algorithm, signature, `iss`, `aud` (must contain `audience`),
    /// `exp`/`nbf` (when present, or required in `required`) and hands back its claims.
    /// No network call when its key is cached.
    pub async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
        required: &[&str],
    ) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        if self.stale() {
            // Removed keys go away; on failure the cache keeps serving.
            if let Err(e) = self.refresh_if_due().await {
                tracing::warn!(error = %e, "JWKS refresh failed; verifying from the cached keys");
            }
        }
        let key = match self.cached(&kid) {
            Some(key) => key,
            None => {
                self.refresh_if_due().await?;
                self.cached(&kid).ok_or(TokenError::UnknownKey)?
            }
        };
        let (key, alg) = key;
        if alg != header.alg {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(required);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        jsonwebtoken::decode::<T>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Verifies an access token for the API audience; no network call when its key is
    /// cached.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.verify_expiring(token)
            .await
            .map(|(principal, _)| principal)
    }

    /// [`TokenVerifier::verify`], with the token's `exp` (unix seconds): how long a
    /// caller may keep the answer (the gate's per-worker cache).
    pub async fn verify_expiring(&self, token: &str) -> Result<(Principal, u64), TokenError> {
        if !self.stale()
            && let Some(verified) = self.already_verified(token)
        {
            return Ok(verified);
        }
        let claims: AccessClaims = self
            .decode(token, &self.audience, &["exp", "iss", "aud", "sub"])
            .await?;
        // Keycloak marks access tokens `Bearer`; ID and logout tokens are refused.
        if claims.typ.as_deref().is_some_and(|t| t != "Bearer") {
            return Err(TokenError::Invalid("not an access token".into()));
        }
        let principal = Principal {
            platform_admin: claims
                .realm_access
                .is_some_and(|r| r.roles.iter().any(|role| role == "wizbrand-admin")),
            sub: claims.sub,
            email: Email::proven(claims.email.as_deref(), claims.email_verified)
                .map(Email::into_string),
            preferred_org: claims.preferred_org,
        };
        if let Ok(mut verified) = self.verified.write() {
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(token.into(), (principal.clone(), claims.exp));
        }
        Ok((principal, claims.exp))
    }

    /// A token verified before and not yet expired (same leeway as a full check).
    fn already_verified(&self, token: &str) -> Option<(Principal, u64)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let verified = self.verified.read().ok()?;
        let (principal, exp) = verified.get(token)?;
        (now <= exp + LEEWAY_SECONDS).then(|| (principal.clone(), *exp))
    }

    fn cached(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys.read().ok()?.by_kid.get(kid).cloned()
    }

    async fn refresh_if_due(&self) -> Result<(), TokenError> {
        // One refetch at a time; the rest wait and then read what it found.
        let _guard = self.refetch.lock().await;
        let due = self
            .keys
            .read()
            .map(|k| {
                k.fetched
                    .is_none_or(|at| at.elapsed() >= REFETCH_INTERVAL.min(self.max_age))
            })
            .unwrap_or(true);
        if !due {
            return Ok(());
        }
        let fetched = self.fetch().await;
        if let Ok(mut keys) = self.keys.write() {
            keys.fetched = Some(Instant::now());
            if let Ok(by_kid) = &fetched {
                keys.by_kid = by_kid.clone();
                // A key may have gone: every token is checked in full again.
                if let Ok(mut verified) = self.verified.write() {
                    verified.clear();
                }
            }
        }
        fetched.map(|_| ())
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, TokenError> {
        let set: JwkSet = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| TokenError::KeysUnavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| TokenError::KeysUnavailable(e.to_string()))?;
        let mut out = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk.common.key_algorithm) else {
                continue;
            };
            // Encryption keys (RSA-OAEP) share the set; only signing keys count.
            let Ok(alg) = alg.to_string().parse::<Algorithm>() else {
                continue;
            };
            if !ALLOWED.contains(&alg) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                out.insert(kid.clone(), (key, alg));
            }
        }
        Ok(out)
    }
}
