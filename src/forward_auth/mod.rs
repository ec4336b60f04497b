//! The ForwardAuth gate for Traefik: `GET /forward-auth`.
//!
//! The handler only gathers the request (trusted peer, forwarded host and URL, who is
//! asking) and turns [`decide::decide`]'s outcome into Traefik's answer.
//!
//! It is the hot path of every request to every app, so it is served outside the
//! generic middleware (request span and id, HTTP metrics, session cookie, page
//! headers; `startup` wires it first) and keeps its own bookkeeping cheap: each worker
//! has its own [`Gate`] with the passes it opened ([`passes::PassCache`]) and its
//! metric handles, so a repeated request takes no lock but the in-memory state's.
//! docs/gate.md has the profile.

pub mod assertion;
pub mod decide;
pub(crate) mod explain;
pub(crate) mod passes;
pub(crate) mod state;
pub(crate) mod upstream;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use ipnet::IpNet;
use prometheus::IntCounter;
use url::Url;

use crate::domain::Principal;
use crate::metrics::Metrics;
use crate::oidc::jwks::TokenVerifier;
use decide::{Denial, GateSnapshot, Grant, Outcome};
use passes::{AppHosts, Pass, PassCache, TokenCache};
use state::GateState;

pub const HEADER_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
pub const HEADER_USER_EMAIL: HeaderName = HeaderName::from_static("x-user-email");
pub const HEADER_ORG_ID: HeaderName = HeaderName::from_static("x-org-id");
pub const HEADER_ORG_SLUG: HeaderName = HeaderName::from_static("x-org-slug");
pub const HEADER_ORG_ROLES: HeaderName = HeaderName::from_static("x-org-roles");
/// The signed identity assertion ([`assertion`]).
pub const HEADER_ASSERTION: HeaderName = HeaderName::from_static("x-wizbrand-assertion");

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// What every worker's gate shares: built once in `startup`.
pub struct GateShared {
    pub state: Arc<GateState>,
    pub verifier: Arc<TokenVerifier>,
    pub app_hosts: Arc<dyn AppHosts>,
    /// `WIZBRAND_TRUSTED_PROXIES`: only these may ask.
    pub trusted_proxies: Vec<IpNet>,
    pub public_url: Url,
    pub metrics: Metrics,
    /// `WIZBRAND_GATE_ACCESS_LOG`: one log line per decision.
    pub access_log: bool,
    /// `WIZBRAND_GATE_PASS_CACHE`: passes each worker keeps opened.
    pub pass_cache: usize,
    /// `X-Wizbrand-Assertion`, when configured.
    pub assertions: Option<Arc<assertion::Signer>>,
}

/// One worker's gate (actix builds one per worker thread, so nothing here is shared
/// and nothing needs a lock).
pub struct Gate {
    shared: Arc<GateShared>,
    passes: RefCell<PassCache>,
    tokens: RefCell<TokenCache>,
    /// The state's version this worker holds, and that snapshot.
    snapshot: RefCell<(u64, Arc<GateSnapshot>)>,
    counters: RefCell<Counters>,
    assertions: RefCell<assertion::SignedCache>,
}

impl Gate {
    pub fn for_worker(shared: Arc<GateShared>) -> Gate {
        Gate {
            passes: RefCell::new(PassCache::new(
                shared.pass_cache,
                Some(shared.metrics.gate_pass_cache.clone()),
            )),
            tokens: RefCell::new(TokenCache::default()),
            snapshot: RefCell::new((shared.state.version(), shared.state.snapshot())),
            counters: RefCell::new(Counters::default()),
            assertions: RefCell::new(assertion::SignedCache::default()),
            shared,
        }
    }

    /// The newest snapshot: taken from the shared state only when it moved on.
    fn snapshot(&self) -> Arc<GateSnapshot> {
        let version = self.shared.state.version();
        match self.snapshot.try_borrow_mut() {
            Ok(mut held) => {
                if held.0 != version {
                    *held = (version, self.shared.state.snapshot());
                }
                Arc::clone(&held.1)
            }
            Err(_) => self.shared.state.snapshot(),
        }
    }
}

/// Now, in unix milliseconds.
fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// This worker's handles of `wizbrand_gate_decisions_total`, resolved once per label
/// pair instead of on every request.
#[derive(Default)]
struct Counters {
    allowed: HashMap<Box<str>, IntCounter>,
    other: HashMap<&'static str, IntCounter>,
}

