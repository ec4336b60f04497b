//! What the app behind the gate receives of the caller's credentials.
//!
//! Traefik lists `Cookie` and `Authorization` in `authResponseHeaders`: it deletes the
//! client's headers of those names from the forwarded request and puts back the gate's
//! copies, if any (measured in `tests/it/gate.rs`). So the gate's 200 answer decides
//! what the app gets: the request's cookies minus ours, and the `Authorization` only
//! when none of ours is in it or the app is configured to receive it. An app (a PHP
//! gallery, a file manager with user uploads) never holds a credential of ours.

/// Every cookie name of ours starts with one of these (matched without regard to case:
/// browsers compare the `__Host-`/`__Secure-` prefixes that way, and an app that reads
/// names loosely must not find ours either). Extend here when a new cookie appears.
pub const OUR_COOKIE_PREFIXES: &[&str] = &["wizbrand", "__Host-wizbrand", "__Secure-wizbrand"];

/// Whether a cookie name is ours.
pub fn is_our_cookie(name: &[u8]) -> bool {
    OUR_COOKIE_PREFIXES.iter().any(|prefix| {
        name.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
    })
}

/// The `Cookie` header the app gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppCookies {
    /// No `Cookie` at all: the request had none, or only ours.
    Absent,
    /// None of the request's cookies is ours: its `Cookie` header(s) as they came.
    Unchanged,
    /// The request's cookies without ours, in their order, joined by `; `.
    Filtered(Vec<u8>),
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The `name=value` pairs of `Cookie` header values, empty ones skipped.
fn pairs<'v>(values: impl Iterator<Item = &'v [u8]>) -> impl Iterator<Item = &'v [u8]> {
    values
        .flat_map(|value| value.split(|b| *b == b';'))
        .map(trim)
        .filter(|pair| !pair.is_empty())
}

fn name_of(pair: &[u8]) -> &[u8] {
    let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
    trim(name)
}

/// The request's cookies minus ours. Allocates only when one of ours is there and
/// something else is left to hand on.
pub fn app_cookies<'v, I>(values: I) -> AppCookies
where
    I: Iterator<Item = &'v [u8]> + Clone,
{
    let mut any = false;
    let mut ours = false;
    for pair in pairs(values.clone()) {
        any = true;
        if is_our_cookie(name_of(pair)) {
            ours = true;
            break;
        }
    }
    if !any {
        return AppCookies::Absent;
    }
    if !ours {
        return AppCookies::Unchanged;
    }
    let mut kept = Vec::new();
    for pair in pairs(values).filter(|pair| !is_our_cookie(name_of(pair))) {
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    if kept.is_empty() {
        AppCookies::Absent
    } else {
        AppCookies::Filtered(kept)
    }
}

/// The request's cookies read once, as the gate needs them: the value of the pass
/// cookie `name` (when it came exactly once: two copies are a crafted request, and
/// nobody), and whether any cookie of ours and any of someone else's is there (so the
/// app's `Cookie` is known without reading the header again in the usual cases).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CookieScan<'v> {
    pub pass: Option<&'v str>,
    pub ours: bool,
    pub others: bool,
}

impl CookieScan<'_> {
    /// The app's `Cookie`: [`app_cookies`], read again only when there is something
    /// to take out and something to keep.
    pub fn app_cookies<'w, I>(&self, values: I) -> AppCookies
    where
        I: Iterator<Item = &'w [u8]> + Clone,
    {
        match (self.ours, self.others) {
            (_, false) => AppCookies::Absent,
            (false, true) => AppCookies::Unchanged,
            (true, true) => app_cookies(values),
        }
    }
}

