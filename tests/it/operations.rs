//! Running it in production (issue 16): session-key rotation, the ops listener that
//! Traefik does not route to, and session tokens sealed at rest.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::cookie::Key;
use reqwest::StatusCode;
use wizbrand::web::key_rotation::open_sealed;

use crate::helpers::{TestApp, TestTraefik, app_host_cookie, behind_traefik, http_client};
use crate::signin::{person, set_cookie, sign_in, spawn_app_with};

const SEO: &str = "acme.seo.wizbrand.localhost";
const SESSION: &str = "__Host-wizbrand_session";
const APP: &str = "__Host-wizbrand_app";
/// The key before the rotation, the one after it, and one that never sealed anything.
const OLD_KEY: &str = "oooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo";
const NEW_KEY: &str = "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn";
const UNRELATED_KEY: &str = "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu";

fn key(text: &str) -> Key {
    Key::from(text.as_bytes())
}

/// The value of `name=value`, percent-decoded (actix-session encodes its cookie's).
fn value_of(pair: &str) -> String {
    actix_web::cookie::Cookie::parse_encoded(pair.to_owned())
        .unwrap()
        .value()
        .to_owned()
}

/// A client that sends exactly the cookie it is given, nothing else.
fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Whether `app`'s home page greets `username` for a request carrying `cookie` only.
async fn signed_in_at(app: &TestApp, cookie: &str, username: &str) -> bool {
    let page = bare()
        .get(format!("{}/", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.contains(&format!("{username}@example.com"))
}

/// The gate's answer for `SEO` with `cookie` (as Traefik asks it, from loopback).
async fn gate_status(app: &TestApp, cookie: &str) -> StatusCode {
    bare()
        .get(format!("{}/forward-auth", app.address))
        .header("X-Forwarded-Host", SEO)
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Uri", "/")
        .header("X-Forwarded-Method", "GET")
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// The gate's answer once it is `wanted`, or the last one after 5 s (a replica's
/// in-memory state follows Postgres within a second).
async fn gate_settles(app: &TestApp, cookie: &str, wanted: StatusCode) -> StatusCode {
    let started = Instant::now();
    loop {
        let status = gate_status(app, cookie).await;
        if status == wanted || started.elapsed() > Duration::from_secs(5) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A replica on `app`'s database with the given session keys, its public URL its own
/// address (so `rd` may name its port, as in the hand-off).
async fn replica_with_keys(app: &TestApp, current: &str, previous: &str) -> TestApp {
    let (current, previous) = (current.to_owned(), previous.to_owned());
    let port = crate::helpers::free_port();
    app.replica_with(move |env| {
        behind_traefik(env);
        env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
        env.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
        env.insert("WIZBRAND_SESSION_KEY".into(), current);
        env.insert("WIZBRAND_SESSION_KEYS_PREVIOUS".into(), previous);
    })
    .await
}

#[tokio::test]
async fn after_a_key_rotation_old_cookies_open_new_ones_use_the_new_key_and_a_dropped_key_opens_nothing()
 {
    // Before the rotation: one key. A sign-in, and a pass for an app host.
    let before = spawn_app_with(|env| {
        behind_traefik(env);
        env.insert("WIZBRAND_SESSION_KEY".into(), OLD_KEY.into());
    })
    .await;
    let username = person(&before.pool, &[("acme", "ORG_USER")]).await;
    let (_, done) = sign_in(&before, &format!("{}/", before.address), &username).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let session = set_cookie(&done, SESSION)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let pass = app_host_cookie(&before, SEO).await;
    assert!(open_sealed(SESSION, &value_of(&session), &key(OLD_KEY)).is_some());
    assert!(open_sealed(APP, &value_of(&pass), &key(OLD_KEY)).is_some());
    assert!(signed_in_at(&before, &session, &username).await, "control");
    assert_eq!(
        gate_settles(&before, &pass, StatusCode::OK).await,
        StatusCode::OK,
        "control"
    );

    // The rotation: a new current key, the old one (after an unrelated one) as previous.
    let rotated = replica_with_keys(&before, NEW_KEY, &format!("{UNRELATED_KEY},{OLD_KEY}")).await;
    assert!(
        signed_in_at(&rotated, &session, &username).await,
        "the session cookie sealed under the previous key still signs in"
    );
    assert_eq!(
        gate_settles(&rotated, &pass, StatusCode::OK).await,
        StatusCode::OK,
        "the app-host pass sealed under the previous key still opens the gate"
    );

    // What the rotated replica seals uses the new key only: the session cookie it sets
    // again (choosing the org stores the session) ...
    let chosen = bare()
        .get(format!("{}/orgs/select", rotated.address))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    let renewed = set_cookie(&chosen, SESSION)
        .expect("the stored session is set again")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(open_sealed(SESSION, &value_of(&renewed), &key(NEW_KEY)).is_some());
    assert!(open_sealed(SESSION, &value_of(&renewed), &key(OLD_KEY)).is_none());
    // ... a pass it hands over (the same browser, at the rotated replica) ...
    let at_rotated = TestApp {
        address: rotated.address.clone(),
        ops_address: rotated.ops_address.clone(),
        pool: rotated.pool.clone(),
        database_url: rotated.database_url.clone(),
        client: before.client.clone(),
    };
    let new_pass = app_host_cookie(&at_rotated, SEO).await;
    assert!(open_sealed(APP, &value_of(&new_pass), &key(NEW_KEY)).is_some());
    assert!(open_sealed(APP, &value_of(&new_pass), &key(OLD_KEY)).is_none());
    // ... and a new sign-in's pending cookie.
    let pending = http_client()
        .get(format!("{}/login", rotated.address))
        .send()
        .await
        .unwrap();
    let pending = set_cookie(&pending, SESSION).unwrap();
    let pending = pending.split(';').next().unwrap();
    assert!(open_sealed(SESSION, &value_of(pending), &key(NEW_KEY)).is_some());
    assert!(open_sealed(SESSION, &value_of(pending), &key(OLD_KEY)).is_none());

    // The old key removed from the list: its cookies open nothing, the new ones do.
    let dropped = replica_with_keys(&before, NEW_KEY, UNRELATED_KEY).await;
    assert_eq!(
        gate_settles(&dropped, &new_pass, StatusCode::OK).await,
        StatusCode::OK,
        "control"
    );
    assert!(signed_in_at(&dropped, &renewed, &username).await, "control");
    assert!(
        !signed_in_at(&dropped, &session, &username).await,
        "a session cookie under a dropped key must not sign in"
    );
    assert_eq!(
        gate_status(&dropped, &pass).await,
        StatusCode::UNAUTHORIZED,
        "a pass under a dropped key must not open the gate"
    );
}

#[tokio::test]
async fn the_public_host_through_traefik_serves_no_metrics_and_no_readiness_details() {
    let app = TestApp::spawn_with(behind_traefik).await;
    let traefik = TestTraefik::start(&app.address).await;
    let public = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            "auth.wizbrand.localhost",
            SocketAddr::from(([127, 0, 0, 1], traefik.port)),
        )
        .build()
        .unwrap();
    let url = |path: &str| format!("http://auth.wizbrand.localhost:{}{path}", traefik.port);
    // Traffic first, so the metrics have per-route series to leak.
    assert_eq!(
        public.get(url("/healthz")).send().await.unwrap().status(),
        200
    );

    for path in ["/metrics", "/metrics/", "/metrics?x=1", "/ops/metrics"] {
        let response = public.get(url(path)).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 404, "{path} through Traefik: {text}");
        assert!(!text.contains("wizbrand_"), "{path}: {text}");
    }
    let ready = public.get(url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let text = ready.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({ "ready": true }),
        "the public readiness is a bare status: {text}"
    );

    // The ops listener has both (Traefik routes only to the public listener).
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"wizbrand_http_requests_total{method="GET",route="/healthz",status="200"}"#
        ),
        "{metrics}"
    );
    let details: serde_json::Value = app.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(details["postgres"]["ok"], true, "{details}");
    assert_eq!(details["keycloak"]["ok"], true, "{details}");
    // Nor does the public listener itself answer for them (a Traefik rule added later
    // that sends everything to wizbrand still leaks nothing).
    assert_eq!(app.get("/metrics").await.status(), 404);
}

/// `pg_dump --data-only` of one table: what a backup or a stolen copy holds.
fn pg_dump_table(database_url: &str, table: &str) -> String {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/pg_dump"))
        .filter(|p| p.exists())
        .max()
        .expect("pg_dump (Debian package postgresql)");
    let out = std::process::Command::new(bin)
        .args(["--data-only", "--table", table, database_url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn session_tokens_hold_no_token_in_the_clear_and_sessions_still_refresh() {
    use crate::helpers::{session_handle_in, stored_tokens};
    use wizbrand::web::refresh::{RefreshOutcome, refresh_session};

    let app = crate::signin::spawn_app().await;
    let username = person(&app.pool, &[("acme", "ORG_USER")]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    let handle = session_handle_in(&done);
    let tokens = stored_tokens(&app.pool, &handle).await;
    let refresh_token = tokens.refresh_token.clone().unwrap();
    assert!(tokens.access_token.starts_with("eyJ"), "a JWT, opened");

    // What a copy of the database holds: the dump, every column as text, the raw bytes.
    let dump = pg_dump_table(&app.database_url, "session_tokens");
    assert!(dump.contains("COPY public.session_tokens"), "{dump}");
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(t)::text FROM session_tokens t")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(columns.len(), 1);
    let raw: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM session_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let secrets = [
        ("the ID token", tokens.id_token.as_str()),
        ("the access token", tokens.access_token.as_str()),
        ("the refresh token", refresh_token.as_str()),
        ("the cookie's handle", handle.as_str()),
    ];
    for (what, secret) in secrets {
        // Any 24-character piece: a signature or a payload part alone is worth hiding.
        for start in (0..secret.len().saturating_sub(24)).step_by(24) {
            let piece = &secret[start..start + 24];
            assert!(!dump.contains(piece), "{what} in the dump: …{piece}…");
            assert!(!columns[0].contains(piece), "{what} in a column");
            assert!(
                !raw.windows(piece.len()).any(|w| w == piece.as_bytes()),
                "{what} in the sealed bytes"
            );
        }
    }
    // No JWT at all (each starts with a base64 `{"`), nor the email claims carry.
    for text in [dump.as_str(), columns[0].as_str()] {
        assert!(!text.contains("eyJ"), "a JWT in the clear: {text}");
        assert!(
            !text.contains("@example.com"),
            "a claim in the clear: {text}"
        );
    }

    // The session still refreshes: the refresher opens the row with the handle the
    // cookie holds, and seals what Keycloak returns.
    sqlx::query("UPDATE session_tokens SET access_expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let config =
        wizbrand::config::Config::from_source(&crate::helpers::base_env(&app.database_url))
            .unwrap();
    let oidc = wizbrand::oidc::client::OidcClient::new(reqwest::Client::new(), &config);
    let revocations = wizbrand::web::revocations::Revocations::default();
    assert_eq!(
        refresh_session(&app.pool, &oidc, &revocations, &handle)
            .await
            .unwrap(),
        RefreshOutcome::Refreshed
    );
    let renewed = stored_tokens(&app.pool, &handle).await;
    assert_ne!(renewed.access_token, tokens.access_token);
    assert_ne!(renewed.refresh_token, tokens.refresh_token, "rotated");
    assert!(!renewed.id_token.is_empty());
    let after = pg_dump_table(&app.database_url, "session_tokens");
    assert!(!after.contains("eyJ"), "{after}");
    let (_, home) = crate::signin::body(&app, "/").await;
    assert!(home.contains("Signed in as"), "{home}");

    // A row changed in the database (not by wizbrand) does not open: the session ends
    // at its next refresh rather than trusting it.
    sqlx::query(
        "UPDATE session_tokens SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1), \
           access_expires_at = now() - interval '1 second'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        refresh_session(&app.pool, &oidc, &revocations, &handle)
            .await
            .unwrap(),
        RefreshOutcome::Ended
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM session_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_sealing_migration_ends_the_sessions_of_clear_text_rows() {
    use sqlx::{Connection, PgConnection};
    use std::borrow::Cow;

    // A database at the migration before the sealing one, holding a clear-text row.
    const SEALING: i64 = 20261130001600;
    let admin_url = crate::helpers::stack_var("WIZBRAND_STACK_PG_ADMIN_URL");
    let name = format!("wiz_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&admin_url.replace("/postgres", &format!("/{name}")))
        .await
        .unwrap();
    let all = &wizbrand::db::MIGRATOR;
    assert!(all.iter().any(|m| m.version == SEALING));
    let mut before = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            all.iter()
                .filter(|m| m.version < SEALING)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.set_ignore_missing(true);
    before.run(&pool).await.unwrap();
    for (handle, sub, hours) in [("h-live", "sub-live", 5), ("h-dead", "sub-dead", -1)] {
        sqlx::query(
            "INSERT INTO session_tokens (handle, sub, sid, id_token, access_token, refresh_token, \
               access_expires_at, expires_at) \
             VALUES ($1, $2, 'sid-1', 'eyJid', 'eyJaccess', 'eyJrefresh', now(), \
               now() + make_interval(hours => $3))",
        )
        .bind(handle)
        .bind(sub)
        .bind(hours)
        .execute(&pool)
        .await
        .unwrap();
    }

    wizbrand::db::migrate(&pool).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM session_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no clear-text row survives");
    // The live session's user is revoked for sessions issued until now (not by `sid`,
    // which would also refuse the next sign-in of the same Keycloak session); the
    // expired one needs nothing.
    let revoked: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT sid, sub FROM session_revocations")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(revoked, vec![(None, Some("sub-live".to_owned()))]);
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_name = 'session_tokens' ORDER BY column_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for clear in ["handle", "id_token", "access_token", "refresh_token"] {
        assert!(
            !columns.iter().any(|c| c == clear),
            "{clear} in {columns:?}"
        );
    }
    pool.close().await;
}