impl Gate {
    fn count(&self, outcome: &'static str, app: Option<&str>, started: Instant) {
        let metrics = &self.shared.metrics;
        if let Ok(mut counters) = self.counters.try_borrow_mut() {
            let counters = &mut *counters;
            match app {
                Some(app) => match counters.allowed.get(app) {
                    Some(counter) => counter.inc(),
                    None => {
                        let counter = metrics.gate_decisions.with_label_values(&[outcome, app]);
                        counter.inc();
                        counters.allowed.insert(app.into(), counter);
                    }
                },
                None => counters
                    .other
                    .entry(outcome)
                    .or_insert_with(|| metrics.gate_decisions.with_label_values(&[outcome, ""]))
                    .inc(),
            }
        }
        metrics
            .gate_latency
            .observe(started.elapsed().as_secs_f64());
    }
}

/// What Traefik tells us about the original request.
struct Forwarded<'r> {
    method: &'r str,
    /// As sent, for the URL to come back to.
    raw_host: &'r str,
    /// Normalised ([`decide::normalise_host`]).
    host: Cow<'r, str>,
    proto: &'static str,
    uri: &'r str,
}

impl Forwarded<'_> {
    /// The original URL (only redirects need it).
    fn url(&self) -> String {
        format!("{}://{}{}", self.proto, self.raw_host, self.uri)
    }

    /// The method, upper-case (only redirects need it).
    fn method(&self) -> Cow<'_, str> {
        if self.method.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(self.method.to_ascii_uppercase())
        } else {
            Cow::Borrowed(self.method)
        }
    }
}

/// Why the forwarded request cannot be judged.
#[derive(Debug, PartialEq, Eq)]
enum BadForward {
    /// No usable `X-Forwarded-Host` (absent, blank or not visible ASCII).
    MissingHost,
    /// One of the `X-Forwarded-*` headers twice: which copy the proxy meant is unknown.
    Repeated(&'static str),
}

// Names made once (a name given as `&str` is parsed on every lookup).
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

const FORWARDED_HEADERS: [(HeaderName, &str); 4] = [
    (X_FORWARDED_HOST, "x-forwarded-host"),
    (X_FORWARDED_PROTO, "x-forwarded-proto"),
    (X_FORWARDED_URI, "x-forwarded-uri"),
    (X_FORWARDED_METHOD, "x-forwarded-method"),
];

fn forwarded(req: &HttpRequest) -> Result<Forwarded<'_>, BadForward> {
    if let Some((_, name)) = FORWARDED_HEADERS
        .iter()
        .find(|(header, _)| req.headers().get_all(header).nth(1).is_some())
    {
        return Err(BadForward::Repeated(name));
    }
    let get = |name: &HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let raw_host = get(&X_FORWARDED_HOST).ok_or(BadForward::MissingHost)?;
    let proto = match get(&X_FORWARDED_PROTO) {
        Some("https") => "https",
        _ => "http",
    };
    let uri = get(&X_FORWARDED_URI).unwrap_or("/");
    let uri = if uri.starts_with('/') { uri } else { "/" };
    Ok(Forwarded {
        method: get(&X_FORWARDED_METHOD).unwrap_or("GET"),
        host: decide::normalise_host(raw_host),
        raw_host,
        proto,
        uri,
    })
}

/// People get pages and redirects; scripts and API clients get status codes.
fn wants_html(req: &HttpRequest) -> bool {
    let header = |name: &HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let xhr = header(&X_REQUESTED_WITH).eq_ignore_ascii_case("xmlhttprequest");
    !xhr && header(&header::ACCEPT).contains("text/html")
}

/// The Bearer token of the request's one `Authorization` header. Read as bytes: a
/// token is over a kilobyte, and only its scheme needs a look (a token with a byte
/// no token has fails verification anyway).
fn bearer(req: &HttpRequest) -> Option<&str> {
    // Two Authorization headers: which one the app behind will read is unknown; none.
    let mut all = req.headers().get_all(header::AUTHORIZATION);
    let value = all.next()?.as_bytes();
    if all.next().is_some() {
        return None;
    }
    let space = memchr::memchr(b' ', value)?;
    if !value[..space].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    std::str::from_utf8(&value[space + 1..]).ok().map(str::trim)
}

fn from_trusted_proxy(req: &HttpRequest, trusted: &[IpNet]) -> bool {
    req.peer_addr()
        .is_some_and(|peer| trusted.iter().any(|net| net.contains(&peer.ip())))
}

