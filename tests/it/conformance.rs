//! The API checked by an independent tester: schemathesis (pinned in
//! `scripts/versions.sh`, installed by `scripts/install-deps.sh`) reads
//! `/api/v1/openapi.json` and sends what the document allows and what it forbids, as an
//! ORG_ADMIN of an org of its own. Our own tests can share our misreadings of the
//! document; this one cannot.

use std::process::Command;

use crate::api::person;
use crate::helpers::{KeycloakAdmin, TestApp};

/// A fixed seed: a failure here reproduces with the same command.
const SEED: &str = "20261129";

/// `scripts/test.sh` says where `scripts/install-deps.sh` put it.
fn schemathesis() -> std::path::PathBuf {
    std::env::var_os("WIZBRAND_SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "st".into())
}

#[tokio::test]
async fn schemathesis_finds_no_difference_between_the_document_and_the_api() {
    let st = schemathesis();
    assert!(
        Command::new(&st).arg("--version").output().is_ok(),
        "schemathesis ({}) cannot be run: run the tests with scripts/test.sh, which installs it",
        st.display()
    );
    let app = TestApp::spawn().await;
    let kc = KeycloakAdmin::connect().await;
    let admin = person(&kc, false).await;
    sqlx::raw_sql(
        "INSERT INTO orgs (slug, name, plan, features) VALUES ('conformance', 'Conformance', 'pro', ARRAY['seo'])",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO users (email, keycloak_id) VALUES ($1, $2)")
        .bind(&admin.email)
        .bind(&admin.keycloak_id)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, '{ORG_ADMIN}' \
         FROM orgs o, users u WHERE o.slug = 'conformance' AND u.keycloak_id = $1",
    )
    .bind(&admin.keycloak_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let address = app.address.clone();
    let token = admin.token.clone();
    let config = crate::helpers::repo_root().join("tests/it/schemathesis.toml");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args([
                "--config-file",
                config.to_str().unwrap(),
                "run",
                &format!("{address}/api/v1/openapi.json"),
                "--checks",
                "all",
                "--phases",
                "coverage,fuzzing,stateful",
                "--max-time",
                "45",
                "--workers",
                "1",
                "--seed",
                SEED,
                "--no-color",
                "-H",
                &format!("Authorization: Bearer {token}"),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found differences (seed {SEED}):\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("passed"), "{text}");
}
