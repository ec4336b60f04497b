//! The stylesheet, the security headers of every HTML response, and errors as pages.
//! The frame and escaping live in the leaf [`super::html`] (re-exported here).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, get, web};

pub use super::html::{error_page, escape, frame};
use crate::config::Config;
use crate::error::{AppError, SurfacedError};

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
pub fn content_security_policy(config: &Config) -> String {
    let keycloak = config.keycloak.url.origin().ascii_serialization();
    let scheme = config.public_url.scheme();
    let domain = config.cookie_domain.trim_start_matches('.');
    let apps = if domain.is_empty() {
        String::new()
    } else {
        format!(" {scheme}://*.{domain}:*")
    };
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' {keycloak}{apps}; \
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_user_text_is_inert() {
        let page = error_page("Oops", "<script>alert('x')</script> & \"q\"");
        assert!(!page.contains("<script>"));
        assert!(
            page.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;")
        );
    }
}
