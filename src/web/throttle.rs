//! Rate limit of the sign-in endpoints (`/login`, `/auth/callback`) per client address,
//! against brute force and state-guessing floods. Passwords are typed on Keycloak's own
//! form, which has its own brute-force detection (realm `bruteForceProtected`).
//!
//! A token bucket per address, in memory: each replica limits on its own, which bounds
//! the rate at (replicas x limit) and needs no shared store. IPv6 clients are counted
//! per /64, the smallest block a site gets: one host owns all of it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// At most this many buckets are kept. When full, buckets that have refilled are
/// forgotten first (a full bucket is what a new client gets anyway); if that is not
/// enough, the least recently used tenth goes (so the O(n) pass runs once per
/// thousand new addresses, not on each).
///
/// Why least recently used, and not "refuse new addresses" (which either blocks every
/// newcomer or lets them through unlimited) or random eviction (which lets a flood of
/// new addresses reset a brute-forcer's own bucket): a client's bucket is touched on
/// each of its requests, so whoever is hammering is the most recently used and is the
/// last to go. Evicting it takes `MAX_TRACKED` other addresses used after it, and a
/// client with that many addresses is not held back by a per-address limit anyway.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// When it was last used, as a count of uses: unlike `Instant`s, never a tie, so
    /// the least recently used are exactly the ones evicted.
    used: u64,
}

#[derive(Default)]
struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    uses: u64,
}

pub struct SignInThrottle {
    /// Requests per minute per address; the burst is the same number. 0: no limit.
    per_minute: u32,
    /// Keyed by [`client_key`].
    buckets: Mutex<Table>,
    max_tracked: usize,
}

impl SignInThrottle {
    pub fn new(per_minute: u32) -> Self {
        SignInThrottle {
            per_minute,
            buckets: Mutex::new(Table::default()),
            max_tracked: MAX_TRACKED,
        }
    }

    /// How many buckets are held.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|t| t.buckets.len()).unwrap_or(0)
    }

    /// Takes one request from `client`'s bucket: `Err(wait)` when it is empty.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let Ok(mut table) = self.buckets.lock() else {
            return Ok(());
        };
        table.uses += 1;
        let used = table.uses;
        let buckets = &mut table.buckets;
        let client = client_key(client);
        if buckets.len() >= self.max_tracked && !buckets.contains_key(&client) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < capacity
            });
            evict_least_recently_used(buckets, self.max_tracked - self.max_tracked / 10);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            at: now,
            used,
        });
        bucket.used = used;
        let refilled = (bucket.tokens
            + now.saturating_duration_since(bucket.at).as_secs_f64() * per_second)
            .min(capacity);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / per_second))
        }
    }
}

/// Keeps the `keep` most recently used buckets.
fn evict_least_recently_used(buckets: &mut HashMap<IpAddr, Bucket>, keep: usize) {
    let mut by_age: Vec<(u64, IpAddr)> = buckets.iter().map(|(k, b)| (b.used, *k)).collect();
    let drop = by_age.len().saturating_sub(keep);
    if drop == 0 {
        return;
    }
    by_age.select_nth_unstable_by_key(drop - 1, |(at, _)| *at);
    for (_, key) in &by_age[..drop] {
        buckets.remove(key);
    }
}

/// The key a client is counted under: an IPv4 address as is (also when written as
/// IPv4-mapped IPv6), an IPv6 address as its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// The client's address as the nearest trusted proxy reports it: walking
/// `X-Forwarded-For` from the right (each proxy appends), the first address that is not a
/// trusted proxy. A peer that is not a trusted proxy is the client itself, whatever it
/// claims in the header.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_is_allowed_then_one_request_per_refill() {
        let throttle = SignInThrottle::new(6);
        let start = Instant::now();
        for _ in 0..6 {
            assert!(throttle.take(ip("10.0.0.1"), start).is_ok());
        }
        let wait = throttle.take(ip("10.0.0.1"), start).unwrap_err();
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        // Another address has its own bucket.
        assert!(throttle.take(ip("10.0.0.2"), start).is_ok());
        // Ten seconds later (6 a minute) one more.
        let later = start + Duration::from_secs(10);
        assert!(throttle.take(ip("10.0.0.1"), later).is_ok());
        assert!(throttle.take(ip("10.0.0.1"), later).is_err());
        assert!(SignInThrottle::new(0).take(ip("10.0.0.1"), start).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let throttle = SignInThrottle::new(3);
        let start = Instant::now();
        // Three addresses of one /64 share one bucket.
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            assert!(throttle.take(ip(host), start).is_ok(), "{host}");
        }
        assert!(throttle.take(ip("2001:db8:1:2:abcd::1"), start).is_err());
        // The next /64 has its own.
        assert!(throttle.take(ip("2001:db8:1:3::1"), start).is_ok());
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        // IPv4 as such, also written IPv4-mapped.
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn the_table_has_a_hard_bound_and_a_flood_does_not_reset_a_busy_client() {
        let mut throttle = SignInThrottle::new(5);
        throttle.max_tracked = 100;
        let start = Instant::now();
        let attacker = ip("198.51.100.1");
        for _ in 0..5 {
            assert!(throttle.take(attacker, start).is_ok());
        }
        assert!(throttle.take(attacker, start).is_err());
        // A flood of new addresses, each using part of its bucket (so none is idle),
        // while the attacker keeps trying from its own address.
        for i in 0..10_000u32 {
            let at = start + Duration::from_millis(u64::from(i / 100));
            let [a, b] = (i as u16).to_be_bytes();
            throttle.take(IpAddr::from([10, 9, a, b]), at).ok();
            assert!(throttle.tracked() <= 100, "{} buckets", throttle.tracked());
            if i % 50 == 0 {
                assert!(
                    throttle.take(attacker, at).is_err(),
                    "the attacker's bucket was reset after {i} new addresses"
                );
            }
        }
    }

    #[test]
    fn the_client_is_what_the_nearest_trusted_proxy_saw() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        // Straight from a client: its header is ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // Through Traefik: the address Traefik appended.
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // A forged left part cannot move the client: the rightmost untrusted hop counts.
        assert_eq!(
            client_address(
                ip("127.0.0.1"),
                Some("1.1.1.1, 198.51.100.7, 10.0.0.5"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("nonsense"), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), None, &trusted),
            ip("127.0.0.1")
        );
    }
}
