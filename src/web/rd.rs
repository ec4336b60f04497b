//! Where a browser may be sent after sign-in (`rd`): a pure decision.

use url::Url;

use crate::config::host_is_under;

/// The fallback when `rd` is missing or not allowed.
pub const HOME: &str = "/";

/// The longest `rd` kept, counted as stored: it waits for the sign-in inside the
/// session cookie, whose content actix-session caps at 4064 bytes (and browsers at
/// 4 KiB), next to the state, nonce and PKCE verifier. A longer one lands on [`HOME`]
/// instead of failing to be stored.
pub const MAX_RD_LEN: usize = 2048;

/// `url`'s length once escaped twice as JSON (the session state is a JSON map of JSON
/// strings): a serialised URL is ASCII without control characters, so only `"` and
/// `\` grow, to four bytes each.
fn stored_len(url: &str) -> usize {
    url.len() + 3 * url.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// Returns `rd` as an absolute URL when it points at the public URL's origin or at a
/// host under `cookie_domain`, over the public URL's scheme and port, without user
/// info; anything else gives [`HOME`]. Relative paths are resolved the way a browser
/// would (WHATWG), so `//evil.example` and `/\evil.example` are foreign hosts.
pub fn safe_redirect(rd: Option<&str>, public: &Url, cookie_domain: &str) -> String {
    let Some(rd) = rd.map(str::trim).filter(|r| !r.is_empty()) else {
        return HOME.to_owned();
    };
    // Browsers drop tabs and newlines inside URLs; refuse them rather than guess.
    if rd.chars().any(|c| c.is_control()) {
        return HOME.to_owned();
    }
    let Ok(target) = public.join(rd) else {
        return HOME.to_owned();
    };
    let Some(host) = target.host_str() else {
        return HOME.to_owned();
    };
    let same_scheme = target.scheme() == public.scheme();
    let same_port = target.port_or_known_default() == public.port_or_known_default();
    let no_userinfo = target.username().is_empty() && target.password().is_none();
    let public_host = public.host_str().unwrap_or_default();
    let host_ok = host.eq_ignore_ascii_case(public_host)
        || (!cookie_domain.trim_start_matches('.').is_empty()
            && host_is_under(host, cookie_domain));
    if same_scheme
        && same_port
        && no_userinfo
        && host_ok
        && stored_len(target.as_str()) <= MAX_RD_LEN
    {
        target.to_string()
    } else {
        HOME.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(public: &str, rd: &str) -> String {
        safe_redirect(Some(rd), &Url::parse(public).unwrap(), "wizbrand.localhost")
    }

    const DEV: &str = "http://auth.wizbrand.localhost:8000";

    #[test]
    fn own_hosts_are_followed() {
        assert_eq!(
            check(DEV, "http://acme.seo.wizbrand.localhost:8000/x?y=1"),
            "http://acme.seo.wizbrand.localhost:8000/x?y=1"
        );
        assert_eq!(
            check(DEV, "/orgs/select?rd=x"),
            "http://auth.wizbrand.localhost:8000/orgs/select?rd=x"
        );
        assert_eq!(
            check("http://127.0.0.1:4000", "http://127.0.0.1:4000/orgs/select"),
            "http://127.0.0.1:4000/orgs/select"
        );
        // Same-scheme "http:x" is a relative path for a browser: it stays here.
        assert!(check(DEV, "http:evil.example").starts_with(DEV));
        assert_eq!(
            check(DEV, "http://wizbrand.localhost:8000/"),
            "http://wizbrand.localhost:8000/"
        );
    }

    #[test]
    fn foreign_or_tricky_targets_land_home() {
        for rd in [
            "https://evil.example",
            "http://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https:evil.example",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://acme.seo.wizbrand.localhost:8000/",
            "http://acme.seo.wizbrand.localhost:9999/",
            "http://evilwizbrand.localhost:8000/",
            "http://wizbrand.localhost.evil.example:8000/",
            "http://user:pw@auth.wizbrand.localhost:8000/",
            "http://auth.wizbrand.localhost:8000@evil.example/",
            "/\t/evil.example",
            "",
        ] {
            assert_eq!(check(DEV, rd), HOME, "rd={rd:?}");
        }
        assert_eq!(
            safe_redirect(None, &Url::parse(DEV).unwrap(), "wizbrand.localhost"),
            HOME
        );
        // Too long to wait in the session cookie.
        let long = format!("{DEV}/{}", "a".repeat(MAX_RD_LEN));
        assert_eq!(check(DEV, &long), HOME);
        assert_eq!(check(DEV, &format!("/?{}", "\\".repeat(600))), HOME);
        assert!(check(DEV, &format!("/{}", "a".repeat(1500))).starts_with(DEV));
        // Another port of the loopback public host is another origin.
        assert_eq!(
            check("http://127.0.0.1:4000", "http://127.0.0.1:4001/"),
            HOME
        );
    }
}
