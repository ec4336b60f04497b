//! The signed identity assertion, `X-Wizbrand-Assertion` (docs/gate.md).
//!
//! The identity headers can be forged by anyone who reaches an app's port without
//! Traefik. With a key configured, the gate also sends a short-lived JWT, signed with a
//! key of wizbrand's (ES256 or EdDSA), which an app verifies against
//! `/.well-known/jwks.json`: `iss` (wizbrand's public URL), `aud` (the app's own host),
//! `sub`, `email` (proven only), `org_id`, `org_slug`, `roles`, `iat`, `exp`.
//!
//! Signing costs tens of microseconds, more than the rest of the decision, so each
//! worker keeps the assertions it signed, by their claims, and signs again once one is
//! older than a quarter of its lifetime: an app always gets one valid for at least
//! three quarters of `WIZBRAND_ASSERTION_TTL_SECONDS`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, get, web};
use base64::Engine;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde::Serialize;
use sha2::Digest;

use super::decide::Grant;
use crate::config::{AssertionAlg, AssertionKey, AssertionSettings};

/// Assertions each worker keeps signed; emptied when full.
const CACHE_CAPACITY: usize = 4096;
/// The JWS `typ`: says what this token is, so it cannot pass for another kind (RFC 8725).
pub const TYP: &str = "wizbrand-assertion+jwt";

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("the assertion key cannot be used: {0}")]
    Key(String),
    #[error("signing failed")]
    Sign,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// A key as published in the JWKS, and its `kid` (the RFC 7638 thumbprint).
struct Published {
    kid: String,
    jwk: serde_json::Value,
}

fn publish(key: &AssertionKey) -> Result<(Pair, Published), AssertionError> {
    let rng = ring::rand::SystemRandom::new();
    let (pair, thumbprint_input, jwk) = match key.alg {
        AssertionAlg::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.pkcs8, &rng)
                .map_err(|e| AssertionError::Key(e.to_string()))?;
            // Uncompressed point: 0x04, then x and y of 32 bytes each.
            let point = pair.public_key().as_ref();
            let (x, y) = match point {
                [4, rest @ ..] if rest.len() == 64 => (b64(&rest[..32]), b64(&rest[32..])),
                _ => return Err(AssertionError::Key("unexpected P-256 public key".into())),
            };
            let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
            (Pair::Es256(pair), thumbprint, jwk)
        }
        AssertionAlg::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.pkcs8)
                .map_err(|e| AssertionError::Key(e.to_string()))?;
            let x = b64(pair.public_key().as_ref());
            let thumbprint = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x});
            (Pair::EdDsa(pair), thumbprint, jwk)
        }
    };
    let kid = b64(&sha2::Sha256::digest(thumbprint_input.as_bytes()));
    let mut jwk = jwk;
    jwk["kid"] = kid.clone().into();
    jwk["alg"] = key.alg.jws_name().into();
    jwk["use"] = "sig".into();
    Ok((pair, Published { kid, jwk }))
}

/// The claims of an assertion.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    pub org_id: String,
    pub org_slug: String,
    pub roles: Vec<String>,
    pub iat: u64,
    pub exp: u64,
}

impl Claims {
    /// The claims for a grant at `host` (the app's host, normalised), issued at `now`.
    pub fn of(grant: &Grant<'_>, issuer: &str, host: &str, now: u64, ttl: u64) -> Claims {
        Claims {
            iss: issuer.to_owned(),
            aud: host.to_owned(),
            sub: grant.user_id().to_owned(),
            email: grant.email().map(str::to_owned),
            org_id: grant.org.id.to_string(),
            org_slug: grant.org_slug().to_owned(),
            roles: grant.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            iat: now,
            exp: now + ttl,
        }
    }
}

/// wizbrand's assertion keys: the current one signs, the previous one is only
/// published.
pub struct Signer {
    pair: Pair,
    alg: AssertionAlg,
    /// `base64url(header).`, made once.
    header_dot: String,
    issuer: String,
    ttl: u64,
    jwks: String,
    rng: ring::rand::SystemRandom,
}

impl Signer {
    /// `issuer`: wizbrand's public URL, as the `iss` claim.
    pub fn new(settings: &AssertionSettings, issuer: &str) -> Result<Signer, AssertionError> {
        let (pair, current) = publish(&settings.current)?;
        let mut keys = vec![current.jwk];
        if let Some(previous) = &settings.previous {
            keys.push(publish(previous)?.1.jwk);
        }
        let header = serde_json::json!({
            "alg": settings.current.alg.jws_name(),
            "kid": current.kid,
            "typ": TYP,
        });
        Ok(Signer {
            pair,
            alg: settings.current.alg,
            header_dot: format!("{}.", b64(header.to_string().as_bytes())),
            issuer: issuer.trim_end_matches('/').to_owned(),
            ttl: settings.ttl.as_secs(),
            jwks: serde_json::json!({ "keys": keys }).to_string(),
            rng: ring::rand::SystemRandom::new(),
        })
    }

