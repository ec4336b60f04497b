//! Faults of the real parts, each with the behaviour an operator relies on: Postgres
//! cut off and back, Traefik restarted, a sync killed half-way.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::health::Cable;
use crate::helpers::{
    KeycloakAdmin, KillOnDrop, TestApp, TestTraefik, base_env, behind_traefik, free_port,
    fresh_database, unique, user_token,
};

async fn dana_token() -> String {
    user_token("dana", "dana", "wizbrand-test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn postgres_cut_off_answers_503_fast_loses_nothing_and_the_pool_recovers() {
    // wizbrand reaches Postgres through a cable of the test's own: cutting it is
    // Postgres going away for this app only (other tests share the server).
    let (database_url, pool) = fresh_database().await;
    let pg_port = url::Url::parse(&database_url).unwrap().port().unwrap();
    let upstream = SocketAddr::from(([127, 0, 0, 1], pg_port));
    let cable = Cable::plug(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await;
    let through_cable = database_url.replace(
        &format!("127.0.0.1:{pg_port}"),
        &format!("127.0.0.1:{}", cable.address.port()),
    );
    assert_ne!(
        through_cable, database_url,
        "the URL names the stack's Postgres"
    );
    let app = TestApp::spawn_with(|env| {
        env.insert("DATABASE_URL".into(), through_cable.clone());
    })
    .await;
    let token = dana_token().await;
    let api = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = app
            .client
            .request(method, format!("{}{path}", app.address))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let created = api(
        reqwest::Method::POST,
        "/api/v1/orgs",
        Some(json!({"slug": "before", "name": "Before"})),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let address = cable.unplug().await;
    for (method, path, body) in [
        (reqwest::Method::GET, "/api/v1/orgs", None),
        (
            reqwest::Method::POST,
            "/api/v1/orgs",
            Some(json!({"slug": "during", "name": "During"})),
        ),
    ] {
        let started = Instant::now();
        let response = api(method.clone(), path, body).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{method} {path} hung for {:?}",
            started.elapsed()
        );
        assert_eq!(response.headers()["retry-after"], "5");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("Postgres"),
            "{problem}"
        );
    }
    // A page, too: 503, not 500.
    let page = app.get("/healthz").await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "liveness does not need Postgres"
    );

    // Back: the pool reconnects by itself.
    let _cable = Cable::plug(address, upstream).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed: serde_json::Value = loop {
        let response = api(reqwest::Method::GET, "/api/v1/orgs", None)
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            break response.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the pool did not recover");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let slugs: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        ["before"],
        "acknowledged kept, refused not half-applied"
    );
    let audit: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'org.create'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audit, 1);
}

#[tokio::test]
async fn traefik_restarted_serves_routes_and_the_gate_again_without_touching_wizbrand() {
    let app = TestApp::spawn_with(behind_traefik).await;
    let port = free_port();
    let traefik = TestTraefik::start_on(port, &app.address).await;
    let client = traefik.client();
    let app_url = traefik.url("acme", "seo", "/");
    let before = client
        .get(&app_url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        before.status(),
        StatusCode::UNAUTHORIZED,
        "the gate answers"
    );
    drop(traefik);
    assert!(
        client.get(&app_url).send().await.is_err(),
        "Traefik is down"
    );

    let traefik = TestTraefik::start_on(port, &app.address).await;
    let after = traefik
        .client()
        .get(&app_url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        StatusCode::FOUND,
        "the gate sends people to sign in"
    );
    assert!(
        after.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/auth/hand-off?rd="),
        "{:?}",
        after.headers()
    );
}

