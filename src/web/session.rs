//! Browser sessions: a signed and encrypted cookie (actix-session's `CookieSessionStore`)
//! holding a few fields; tokens stay server-side (`session_tokens`). A session ends when
//! its `exp` passes or a revocation names its Keycloak `sid` (or its user).
//!
//! The cookie belongs to the auth host alone (`__Host-`: `Secure`, `Path=/`, no
//! `Domain`), so no app host under the cookie domain can read, plant or shadow it; app
//! hosts get cookies of their own ([`crate::web::app_host`]). docs/cookies.md.

use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionExt, SessionMiddleware};
use actix_web::cookie::{Key, SameSite};
use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::domain::Principal;
use crate::web::refresh::SessionRefresher;
use crate::web::revocations::Revocations;

/// `__Host-`: browsers keep it only when set `Secure`, `Path=/` and without `Domain`,
/// so a sibling host cannot set one (docs/cookies.md).
pub const COOKIE_NAME: &str = "__Host-wizbrand_session";
/// How long a sign-in lasts here (Keycloak's own session may end it sooner, through
/// back-channel logout).
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(10);
const USER_KEY: &str = "user";
pub const LOGIN_KEY: &str = "login";

/// What the cookie holds about a signed-in user. Kept small: no tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedIn {
    pub sub: String,
    /// The proven email only ([`crate::domain::Email::proven`]); a new key name, so a
    /// cookie from before that rule carries none.
    #[serde(default, rename = "verified_email")]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Keycloak's session id (`sid`), the target of back-channel logout.
    #[serde(default)]
    pub sid: Option<String>,
    /// The chosen org's slug (`preferred_org`).
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub admin: bool,
    /// When (unix milliseconds) `admin` was last read from Keycloak; the admin pages
    /// read it again once it is older than `WIZBRAND_ADMIN_RECHECK_SECONDS`.
    #[serde(default)]
    pub admin_checked: i64,
    /// Issued at, and expiry (unix milliseconds).
    pub iat: i64,
    pub exp: i64,
    /// Random key of the server-side tokens; new at every sign-in.
    pub handle: String,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// From when (unix milliseconds) the access token may need a refresh; until then a
    /// request does not even note the session as in use.
    #[serde(default)]
    pub refresh_at: i64,
}

impl SignedIn {
    pub fn issued_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.iat).unwrap_or_default()
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.exp).unwrap_or_default()
    }

    pub fn principal(&self) -> Principal {
        Principal {
            sub: self.sub.clone(),
            email: self.email.clone(),
            preferred_org: self.org.clone(),
            platform_admin: self.admin,
        }
    }

    /// Whether the platform-admin flag is older than `max_age` at `now_ms`.
    pub fn admin_check_due(&self, now_ms: i64, max_age: std::time::Duration) -> bool {
        let max_age = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(self.admin_checked) >= max_age
    }

    /// Constant-time comparison of a submitted CSRF token with the session's.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), submitted.as_bytes())
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token (URL-safe, 256 bits).
pub fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed-in user of a session, unless expired or revoked. No I/O.
pub fn signed_in(session: &Session, revocations: Option<&Revocations>) -> Option<SignedIn> {
    let user: SignedIn = session.get(USER_KEY).ok()??;
    if user.expires_at() <= Utc::now() {
        return None;
    }
    // Without the revocation set nobody can be trusted: fail closed.
    let revocations = revocations?;
    if revocations.is_revoked(user.sid.as_deref(), &user.sub, user.issued_at()) {
        return None;
    }
    Some(user)
}

pub fn current(req: &HttpRequest) -> Option<SignedIn> {
    let revocations = req.app_data::<web::Data<Revocations>>();
    let user = signed_in(&req.get_session(), revocations.map(|r| r.as_ref()))?;
    if let Some(refresher) = req.app_data::<web::Data<SessionRefresher>>() {
        refresher.note_active(&user.handle, user.refresh_at);
    }
    Some(user)
}

