//! Who is asking at an app host: its pass (the `__Host-wizbrand_app` cookie), opened
//! through the web layer's app-host sessions ([`AppHosts`], the gate's port), and a
//! bounded cache of passes already opened.
//!
//! Opening a pass is an AES-GCM decryption and a JSON parse (a few microseconds); a
//! browser sends the same cookie with every request, so each worker keeps the passes it
//! opened, keyed by the cookie's value, until they expire or are pushed out. What the
//! cache never holds is the verdict on the session: every request, hit or miss, asks
//! [`AppHosts::live`] (the in-memory revocations), so a logout still ends the pass on
//! every replica within a second. Only passes that opened are kept: a flood of forged
//! cookies leaves the cache as it was.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::cookie::Cookie;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};

use crate::domain::Principal;

/// A fast keyed hash (seeded per process): the keys are cookie values and tokens of a
/// few hundred bytes to over a kilobyte, and only authentic ones are ever inserted.
type FastHash = foldhash::fast::RandomState;

/// An app host's pass, opened (authentic), not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The host it was issued for, normalised.
    pub host: String,
    pub principal: Principal,
    /// Unix milliseconds.
    pub expires_at_ms: i64,
    pub session: SessionRef,
}

/// What identifies the pass's session, for the revocation check and the refresher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    /// Keycloak's session id.
    pub sid: Option<String>,
    pub issued_at: DateTime<Utc>,
    /// The key of the session's server-side tokens.
    pub handle: String,
    /// From when (unix milliseconds) a refresh may be due.
    pub refresh_at_ms: i64,
}

impl Pass {
    /// For `host` (normalised) and not expired at `now_ms`; revocation is
    /// [`AppHosts::live`]'s.
    pub fn fits(&self, host: &str, now_ms: i64) -> bool {
        self.host == host && self.expires_at_ms > now_ms
    }
}

/// What the gate needs of the app hosts' sessions, which live in the web layer
/// (`web::app_host` implements it): reading and opening passes, the revocation check,
/// the hand-over that gets a browser a pass, and the refusal page shown on app hosts.
/// A port, so the gate imports nothing above it (docs/architecture.md).
pub trait AppHosts: Send + Sync {
    /// The name of the pass cookie (the gate reads it with the rest of the request's
    /// cookies, once; [`super::upstream::scan`]).
    fn pass_cookie_name(&self) -> &'static str;

    /// Decrypts and reads a pass; `None` unless it is authentic. No other check.
    fn open(&self, sealed: &str) -> Option<Pass>;

    /// Whether the pass's session goes on (not revoked; fails closed before the
    /// revocations are loaded). Notes the session as in use for the token refresher.
    fn live(&self, pass: &Pass) -> bool;

    /// The nonce cookie to set (if the request has no usable one) and its hash, which
    /// binds a hand-over to this browser.
    fn bind(&self, req: &HttpRequest) -> (Option<Cookie<'static>>, String);

    /// The auth host's hand-off URL that brings the browser back to `rd` with a pass.
    fn hand_off_url(&self, rd: &str, bind_hash: &str) -> String;

    /// The `403` page for a person (`who`: the signed-in person's email or id), with
    /// the reason and, when given, the link to switch org (the one call that renders
    /// it; its security headers included).
    fn refusal_page(&self, who: Option<&str>, detail: &str, switch: Option<&str>) -> HttpResponse;
}

/// Passes opened by one worker: two generations of at most `capacity / 2` each. When
/// the current one is full it becomes the previous one (the one before is dropped), and
/// a hit in the previous one moves back: the passes in use stay, memory stays bounded.
pub struct PassCache {
    half: usize,
    current: HashMap<Box<str>, Rc<Pass>, FastHash>,
    previous: HashMap<Box<str>, Rc<Pass>, FastHash>,
    /// Entries of every worker's cache (`wizbrand_gate_pass_cache_entries`).
    gauge: Option<prometheus::IntGauge>,
}

impl PassCache {
    /// At most `capacity` passes (0: none kept).
    pub fn new(capacity: usize, gauge: Option<prometheus::IntGauge>) -> Self {
        PassCache {
            half: capacity.div_ceil(2),
            current: HashMap::default(),
            previous: HashMap::default(),
            gauge,
        }
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// The pass of cookie value `sealed`, opened before.
    pub fn get(&mut self, sealed: &str) -> Option<Rc<Pass>> {
        if let Some(pass) = self.current.get(sealed) {
            return Some(Rc::clone(pass));
        }
        let before = self.len();
        let (key, pass) = self.previous.remove_entry(sealed)?;
        self.put(key, Rc::clone(&pass));
        self.track(before);
        Some(pass)
    }

    /// Keeps a pass that opened (never one that did not).
    pub fn insert(&mut self, sealed: &str, pass: Pass) -> Rc<Pass> {
        let pass = Rc::new(pass);
        if self.half == 0 {
            return pass;
        }
        let before = self.len();
        self.put(sealed.into(), Rc::clone(&pass));
        self.track(before);
        pass
    }

    fn put(&mut self, key: Box<str>, pass: Rc<Pass>) {
        if self.current.len() >= self.half {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, pass);
    }

    /// The gauge sums every worker's cache: it moves by this one's change.
    fn track(&self, before: usize) {
        if let Some(gauge) = &self.gauge {
            gauge.add(self.len() as i64 - before as i64);
        }
    }
}

impl Drop for PassCache {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.sub(self.len() as i64);
        }
    }
}

