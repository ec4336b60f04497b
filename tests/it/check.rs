use std::collections::HashMap;
use std::process::{Command, Output};

use crate::helpers::{base_env, fresh_database};

/// Runs the real binary with exactly `env` (no `.env` file: the working directory is
/// a fresh temporary one).
fn wizbrand(args: &[&str], env: &HashMap<String, String>) -> Output {
    let dir = std::env::temp_dir().join(format!("wizbrand-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wizbrand"))
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    output
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn check_refuses_a_malformed_database_url_and_names_it() {
    let mut env = base_env("postgres//no-scheme-separator");
    env.insert(
        "DATABASE_URL".into(),
        "postgres//no-scheme-separator".into(),
    );
    let output = wizbrand(&["check"], &env);
    assert!(!output.status.success());
    let said = text(&output);
    assert!(said.contains("DATABASE_URL"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[tokio::test]
async fn check_passes_against_the_real_stack() {
    let (url, _pool) = fresh_database().await;
    let output = wizbrand(&["check"], &base_env(&url));
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    let n = wizbrand::db::MIGRATOR.iter().count();
    assert!(
        said.contains(&format!(
            "ok   postgres: connected; {n} of {n} migrations applied"
        )),
        "{said}"
    );
    assert!(said.contains("ok   keycloak service account"), "{said}");
}

#[tokio::test]
async fn check_names_the_sync_secret_when_keycloak_refuses_it() {
    let (url, _pool) = fresh_database().await;
    let mut env = base_env(&url);
    env.insert("WIZBRAND_SYNC_CLIENT_SECRET".into(), "wrong".into());
    let output = wizbrand(&["check"], &env);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("FAIL keycloak service account"), "{said}");
    assert!(said.contains("WIZBRAND_SYNC_CLIENT_SECRET"), "{said}");
    assert!(!said.contains("wrong"), "the secret was printed: {said}");
}

#[tokio::test]
async fn migrate_applies_the_schema_to_an_empty_database() {
    let (url, pool) = fresh_database().await;
    sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .execute(&pool)
        .await
        .unwrap();
    let output = wizbrand(&["migrate"], &base_env(&url));
    assert!(output.status.success(), "{}", text(&output));
    let apps: i64 = sqlx::query_scalar("SELECT count(*) FROM apps")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(apps, 4);
}

/// `wizbrand explain` prints the gate's decision step by step, from the state in
/// Postgres, and says clearly when it cannot.
#[tokio::test]
async fn explain_prints_the_steps_of_the_gates_decision() {
    let (database_url, pool) = fresh_database().await;
    sqlx::raw_sql(
        "INSERT INTO orgs (slug, name, plan, features) VALUES ('acme', 'Acme', 'pro', ARRAY['seo','files']); \
         INSERT INTO users (email, keycloak_id) VALUES ('erin@example.com', 'sub-erin'), ('fay@example.com', NULL); \
         INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, ARRAY['ORG_USER'] FROM orgs o, users u",
    )
    .execute(&pool)
    .await
    .unwrap();
    let env = base_env(&database_url);
    let explain =
        |email: &str, url: &str| wizbrand(&["explain", "--email", email, "--url", url], &env);

    let allowed = explain(
        "Erin@Example.com",
        "http://acme.seo.wizbrand.localhost:8000/x",
    );
    let said = text(&allowed);
    assert!(allowed.status.success(), "{said}");
    assert!(
        said.contains("1. app [ok] acme.seo.wizbrand.localhost matches app seo"),
        "{said}"
    );
    assert!(
        said.contains("4. membership [ok] a member of \"acme\" with ORG_USER"),
        "{said}"
    );
    assert!(said.contains("outcome: 200: allowed"), "{said}");
    assert!(said.contains("x-user-id: sub-erin"), "{said}");

    let refused = text(&explain(
        "erin@example.com",
        "http://acme.files.wizbrand.localhost/",
    ));
    assert!(
        refused.contains("6. role [stop] ORG_USER against the minimum ORG_MANAGER: too low"),
        "{refused}"
    );
    assert!(refused.contains("outcome: 403 role-too-low"), "{refused}");

    let unlinked = text(&explain(
        "fay@example.com",
        "http://acme.seo.wizbrand.localhost/",
    ));
    assert!(
        unlinked.contains("no Keycloak account linked yet"),
        "{unlinked}"
    );

    for (email, url, says) in [
        (
            "nobody@example.com",
            "http://acme.seo.wizbrand.localhost/",
            "nobody with the email",
        ),
        (
            "erin@example.com",
            "acme.seo.wizbrand.localhost",
            "not an absolute http(s) URL",
        ),
        (
            "not-an-email",
            "http://acme.seo.wizbrand.localhost/",
            "not an email address",
        ),
    ] {
        let output = explain(email, url);
        assert!(!output.status.success());
        assert!(text(&output).contains(says), "{}", text(&output));
    }
}

#[tokio::test]
async fn without_ca_roots_serve_and_check_stop_with_the_cause_not_a_panic() {
    // A machine or image without a trust store: here an empty SSL_CERT_FILE, which
    // replaces the system's roots.
    let empty =
        std::env::temp_dir().join(format!("wizbrand-no-roots-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&empty, "").unwrap();
    let (url, _pool) = fresh_database().await;
    let mut env = base_env(&url);
    env.insert("SSL_CERT_FILE".into(), empty.display().to_string());
    env.insert("WIZBRAND_LISTEN".into(), "127.0.0.1:0".into());
    let serve = wizbrand(&["serve"], &env);
    let check = wizbrand(&["check"], &env);
    let _ = std::fs::remove_file(&empty);
    let said = text(&serve);
    assert_eq!(serve.status.code(), Some(1), "{said}");
    assert!(said.contains("no TLS trust store"), "{said}");
    assert!(said.contains("No CA certificates"), "the cause: {said}");
    assert!(
        said.contains("SSL_CERT_FILE") && said.contains("ca-certificates"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    let said = text(&check);
    assert!(!check.status.success(), "{said}");
    assert!(said.contains("FAIL keycloak: no TLS trust store"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[tokio::test]
async fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let (url, _pool) = fresh_database().await;
    let mut env = base_env(&url);
    // Text logs, as a person would read them; a bad listen address ends the run at once,
    // after the first log lines.
    env.insert("WIZBRAND_LOG_FORMAT".into(), "text".into());
    env.insert("WIZBRAND_LISTEN".into(), "192.0.2.1:1".into());
    let output = wizbrand(&["serve"], &env);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("WIZBRAND_TRUSTED_PROXIES names no proxy"),
        "a log line: {said}"
    );
    assert!(!said.contains('\u{1b}'), "colour codes: {said:?}");
}