fn problem(status: StatusCode, kind: &str, title: &str, detail: &str) -> HttpResponse {
    crate::error::problem_response(status, kind, title, detail)
}

fn redirect(method: &str, location: &str) -> HttpResponse {
    // 303 makes the browser come back with GET after a form post.
    let status = if matches!(method, "GET" | "HEAD") {
        StatusCode::FOUND
    } else {
        StatusCode::SEE_OTHER
    };
    HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .finish()
}

fn with_rd(public: &Url, path: &str, rd: &str) -> String {
    let mut url = public.clone();
    url.set_path(path);
    url.query_pairs_mut().clear().append_pair("rd", rd);
    url.to_string()
}

fn with_cookie(mut response: HttpResponse, cookie: Option<Cookie<'static>>) -> HttpResponse {
    if let Some(cookie) = cookie
        && let Ok(value) = HeaderValue::from_str(&cookie.to_string())
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Who is asking: a verified token's principal, or an app-host pass.
enum Caller {
    Nobody,
    Token(Rc<Principal>),
    Pass(Rc<Pass>),
}

impl Caller {
    fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Nobody => None,
            Caller::Token(principal) => Some(principal),
            Caller::Pass(pass) => Some(&pass.principal),
        }
    }
}

/// `GET /forward-auth`. Every answer says `no-store`: whether a request may pass
/// depends on who asks, so no cache (Traefik's, a browser's) may replay one for the
/// next caller.
async fn forward_auth(req: HttpRequest, gate: web::Data<Gate>) -> HttpResponse {
    let started = Instant::now();
    let mut response = gate.answer(&req, started).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, NO_STORE);
    response
}

/// Any other method on `/forward-auth` (Traefik always asks with GET).
async fn other_method() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET"))
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .finish()
}

