//! Rate limit of the sign-in endpoints (`/login`, `/auth/callback`) per client address,
//! against brute force and state-guessing floods. Passwords are typed on Keycloak's own
//! form, which has its own brute-force detection (realm `bruteForceProtected`).
//!
//! A token bucket per address, in memory: each replica limits on its own, which bounds
//! the rate at (replicas x limit) and needs no shared store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Past this many addresses, the full (idle) buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct SignInThrottle {
    /// Requests per minute per address; the burst is the same number. 0: no limit.
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl SignInThrottle {
    pub fn new(per_minute: u32) -> Self {
        SignInThrottle {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `client`'s bucket: `Err(wait)` when it is empty.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
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
