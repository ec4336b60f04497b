//! App-host cookies, handed over by one-time tickets (docs/cookies.md).
//!
//! The session cookie belongs to the auth host alone. Each app host gets a host-only
//! cookie of its own ([`APP_COOKIE`]): sealed (encrypted and authenticated) with the
//! session key, holding the session's fields and the host it was issued for, so the
//! gate decides from it without any I/O and a copy is worthless on any other host.
//!
//! The hand-over, for a browser at app host H without a valid cookie:
//! 1. the gate sets a random nonce cookie on H ([`BIND_COOKIE`]) and sends the browser
//!    to the auth host's `/auth/hand-off?rd=<url>&bind=<hash of the nonce>`;
//! 2. the auth host (signed in; else `/login` first) stores a ticket for H bound to that
//!    hash and to the session (Postgres, 30 s) and sends the browser to
//!    `H/_wizbrand/session?ticket=…&rd=<url>`, a path Traefik routes to wizbrand;
//! 3. there wizbrand takes the ticket out (single use on every replica), checks host,
//!    age and that this browser holds the nonce, sets H's cookie and goes on to `rd`.
//!
//! The nonce is what stops a sibling from handing a victim the attacker's ticket (login
//! CSRF on an app host): it is a `__Host-` cookie of H, which no other host can set.

use std::sync::Arc;

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sqlx::PgPool;
use url::Url;

use crate::config::Config;
use crate::db::host_tickets::{NewTicket, TicketRow};
use crate::error::{AppError, SurfacedError};
use crate::forward_auth::decide::normalise_host;
use crate::forward_auth::passes::{AppHosts, Pass, SessionRef};
use crate::forward_auth::state::GateState;
use crate::oidc::client::public_path;
use crate::web::cookie_guard;
use crate::web::html::{ErrorPage, Frame, Link, redirect, render};
use crate::web::page::{SecurityHeaders, html_err};
use crate::web::rd::safe_redirect;
use crate::web::refresh::SessionRefresher;
use crate::web::revocations::Revocations;
use crate::web::session::{self, SignedIn, constant_time_eq, random_token};
use crate::web::token_vault;

pub use crate::web::cookie_guard::{APP_COOKIE, BIND_COOKIE};
/// The reserved path on every app host (Traefik sends it to wizbrand, not the app).
pub const EXCHANGE_PATH: &str = "/_wizbrand/session";
pub const HAND_OFF_PATH: &str = "/auth/hand-off";
/// How long a ticket may wait for its use: two redirects' worth, with room for a slow
/// network.
pub const TICKET_TTL: chrono::Duration = chrono::Duration::seconds(30);
/// How long the nonce waits for the hand-over (it may include a Keycloak sign-in).
const BIND_TTL: actix_web::cookie::time::Duration = actix_web::cookie::time::Duration::minutes(15);
/// Longer sealed values are not even decrypted.
const MAX_SEALED_LEN: usize = 4096;

/// What an app host's cookie holds: the session's fields and its host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostPass {
    /// Lower-case, without port ([`normalise_host`]).
    pub host: String,
    /// The session, without its CSRF token (no wizbrand form lives on an app host).
    pub user: SignedIn,
}

/// The key app-host cookies are sealed with (the session key; the cookie's name is
/// part of what is authenticated, so a session cookie's value cannot pass as one).
pub struct HostCookies {
    key: Key,
    /// `WIZBRAND_SESSION_KEYS_PREVIOUS`: open only, never seal.
    previous: Vec<Key>,
}

