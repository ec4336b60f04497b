//! The cost of the signed identity assertion, for bench/gate.sh: one signature (ES256,
//! EdDSA) and one cached assertion (what a repeated request pays), in microseconds.
//!
//!   cargo run --release --example sign_assertion

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use wizbrand::config::{AssertionAlg, AssertionKey, AssertionSettings};
use wizbrand::domain::{OrgSlug, Principal, Role};
use wizbrand::forward_auth::assertion::{Claims, SignedCache, Signer};
use wizbrand::forward_auth::decide::{AppRule, Grant, HostPattern, OrgEntry};

fn per_op(n: u32, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rng = ring::rand::SystemRandom::new();
    let keys = [
        (
            AssertionAlg::Es256,
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|e| e.to_string())?,
        ),
        (
            AssertionAlg::EdDsa,
            Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?,
        ),
    ];
    let who = Principal {
        sub: "0b6f1d2e-3c4a-4b5c-9d8e-7f6a5b4c3d2e".into(),
        email: Some("gatebench@bench.example.com".into()),
        preferred_org: None,
        platform_admin: false,
    };
    let app = AppRule {
        key: "seo".into(),
        name: "SEO".into(),
        host: HostPattern::parse("{org}.seo.wizbrand.localhost"),
        required_feature: "seo".into(),
        min_role: Role::User,
        pass_authorization: false,
    };
    let org = OrgEntry {
        id: uuid::Uuid::new_v4(),
        slug: OrgSlug::parse("acme")?,
        active: true,
        features: HashSet::new(),
        hidden_apps: HashSet::new(),
    };
    let roles = [Role::User];
    let grant = Grant {
        who: &who,
        app: &app,
        org: &org,
        roles: &roles,
    };
    let host = "acme.seo.wizbrand.localhost";
    for (alg, pkcs8) in keys {
        let settings = AssertionSettings {
            current: AssertionKey {
                alg,
                pkcs8: pkcs8.as_ref().into(),
            },
            previous: None,
            ttl: Duration::from_secs(120),
        };
        let signer = Signer::new(&settings, "http://auth.wizbrand.localhost:8000")?;
        let claims = Claims::of(&grant, signer.issuer(), host, 1_800_000_000, 120);
        let sign = per_op(5_000, || {
            let _ = signer.sign(&claims);
        });
        let mut cache = SignedCache::default();
        let cached = per_op(200_000, || {
            let _ = cache.header(&signer, &grant, host);
        });
        println!(
            "assertion {}: {sign:.1} µs to sign, {cached:.2} µs when kept (a repeated request)",
            alg.jws_name()
        );
    }
    Ok(())
}
