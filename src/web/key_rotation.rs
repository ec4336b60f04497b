//! Session-key rotation (`WIZBRAND_SESSION_KEYS_PREVIOUS`): cookies sealed under a
//! previous key still open; whatever is sealed anew uses the current key
//! (`WIZBRAND_SESSION_KEY`). The procedure is in docs/deploy.md.

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, CookieJar, Key};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::web::cookie_guard;
use crate::web::session::{COOKIE_NAME, SessionSettings};

/// The plain value of a cookie `name` sealed (actix's private cookie: AES-256-GCM,
/// the name authenticated too) under `key`.
pub fn open_sealed(name: &str, sealed: &str, key: &Key) -> Option<String> {
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::new(name.to_owned(), sealed.to_owned()));
    Some(jar.private(key).get(name)?.value().to_owned())
}

/// `plain` sealed as cookie `name` under `key`.
pub fn seal(name: &str, plain: &str, key: &Key) -> Option<String> {
    let mut jar = CookieJar::new();
    jar.private_mut(key)
        .add(Cookie::new(name.to_owned(), plain.to_owned()));
    Some(jar.get(name)?.value().to_owned())
}

/// A cookie sealed under one of the `previous` keys, sealed again under `current`;
/// `None` when it opens under `current` already or under none of them.
pub fn reseal(name: &str, sealed: &str, current: &Key, previous: &[Key]) -> Option<String> {
    if previous.is_empty() || open_sealed(name, sealed, current).is_some() {
        return None;
    }
    let plain = previous
        .iter()
        .find_map(|key| open_sealed(name, sealed, key))?;
    seal(name, &plain, current)
}

/// Middleware, outside the session middleware: a session cookie sealed under a
/// previous key is sealed again under the current one before actix-session reads it
/// (actix-session knows one key). So it opens, and any cookie the response sets is
/// sealed under the current key. Nothing is re-sent when the session is unchanged: a
/// cookie under an old key carries its session's `exp` and dies with it
/// ([`crate::web::session::SESSION_TTL`] after sign-in at most).
pub async fn open_with_previous_keys(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let resealed = req
        .app_data::<web::Data<SessionSettings>>()
        .and_then(|settings| {
            let (current, previous) = settings.keys();
            if previous.is_empty() {
                return None;
            }
            // actix-session percent-encodes its cookie's value (and decodes it when
            // reading): decode before opening, encode what goes back.
            let raw = cookie_guard::single(req.request(), COOKIE_NAME)?;
            let sealed = Cookie::parse_encoded(format!("{COOKIE_NAME}={raw}")).ok()?;
            let resealed = reseal(COOKIE_NAME, sealed.value(), current, previous)?;
            Some(Cookie::new(COOKIE_NAME, resealed).encoded().to_string())
        });
    if let Some(pair) = resealed {
        let values = || {
            req.headers()
                .get_all(header::COOKIE)
                .map(HeaderValue::as_bytes)
        };
        let mut rest = cookie_guard::without(values(), &[COOKIE_NAME]);
        if !rest.is_empty() {
            rest.extend_from_slice(b"; ");
        }
        rest.extend_from_slice(pair.as_bytes());
        if let Ok(value) = HeaderValue::from_bytes(&rest) {
            let headers = req.headers_mut();
            headers.remove(header::COOKIE);
            headers.insert(header::COOKIE, value);
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from(&[byte; 64])
    }

    #[test]
    fn a_value_under_a_previous_key_is_sealed_again_under_the_current_one() {
        let (old, new, gone) = (key(1), key(2), key(3));
        let under_old = seal(COOKIE_NAME, "state", &old).unwrap_or_default();
        assert_eq!(open_sealed(COOKIE_NAME, &under_old, &new), None);
        let resealed = reseal(COOKIE_NAME, &under_old, &new, std::slice::from_ref(&old));
        let resealed = resealed.unwrap_or_default();
        assert_eq!(
            open_sealed(COOKIE_NAME, &resealed, &new).as_deref(),
            Some("state")
        );
        // Under the current key already: left alone. Under a key nobody lists: refused.
        let under_new = seal(COOKIE_NAME, "state", &new).unwrap_or_default();
        assert_eq!(
            reseal(COOKIE_NAME, &under_new, &new, std::slice::from_ref(&old)),
            None
        );
        let under_gone = seal(COOKIE_NAME, "state", &gone).unwrap_or_default();
        assert_eq!(
            reseal(COOKIE_NAME, &under_gone, &new, std::slice::from_ref(&old)),
            None
        );
        // The name is authenticated: a value sealed for another cookie does not move.
        let other = seal("__Host-wizbrand_app", "state", &old).unwrap_or_default();
        assert_eq!(reseal(COOKIE_NAME, &other, &new, &[old]), None);
    }
}
