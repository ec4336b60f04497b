//! The stylesheet, the security headers of every HTML response, the frame for a
//! signed-in person, and the pages of errors met outside a handler (an unknown path).
//! The frame's template and the error page live in the leaf [`super::html`].

use actix_session::SessionExt;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, get, web};

pub use super::html::{ErrorPage, Flash, Frame, Link, NavUser, render};
use crate::config::Config;
use crate::error::{AppError, SurfacedError};
use crate::web::session::{self, SignedIn};

const FLASH_KEY: &str = "flash";

/// The message left for this page, if any (shown once).
pub fn take_flash(req: &HttpRequest) -> Option<Flash> {
    req.get_session()
        .remove_as::<Flash>(FLASH_KEY)
        .and_then(Result::ok)
}

/// Leaves a message for the next page on the auth host.
pub fn flash(req: &HttpRequest, kind: &str, text: impl Into<String>) {
    flash_in(&req.get_session(), kind, text);
}

/// [`flash`], given the session.
pub fn flash_in(session: &actix_session::Session, kind: &str, text: impl Into<String>) {
    let _ = session.insert(
        FLASH_KEY,
        Flash {
            kind: kind.to_owned(),
            text: text.into(),
        },
    );
}

/// The name a person is shown by: display name, else email, else subject.
pub fn who(user: &SignedIn) -> String {
    user.name
        .as_deref()
        .or(user.email.as_deref())
        .unwrap_or(&user.sub)
        .to_owned()
}

/// The header's view of a signed-in person on the auth host.
pub fn nav_user(user: &SignedIn) -> NavUser {
    NavUser {
        who: who(user),
        admin: user.admin,
        csrf: Some(user.csrf.clone()),
    }
}

/// The frame of a page on the auth host, for whoever asks (signed in or not).
pub fn frame(title: impl Into<String>, user: Option<&SignedIn>) -> Frame {
    Frame {
        user: user.map(nav_user),
        ..Frame::signed_out(title)
    }
}

/// Paths nothing serves (the API has its own, in problem+json): a page for people, with
/// the site's header, and problem+json for anything that does not ask for HTML.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if !wants_html {
        return actix_web::ResponseError::error_response(&AppError::NotFound.json());
    }
    let user = session::current(&req);
    let mut frame = frame("Page not found", user.as_ref());
    // On an app host (Traefik sends it `/_wizbrand/…`), the links go to the auth host.
    if let Some(config) = req.app_data::<web::Data<Config>>()
        && config.public_url.host_str()
            != Some(
                req.connection_info()
                    .host()
                    .split(':')
                    .next()
                    .unwrap_or_default(),
            )
    {
        frame.base = config.public_url.origin().ascii_serialization();
    }
    let home = frame.link("/");
    let orgs = frame.link("/admin/orgs");
    let mut page = ErrorPage::new(
        frame,
        "Page not found",
        format!(
            "There is no page at {}. It may have moved, or the address was mistyped.",
            req.path().chars().take(200).collect::<String>()
        ),
    );
    page.links = vec![Link {
        id: "home",
        href: home,
        text: "Home",
    }];
    if user.is_some() {
        page.links.push(Link {
            id: "orgs",
            href: orgs,
            text: "Your organizations",
        });
    }
    render(StatusCode::NOT_FOUND, &page)
}

/// Any error a page meets, answered as an HTML page (the twin of `api::problem`).
/// `sqlx` errors go through `AppError`'s mapping: a lost database is a 503.
pub fn html_err(e: impl Into<AppError>) -> SurfacedError {
    e.into().html()
}

/// `GET /static/wizbrand.css`: the one stylesheet, built in (nothing from a CDN).
#[get("/static/wizbrand.css")]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/wizbrand.css"))
}

/// The headers every HTML page carries, computed once.
#[derive(Clone)]
pub struct SecurityHeaders {
    csp: HeaderValue,
}

impl SecurityHeaders {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let csp = content_security_policy(config);
        Ok(SecurityHeaders {
            csp: HeaderValue::from_str(&csp)
                .map_err(|e| anyhow::anyhow!("Content-Security-Policy: {e}"))?,
        })
    }
}

impl SecurityHeaders {
    /// Puts the headers on an HTML answer (also used by the gate's refusal page, which
    /// is answered outside the middleware).
    pub fn apply(&self, h: &mut header::HeaderMap) {
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
}

/// No script at all, styles from here only, no framing (clickjacking). Forms post here;
/// their redirects may go on to Keycloak (logout) and to the app hosts under the cookie
/// domain (`rd` after choosing an org), which browsers check against `form-action` too.
/// The stylesheet is also allowed from the public URL: the gate's refusal page shows on
/// app hosts and links the auth host's stylesheet.
pub fn content_security_policy(config: &Config) -> String {
    let keycloak = config.keycloak.url.origin().ascii_serialization();
    let public = config.public_url.origin().ascii_serialization();
    let scheme = config.public_url.scheme();
    let domain = config.cookie_domain.trim_start_matches('.');
    let apps = if domain.is_empty() {
        String::new()
    } else {
        format!(" {scheme}://*.{domain}:*")
    };
    format!(
        "default-src 'none'; style-src 'self' {public}; img-src 'self' data:; form-action 'self' {keycloak}{apps}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Adds the security headers to HTML responses (pages and error pages alike).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let headers = req.app_data::<web::Data<SecurityHeaders>>().cloned();
    let mut response = next.call(req).await?;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html && let Some(headers) = headers {
        headers.apply(response.headers_mut());
    }
    Ok(response)
}