/// Reads `Cookie` header values once (split with `memchr`: the pass alone is a few
/// hundred bytes). Pairs as in [`app_cookies`]; the pass's value is the part after the
/// first `=`, trimmed, without surrounding quotes, and must be UTF-8.
pub fn scan<'v>(values: impl Iterator<Item = &'v [u8]>, name: &str) -> CookieScan<'v> {
    let mut scan = CookieScan::default();
    let mut copies = 0u32;
    let mut found: Option<&[u8]> = None;
    for value in values {
        let mut rest = value;
        loop {
            let (pair, next) = match memchr::memchr(b';', rest) {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            let pair = trim(pair);
            if !pair.is_empty() {
                let eq = memchr::memchr(b'=', pair);
                let pair_name = trim(&pair[..eq.unwrap_or(pair.len())]);
                if is_our_cookie(pair_name) {
                    scan.ours = true;
                } else {
                    scan.others = true;
                }
                if let Some(eq) = eq
                    && pair_name == name.as_bytes()
                {
                    copies += 1;
                    found = Some(&pair[eq + 1..]);
                }
            }
            match next {
                Some(next) => rest = next,
                None => break,
            }
        }
    }
    scan.pass = found
        .filter(|_| copies == 1)
        .and_then(|v| std::str::from_utf8(trim(v)).ok())
        .map(|v| v.trim_matches('"'));
    scan
}

/// Whether an `Authorization` value uses the Bearer scheme, the one the gate reads.
fn is_bearer(value: &[u8]) -> bool {
    let value = trim(value);
    value
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer"))
        && value.get(6).is_none_or(|b| b.is_ascii_whitespace())
}

/// Whether the app gets the request's `Authorization` header(s) unchanged. An app
/// configured for it (`apps.pass_authorization`) always does; otherwise only when no
/// value is a Bearer token (those are ours, consumed by the gate or refused; a Basic
/// login to the app itself is its own business and passes).
pub fn pass_authorization<'v>(
    configured: bool,
    mut values: impl Iterator<Item = &'v [u8]>,
) -> bool {
    configured || !values.any(is_bearer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(values: &[&str]) -> AppCookies {
        app_cookies(values.iter().map(|v| v.as_bytes()))
    }

    fn filtered(text: &str) -> AppCookies {
        AppCookies::Filtered(text.as_bytes().to_vec())
    }

    #[test]
    fn our_cookies_are_taken_out_and_the_rest_kept_in_order() {
        assert_eq!(filter(&[]), AppCookies::Absent);
        assert_eq!(filter(&[""]), AppCookies::Absent);
        assert_eq!(filter(&["theme=dark; lang=de"]), AppCookies::Unchanged);
        assert_eq!(filter(&["wizbrand_session=abc"]), AppCookies::Absent);
        assert_eq!(
            filter(&["theme=dark; wizbrand_session=abc; lang=de"]),
            filtered("theme=dark; lang=de")
        );
        assert_eq!(
            filter(&["wizbrand_session=a", "theme=dark;  __Host-wizbrand=b ;x"]),
            filtered("theme=dark; x")
        );
        // Any spelling of ours, and a name that only starts like ours.
        assert_eq!(
            filter(&[
                "WIZBRAND_SESSION=a; __host-Wizbrand-app=b; __Secure-wizbrand=c; wizbrandx=d; a=1"
            ]),
            filtered("a=1")
        );
        // Names that merely contain ours are the app's.
        assert_eq!(
            filter(&["my_wizbrand_session=a; __Host-app=b"]),
            AppCookies::Unchanged
        );
    }

    #[test]
    fn one_reading_finds_the_pass_once_and_what_else_is_there() {
        const PASS: &str = "__Host-wizbrand_app";
        fn read<'a>(values: &[&'a str]) -> CookieScan<'a> {
            scan(values.iter().map(|v| v.as_bytes()), PASS)
        }
        assert_eq!(read(&[]), CookieScan::default());
        let alone = read(&["__Host-wizbrand_app=v=w"]);
        assert_eq!(
            (alone.pass, alone.ours, alone.others),
            (Some("v=w"), true, false)
        );
        let quoted = read(&["a=1; __Host-wizbrand_app = \"q\" ;b"]);
        assert_eq!(
            (quoted.pass, quoted.ours, quoted.others),
            (Some("q"), true, true)
        );
        let split = read(&["a=1", "__Host-wizbrand_app=x"]);
        assert_eq!(split.pass, Some("x"));
        // Twice, even with the same value, or once per header: nobody.
        assert_eq!(
            read(&["__Host-wizbrand_app=x; __Host-wizbrand_app=x"]).pass,
            None
        );
        assert_eq!(
            read(&["__Host-wizbrand_app=x", "__Host-wizbrand_app=y"]).pass,
            None
        );
        // Other spellings are ours but not the pass; a pair without `=` names nothing.
        let other = read(&["__host-wizbrand_app=x; __Host-wizbrand_app"]);
        assert_eq!((other.pass, other.ours, other.others), (None, true, false));
        let theirs = read(&["theme=dark"]);
        assert_eq!(
            (theirs.pass, theirs.ours, theirs.others),
            (None, false, true)
        );
    }

    #[test]
    fn bearer_tokens_stay_unless_the_app_asks_for_them() {
        let check = |configured, values: &[&str]| {
            pass_authorization(configured, values.iter().map(|v| v.as_bytes()))
        };
        assert!(!check(false, &["Bearer abc"]));
        assert!(!check(false, &["bearer  abc"]));
        assert!(!check(false, &["Basic YTpi", "Bearer abc"]));
        assert!(!check(false, &["Bearer"]));
        assert!(check(true, &["Bearer abc"]));
        assert!(check(false, &["Basic YTpi"]));
        assert!(check(false, &["Bearerish abc"]));
        assert!(check(false, &[]));
    }
}