    pub fn alg(&self) -> AssertionAlg {
        self.alg
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    /// `{"keys": [current, previous]}`.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, AssertionError> {
        let payload = serde_json::to_vec(claims).map_err(|_| AssertionError::Sign)?;
        let mut token = self.header_dot.clone();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &self.pair {
            Pair::Es256(pair) => pair
                .sign(&self.rng, token.as_bytes())
                .map_err(|_| AssertionError::Sign)?
                .as_ref()
                .to_vec(),
            Pair::EdDsa(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

/// What an assertion says, to find a signed one again without allocating.
struct Entry {
    sub: Box<str>,
    email: Option<Box<str>>,
    org_id: uuid::Uuid,
    roles: Box<[crate::domain::Role]>,
    aud: Box<str>,
    signed_at: u64,
    value: HeaderValue,
}

impl Entry {
    fn says(&self, grant: &Grant<'_>, aud: &str) -> bool {
        *self.sub == *grant.user_id()
            && self.email.as_deref() == grant.email()
            && self.org_id == grant.org.id
            && *self.roles == *grant.roles
            && *self.aud == *aud
    }
}

/// One worker's signed assertions, by a keyed hash of their claims (the entry itself
/// is compared too, so a collision signs afresh rather than hand on another's).
#[derive(Default)]
pub struct SignedCache {
    hasher: std::hash::RandomState,
    entries: HashMap<u64, Entry>,
}

impl SignedCache {
    fn key(&self, grant: &Grant<'_>, aud: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        grant.user_id().hash(&mut h);
        grant.email().hash(&mut h);
        grant.org.id.hash(&mut h);
        grant.roles.hash(&mut h);
        aud.hash(&mut h);
        h.finish()
    }

    /// The header value for `grant` at `host`: kept while it is young enough, else
    /// signed now. `None` only when signing fails (logged): the app then gets no
    /// assertion and refuses, which is the safe side.
    pub fn header(
        &mut self,
        signer: &Signer,
        grant: &Grant<'_>,
        host: &str,
    ) -> Option<HeaderValue> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let key = self.key(grant, host);
        if let Some(entry) = self.entries.get(&key)
            && entry.says(grant, host)
            && now.saturating_sub(entry.signed_at) < (signer.ttl / 4).max(1)
        {
            return Some(entry.value.clone());
        }
        let claims = Claims::of(grant, &signer.issuer, host, now, signer.ttl);
        let value = match signer.sign(&claims).map(HeaderValue::try_from) {
            Ok(Ok(value)) => value,
            _ => {
                tracing::error!("the identity assertion could not be signed");
                return None;
            }
        };
        if self.entries.len() >= CACHE_CAPACITY {
            self.entries.clear();
        }
        self.entries.insert(
            key,
            Entry {
                sub: grant.user_id().into(),
                email: grant.email().map(Into::into),
                org_id: grant.org.id,
                roles: grant.roles.into(),
                aud: host.into(),
                signed_at: now,
                value: value.clone(),
            },
        );
        Some(value)
    }
}

/// `GET /.well-known/jwks.json`: the assertion keys (an empty set when the assertion
/// is off), for apps to verify `X-Wizbrand-Assertion` with.
#[get("/.well-known/jwks.json")]
async fn key_set(signer: Option<web::Data<Signer>>) -> HttpResponse {
    let body = signer.as_ref().map_or(r#"{"keys":[]}"#, |s| s.jwks());
    HttpResponse::Ok()
        .content_type("application/json")
        // Apps may keep it a while; they fetch again on an unknown `kid` (rotation).
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body.to_owned())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(key_set);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::config::parse_assertion_key;
    use crate::domain::{OrgSlug, Principal, Role};
    use crate::forward_auth::decide::{AppRule, HostPattern, OrgEntry};

    /// Made with `openssl genpkey -algorithm ed25519` (a test key, nothing else).
    const ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMBZlfZzg0kb+DUalzlNwG/C131VRYDHMoeSAV5DI4SZ
-----END PRIVATE KEY-----";
    /// Made with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.
    const P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgMdo4KtrNK2y31kkI
iFB6Y2oU/yABn/qS45X+QmAE+dqhRANCAASGfbefUmgevZ0y9sgNGUg4KT2AaV4R
MOoodE2aLZB8p0ksbJYQF3mQiS2wnCv6S1ZKbDga0dyql7ZKhAcayT0E
-----END PRIVATE KEY-----";

    fn settings(pem: &str) -> AssertionSettings {
        AssertionSettings {
            current: parse_assertion_key(pem).unwrap_or_else(|e| panic!("{e}")),
            previous: None,
            ttl: std::time::Duration::from_secs(120),
        }
    }

    fn grant_parts() -> (Principal, AppRule, OrgEntry, Vec<Role>) {
        (
            Principal {
                sub: "u1".into(),
                email: Some("u1@example.com".into()),
                preferred_org: None,
                platform_admin: false,
            },
            AppRule {
                key: "seo".into(),
                name: "SEO".into(),
                host: HostPattern::parse("{org}.seo.wizbrand.localhost"),
                required_feature: "seo".into(),
                min_role: Role::User,
                pass_authorization: false,
            },
            OrgEntry {
                id: uuid::Uuid::nil(),
                slug: OrgSlug::parse("acme").unwrap_or_else(|e| panic!("{e}")),
                active: true,
                features: HashSet::new(),
                hidden_apps: HashSet::new(),
            },
            vec![Role::Admin, Role::User],
        )
    }

    /// Verifies a compact JWS with the JWKS's key, as an app would (with ring's
    /// verification, independent of the signing code above).
    fn verify(token: &str, jwks: &str, alg: AssertionAlg) -> Claims {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let d = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let header: serde_json::Value = serde_json::from_slice(&d(parts[0])).unwrap_or_default();
        let keys: serde_json::Value = serde_json::from_str(jwks).unwrap_or_default();
        let jwk = &keys["keys"][0];
        assert_eq!(header["kid"], jwk["kid"]);
        assert_eq!(header["typ"], TYP);
        assert_eq!(header["alg"], alg.jws_name());
        let message = format!("{}.{}", parts[0], parts[1]);
        let signature = d(parts[2]);
        let field = |name: &str| d(jwk[name].as_str().unwrap_or_default());
        let ok = match alg {
            AssertionAlg::Es256 => {
                let point = [vec![4u8], field("x"), field("y")].concat();
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    point,
                )
                .verify(message.as_bytes(), &signature)
            }
            AssertionAlg::EdDsa => {
                ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, field("x"))
                    .verify(message.as_bytes(), &signature)
            }
        };
        assert!(ok.is_ok(), "signature does not verify");
        serde_json::from_slice(&d(parts[1])).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn assertions_verify_with_the_published_key_and_carry_the_grant() {
        for (pem, alg) in [(ED25519, AssertionAlg::EdDsa), (P256, AssertionAlg::Es256)] {
            let signer = Signer::new(&settings(pem), "http://auth.wizbrand.localhost:8000/")
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(signer.alg(), alg);
            let (who, app, org, roles) = grant_parts();
            let grant = Grant {
                who: &who,
                app: &app,
                org: &org,
                roles: &roles,
            };
            let mut cache = SignedCache::default();
            let value = cache
                .header(&signer, &grant, "acme.seo.wizbrand.localhost")
                .unwrap_or_else(|| panic!("not signed"));
            let claims = verify(value.to_str().unwrap_or_default(), signer.jwks(), alg);
            assert_eq!(claims.iss, "http://auth.wizbrand.localhost:8000");
            assert_eq!(claims.aud, "acme.seo.wizbrand.localhost");
            assert_eq!(claims.sub, "u1");
            assert_eq!(claims.email.as_deref(), Some("u1@example.com"));
            assert_eq!(claims.org_slug, "acme");
            assert_eq!(claims.org_id, uuid::Uuid::nil().to_string());
            assert_eq!(claims.roles, ["ORG_ADMIN", "ORG_USER"]);
            assert_eq!(claims.exp - claims.iat, 120);
            // The same grant again: the same assertion, not signed again.
            let again = cache.header(&signer, &grant, "acme.seo.wizbrand.localhost");
            assert_eq!(again.as_ref(), Some(&value));
            // Another host or fewer roles: another assertion.
            let other = cache.header(&signer, &grant, "acme.files.wizbrand.localhost");
            assert_ne!(other.as_ref(), Some(&value));
            let fewer = [Role::User];
            let lower = Grant {
                roles: &fewer,
                ..grant
            };
            let claims = verify(
                cache
                    .header(&signer, &lower, "acme.seo.wizbrand.localhost")
                    .and_then(|v| v.to_str().ok().map(str::to_owned))
                    .unwrap_or_default()
                    .as_str(),
                signer.jwks(),
                alg,
            );
            assert_eq!(claims.roles, ["ORG_USER"]);
        }
    }

    #[test]
    fn both_keys_are_published_during_a_rotation() {
        let mut s = settings(P256);
        s.previous = Some(parse_assertion_key(ED25519).unwrap_or_else(|e| panic!("{e}")));
        let signer = Signer::new(&s, "http://auth").unwrap_or_else(|e| panic!("{e}"));
        let keys: serde_json::Value = serde_json::from_str(signer.jwks()).unwrap_or_default();
        let kids: Vec<&str> = keys["keys"]
            .as_array()
            .map(|k| k.iter().filter_map(|k| k["kid"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(kids.len(), 2);
        assert_ne!(kids[0], kids[1]);
        assert!(!signer.jwks().contains("\"d\""), "no private part");
    }
}