pub fn store(session: &Session, user: &SignedIn) -> Result<(), crate::error::AppError> {
    session
        .insert(USER_KEY, user)
        .map_err(|e| crate::error::AppError::Internal(anyhow::anyhow!("session insert: {e}")))
}

/// The key that seals wizbrand's cookies, from `WIZBRAND_SESSION_KEY`.
pub fn cookie_key(config: &Config) -> anyhow::Result<Key> {
    Key::try_from(config.session_key.expose_secret().as_bytes())
        .map_err(|e| anyhow::anyhow!("WIZBRAND_SESSION_KEY cannot be used: {e}"))
}

/// The keys that only open wizbrand's cookies, from `WIZBRAND_SESSION_KEYS_PREVIOUS`
/// (key rotation: a cookie sealed before the rotation still opens; docs/deploy.md).
pub fn previous_cookie_keys(config: &Config) -> anyhow::Result<Vec<Key>> {
    config
        .ops
        .previous_session_keys
        .iter()
        .enumerate()
        .map(|(n, key)| {
            Key::try_from(key.expose_secret().as_bytes()).map_err(|e| {
                anyhow::anyhow!(
                    "key {} of WIZBRAND_SESSION_KEYS_PREVIOUS cannot be used: {e}",
                    n + 1
                )
            })
        })
        .collect()
}

/// How the session cookie is set, fixed at start-up.
#[derive(Clone)]
pub struct SessionSettings {
    key: Key,
    previous: Vec<Key>,
}

impl SessionSettings {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(SessionSettings {
            key: cookie_key(config)?,
            previous: previous_cookie_keys(config)?,
        })
    }

    /// The key that seals, and the keys that only open.
    pub fn keys(&self) -> (&Key, &[Key]) {
        (&self.key, &self.previous)
    }

    /// Always `Secure`, even for an http public URL: the prefix demands it, and
    /// browsers accept it from `http://localhost`, `http://*.localhost` and loopback
    /// addresses (the only http public URLs the configuration allows).
    pub fn middleware(&self) -> SessionMiddleware<CookieSessionStore> {
        SessionMiddleware::builder(CookieSessionStore::default(), self.key.clone())
            .cookie_name(COOKIE_NAME.to_owned())
            .cookie_secure(true)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_path("/".to_owned())
            .cookie_domain(None)
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(BrowserSession::default())
            .build()
    }
}

/// Cookie decoding as a property: arbitrary bytes, and every mangling of a genuine
/// cookie, go through the real session middleware without a panic and without a user.
#[cfg(test)]
mod proptests {
    use actix_web::cookie::{Cookie, CookieJar};
    use actix_web::http::header::HeaderValue;
    use actix_web::test as actix_test;
    use actix_web::{App, HttpResponse};
    use proptest::prelude::*;

    use super::*;

    const KEY: [u8; 64] = [7; 64];

    fn settings() -> SessionSettings {
        SessionSettings {
            key: Key::from(&KEY),
            previous: Vec::new(),
        }
    }

    /// A genuine cookie value, sealed as the middleware seals it.
    fn genuine() -> String {
        let now = Utc::now();
        let user = SignedIn {
            sub: "u1".into(),
            email: Some("u1@example.com".into()),
            name: None,
            sid: Some("s1".into()),
            org: Some("acme".into()),
            admin: true,
            admin_checked: now.timestamp_millis(),
            iat: now.timestamp_millis(),
            exp: (now + SESSION_TTL).timestamp_millis(),
            handle: "h".into(),
            csrf: "c".into(),
            refresh_at: 0,
        };
        let user = serde_json::to_string(&user).unwrap_or_default();
        let state = serde_json::json!({ USER_KEY: user }).to_string();
        let mut jar = CookieJar::new();
        jar.private_mut(&Key::from(&KEY))
            .add(Cookie::new(COOKIE_NAME, state));
        jar.get(COOKIE_NAME)
            .map(|c| c.value().to_owned())
            .unwrap_or_default()
    }