impl HostCookies {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(HostCookies {
            key: session::cookie_key(config)?,
            previous: session::previous_cookie_keys(config)?,
        })
    }

    #[cfg(test)]
    pub fn with_key(key: Key) -> Self {
        HostCookies {
            key,
            previous: Vec::new(),
        }
    }

    /// Key rotation: the current key first (it sealed nearly every pass), then the
    /// previous ones.
    fn opening_keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.key).chain(&self.previous)
    }

    /// The `Set-Cookie` of an app host: host-only, `Secure`, `HttpOnly`, `Lax`, ending
    /// with the browser session (the sealed `exp` ends it sooner).
    pub fn seal(&self, pass: &HostPass) -> Option<Cookie<'static>> {
        let json = serde_json::to_string(pass).ok()?;
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key)
            .add(Cookie::new(APP_COOKIE, json));
        let sealed = jar.get(APP_COOKIE)?.value().to_owned();
        Some(host_cookie(APP_COOKIE, sealed))
    }

    pub fn open(&self, sealed: &str) -> Option<HostPass> {
        if sealed.len() > MAX_SEALED_LEN {
            return None;
        }
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(APP_COOKIE, sealed.to_owned()));
        let cookie = self
            .opening_keys()
            .find_map(|key| jar.private(key).get(APP_COOKIE))?;
        serde_json::from_str(cookie.value()).ok()
    }
}

fn host_cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256, URL-safe base64: what Postgres and URLs hold instead of a ticket or nonce.
pub fn digest(secret: &str) -> String {
    b64(&sha2::Sha256::digest(secret.as_bytes()))
}

/// A value as [`random_token`] and [`digest`] make them (43 URL-safe characters).
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl HostPass {
    /// What the gate keeps of it ([`Pass`]).
    pub fn into_gate_pass(self) -> Pass {
        let principal = self.user.principal();
        // Through chrono, as the session reads them: a time out of its range (a
        // forged `exp` far beyond any date) counts as the epoch, so it has expired.
        let expires_at_ms = self.user.expires_at().timestamp_millis();
        let issued_at = self.user.issued_at();
        let user = self.user;
        Pass {
            host: self.host,
            principal,
            expires_at_ms,
            session: SessionRef {
                sid: user.sid,
                issued_at,
                handle: user.handle,
                refresh_at_ms: user.refresh_at,
            },
        }
    }
}

/// The gate's port ([`AppHosts`]): app-host passes sealed by [`HostCookies`], checked
/// against the in-memory [`Revocations`], noted with the [`SessionRefresher`]; the
/// hand-over's nonce and URL; the refusal page. No I/O anywhere: the gate's hot path.
pub struct AppHostSessions {
    cookies: HostCookies,
    revocations: Arc<Revocations>,
    refresher: Arc<SessionRefresher>,
    public_url: Url,
    page_headers: SecurityHeaders,
}

impl AppHostSessions {
    pub fn new(
        config: &Config,
        revocations: Arc<Revocations>,
        refresher: Arc<SessionRefresher>,
    ) -> anyhow::Result<Self> {
        Ok(AppHostSessions {
            cookies: HostCookies::from_config(config)?,
            revocations,
            refresher,
            public_url: config.public_url.clone(),
            page_headers: SecurityHeaders::new(config)?,
        })
    }
}

impl AppHosts for AppHostSessions {
    fn pass_cookie_name(&self) -> &'static str {
        APP_COOKIE
    }

    fn open(&self, sealed: &str) -> Option<Pass> {
        self.cookies.open(sealed).map(HostPass::into_gate_pass)
    }

    fn live(&self, pass: &Pass) -> bool {
        let session = &pass.session;
        if self.revocations.is_revoked(
            session.sid.as_deref(),
            &pass.principal.sub,
            session.issued_at,
        ) {
            return false;
        }
        // Use on an app host keeps the session (and Keycloak's) alive, as on the auth host.
        self.refresher
            .note_active(&session.handle, session.refresh_at_ms);
        true
    }

    fn bind(&self, req: &HttpRequest) -> (Option<Cookie<'static>>, String) {
        bind_for(req)
    }

    fn hand_off_url(&self, rd: &str, bind_hash: &str) -> String {
        hand_off_url(&self.public_url, rd, bind_hash)
    }

    fn refusal_page(&self, who: Option<&str>, detail: &str, switch: Option<&str>) -> HttpResponse {
        let mut response = crate::web::html::refusal_page(
            &self.public_url.origin().ascii_serialization(),
            who,
            detail,
            switch,
        );
        self.page_headers.apply(response.headers_mut());
        response
    }
}

