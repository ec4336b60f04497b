//! The sign-in client (`wizbrand-web`): Authorization Code with PKCE (S256), `state`
//! and `nonce`, against Keycloak's discovery document.
//!
//! HTTP is our own reqwest (the internal Keycloak URL for back-channel calls); the
//! random `state`, `nonce` and PKCE pair come from the `openidconnect` crate's types;
//! ID and logout tokens are checked with `jsonwebtoken` against the cached JWKS of
//! [`TokenVerifier`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{Config, KeycloakConfig};
use crate::keycloak::{Discovery, KeycloakError};
use crate::oidc::jwks::{TokenError, TokenVerifier};

/// How long the discovery document is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token is accepted this long after its `iat` (Keycloak posts it at once), so
/// its `jti` need be remembered only that long: the replay window is bounded.
pub const LOGOUT_TOKEN_MAX_AGE: chrono::Duration = chrono::Duration::minutes(5);
/// Clock skew allowed on `iat`, as on the other time claims.
const LOGOUT_TOKEN_LEEWAY: chrono::Duration = chrono::Duration::seconds(30);
/// Longer `jti`s are refused: each one is stored.
const MAX_JTI_LEN: usize = 256;

/// What a sign-in in progress keeps in the session until the callback.
/// What `/login` tells Keycloak beyond the code flow.
#[derive(Debug, Clone, Default)]
pub struct LoginHints {
    /// `kc_idp_hint`: the alias of the identity provider to go to at once.
    pub idp: Option<String>,
    /// `login_hint`: the address typed, filled in on Keycloak's form.
    pub login: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Already checked by [`crate::web::rd::safe_redirect`].
    pub rd: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Keycloak(#[from] KeycloakError),
    /// Keycloak's token endpoint answered with a 4xx: see [`GrantRefused`].
    #[error(transparent)]
    Refused(#[from] GrantRefused),
    #[error("the ID token is not acceptable: {0}")]
    IdToken(String),
}

/// A 4xx from the token endpoint, with its OAuth error code (RFC 6749, section 5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the identity provider refused the grant ({code}, HTTP {status})")]
pub struct GrantRefused {
    pub status: u16,
    /// `invalid_grant`, `invalid_client`, …; the HTTP status when Keycloak names none.
    pub code: String,
}

impl GrantRefused {
    /// Only `invalid_grant` says the grant itself is dead: a code unknown, expired or
    /// used, or a refresh token whose Keycloak session is over. Every other code
    /// (`invalid_client` after a secret rotation, `unauthorized_client`, …) is about
    /// this client and says nothing about the person's session.
    pub fn grant_is_dead(&self) -> bool {
        self.code == "invalid_grant"
    }
}

#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Lifetime of the access token, in seconds.
    #[serde(default)]
    pub expires_in: Option<i64>,
}

impl TokenResponse {
    /// When the access token expires; Keycloak always says, 60 s is a cautious default.
    pub fn access_expires_at(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        now + chrono::Duration::seconds(self.expires_in.unwrap_or(60).clamp(0, 86_400))
    }
}

/// The claims of Keycloak's ID token that wizbrand keeps.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    /// Required (no default): jsonwebtoken 9 does not enforce a required `iat`, serde does.
    pub iat: i64,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub preferred_org: Option<String>,
}

/// The claims of a back-channel logout token.
#[derive(Debug, Clone, Deserialize)]
pub struct LogoutClaims {
    /// Required; checked here, as jsonwebtoken 9 does not enforce a required `iat`.
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub nonce: Option<serde_json::Value>,
    #[serde(default)]
    pub events: Option<HashMap<String, serde_json::Value>>,
}

pub struct OidcClient {
    http: reqwest::Client,
    keycloak: KeycloakConfig,
    redirect_uri: String,
    discovery: Mutex<Option<(Discovery, Instant)>>,
}