/// Bearer tokens one worker has had verified, by the token, each kept until the
/// token's `exp` and at most [`TokenCache::RECHECK`]: after that the verifier is asked
/// again (it drops removed keys and expired tokens; its own cache is shared and locked).
#[derive(Default)]
pub struct TokenCache {
    entries: HashMap<Box<str>, (Rc<Principal>, Instant), FastHash>,
}

impl TokenCache {
    pub const RECHECK: Duration = Duration::from_secs(5);
    const CAPACITY: usize = 4096;

    pub fn get(&self, token: &str, now: Instant) -> Option<Rc<Principal>> {
        self.entries
            .get(token)
            .filter(|(_, until)| now < *until)
            .map(|(principal, _)| Rc::clone(principal))
    }

    /// `for_at_most`: until the token's `exp`.
    pub fn insert(
        &mut self,
        token: &str,
        principal: Principal,
        now: Instant,
        for_at_most: Duration,
    ) -> Rc<Principal> {
        if self.entries.len() >= Self::CAPACITY {
            self.entries.clear();
        }
        let principal = Rc::new(principal);
        let until = now + for_at_most.min(Self::RECHECK);
        self.entries
            .insert(token.into(), (Rc::clone(&principal), until));
        principal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(n: usize) -> Pass {
        Pass {
            host: "acme.seo.wizbrand.localhost".into(),
            principal: Principal {
                sub: format!("u{n}"),
                email: None,
                preferred_org: None,
                platform_admin: false,
            },
            expires_at_ms: i64::MAX,
            session: SessionRef {
                sid: None,
                issued_at: DateTime::default(),
                handle: "h".into(),
                refresh_at_ms: 0,
            },
        }
    }

    #[test]
    fn the_cache_stays_within_its_capacity_and_keeps_what_is_in_use() {
        let gauge = prometheus::IntGauge::new("t", "t").unwrap_or_else(|e| panic!("{e}"));
        let mut cache = PassCache::new(100, Some(gauge.clone()));
        cache.insert("in-use", pass(0));
        for n in 0..10_000 {
            cache.insert(&format!("cookie-{n}"), pass(n));
            // The pass in use is asked for now and then: it never leaves.
            if n % 40 == 0 {
                assert_eq!(
                    cache.get("in-use").map(|p| p.principal.sub.clone()),
                    Some("u0".into()),
                    "after {n}"
                );
            }
            assert!(cache.len() <= 100, "{} entries after {n}", cache.len());
            assert_eq!(gauge.get(), cache.len() as i64);
        }
        assert_eq!(
            cache.get("cookie-9999").map(|p| p.principal.sub.clone()),
            Some("u9999".into())
        );
        assert!(cache.get("cookie-0").is_none(), "pushed out long ago");
        assert!(cache.get("never-opened").is_none());
        drop(cache);
        assert_eq!(gauge.get(), 0);
        let mut none = PassCache::new(0, Some(gauge.clone()));
        none.insert("x", pass(1));
        assert!(none.len() == 0 && none.get("x").is_none());
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn a_verified_token_is_kept_until_its_exp_and_a_few_seconds_at_most() {
        let mut cache = TokenCache::default();
        let now = Instant::now();
        let who = pass(1).principal;
        cache.insert("long", who.clone(), now, Duration::from_secs(300));
        cache.insert("short", who, now, Duration::from_secs(1));
        assert!(cache.get("long", now + Duration::from_secs(4)).is_some());
        assert!(cache.get("long", now + TokenCache::RECHECK).is_none());
        assert!(
            cache
                .get("short", now + Duration::from_millis(500))
                .is_some()
        );
        assert!(cache.get("short", now + Duration::from_secs(1)).is_none());
        assert!(cache.get("other", now).is_none());
    }

    #[test]
    fn a_pass_fits_its_own_host_until_it_expires() {
        let p = Pass {
            expires_at_ms: 1_000,
            ..pass(1)
        };
        assert!(p.fits("acme.seo.wizbrand.localhost", 999));
        assert!(!p.fits("acme.seo.wizbrand.localhost", 1_000));
        assert!(!p.fits("acme.files.wizbrand.localhost", 999));
    }
}
