//! Attacks an identity edge must hold that no other test file covers: brute force on the
//! sign-in endpoints, and secrets leaking into logs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{
    KillOnDrop, TestApp, TestTraefik, base_env, behind_traefik, free_port, fresh_database,
    http_client, user_token,
};
use crate::signin::{keycloak_login, person};

#[tokio::test]
async fn sign_in_is_rate_limited_per_client_address_as_traefik_reports_it() {
    let traefik_port = free_port();
    let app = TestApp::spawn_with(|env| {
        behind_traefik(env);
        env.insert("WIZBRAND_SIGNIN_RATE_PER_MINUTE".into(), "5".into());
    })
    .await;
    let _traefik = TestTraefik::start_on(traefik_port, &app.address).await;
    let client = http_client();
    let login = format!("http://auth.wizbrand.localhost:{traefik_port}/login?rd=%2F");
    // Each request claims another address: Traefik does not trust the client's
    // X-Forwarded-For and reports the real one, so the claims change nothing.
    let mut statuses = Vec::new();
    for i in 0..7 {
        let response = client
            .get(&login)
            .header("X-Forwarded-For", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=12).contains(&wait), "Retry-After {wait}");
            let page = response.text().await.unwrap();
            assert!(page.contains("Too many sign-in attempts"), "{page}");
        }
    }
    assert_eq!(statuses, [302, 302, 302, 302, 302, 429, 429]);
    // The callback shares the limit: state guessing is throttled as well.
    let callback = client
        .get(format!(
            "http://auth.wizbrand.localhost:{traefik_port}/auth/callback?state=x&code=y"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), StatusCode::TOO_MANY_REQUESTS);

    // Behind a trusted proxy, another client address has its own allowance.
    let other = app
        .client
        .get(format!("{}/login?rd=%2F", app.address))
        .header("X-Forwarded-For", "198.51.100.23")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FOUND);
}

/// Straight to the app (no trusted proxy by default, not even loopback), a client's own
/// X-Forwarded-For is not believed: a new made-up address per request does not get a
/// new allowance.
#[tokio::test]
async fn forged_x_forwarded_for_straight_to_the_app_is_not_believed() {
    let app = TestApp::spawn().await;
    let mut statuses = Vec::new();
    for i in 0..35 {
        let response = app
            .client
            .get(format!("{}/login?rd=%2F", app.address))
            .header("X-Forwarded-For", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    let mut expected = vec![302; 30];
    expected.extend([429; 5]);
    assert_eq!(statuses, expected);
}

/// Every secret the process holds or sees must stay out of its logs, even at debug level.
#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let (database_url, pool) = fresh_database().await;
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let mut env = base_env(&database_url);
    env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
    env.insert("WIZBRAND_PUBLIC_URL".into(), address.clone());
    env.insert("WIZBRAND_LOG_FORMAT".into(), "json".into());
    env.insert("RUST_LOG".into(), "debug".into());
    // The gate's opt-in access log too, with a caller it believes (loopback).
    env.insert("WIZBRAND_GATE_ACCESS_LOG".into(), "true".into());
    crate::helpers::behind_traefik(&mut env);
    let secrets_in_config: Vec<String> = [
        "WIZBRAND_OIDC_CLIENT_SECRET",
        "WIZBRAND_SYNC_CLIENT_SECRET",
        "WIZBRAND_SESSION_KEY",
    ]
    .iter()
    .map(|k| env[*k].clone())
    .collect();
    let log_path = std::env::temp_dir().join(format!("wizbrand-log-{port}.jsonl"));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wizbrand"))
        .arg("serve")
        .env_clear()
        .envs(&env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{address}/readyz")).await.is_err() {
        assert!(Instant::now() < deadline, "wizbrand serve did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let app = TestApp {
        address: address.clone(),
        // The binary's ops listener took a free port nobody here needs.
        ops_address: String::new(),
        pool: pool.clone(),
        database_url,
        client: http_client(),
    };

    // A sign-in (code, tokens, session cookie), a page, an API call with a token, a
    // forged token, and a logout.
    let username = person(&pool, &[("acme", "ORG_ADMIN")]).await;
    let callback = keycloak_login(&app, "/", &username).await;
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let done = app.client.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::FOUND);
    let cookie = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-wizbrand_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let tokens = crate::helpers::stored_tokens(
        &pool,
        &crate::helpers::session_handle(&format!("__Host-wizbrand_session={cookie}")),
    )
    .await;
    let (id_token, access_token, refresh_token) = (
        tokens.id_token,
        tokens.access_token,
        tokens.refresh_token.unwrap(),
    );
    assert_eq!(app.get("/admin/orgs/acme").await.status(), StatusCode::OK);
    let bearer = user_token("dana", "dana", "wizbrand-test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = app
        .client
        .get(format!("{address}/api/v1/orgs"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
    let forged = format!("{bearer}x");
    let refused = app
        .client
        .get(format!("{address}/api/v1/orgs"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // The callback replayed: refused, and logged without its code.
    let replay = app.client.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    // The gate, with the app host's pass and a secret in the URL's query: the access
    // log has the decision, neither the pass nor the query.
    let pass = crate::helpers::app_host_cookie(&app, "acme.seo.wizbrand.localhost").await;
    let query_secret = format!("token={}", uuid::Uuid::new_v4().simple());
    let ask_gate = || {
        reqwest::Client::new()
            .get(format!("{address}/forward-auth"))
            .header("X-Forwarded-Host", "acme.seo.wizbrand.localhost")
            .header("X-Forwarded-Uri", format!("/reports?{query_secret}"))
            .header("cookie", pass.clone())
            .send()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask_gate().await.unwrap().status() != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the gate never let the pass through"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    child.0.kill().unwrap();
    let _ = child.0.wait();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        logs.contains("signed in") && logs.lines().count() > 20,
        "the logs are there to search: {logs}"
    );
    let decision = logs
        .lines()
        .find(|l| l.contains("gate decision") && l.contains("\"outcome\":\"allow\""))
        .unwrap_or_else(|| panic!("no access log line of the allowed request: {logs}"));
    assert!(
        decision.contains("\"path\":\"/reports\"") && decision.contains("\"app\":\"seo\""),
        "{decision}"
    );
    let mut secrets = secrets_in_config;
    let pass = pass.trim_start_matches("__Host-wizbrand_app=").to_owned();
    secrets.extend([
        code,
        cookie,
        id_token,
        access_token,
        refresh_token,
        bearer,
        pass,
        query_secret,
    ]);
    for secret in &secrets {
        // A whole token, or any 40-character piece of one (a signature alone is enough).
        let piece = &secret[secret.len().saturating_sub(40)..];
        assert!(!logs.contains(piece), "a secret reached the logs: …{piece}");
    }
}