impl OidcClient {
    pub fn new(http: reqwest::Client, config: &Config) -> Self {
        OidcClient {
            http,
            keycloak: config.keycloak.clone(),
            redirect_uri: public_path(&config.public_url, "/auth/callback"),
            discovery: Mutex::new(None),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.keycloak.web_client_id
    }

    /// The discovery document, cached; fetched over the internal URL.
    pub async fn discovery(&self) -> Result<Discovery, KeycloakError> {
        if let Ok(slot) = self.discovery.lock()
            && let Some((doc, at)) = slot.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(doc.clone());
        }
        let doc = crate::keycloak::discover(&self.http, &self.keycloak).await?;
        if let Ok(mut slot) = self.discovery.lock() {
            *slot = Some((doc.clone(), Instant::now()));
        }
        Ok(doc)
    }

    /// Starts a sign-in: the URL to send the browser to (Keycloak's public URL) and what
    /// the callback must find in the session.
    pub async fn begin(&self, rd: String) -> Result<(Url, PendingLogin), KeycloakError> {
        self.begin_with(rd, &LoginHints::default()).await
    }

    /// [`OidcClient::begin`] with hints for Keycloak: `kc_idp_hint` (straight to that
    /// identity provider) and `login_hint` (the address, filled in).
    pub async fn begin_with(
        &self,
        rd: String,
        hints: &LoginHints,
    ) -> Result<(Url, PendingLogin), KeycloakError> {
        let discovery = self.discovery().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random();
        let nonce = Nonce::new_random();
        let mut url =
            Url::parse(&discovery.authorization_endpoint).map_err(|_| KeycloakError::Status {
                what: "the authorization endpoint in the discovery document",
                status: reqwest::StatusCode::BAD_GATEWAY,
            })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.keycloak.web_client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", state.secret())
            .append_pair("nonce", nonce.secret())
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", challenge.method().as_str());
        if let Some(idp) = &hints.idp {
            url.query_pairs_mut().append_pair("kc_idp_hint", idp);
        }
        if let Some(login) = &hints.login {
            url.query_pairs_mut().append_pair("login_hint", login);
        }
        Ok((
            url,
            PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
                rd,
            },
        ))
    }

    /// Exchanges the code (back channel) and validates the ID token against the nonce.
    pub async fn finish(
        &self,
        code: &str,
        pending: &PendingLogin,
        verifier: &TokenVerifier,
    ) -> Result<(TokenResponse, IdClaims), SignInError> {
        let tokens = self
            .token_request(
                "the code exchange",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", self.redirect_uri.as_str()),
                    ("code_verifier", pending.verifier.as_str()),
                ],
            )
            .await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| SignInError::IdToken("Keycloak sent none".into()))?;
        let claims: IdClaims = verifier
            .decode(
                id_token,
                &self.keycloak.web_client_id,
                &["exp", "iss", "aud", "sub", "iat"],
            )
            .await
            .map_err(|e| SignInError::IdToken(e.to_string()))?;
        if claims.nonce.as_deref() != Some(pending.nonce.as_str()) {
            return Err(SignInError::IdToken("the nonce does not match".into()));
        }
        Ok((tokens, claims))
    }

    /// Trades a refresh token for new tokens (Keycloak hands back a new refresh token).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, SignInError> {
        self.token_request(
            "the token refresh",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// A POST to the token endpoint (back channel) as the confidential web client.
    async fn token_request(
        &self,
        what: &'static str,
        grant: &[(&str, &str)],
    ) -> Result<TokenResponse, SignInError> {
        let discovery = self.discovery().await?;
        let endpoint = self.keycloak.backchannel(&discovery.token_endpoint);
        let mut form: Vec<(&str, &str)> = grant.to_vec();
        form.push(("client_id", self.keycloak.web_client_id.as_str()));
        form.push((
            "client_secret",
            self.keycloak.web_client_secret.expose_secret(),
        ));
        let response = self
            .http
            .post(&endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|source| KeycloakError::Unreachable {
                url: endpoint.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_client_error() {
            // Keycloak names the reason (`invalid_grant`, …); the body holds no secret.
            let code = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| status.to_string());
            return Err(GrantRefused {
                status: status.as_u16(),
                code,
            }
            .into());
        }
        if !status.is_success() {
            return Err(KeycloakError::Status { what, status }.into());
        }
        Ok(response
            .json()
            .await
            .map_err(|source| KeycloakError::Decode {
                what: "token response",
                source,
            })?)
    }

    /// Where to send the browser to end the Keycloak session too (RP-initiated logout).
    pub fn end_session_url(
        &self,
        discovery: &Discovery,
        id_token: Option<&str>,
        post_logout: &str,
    ) -> Option<Url> {
        let mut url = Url::parse(discovery.end_session_endpoint.as_deref()?).ok()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.keycloak.web_client_id)
                .append_pair("post_logout_redirect_uri", post_logout);
            if let Some(hint) = id_token {
                q.append_pair("id_token_hint", hint);
            }
        }
        Some(url)
    }
}