/// The nonce cookie the gate sets (or keeps) before sending a browser for a hand-over,
/// and the hash that goes into the hand-off URL.
pub fn bind_for(req: &HttpRequest) -> (Option<Cookie<'static>>, String) {
    match cookie_guard::single(req, BIND_COOKIE).filter(|v| well_formed(v)) {
        // Kept: two tabs opening the host at once share one nonce, so neither's
        // hand-over breaks the other's.
        Some(nonce) => (None, digest(nonce)),
        None => {
            let nonce = random_token();
            let hash = digest(&nonce);
            let mut cookie = host_cookie(BIND_COOKIE, nonce);
            cookie.set_max_age(BIND_TTL);
            (Some(cookie), hash)
        }
    }
}

/// `public`'s `/auth/hand-off?rd=<url>&bind=<hash>`: where the gate sends a browser.
pub fn hand_off_url(public: &Url, rd: &str, bind_hash: &str) -> String {
    let mut url = public.clone();
    url.set_path(HAND_OFF_PATH);
    url.set_fragment(None);
    url.query_pairs_mut()
        .clear()
        .append_pair("rd", rd)
        .append_pair("bind", bind_hash);
    url.to_string()
}

/// What `/auth/hand-off` does with its (already checked) `rd`.
#[derive(Debug, PartialEq, Eq)]
pub enum HandOff {
    /// Not an app host the gate serves (or no binding): just go there.
    Plain(String),
    /// A ticket for `host`, used at `exchange`.
    Ticket {
        host: String,
        bind_hash: String,
        /// `https://host:port/_wizbrand/session`, the ticket and `rd` to be added.
        exchange: Url,
        rd: String,
    },
}

/// Decides the hand-off for `rd` (the output of [`safe_redirect`]).
pub fn plan_hand_off(
    rd: &str,
    public: &Url,
    bind_hash: Option<&str>,
    serves: impl Fn(&str) -> bool,
) -> HandOff {
    let plain = || HandOff::Plain(rd.to_owned());
    let Ok(target) = Url::parse(rd) else {
        return plain();
    };
    let Some(host) = target.host_str().map(|h| normalise_host(h).into_owned()) else {
        return plain();
    };
    let public_host = public
        .host_str()
        .map(|h| normalise_host(h).into_owned())
        .unwrap_or_default();
    let Some(bind_hash) = bind_hash.filter(|b| well_formed(b)) else {
        return plain();
    };
    if host == public_host || !serves(&host) {
        return plain();
    }
    let mut exchange = target.clone();
    exchange.set_path(EXCHANGE_PATH);
    exchange.set_query(None);
    exchange.set_fragment(None);
    HandOff::Ticket {
        host,
        bind_hash: bind_hash.to_owned(),
        exchange,
        rd: rd.to_owned(),
    }
}

/// Why a ticket was refused at the app host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketRefusal {
    #[error("the ticket is unknown or was already used")]
    Unknown,
    #[error("the ticket has expired")]
    Expired,
    #[error("the ticket was issued for another host")]
    OtherHost,
    #[error("the ticket was issued to another browser")]
    OtherBrowser,
    #[error("the ticket's session cannot be read")]
    Damaged,
}