impl Gate {
    async fn answer(&self, req: &HttpRequest, started: Instant) -> HttpResponse {
        let shared = &*self.shared;
        if !from_trusted_proxy(req, &shared.trusted_proxies) {
            self.count("untrusted_proxy", None, started);
            return problem(
                StatusCode::FORBIDDEN,
                "untrusted-proxy",
                "Not from a trusted proxy",
                "The gate answers only the proxies listed in WIZBRAND_TRUSTED_PROXIES.",
            );
        }
        let fwd = match forwarded(req) {
            Ok(fwd) => fwd,
            Err(bad) => {
                self.count("bad_request", None, started);
                return bad_forward(bad);
            }
        };
        let cookies = upstream::scan(
            req.headers()
                .get_all(header::COOKIE)
                .map(HeaderValue::as_bytes),
            shared.app_hosts.pass_cookie_name(),
        );
        let caller = match bearer(req) {
            Some(token) => match self.token_of(token).await {
                Ok(principal) => Caller::Token(principal),
                Err(e) => {
                    tracing::debug!(error = %e, "bearer token refused");
                    self.count("invalid_token", None, started);
                    self.log(&fwd, "invalid_token", None, started);
                    let mut response = problem(
                        StatusCode::UNAUTHORIZED,
                        "invalid-token",
                        "Invalid token",
                        "The bearer token could not be verified.",
                    );
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer error=\"invalid_token\""),
                    );
                    return response;
                }
            },
            // Only this host's own pass: the auth host's session never reaches an app
            // host, and another host's pass is refused (docs/cookies.md).
            None => self.pass_of(cookies.pass, &fwd.host),
        };
        self.decide(req, &fwd, &cookies, &caller, started)
    }

    /// A verified token's principal: this worker's cache, else the verifier.
    async fn token_of(&self, token: &str) -> Result<Rc<Principal>, crate::oidc::jwks::TokenError> {
        let now = Instant::now();
        if let Ok(tokens) = self.tokens.try_borrow()
            && let Some(principal) = tokens.get(token, now)
        {
            return Ok(principal);
        }
        let (principal, exp) = self.shared.verifier.verify_expiring(token).await?;
        let left = u64::try_from(unix_millis() / 1000).map_or(0, |now_s| exp.saturating_sub(now_s));
        Ok(match self.tokens.try_borrow_mut() {
            Ok(mut tokens) => tokens.insert(token, principal, now, Duration::from_secs(left)),
            Err(_) => Rc::new(principal),
        })
    }

    /// The request's pass, opened (or found opened), for this host, unexpired and its
    /// session not revoked.
    fn pass_of(&self, sealed: Option<&str>, host: &str) -> Caller {
        let app_hosts = &*self.shared.app_hosts;
        let Some(sealed) = sealed else {
            return Caller::Nobody;
        };
        let Ok(mut cache) = self.passes.try_borrow_mut() else {
            return Caller::Nobody;
        };
        let pass = match cache.get(sealed) {
            Some(pass) => pass,
            None => match app_hosts.open(sealed) {
                Some(pass) => cache.insert(sealed, pass),
                None => return Caller::Nobody,
            },
        };
        drop(cache);
        if pass.fits(host, unix_millis()) && app_hosts.live(&pass) {
            Caller::Pass(pass)
        } else {
            Caller::Nobody
        }
    }

    fn decide(
        &self,
        req: &HttpRequest,
        fwd: &Forwarded<'_>,
        cookies: &upstream::CookieScan<'_>,
        caller: &Caller,
        started: Instant,
    ) -> HttpResponse {
        let shared = &*self.shared;
        let snapshot = self.snapshot();
        let outcome = decide::decide(&snapshot, &fwd.host, caller.principal());
        let label = outcome.label();
        match outcome {
            Outcome::Allow(grant) => {
                let mut response = HttpResponse::Ok().finish();
                let headers = response.headers_mut();
                identity_headers(&grant, |name, value| {
                    headers.insert(name, value);
                });
                if let Some(signer) = &shared.assertions
                    && let Ok(mut cache) = self.assertions.try_borrow_mut()
                    && let Some(value) = cache.header(signer, &grant, &fwd.host)
                {
                    headers.insert(HEADER_ASSERTION, value);
                }
                hand_on_credentials(req, cookies, grant.app.pass_authorization, headers);
                self.count(label, Some(&grant.app.key), started);
                self.log(fwd, label, Some(&grant.app.key), started);
                response
            }
            other => {
                let response = self.refuse(req, fwd, caller, &snapshot, other);
                self.count(label, None, started);
                self.log(fwd, label, None, started);
                response
            }
        }
    }

    /// Every answer but the `200`.
    fn refuse(
        &self,
        req: &HttpRequest,
        fwd: &Forwarded<'_>,
        caller: &Caller,
        snapshot: &GateSnapshot,
        outcome: Outcome<'_>,
    ) -> HttpResponse {
        let shared = &*self.shared;
        let html = wants_html(req);
        // Where a browser gets (or renews) this app host's pass: the auth host's
        // hand-off, bound to a nonce cookie set here on the app host.
        let hand_off = || {
            let (cookie, bind_hash) = shared.app_hosts.bind(req);
            (
                cookie,
                shared.app_hosts.hand_off_url(&fwd.url(), &bind_hash),
            )
        };
        match outcome {
            Outcome::Allow(_) | Outcome::SignIn if html => {
                let (cookie, to) = hand_off();
                with_cookie(redirect(&fwd.method(), &to), cookie)
            }
            Outcome::Allow(_) | Outcome::SignIn => {
                let mut response = problem(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Sign-in required",
                    "Send a bearer token or sign in.",
                );
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            // After the choice, through the hand-off: this host's pass holds the org.
            Outcome::ChooseOrg => {
                let (cookie, back) = hand_off();
                let to = with_rd(&shared.public_url, "/orgs/select", &back);
                with_cookie(redirect(&fwd.method(), &to), cookie)
            }
            Outcome::Deny(denial) if html => {
                let who = caller.principal();
                let memberships = who.and_then(|p| snapshot.members_by_sub.get(&p.sub));
                // Switching helps only someone with another org to switch to.
                let (cookie, switch) = if memberships.map_or(0, HashMap::len) > 1
                    && !matches!(denial, Denial::UnknownHost { .. })
                {
                    let (cookie, back) = hand_off();
                    let switch = with_rd(&shared.public_url, "/orgs/select", &back);
                    (cookie, Some(switch))
                } else {
                    (None, None)
                };
                let org_admin = memberships
                    .zip(denial.org())
                    .and_then(|(orgs, org)| orgs.get(org))
                    .is_some_and(|roles| roles.contains(&crate::domain::Role::Admin));
                let page = shared.app_hosts.refusal_page(
                    who.map(|p| p.email.as_deref().unwrap_or(&p.sub)),
                    &denial.explain_to(org_admin),
                    switch.as_deref(),
                );
                with_cookie(page, cookie)
            }
            Outcome::Deny(denial) => problem(
                StatusCode::FORBIDDEN,
                denial.kind(),
                "Access denied",
                &denial.explain(),
            ),
        }
    }

    /// The opt-in access log (`WIZBRAND_GATE_ACCESS_LOG`): host and path, never the
    /// query (it may hold secrets) nor any credential.
    fn log(&self, fwd: &Forwarded<'_>, outcome: &'static str, app: Option<&str>, started: Instant) {
        if self.shared.access_log {
            let path = fwd.uri.split('?').next().unwrap_or_default();
            tracing::info!(
                target: "wizbrand::gate::access",
                outcome,
                app = app.unwrap_or_default(),
                host = %fwd.host,
                method = fwd.method,
                path,
                micros = started.elapsed().as_micros() as u64,
                "gate decision"
            );
        }
    }
}