/// A logout token that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedLogout {
    pub claims: LogoutClaims,
    pub jti: String,
    /// Until when its `jti` must be remembered to refuse a replay: past this the token
    /// is refused as too old anyway.
    pub remember_until: chrono::DateTime<chrono::Utc>,
}

/// Checks a back-channel logout token (OpenID Back-Channel Logout 1.0, sections 2.4 and
/// 2.6): `typ` when present, signature (JWKS), `iss`, `aud` = our client id, `exp` when
/// present, then [`check_logout_claims`]. Whether its `jti` was seen before is the
/// caller's to ask (Postgres).
pub async fn verify_logout_token(
    verifier: &TokenVerifier,
    client_id: &str,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<CheckedLogout, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    check_logout_type(header.typ.as_deref())?;
    let claims: LogoutClaims = verifier
        .decode(token, client_id, &["iss", "aud", "iat"])
        .await?;
    check_logout_claims(claims, now)
}

/// The `typ` header, when present, must say logout token (section 2.4), so that no other
/// JWT of the realm's (an ID or access token) passes for one.
pub fn check_logout_type(typ: Option<&str>) -> Result<(), TokenError> {
    match typ {
        None => Ok(()),
        Some(t)
            if t.eq_ignore_ascii_case("logout+jwt")
                || t.eq_ignore_ascii_case("application/logout+jwt") =>
        {
            Ok(())
        }
        Some(_) => Err(TokenError::Invalid(
            "the typ header is not logout+jwt".into(),
        )),
    }
}

