//! The signed identity assertion (`X-Wizbrand-Assertion`) through a real Traefik,
//! verified by an independent library: PyJWT (pinned in `scripts/versions.sh`,
//! installed by `scripts/install-deps.sh`) running the verification the docs show
//! (`docs/examples/verify_assertion.py`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::gate::{Gate, header};
use crate::helpers::{TempDir, repo_root};

/// The Python with PyJWT: `scripts/test.sh` says where; else where
/// `scripts/install-deps.sh` puts it.
fn pyjwt_python() -> PathBuf {
    if let Some(path) = std::env::var_os("WIZBRAND_PYJWT_PYTHON") {
        return path.into();
    }
    let versions = std::fs::read_to_string(repo_root().join("scripts/versions.sh")).unwrap();
    let version = versions
        .lines()
        .find_map(|l| l.strip_prefix("PYJWT_VERSION="))
        .expect("PYJWT_VERSION in scripts/versions.sh");
    let cache = std::env::var_os("WIZBRAND_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/wizbrand"));
    cache.join(format!("pyjwt-{version}/bin/python"))
}

/// A private key made by openssl, as an operator would (`alg`: `ed25519` or `P-256`).
fn key_file(dir: &TempDir, alg: &str) -> String {
    let path = dir.0.join(format!("{alg}.pem"));
    let mut openssl = Command::new("openssl");
    openssl.arg("genpkey");
    match alg {
        "ed25519" => openssl.args(["-algorithm", "ed25519"]),
        _ => openssl.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
    };
    let status = openssl.arg("-out").arg(&path).status().expect("openssl");
    assert!(status.success());
    path.display().to_string()
}

/// Runs the docs' verification; its claims, or PyJWT's complaint.
fn pyjwt_verify(token: &str, jwks_url: &str, aud: &str, iss: &str) -> Result<Value, String> {
    let python = pyjwt_python();
    let output = Command::new(&python)
        .arg(repo_root().join("docs/examples/verify_assertion.py"))
        .args([token, jwks_url, aud, iss])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} cannot run ({e}): run the tests with scripts/test.sh, which installs PyJWT",
                python.display()
            )
        });
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

const PUBLIC: &str = "http://auth.wizbrand.localhost:8000";

#[tokio::test]
async fn apps_get_an_assertion_pyjwt_verifies_and_never_a_clients_copy() {
    let dir = TempDir(std::env::temp_dir().join(format!("wizbrand-keys-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    for alg in ["ed25519", "P-256"] {
        let key = key_file(&dir, alg);
        let gate = Gate::new_with(|env| {
            env.insert("WIZBRAND_ASSERTION_KEY_FILE".into(), key.clone());
        })
        .await;
        let alice = gate.member(&[("acme", "ORG_ADMIN")]).await;
        gate.admitted(&alice, "acme", "seo").await;
        let org_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM orgs WHERE slug = 'acme'")
            .fetch_one(&gate.app.pool)
            .await
            .unwrap();
        let echo: Value = gate
            .get("acme", "seo", "/api")
            .bearer_auth(&alice.token)
            // A client's own assertion: Traefik must put the gate's in its place.
            .header("X-Wizbrand-Assertion", "forged.by.client")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let assertions = header(&echo, "X-Wizbrand-Assertion").expect("an assertion");
        assert_eq!(assertions.len(), 1, "{echo}");
        let token = &assertions[0];
        assert_ne!(token, "forged.by.client");

        let jwks = format!("{}/.well-known/jwks.json", gate.app.address);
        let aud = "acme.seo.wizbrand.localhost";
        let claims =
            pyjwt_verify(token, &jwks, aud, PUBLIC).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims["sub"], alice.sub.as_str(), "{claims}");
        assert_eq!(claims["email"], alice.email.as_str());
        assert_eq!(claims["org_id"], org_id.to_string());
        assert_eq!(claims["org_slug"], "acme");
        assert_eq!(claims["roles"], serde_json::json!(["ORG_ADMIN"]));
        assert_eq!(claims["aud"], aud);
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, 120);

        // Another app, another issuer or a changed token: PyJWT refuses.
        let other_app = pyjwt_verify(token, &jwks, "acme.files.wizbrand.localhost", PUBLIC);
        assert!(other_app.unwrap_err().contains("Audience"), "{alg}");
        assert!(pyjwt_verify(token, &jwks, aud, "http://evil.example").is_err());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged_claims = claims.to_string().replace("ORG_ADMIN", "ORG_OWNER");
        use base64::Engine;
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged_claims);
        let changed = pyjwt_verify(&parts.join("."), &jwks, aud, PUBLIC);
        assert!(changed.unwrap_err().contains("Signature"), "{alg}");
    }
}

#[tokio::test]
async fn with_the_assertion_off_a_clients_copy_is_dropped_and_the_key_set_is_empty() {
    let gate = Gate::new().await;
    let bob = gate.member(&[("acme", "ORG_USER")]).await;
    gate.admitted(&bob, "acme", "seo").await;
    let echo: Value = gate
        .get("acme", "seo", "/api")
        .bearer_auth(&bob.token)
        .header("X-Wizbrand-Assertion", "forged.by.client")
        .header("x-wizbrand-assertion", "forged.again")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(header(&echo, "X-Wizbrand-Assertion"), None, "{echo}");
    assert_eq!(header(&echo, "X-User-Id"), Some(vec![bob.sub.clone()]));
    let jwks: Value = gate
        .app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, serde_json::json!({"keys": []}));
}