fn bad_forward(bad: BadForward) -> HttpResponse {
    let (title, detail) = match bad {
        BadForward::MissingHost => (
            "Missing X-Forwarded-Host".to_owned(),
            "The gate needs X-Forwarded-Host (and Proto, Uri, Method) from the proxy, \
             the host in visible ASCII (an IDN as punycode)."
                .to_owned(),
        ),
        BadForward::Repeated(name) => (
            format!("Repeated {name}"),
            format!("{name} came more than once; the gate does not guess which copy counts."),
        ),
    };
    problem(StatusCode::BAD_REQUEST, "bad-request", &title, &detail)
}

/// The identity headers of a grant, each handed to `put` (the gate's answer, or the
/// list `explain` shows). `X-User-Email` only with a proven email: without it Traefik
/// drops any `X-User-Email` the client sent (it is in `authResponseHeaders`).
pub fn identity_headers(grant: &Grant<'_>, mut put: impl FnMut(HeaderName, HeaderValue)) {
    // The values come from Keycloak (`sub`, a proven email) and Postgres (a UUID, a
    // slug, role names): never a byte a header cannot hold; one that could is left out.
    if let Ok(value) = HeaderValue::from_str(grant.user_id()) {
        put(HEADER_USER_ID, value);
    }
    if let Some(email) = grant.email()
        && let Ok(value) = HeaderValue::from_str(email)
    {
        put(HEADER_USER_EMAIL, value);
    }
    let mut id = uuid::Uuid::encode_buffer();
    if let Ok(value) = HeaderValue::from_str(grant.org.id.hyphenated().encode_lower(&mut id)) {
        put(HEADER_ORG_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(grant.org_slug()) {
        put(HEADER_ORG_SLUG, value);
    }
    let roles = match grant.roles {
        [one] => HeaderValue::from_static(one.as_str()),
        many => {
            let names: Vec<&str> = many.iter().map(|r| r.as_str()).collect();
            HeaderValue::from_str(&names.join(",")).unwrap_or(HeaderValue::from_static(""))
        }
    };
    put(HEADER_ORG_ROLES, roles);
}

/// Puts on the 200 answer the `Cookie` and `Authorization` the app may have: Traefik
/// replaces the request's headers of those names with these (`authResponseHeaders`),
/// and drops them when the answer has none.
fn hand_on_credentials(
    req: &HttpRequest,
    scan: &upstream::CookieScan<'_>,
    pass_authorization: bool,
    out: &mut HeaderMap,
) {
    let cookies = req.headers().get_all(header::COOKIE);
    match scan.app_cookies(cookies.clone().map(HeaderValue::as_bytes)) {
        upstream::AppCookies::Absent => {}
        upstream::AppCookies::Unchanged => {
            for value in cookies {
                out.append(header::COOKIE, value.clone());
            }
        }
        upstream::AppCookies::Filtered(kept) => {
            // Made of the request's own header bytes, so always a valid value.
            if let Ok(value) = HeaderValue::from_maybe_shared(web::Bytes::from(kept)) {
                out.insert(header::COOKIE, value);
            }
        }
    }
    let authorization = req.headers().get_all(header::AUTHORIZATION);
    if upstream::pass_authorization(
        pass_authorization,
        authorization.clone().map(HeaderValue::as_bytes),
    ) {
        for value in authorization {
            out.append(header::AUTHORIZATION, value.clone());
        }
    }
}

/// The gate's route, registered outside the generic middleware (see the module
/// documentation); the app must hold a [`Gate`] per worker.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/forward-auth")
            .route(web::get().to(forward_auth))
            .default_service(web::to(other_method)),
    );
}