/// Checks a taken ticket against the host it is used at and this browser's nonce.
pub fn check_ticket(
    row: Option<TicketRow>,
    host: &str,
    nonce: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SignedIn, TicketRefusal> {
    let row = row.ok_or(TicketRefusal::Unknown)?;
    if row.expires_at <= now {
        return Err(TicketRefusal::Expired);
    }
    if row.host != normalise_host(host) {
        return Err(TicketRefusal::OtherHost);
    }
    let same_browser =
        nonce.is_some_and(|n| constant_time_eq(digest(n).as_bytes(), row.bind_hash.as_bytes()));
    if !same_browser {
        return Err(TicketRefusal::OtherBrowser);
    }
    serde_json::from_value(row.session).map_err(|_| TicketRefusal::Damaged)
}

#[derive(Deserialize)]
struct HandOffQuery {
    rd: Option<String>,
    bind: Option<String>,
}

/// `GET /auth/hand-off?rd=&bind=` (auth host): a ticket for the app host of `rd`.
#[get("/auth/hand-off")]
async fn hand_off(
    req: HttpRequest,
    query: web::Query<HandOffQuery>,
    config: web::Data<Config>,
    gate: web::Data<GateState>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, SurfacedError> {
    let rd = safe_redirect(
        query.rd.as_deref(),
        &config.public_url,
        &config.cookie_domain,
    );
    let snapshot = gate.snapshot();
    let plan = plan_hand_off(&rd, &config.public_url, query.bind.as_deref(), |h| {
        snapshot.serves(h)
    });
    let HandOff::Ticket {
        host,
        bind_hash,
        mut exchange,
        rd,
    } = plan
    else {
        return Ok(redirect(StatusCode::FOUND, &rd));
    };
    let Some(user) = session::current(&req) else {
        // Sign in first, then come back here for the ticket.
        let back = hand_off_url(&config.public_url, &rd, &bind_hash);
        let mut login = Url::parse(&public_path(&config.public_url, "/login"))
            .map_err(|e| AppError::Internal(e.into()).html())?;
        login.query_pairs_mut().append_pair("rd", &back);
        return Ok(redirect(StatusCode::FOUND, login.as_str()));
    };
    let ticket = random_token();
    let session = serde_json::to_value(SignedIn {
        csrf: String::new(),
        // The handle opens the session's tokens: Postgres sees it sealed under the
        // ticket, which it never sees (docs/deploy.md, tokens at rest).
        handle: token_vault::seal_for_ticket(&ticket, &user.handle)
            .map_err(|e| AppError::Internal(e.into()).html())?,
        ..user
    })
    .map_err(|e| AppError::Internal(e.into()).html())?;
    crate::db::host_tickets::issue(
        &pool,
        NewTicket {
            ticket_hash: &digest(&ticket),
            host: &host,
            bind_hash: &bind_hash,
            session,
            expires_at: Utc::now() + TICKET_TTL,
        },
    )
    .await
    .map_err(html_err)?;
    exchange
        .query_pairs_mut()
        .append_pair("ticket", &ticket)
        .append_pair("rd", &rd);
    Ok(redirect(StatusCode::FOUND, exchange.as_str()))
}

#[derive(Deserialize)]
struct ExchangeQuery {
    ticket: Option<String>,
    rd: Option<String>,
}

/// The host a request was sent to (Traefik passes the browser's `Host` through).
fn request_host(req: &HttpRequest) -> String {
    let raw = req
        .uri()
        .host()
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or_default();
    normalise_host(raw).into_owned()
}

/// `rd` if it is a URL on `host` that passes the `rd` rules, else that host's `/`.
fn rd_on_host(config: &Config, rd: Option<&str>, host: &str) -> String {
    let checked = safe_redirect(rd, &config.public_url, &config.cookie_domain);
    match Url::parse(&checked) {
        Ok(url) if url.host_str().map(normalise_host).as_deref() == Some(host) => checked,
        _ => "/".to_owned(),
    }
}

/// `GET /_wizbrand/session?ticket=&rd=` (app host): the ticket for this host's cookie.
#[get("/_wizbrand/session")]
async fn exchange_ticket(
    req: HttpRequest,
    query: web::Query<ExchangeQuery>,
    config: web::Data<Config>,
    pool: web::Data<PgPool>,
    cookies: web::Data<HostCookies>,
    revocations: web::Data<Revocations>,
) -> Result<HttpResponse, SurfacedError> {
    let host = request_host(&req);
    let rd = rd_on_host(&config, query.rd.as_deref(), &host);
    let row = match query.ticket.as_deref().filter(|t| well_formed(t)) {
        Some(ticket) => crate::db::host_tickets::take(&pool, &digest(ticket))
            .await
            .map_err(html_err)?,
        None => None,
    };
    let nonce = cookie_guard::single(&req, BIND_COOKIE);
    let user = match check_ticket(row, &host, nonce, Utc::now()).and_then(|mut user| {
        user.handle =
            token_vault::open_for_ticket(query.ticket.as_deref().unwrap_or_default(), &user.handle)
                .map_err(|_| TicketRefusal::Damaged)?;
        Ok(user)
    }) {
        Ok(user) if !revocations.is_revoked(user.sid.as_deref(), &user.sub, user.issued_at()) => {
            user
        }
        Ok(_) => return Ok(refused(&config, &rd, "the session it continues has ended")),
        Err(refusal) => {
            tracing::info!(%host, %refusal, "app-host ticket refused");
            return Ok(refused(&config, &rd, &refusal.to_string()));
        }
    };
    let Some(cookie) = cookies.seal(&HostPass {
        host: host.clone(),
        user,
    }) else {
        return Err(AppError::Internal(anyhow::anyhow!("app-host cookie not sealed")).html());
    };
    let mut response = redirect(StatusCode::FOUND, &rd);
    for cookie in [cookie, cookie_guard::removal(BIND_COOKIE)] {
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// The page of a refused ticket: going on starts a fresh hand-over through the gate.
/// It shows on the app host: the frame links the auth host.
fn refused(config: &Config, rd: &str, why: &str) -> HttpResponse {
    let mut page = ErrorPage::new(
        Frame {
            base: config.public_url.origin().ascii_serialization(),
            ..Frame::bare("Sign-in link not valid")
        },
        "This sign-in link cannot be used",
        format!(
            "{}. Sign-in links work once, for a few seconds, in the browser that asked for \
             them. Continue to sign in again.",
            capitalised(why)
        ),
    );
    page.links = vec![Link {
        id: "continue",
        href: rd.to_owned(),
        text: "Continue",
    }];
    render(StatusCode::BAD_REQUEST, &page)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(hand_off).service(exchange_ticket);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(exp_in: chrono::Duration) -> SignedIn {
        let now = Utc::now();
        SignedIn {
            sub: "u1".into(),
            email: Some("u1@example.com".into()),
            name: None,
            sid: Some("s1".into()),
            org: Some("acme".into()),
            admin: false,
            admin_checked: now.timestamp_millis(),
            iat: now.timestamp_millis(),
            exp: (now + exp_in).timestamp_millis(),
            handle: "h".into(),
            csrf: String::new(),
            refresh_at: 0,
        }
    }

    fn cookies() -> HostCookies {
        HostCookies::with_key(Key::from(&[9u8; 64]))
    }

    const SEO: &str = "acme.seo.wizbrand.localhost";

    #[test]
    fn a_sealed_pass_opens_only_unchanged_and_only_with_its_key() {
        let pass = HostPass {
            host: SEO.into(),
            user: user(chrono::Duration::hours(1)),
        };
        let cookie = cookies().seal(&pass).unwrap();
        assert_eq!(cookie.name(), APP_COOKIE);
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.domain(), None);
        // Sealed, not readable: the plaintext is nowhere in the decoded bytes. (The
        // base64 text itself may spell "u1" by chance, so that is not what is checked.)
        let raw = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(cookie.value())
                .unwrap_or_default()
        };
        assert!(!raw.is_empty(), "the value is base64");
        assert!(
            !raw.windows(14).any(|w| w == b"u1@example.com"),
            "sealed, not readable"
        );
        assert_eq!(cookies().open(cookie.value()), Some(pass.clone()));
        let other = HostCookies::with_key(Key::from(&[8u8; 64]));
        assert_eq!(other.open(cookie.value()), None);
        let mut changed = cookie.value().to_owned().into_bytes();
        changed[20] ^= 1;
        assert_eq!(cookies().open(&String::from_utf8_lossy(&changed)), None);
        assert_eq!(cookies().open(&"A".repeat(MAX_SEALED_LEN + 1)), None);
        // A session cookie's value under the app cookie's name does not open.
        let mut jar = CookieJar::new();
        jar.private_mut(&Key::from(&[9u8; 64])).add(Cookie::new(
            session::COOKIE_NAME,
            serde_json::to_string(&pass).unwrap(),
        ));
        let session_value = jar.get(session::COOKIE_NAME).unwrap().value().to_owned();
        assert_eq!(cookies().open(&session_value), None);
    }

    #[test]
    fn the_gate_gets_the_pass_with_its_host_expiry_and_session() {
        let hour = chrono::Duration::hours(1);
        let user = user(hour);
        let pass = HostPass {
            host: SEO.into(),
            user: user.clone(),
        }
        .into_gate_pass();
        assert_eq!(pass.principal, user.principal());
        assert_eq!(pass.session.sid.as_deref(), Some("s1"));
        assert_eq!(pass.session.issued_at, user.issued_at());
        assert_eq!(pass.session.handle, "h");
        let now = Utc::now().timestamp_millis();
        assert!(pass.fits(SEO, now));
        assert!(pass.fits(&normalise_host("ACME.seo.wizbrand.localhost:8000"), now));
        assert!(!pass.fits("acme.files.wizbrand.localhost", now));
        assert!(!pass.fits("beta.seo.wizbrand.localhost", now));
        assert!(!pass.fits(SEO, user.exp));
        let beyond = HostPass {
            host: SEO.into(),
            user: SignedIn {
                exp: i64::MAX,
                ..user
            },
        }
        .into_gate_pass();
        assert!(!beyond.fits(SEO, now), "an exp beyond any date has expired");
    }

    #[test]
    fn the_port_opens_only_authentic_passes_and_ends_revoked_sessions() {
        let revocations = Arc::new(Revocations::none_revoked());
        let port = AppHostSessions {
            cookies: cookies(),
            revocations: Arc::clone(&revocations),
            refresher: Arc::new(SessionRefresher::default()),
            public_url: public(),
            page_headers: SecurityHeaders::new(&test_config()).unwrap(),
        };
        let user = user(chrono::Duration::hours(1));
        let cookie = cookies()
            .seal(&HostPass {
                host: SEO.into(),
                user: user.clone(),
            })
            .unwrap();
        let pass = port.open(cookie.value()).unwrap();
        assert!(port.live(&pass));
        assert_eq!(port.open("junk"), None);
        revocations.add(crate::db::sessions::RevocationRow {
            sid: user.sid.clone(),
            sub: Some(user.sub.clone()),
            revoked_at: Utc::now(),
        });
        assert!(!port.live(&pass), "revoked: refused though it still opens");
        let page = port.refusal_page(Some("a@x"), "<b>why</b>", Some("http://x/?a=1&b=2"));
        assert_eq!(page.status(), StatusCode::FORBIDDEN);
        assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }

    fn test_config() -> Config {
        let env: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/wizbrand"),
            ("WIZBRAND_PUBLIC_URL", "http://auth.wizbrand.localhost:8000"),
            ("WIZBRAND_COOKIE_DOMAIN", "wizbrand.localhost"),
            ("KEYCLOAK_URL", "http://localhost:8180"),
            ("WIZBRAND_OIDC_CLIENT_SECRET", "s"),
            ("WIZBRAND_SYNC_CLIENT_SECRET", "s"),
            ("WIZBRAND_SESSION_KEY", &"k".repeat(64)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Config::from_source(&env).unwrap()
    }

    fn public() -> Url {
        Url::parse("http://auth.wizbrand.localhost:8000").unwrap()
    }

    #[test]
    fn tickets_are_planned_only_for_hosts_the_gate_serves() {
        let bind = digest("nonce");
        let serves = |h: &str| h.ends_with(".seo.wizbrand.localhost");
        let rd = "http://acme.seo.wizbrand.localhost:8000/x?y=1";
        match plan_hand_off(rd, &public(), Some(&bind), serves) {
            HandOff::Ticket {
                host,
                exchange,
                rd: to,
                ..
            } => {
                assert_eq!(host, SEO);
                assert_eq!(
                    exchange.as_str(),
                    "http://acme.seo.wizbrand.localhost:8000/_wizbrand/session"
                );
                assert_eq!(to, rd);
            }
            other => panic!("{other:?}"),
        }
        for plain in [
            "/",
            "http://auth.wizbrand.localhost:8000/orgs/select",
            "http://other.wizbrand.localhost:8000/",
        ] {
            assert_eq!(
                plan_hand_off(plain, &public(), Some(&bind), serves),
                HandOff::Plain(plain.into())
            );
        }
        for bad_bind in [None, Some(""), Some("short"), Some(&"é".repeat(43)[..])] {
            assert_eq!(
                plan_hand_off(rd, &public(), bad_bind, serves),
                HandOff::Plain(rd.into())
            );
        }
    }

    fn row(host: &str, nonce: &str, expires_in: chrono::Duration) -> Option<TicketRow> {
        Some(TicketRow {
            host: host.into(),
            bind_hash: digest(nonce),
            session: serde_json::to_value(user(chrono::Duration::hours(1))).unwrap(),
            expires_at: Utc::now() + expires_in,
        })
    }

    #[test]
    fn a_ticket_is_refused_elsewhere_late_or_in_another_browser() {
        let now = Utc::now();
        let s30 = chrono::Duration::seconds(30);
        assert!(check_ticket(row(SEO, "n", s30), SEO, Some("n"), now).is_ok());
        assert_eq!(
            check_ticket(None, SEO, Some("n"), now),
            Err(TicketRefusal::Unknown)
        );
        assert_eq!(
            check_ticket(row(SEO, "n", -s30), SEO, Some("n"), now),
            Err(TicketRefusal::Expired)
        );
        assert_eq!(
            check_ticket(
                row(SEO, "n", s30),
                "acme.files.wizbrand.localhost",
                Some("n"),
                now
            ),
            Err(TicketRefusal::OtherHost)
        );
        assert_eq!(
            check_ticket(row(SEO, "n", s30), SEO, Some("attacker"), now),
            Err(TicketRefusal::OtherBrowser)
        );
        assert_eq!(
            check_ticket(row(SEO, "n", s30), SEO, None, now),
            Err(TicketRefusal::OtherBrowser)
        );
        let mut damaged = row(SEO, "n", s30);
        if let Some(r) = damaged.as_mut() {
            r.session = serde_json::json!({"sub": 1});
        }
        assert_eq!(
            check_ticket(damaged, SEO, Some("n"), now),
            Err(TicketRefusal::Damaged)
        );
    }

    #[test]
    fn the_nonce_is_kept_when_well_formed_and_made_otherwise() {
        let nonce = random_token();
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::COOKIE, format!("{BIND_COOKIE}={nonce}")))
            .to_http_request();
        assert_eq!(bind_for(&req), (None, digest(&nonce)));
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::COOKIE, format!("{BIND_COOKIE}=junk")))
            .to_http_request();
        let (cookie, hash) = bind_for(&req);
        let cookie = cookie.unwrap();
        assert_eq!(digest(cookie.value()), hash);
        assert_eq!(cookie.name(), BIND_COOKIE);
        assert_eq!(cookie.secure(), Some(true));
    }
}