    /// Sends `cookie` (the whole header value) through the middleware; is anyone signed in?
    fn who(cookie: &[u8]) -> Option<bool> {
        let header = HeaderValue::from_bytes(cookie).ok()?;
        let answer = actix_web::rt::System::new().block_on(async move {
            let app = actix_test::init_service(
                App::new()
                    .wrap(settings().middleware())
                    .app_data(web::Data::new(Revocations::none_revoked()))
                    .route(
                        "/",
                        web::get().to(|req: HttpRequest| async move {
                            HttpResponse::Ok().body(match current(&req) {
                                Some(user) => format!("user {}", user.sub),
                                None => "nobody".to_owned(),
                            })
                        }),
                    ),
            )
            .await;
            let request = actix_test::TestRequest::get()
                .uri("/")
                .insert_header(("cookie", header))
                .to_request();
            let response = actix_test::call_service(&app, request).await;
            assert!(response.status().is_success(), "{}", response.status());
            actix_test::read_body(response).await
        });
        Some(answer.as_ref() != b"nobody")
    }

    fn named(value: &[u8]) -> Vec<u8> {
        [format!("{COOKIE_NAME}=").as_bytes(), value].concat()
    }

    #[test]
    fn the_admin_flag_is_believed_for_a_minute_only() {
        let user: SignedIn = serde_json::from_str(
            r#"{"sub":"u","iat":0,"exp":0,"handle":"h","csrf":"c","admin":true,"admin_checked":1000}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let minute = std::time::Duration::from_secs(60);
        assert!(!user.admin_check_due(1000, minute));
        assert!(!user.admin_check_due(60_999, minute));
        assert!(user.admin_check_due(61_000, minute));
        // A cookie from before the check existed is due at once.
        let old: SignedIn = serde_json::from_str(
            r#"{"sub":"u","iat":0,"exp":0,"handle":"h","csrf":"c","admin":true}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(old.admin_check_due(chrono::Utc::now().timestamp_millis(), minute));
    }

    #[test]
    fn the_genuine_cookie_signs_in() {
        assert_eq!(who(&named(genuine().as_bytes())), Some(true));
        assert_eq!(who(b"other=1"), Some(false));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_sign_in(
            // Bytes a header value may hold (visible ASCII, tab, obs-text).
            value in proptest::collection::vec((9u8..=255).prop_filter("header byte", |b| *b == 9 || (*b >= 32 && *b != 127)), 0..600)
        ) {
            prop_assert_ne!(who(&named(&value)), Some(true));
        }

        #[test]
        fn arbitrary_cookie_headers_never_sign_in(header in ".{0,300}") {
            prop_assert_ne!(who(header.as_bytes()), Some(true));
        }

        #[test]
        fn a_changed_genuine_cookie_never_signs_in(
            at in any::<prop::sample::Index>(),
            to in any::<u8>(),
            cut in any::<prop::sample::Index>(),
            how in 0..3u8,
        ) {
            let mut value = genuine().into_bytes();
            match how {
                // One byte replaced by another.
                0 => {
                    let i = at.index(value.len());
                    prop_assume!(value[i] != to);
                    value[i] = to;
                }
                // Cut short.
                1 => value.truncate(cut.index(value.len())),
                // Something appended.
                _ => value.push(to),
            }
            // Base64 may decode a changed last character to the same bytes, and the
            // cookie parser ends a value at `;` and drops padding, quotes and spaces:
            // appending those leaves the genuine cookie, which rightly signs in.
            let c = to as char;
            prop_assume!(
                how != 2
                    || !(c.is_ascii_alphanumeric()
                        || c.is_ascii_whitespace()
                        || matches!(c, '=' | ';' | ',' | '"' | '-' | '_'))
            );
            prop_assert_ne!(who(&named(&value)), Some(true));
        }
    }
}
