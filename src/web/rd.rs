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

/// The `rd` check as a property: whatever comes in, the answer is [`HOME`] or an
/// absolute URL over the public URL's scheme and port, without user info, on the public
/// host or a host under the cookie domain.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    const PUBLIC: &str = "http://auth.wizbrand.localhost:8000";
    const DOMAIN: &str = "wizbrand.localhost";

    fn public() -> Url {
        Url::parse(PUBLIC).unwrap_or_else(|e| panic!("{e}"))
    }

    fn allowed(out: &str) -> bool {
        if out == HOME {
            return true;
        }
        let (Ok(url), public) = (Url::parse(out), public()) else {
            return false;
        };
        let host = url.host_str().unwrap_or_default();
        url.scheme() == public.scheme()
            && url.port_or_known_default() == public.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none()
            && (host == "auth.wizbrand.localhost"
                || host == DOMAIN
                || host.ends_with(".wizbrand.localhost"))
            && host
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    }

    /// URL-ish strings built from the pieces open-redirect tricks are made of.
    fn tricky() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec![
            "",
            "http:",
            "https:",
            "HTTP:",
            "javascript:",
            "data:",
            "ftp:",
            "%68ttp:",
            " http:",
        ]);
        let slashes = prop::sample::select(vec![
            "",
            "/",
            "//",
            "///",
            "\\\\",
            "/\\",
            "\\/",
            "%2F%2F",
            "%252F%252F",
            "/%09/",
        ]);
        let userinfo = prop::sample::select(vec![
            "",
            "user@",
            "a:b@",
            "auth.wizbrand.localhost:8000@",
            "evil.example%40",
        ]);
        let host = prop::sample::select(vec![
            "evil.example",
            "auth.wizbrand.localhost",
            "acme.seo.wizbrand.localhost",
            "ACME.SEO.WIZBRAND.LOCALHOST",
            "wizbrand.localhost",
            "wizbrand.localhost.evil.example",
            "evilwizbrand.localhost",
            "аuth.wizbrand.localhost",
            "evil。example",
            "auth.wizbrand.localhost。evil.example",
            "127.0.0.1",
            "[::1]",
            "",
        ]);
        let port = prop::sample::select(vec!["", ":8000", ":80", ":9999", ":08000", ":"]);
        let rest = "[a-z/?#@\\\\%.:;=&]{0,12}";
        (scheme, slashes, userinfo, host, port, rest)
            .prop_map(|(a, b, c, d, e, f)| format!("{a}{b}{c}{d}{e}{f}"))
    }

    fn check(rd: &str) -> String {
        safe_redirect(Some(rd), &public(), DOMAIN)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_string_lands_on_an_allowed_host_or_home(rd in any::<String>()) {
            let out = check(&rd);
            prop_assert!(allowed(&out), "{rd:?} -> {out}");
        }

        #[test]
        fn tricky_urls_land_on_an_allowed_host_or_home(rd in tricky()) {
            let out = check(&rd);
            prop_assert!(allowed(&out), "{rd:?} -> {out}");
            // What is let through passes again unchanged: the check is stable.
            if out != HOME {
                prop_assert_eq!(check(&out), out);
            }
        }

        #[test]
        fn foreign_hosts_never_pass(
            host in "[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){0,3}",
            path in "[a-z0-9/]{0,10}",
        ) {
            prop_assume!(host != DOMAIN && !host.ends_with(".wizbrand.localhost"));
            let out = check(&format!("http://{host}:8000/{path}"));
            prop_assert_eq!(out, HOME);
        }
    }
}