/// The filter as a property: nothing of ours ever survives, and everything else does,
/// in order.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z_][A-Za-z0-9_-]{0,8}",
            "(wizbrand|WizBrand|__Host-wizbrand|__host-WIZBRAND|__Secure-wizbrand)[A-Za-z0-9_-]{0,6}",
            Just("__Host-wizbrand_app".to_owned()),
        ]
    }

    fn cookie() -> impl Strategy<Value = (String, String)> {
        (name(), "[A-Za-z0-9=._-]{0,8}")
    }

    proptest! {
        #[test]
        fn nothing_of_ours_survives_and_the_rest_does(
            headers in prop::collection::vec(prop::collection::vec(cookie(), 0..5), 0..3),
            spaces in "[ ]{0,2}",
        ) {
            let values: Vec<String> = headers
                .iter()
                .map(|cookies| {
                    cookies
                        .iter()
                        .map(|(n, v)| format!("{spaces}{n}={v}"))
                        .collect::<Vec<_>>()
                        .join(";")
                })
                .collect();
            let theirs: Vec<String> = headers
                .iter()
                .flatten()
                .filter(|(n, _)| !is_our_cookie(n.as_bytes()))
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            let any_ours = headers.iter().flatten().any(|(n, _)| is_our_cookie(n.as_bytes()));
            let result = app_cookies(values.iter().map(|v| v.as_bytes()));
            let seen: Vec<String> = match &result {
                AppCookies::Absent => Vec::new(),
                AppCookies::Unchanged => {
                    prop_assert!(!any_ours);
                    pairs(values.iter().map(|v| v.as_bytes()))
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect()
                }
                AppCookies::Filtered(kept) => {
                    prop_assert!(any_ours);
                    String::from_utf8_lossy(kept).split("; ").map(str::to_owned).collect()
                }
            };
            prop_assert_eq!(seen, theirs);
            // The one-pass reading agrees, and finds a cookie exactly when it came once.
            let read = scan(values.iter().map(|v| v.as_bytes()), "__Host-wizbrand_app");
            prop_assert_eq!(read.app_cookies(values.iter().map(|v| v.as_bytes())), result);
            let copies: Vec<&String> = headers
                .iter()
                .flatten()
                .filter(|(n, _)| n == "__Host-wizbrand_app")
                .map(|(_, v)| v)
                .collect();
            let once = (copies.len() == 1).then(|| copies[0].trim_matches('"'));
            prop_assert_eq!(read.pass, once);
        }
    }
}
