//! Two cookies of one of our names in a request: treated as none (signed out), never
//! resolved by order.
//!
//! A browser keeps one `__Host-` cookie per name and host, so two copies mean someone
//! crafted the request (or a sibling found a way to plant one): which copy is ours is
//! unknown, and picking the first is what let a sibling swap sessions (issue 14). The
//! middleware removes every copy of such a name from the request before any handler or
//! the session middleware reads it, notes it for the handler (a clear message at
//! sign-in), and tells the browser to drop its own copy.

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};

use crate::web::session::COOKIE_NAME;

/// The session of one app host, sealed (`web::app_host`).
pub const APP_COOKIE: &str = "__Host-wizbrand_app";
/// The nonce that binds a hand-over to the browser that asked for it, on the app host.
pub const BIND_COOKIE: &str = "__Host-wizbrand_bind";

/// Every cookie name wizbrand reads.
pub const OUR_COOKIES: [&str; 3] = [COOKIE_NAME, APP_COOKIE, BIND_COOKIE];

/// Which of our cookies came more than once (noted in the request's extensions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuplicateCookies(pub Vec<&'static str>);

/// The `name=value` pairs of `Cookie` header values, as a server reads them: split at
/// `;`, trimmed; a pair without `=` is a value with an empty name (RFC 6265bis).
fn pairs<'a>(values: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a [u8]> {
    values
        .flat_map(|v| v.split(|b| *b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

fn name_of(pair: &[u8]) -> &[u8] {
    match pair.iter().position(|b| *b == b'=') {
        Some(i) => pair[..i].trim_ascii(),
        None => b"",
    }
}

/// Our names that occur more than once across `values`.
pub fn duplicated<'a>(values: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<&'static str> {
    OUR_COOKIES
        .into_iter()
        .filter(|ours| {
            pairs(values.clone())
                .filter(|p| name_of(p) == ours.as_bytes())
                .nth(1)
                .is_some()
        })
        .collect()
}

/// `values` joined into one `Cookie` value without any pair named in `drop`.
pub fn without<'a>(values: impl Iterator<Item = &'a [u8]>, drop: &[&str]) -> Vec<u8> {
    let kept: Vec<&[u8]> = pairs(values)
        .filter(|p| !drop.iter().any(|d| name_of(p) == d.as_bytes()))
        .collect();
    kept.join(&b"; "[..])
}

/// The one value of cookie `name` in the request, if it came exactly once.
pub fn single<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    let mut found = pairs(
        req.headers()
            .get_all(header::COOKIE)
            .map(HeaderValue::as_bytes),
    )
    .filter(|p| name_of(p) == name.as_bytes());
    let pair = found.next()?;
    if found.next().is_some() {
        return None;
    }
    let value = &pair[pair.iter().position(|b| *b == b'=')? + 1..];
    let value = std::str::from_utf8(value.trim_ascii()).ok()?;
    Some(value.trim_matches('"'))
}

/// A `Set-Cookie` that removes our host-only cookie `name` from the browser.
pub fn removal(name: &'static str) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, "")
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    cookie.make_removal();
    cookie
}

/// The middleware: see the module documentation.
pub async fn refuse_duplicates(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let values = || {
        req.headers()
            .get_all(header::COOKIE)
            .map(HeaderValue::as_bytes)
    };
    let twice = duplicated(values());
    if twice.is_empty() {
        return next.call(req).await;
    }
    let rest = without(values(), &twice);
    let headers = req.headers_mut();
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::from_bytes(&rest)
        && !rest.is_empty()
    {
        headers.insert(header::COOKIE, value);
    }
    tracing::info!(cookies = ?twice, "duplicate wizbrand cookies ignored");
    req.extensions_mut().insert(DuplicateCookies(twice.clone()));
    let mut response = next.call(req).await?;
    for name in twice {
        let already_set = response
            .response()
            .cookies()
            .any(|c| c.name() == name && !c.value().is_empty());
        if !already_set && let Ok(value) = HeaderValue::from_str(&removal(name).to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(header: &str) -> Vec<&'static str> {
        duplicated(std::iter::once(header.as_bytes()))
    }

    #[test]
    fn two_copies_of_one_of_our_names_are_found_wherever_they_are() {
        assert!(dup("__Host-wizbrand_session=a").is_empty());
        assert!(dup("__Host-wizbrand_session=a; other=1; other=2").is_empty());
        assert_eq!(
            dup("__Host-wizbrand_session=a; __Host-wizbrand_session=b"),
            vec![COOKIE_NAME]
        );
        assert_eq!(
            dup("x=1;__Host-wizbrand_app=a ;  __Host-wizbrand_app = b"),
            vec![APP_COOKIE]
        );
        // Split over two headers (HTTP/2 does so).
        let split = ["__Host-wizbrand_session=a", "__Host-wizbrand_session=b"];
        assert_eq!(
            duplicated(split.iter().map(|s| s.as_bytes())),
            vec![COOKIE_NAME]
        );
        // The old shared name and other spellings are not ours: never read.
        assert!(dup("wizbrand_session=a; wizbrand_session=b").is_empty());
        assert!(dup("__host-wizbrand_session=a; __Host-wizbrand_session=b").is_empty());
    }

    #[test]
    fn the_duplicates_are_dropped_and_the_rest_kept() {
        let header = "a=1; __Host-wizbrand_session=x; b=2; __Host-wizbrand_session=y; c";
        assert_eq!(
            without(std::iter::once(header.as_bytes()), &[COOKIE_NAME]),
            b"a=1; b=2; c".to_vec()
        );
    }

    #[test]
    fn a_single_value_is_read_only_when_it_came_once() {
        let req = |header: &str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::COOKIE, header.to_owned()))
                .to_http_request()
        };
        assert_eq!(
            single(&req("a=1; __Host-wizbrand_app=v=w; b=2"), APP_COOKIE),
            Some("v=w")
        );
        assert_eq!(
            single(&req("__Host-wizbrand_app=\"q\""), APP_COOKIE),
            Some("q")
        );
        assert_eq!(
            single(
                &req("__Host-wizbrand_app=1; __Host-wizbrand_app=1"),
                APP_COOKIE
            ),
            None
        );
        assert_eq!(single(&req("wizbrand_app=1"), APP_COOKIE), None);
        assert_eq!(single(&req("=x; __Host-wizbrand_app"), APP_COOKIE), None);
    }
}