/// The claim rules of OpenID Back-Channel Logout 1.0, section 2.6, beyond the JWT's:
/// `iat` present and recent, `jti` present, the back-channel logout event as a JSON
/// object, no `nonce`, a `sid` or `sub`.
pub fn check_logout_claims(
    claims: LogoutClaims,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<CheckedLogout, TokenError> {
    let issued = claims
        .iat
        .and_then(|iat| chrono::DateTime::from_timestamp(iat, 0))
        .ok_or_else(|| TokenError::Invalid("a logout token carries iat".into()))?;
    if issued > now + LOGOUT_TOKEN_LEEWAY {
        return Err(TokenError::Invalid(
            "the logout token is issued in the future".into(),
        ));
    }
    let remember_until = issued + LOGOUT_TOKEN_MAX_AGE + LOGOUT_TOKEN_LEEWAY;
    if remember_until < now {
        return Err(TokenError::Invalid("the logout token is too old".into()));
    }
    let jti = match claims.jti.as_deref() {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => jti.to_owned(),
        _ => {
            return Err(TokenError::Invalid(
                "a logout token carries a jti (at most 256 bytes)".into(),
            ));
        }
    };
    if claims.nonce.is_some() {
        return Err(TokenError::Invalid(
            "a logout token carries no nonce".into(),
        ));
    }
    if !claims.events.as_ref().is_some_and(|e| {
        e.get(BACKCHANNEL_LOGOUT_EVENT)
            .is_some_and(|v| v.is_object())
    }) {
        return Err(TokenError::Invalid(
            "the events claim lacks the back-channel logout event".into(),
        ));
    }
    if claims.sid.is_none() && claims.sub.is_none() {
        return Err(TokenError::Invalid("neither sid nor sub".into()));
    }
    Ok(CheckedLogout {
        claims,
        jti,
        remember_until,
    })
}

/// `public` with its path replaced by `path` and no query.
pub fn public_path(public: &Url, path: &str) -> String {
    let mut url = public.clone();
    url.set_path(path);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> LogoutClaims {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn logout_claims_follow_the_spec() {
        let now = chrono::Utc::now();
        let iat = now.timestamp();
        let event = serde_json::json!({BACKCHANNEL_LOGOUT_EVENT: {}});
        let good = serde_json::json!({"sid": "s", "iat": iat, "jti": "j", "events": event});
        let checked = check_logout_claims(claims(good), now).unwrap();
        assert_eq!(checked.jti, "j");
        assert_eq!(
            checked.remember_until.timestamp(),
            iat + (LOGOUT_TOKEN_MAX_AGE + LOGOUT_TOKEN_LEEWAY).num_seconds()
        );
        // A little skew either way is fine.
        let skewed = serde_json::json!({"sub": "u", "iat": iat + 20, "jti": "j", "events": event});
        assert!(check_logout_claims(claims(skewed), now).is_ok());
        let old = serde_json::json!({"sub": "u", "iat": iat - 300, "jti": "j", "events": event});
        assert!(check_logout_claims(claims(old), now).is_ok());
        for bad in [
            serde_json::json!({"sid": "s", "iat": iat, "jti": "j"}),
            serde_json::json!({"sid": "s", "iat": iat, "jti": "j", "events": {"other": {}}}),
            serde_json::json!({"sid": "s", "iat": iat, "jti": "j", "events": {BACKCHANNEL_LOGOUT_EVENT: "x"}}),
            serde_json::json!({"sid": "s", "iat": iat, "jti": "j", "events": [BACKCHANNEL_LOGOUT_EVENT]}),
            serde_json::json!({"sid": "s", "iat": iat, "jti": "j", "nonce": "n", "events": event}),
            serde_json::json!({"iat": iat, "jti": "j", "events": event}),
            // No iat, iat in the future, iat too old.
            serde_json::json!({"sid": "s", "jti": "j", "events": event}),
            serde_json::json!({"sid": "s", "iat": iat + 120, "jti": "j", "events": event}),
            serde_json::json!({"sid": "s", "iat": iat - 400, "jti": "j", "events": event}),
            // No jti, an empty or an over-long one.
            serde_json::json!({"sid": "s", "iat": iat, "events": event}),
            serde_json::json!({"sid": "s", "iat": iat, "jti": "", "events": event}),
            serde_json::json!({"sid": "s", "iat": iat, "jti": "j".repeat(257), "events": event}),
        ] {
            let parsed: Result<LogoutClaims, _> = serde_json::from_value(bad.clone());
            assert!(
                parsed.map_or(true, |c| check_logout_claims(c, now).is_err()),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_typ_header_when_present_says_logout_token() {
        for good in [
            None,
            Some("logout+jwt"),
            Some("Logout+JWT"),
            Some("application/logout+jwt"),
        ] {
            assert!(check_logout_type(good).is_ok(), "{good:?}");
        }
        for bad in ["JWT", "at+jwt", "", "logout+jwt; x", "application/jwt"] {
            assert!(check_logout_type(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_uri_is_the_public_callback() {
        let public = Url::parse("http://127.0.0.1:4321/ignored?x=1").unwrap();
        assert_eq!(
            public_path(&public, "/auth/callback"),
            "http://127.0.0.1:4321/auth/callback"
        );
    }
}
