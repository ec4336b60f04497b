//! The ForwardAuth gate for Traefik: `GET /forward-auth`.
//!
//! The handler only gathers the request (trusted peer, forwarded host and URL, who is
//! asking) and turns [`decide::decide`]'s outcome into Traefik's answer.

pub mod decide;
pub mod state;
pub mod upstream;

use std::time::Instant;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, get, web};

use crate::config::Config;
use crate::domain::Principal;
use crate::metrics::Metrics;
use crate::oidc::jwks::TokenVerifier;
use crate::web::app_host;
use decide::{Denial, Outcome};
use state::GateState;

pub const HEADER_USER_ID: &str = "X-User-Id";
pub const HEADER_USER_EMAIL: &str = "X-User-Email";
pub const HEADER_ORG_ID: &str = "X-Org-Id";
pub const HEADER_ORG_SLUG: &str = "X-Org-Slug";
pub const HEADER_ORG_ROLES: &str = "X-Org-Roles";

/// What Traefik tells us about the original request.
struct Forwarded {
    method: String,
    host: String,
    url: String,
}

/// Why the forwarded request cannot be judged.
#[derive(Debug, PartialEq, Eq)]
enum BadForward {
    /// No usable `X-Forwarded-Host` (absent, blank or not visible ASCII).
    MissingHost,
    /// One of the `X-Forwarded-*` headers twice: which copy the proxy meant is unknown.
    Repeated(&'static str),
}

const FORWARDED_HEADERS: [&str; 4] = [
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-uri",
    "x-forwarded-method",
];

fn forwarded(req: &HttpRequest) -> Result<Forwarded, BadForward> {
    if let Some(name) = FORWARDED_HEADERS
        .into_iter()
        .find(|name| req.headers().get_all(*name).nth(1).is_some())
    {
        return Err(BadForward::Repeated(name));
    }
    let get = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let raw_host = get("x-forwarded-host").ok_or(BadForward::MissingHost)?;
    let host = decide::normalise_host(raw_host);
    let proto = match get("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let uri = get("x-forwarded-uri").unwrap_or("/");
    let uri = if uri.starts_with('/') { uri } else { "/" };
    Ok(Forwarded {
        method: get("x-forwarded-method")
            .unwrap_or("GET")
            .to_ascii_uppercase(),
        url: format!("{proto}://{raw_host}{uri}"),
        host,
    })
}

/// People get pages and redirects; scripts and API clients get status codes.
fn wants_html(req: &HttpRequest) -> bool {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let xhr = header("x-requested-with").eq_ignore_ascii_case("xmlhttprequest");
    !xhr && header("accept").contains("text/html")
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    // Two Authorization headers: which one the app behind will read is unknown; none.
    let mut all = req.headers().get_all(header::AUTHORIZATION);
    let value = all.next()?.to_str().ok()?;
    if all.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn from_trusted_proxy(req: &HttpRequest, config: &Config) -> bool {
    req.peer_addr().is_some_and(|peer| {
        config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip()))
    })
}

fn problem(status: StatusCode, kind: &str, title: &str, detail: &str) -> HttpResponse {
    crate::error::problem_response(status, kind, title, detail)
}

/// (`Cache-Control: no-store` comes from the route's wrapper, as on every answer.)
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

fn with_rd(config: &Config, path: &str, rd: &str) -> String {
    let mut url = config.public_url.clone();
    url.set_path(path);
    url.query_pairs_mut().clear().append_pair("rd", rd);
    url.to_string()
}

/// Where a browser gets (or renews) this app host's cookie: the auth host's hand-off,
/// bound to a nonce cookie set here on the app host. Returns that cookie, if new, and
/// the URL.
fn hand_off(req: &HttpRequest, config: &Config, url: &str) -> (Option<Cookie<'static>>, String) {
    let (cookie, bind_hash) = app_host::bind_for(req);
    (
        cookie,
        app_host::hand_off_url(&config.public_url, url, &bind_hash),
    )
}

fn with_cookie(mut response: HttpResponse, cookie: Option<Cookie<'static>>) -> HttpResponse {
    if let Some(cookie) = cookie
        && let Ok(value) = HeaderValue::from_str(&cookie.to_string())
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Every answer of the gate says `no-store`: whether a request may pass depends on who
/// asks, so no cache (Traefik's, a browser's) may replay one for the next caller. Set
/// here, around the handler, so refusals, errors and any new branch carry it too.
fn no_store() -> DefaultHeaders {
    DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store"))
}

#[get("/forward-auth", wrap = "no_store()")]
async fn forward_auth(
    req: HttpRequest,
    gate: web::Data<GateState>,
    verifier: web::Data<TokenVerifier>,
    config: web::Data<Config>,
    metrics: web::Data<Metrics>,
) -> HttpResponse {
    let started = Instant::now();
    let (response, outcome, app) = gate_request(&req, &gate, &verifier, &config).await;
    metrics
        .gate_decisions
        .with_label_values(&[outcome, app.as_str()])
        .inc();
    metrics
        .gate_latency
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn gate_request(
    req: &HttpRequest,
    gate: &GateState,
    verifier: &TokenVerifier,
    config: &Config,
) -> (HttpResponse, &'static str, String) {
    if !from_trusted_proxy(req, config) {
        return (
            problem(
                StatusCode::FORBIDDEN,
                "untrusted-proxy",
                "Not from a trusted proxy",
                "The gate answers only the proxies listed in WIZBRAND_TRUSTED_PROXIES.",
            ),
            "untrusted_proxy",
            String::new(),
        );
    }
    let fwd = match forwarded(req) {
        Ok(fwd) => fwd,
        Err(bad) => {
            let (title, detail) = match bad {
                BadForward::MissingHost => (
                    "Missing X-Forwarded-Host".to_owned(),
                    "The gate needs X-Forwarded-Host (and Proto, Uri, Method) from the proxy, \
                     the host in visible ASCII (an IDN as punycode)."
                        .to_owned(),
                ),
                BadForward::Repeated(name) => (
                    format!("Repeated {name}"),
                    format!(
                        "{name} came more than once; the gate does not guess which copy counts."
                    ),
                ),
            };
            return (
                problem(StatusCode::BAD_REQUEST, "bad-request", &title, &detail),
                "bad_request",
                String::new(),
            );
        }
    };
    let html = wants_html(req);
    let principal: Option<Principal> = match bearer(req) {
        Some(token) => match verifier.verify(token).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::info!(error = %e, "bearer token refused");
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
                return (response, "invalid_token", String::new());
            }
        },
        // Only this host's own cookie: the auth host's session never reaches an app
        // host, and another host's cookie is refused (docs/cookies.md).
        None => app_host::gate_user(req, &fwd.host).map(|user| user.principal()),
    };
    let snapshot = gate.snapshot();
    match decide::decide(&snapshot, &fwd.host, principal.as_ref()) {
        Outcome::Allow(grant) => {
            let roles: Vec<&str> = grant.roles.iter().map(|r| r.as_str()).collect();
            let mut response = HttpResponse::Ok();
            response
                .insert_header((HEADER_USER_ID, grant.user_id.as_str()))
                .insert_header((HEADER_ORG_ID, grant.org_id.to_string()))
                .insert_header((HEADER_ORG_SLUG, grant.org_slug.as_str()))
                .insert_header((HEADER_ORG_ROLES, roles.join(",")));
            // Left out without a proven email: Traefik then drops any `X-User-Email`
            // the client sent (it is in `authResponseHeaders`).
            if let Some(email) = grant.email.as_deref() {
                response.insert_header((HEADER_USER_EMAIL, email));
            }
            let mut response = response.finish();
            hand_on_credentials(req, grant.pass_authorization, response.headers_mut());
            (response, "allow", grant.app)
        }
        Outcome::SignIn if html => {
            let (cookie, to) = hand_off(req, config, &fwd.url);
            (
                with_cookie(redirect(&fwd.method, &to), cookie),
                "sign_in",
                String::new(),
            )
        }
        Outcome::SignIn => {
            let mut response = problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Sign-in required",
                "Send a bearer token or sign in.",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            (response, "unauthenticated", String::new())
        }
        // After the choice, through the hand-off: this host's cookie holds the org.
        Outcome::ChooseOrg => {
            let (cookie, back) = hand_off(req, config, &fwd.url);
            let to = with_rd(config, "/orgs/select", &back);
            (
                with_cookie(redirect(&fwd.method, &to), cookie),
                "choose_org",
                String::new(),
            )
        }
        Outcome::Deny(denial) if html => {
            let who = principal.as_ref();
            // Switching helps only someone with another org to switch to.
            let orgs = who.map_or(0, |p| {
                snapshot.members_by_sub.get(&p.sub).map_or(0, |m| m.len())
            });
            let (cookie, switch) = if orgs > 1 && !matches!(denial, Denial::UnknownHost { .. }) {
                let (cookie, back) = hand_off(req, config, &fwd.url);
                (cookie, Some(with_rd(config, "/orgs/select", &back)))
            } else {
                (None, None)
            };
            let org_admin = who
                .zip(denial.org())
                .and_then(|(p, org)| snapshot.members_by_sub.get(&p.sub)?.get(org))
                .is_some_and(|roles| roles.contains(&crate::domain::Role::Admin));
            let page = crate::web::html::refusal_page(
                &config.public_url.origin().ascii_serialization(),
                who.map(|p| p.email.as_deref().unwrap_or(&p.sub)),
                &denial.explain_to(org_admin),
                switch.as_deref(),
            );
            (with_cookie(page, cookie), "deny", String::new())
        }
        Outcome::Deny(denial) => (deny(&denial), "deny", String::new()),
    }
}

/// Puts on the 200 answer the `Cookie` and `Authorization` the app may have: Traefik
/// replaces the request's headers of those names with these (`authResponseHeaders`),
/// and drops them when the answer has none.
fn hand_on_credentials(
    req: &HttpRequest,
    pass_authorization: bool,
    out: &mut actix_web::http::header::HeaderMap,
) {
    let cookies = req.headers().get_all(header::COOKIE);
    match upstream::app_cookies(cookies.clone().map(HeaderValue::as_bytes)) {
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

/// A refusal for a client that is not a browser (or of a host no app serves).
fn deny(denial: &Denial) -> HttpResponse {
    problem(
        StatusCode::FORBIDDEN,
        denial.kind(),
        "Access denied",
        &denial.explain(),
    )
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(forward_auth);
}