#[tokio::test]
async fn a_sync_killed_half_way_is_finished_by_the_next_run_without_duplicates() {
    let (database_url, pool) = fresh_database().await;
    let root = unique("t");
    let tag = unique("");
    seed_orgs(&pool, &tag).await;
    let mut env = base_env(&database_url);
    env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), root.clone());
    env.insert("WIZBRAND_SYNC_CONCURRENCY".into(), "1".into());
    // `wizbrand sync` in a process of its own, killed (SIGKILL) once it has written
    // something: connections die with it, the advisory lock too.
    let admin = KeycloakAdmin::connect().await;
    let child = Command::new(env!("CARGO_BIN_EXE_wizbrand"))
        .arg("sync")
        .env_clear()
        .envs(&env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    sync_has_written(&admin, &root).await;
    child.0.kill().unwrap();
    let _ = child.0.wait();
    let first: String = sqlx::query_scalar("SELECT status FROM sync_runs ORDER BY id LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(first, "running", "the killed run never finished");

    let config = wizbrand::config::Config::from_source(&env).unwrap();
    let directory = wizbrand::keycloak::directory::KeycloakDirectory::new(
        &config.keycloak,
        4,
        Duration::from_secs(5),
    );
    let options = wizbrand::sync::RunOptions {
        scope: wizbrand::sync::plan::Scope::All,
        trigger: wizbrand::sync::Trigger::Cli,
        dry_run: false,
        root: root.clone(),
        full_read_every: None,
    };
    let report = wizbrand::sync::run(&pool, &directory, &options, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(
        report.status,
        wizbrand::sync::RunStatus::Succeeded,
        "{report:#?}"
    );
    let again = wizbrand::sync::run(&pool, &directory, &options, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(again.writes(), 0, "converged: {again:#?}");
    every_org_is_synced(&admin, &root, &tag).await;
    let users = admin
        .get(&format!("/users?email=k0.{tag}@example.com&exact=true"))
        .await;
    assert_eq!(users.as_array().unwrap().len(), 1, "one user, not two");
}

/// Orgs the sync tests interrupt: [`SEEDED`] orgs `k0`…, each with one ORG_ADMIN,
/// `k{i}.{tag}@example.com`.
pub(crate) async fn seed_orgs(pool: &sqlx::PgPool, tag: &str) {
    for i in 0..SEEDED {
        sqlx::query("INSERT INTO orgs (slug, name, features) VALUES ($1, $1, '{seo}')")
            .bind(format!("k{i}"))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO users (email) VALUES ($1)")
            .bind(format!("k{i}.{tag}@example.com"))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, '{ORG_ADMIN}' \
             FROM orgs o, users u WHERE o.slug = $1 AND u.email = $2",
        )
        .bind(format!("k{i}"))
        .bind(format!("k{i}.{tag}@example.com"))
        .execute(pool)
        .await
        .unwrap();
    }
}

const SEEDED: usize = 12;

/// Returns once a sync has made an org group under `/{root}`.
pub(crate) async fn sync_has_written(admin: &KeycloakAdmin, root: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = match admin.find_group(&format!("/{root}")).await {
            Some(group) => {
                let children = admin
                    .get(&format!(
                        "/groups/{}/children",
                        group["id"].as_str().unwrap()
                    ))
                    .await;
                !children.as_array().unwrap().is_empty()
            }
            None => false,
        };
        if created {
            return;
        }
        assert!(Instant::now() < deadline, "the sync wrote nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every seeded org has its group, its three role groups and its ORG_ADMIN.
pub(crate) async fn every_org_is_synced(admin: &KeycloakAdmin, root: &str, tag: &str) {
    for i in 0..SEEDED {
        let path = format!("/{root}/k{i}");
        let group = admin
            .find_group(&path)
            .await
            .unwrap_or_else(|| panic!("{path}"));
        let children = admin
            .get(&format!(
                "/groups/{}/children?max=100",
                group["id"].as_str().unwrap()
            ))
            .await;
        let mut names: Vec<&str> = children
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["ORG_ADMIN", "ORG_MANAGER", "ORG_USER"], "{path}");
        let members = admin.member_emails(&format!("{path}/ORG_ADMIN")).await;
        assert_eq!(members, [format!("k{i}.{tag}@example.com")], "{path}");
    }
}

#[tokio::test]
async fn keycloak_gone_and_back_sign_in_answers_503_then_works_and_sessions_live_on() {
    // wizbrand's own calls to Keycloak go through a cable (KEYCLOAK_INTERNAL_URL); the
    // browser still reaches Keycloak's public URL, as it would across a network split.
    let keycloak: url::Url = crate::helpers::stack_var("KEYCLOAK_URL").parse().unwrap();
    let upstream = SocketAddr::from(([127, 0, 0, 1], keycloak.port().unwrap()));
    let cable = Cable::plug(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await;
    let cable_port = cable.address.port();
    let port = free_port();
    let app = TestApp::spawn_with(|env| {
        env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
        env.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
        env.insert(
            "KEYCLOAK_INTERNAL_URL".into(),
            format!("http://127.0.0.1:{cable_port}"),
        );
        // A short time-out: a cut cable is seen at once.
        env.insert("WIZBRAND_PROBE_TIMEOUT_MS".into(), "1000".into());
    })
    .await;
    let username = crate::signin::person(&app.pool, &[("acme", "ORG_USER")]).await;
    let (_, done) = crate::signin::sign_in(&app, "/", &username).await;
    assert_eq!(done.status(), StatusCode::FOUND);

    let address = cable.unplug().await;
    // The session made before the outage keeps working: no call to Keycloak for it.
    let home = app.get("/").await.text().await.unwrap();
    assert!(home.contains("Signed in as"), "{home}");
    // A new browser cannot finish a sign-in: the code exchange needs Keycloak.
    let stranger = app.another_browser();
    let other = crate::signin::person(&app.pool, &[("acme", "ORG_USER")]).await;
    let callback = crate::signin::keycloak_login(&stranger, "/", &other).await;
    let refused = stranger.client.get(&callback).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("identity provider (Keycloak)")
    );

    // Keycloak reachable again: the same person signs in.
    let _cable = Cable::plug(address, upstream).await;
    let callback = crate::signin::keycloak_login(&stranger, "/", &other).await;
    let signed_in = stranger.client.get(&callback).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::FOUND);
    let home = stranger.get("/").await.text().await.unwrap();
    assert!(home.contains(&format!("{other}@example.com")), "{home}");
}
