//! Sign-in, sessions, org selection and logout against the real Keycloak: plain HTTP
//! (Keycloak's login form driven with reqwest) and a real headless Chromium.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wizbrand::config::Config;
use wizbrand::startup::Application;

use crate::browser::Browser;
use crate::helpers::{
    KeycloakAdmin, TestApp, TestTraefik, base_env, behind_traefik, free_port, http_client, unique,
};

/// The app on a known port whose public URL is its own address (so the OIDC redirect
/// URI `http://127.0.0.1:<port>/auth/callback` comes back to it).
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with more changes to its environment.
pub(crate) async fn spawn_app_with(change: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let port = free_port();
    TestApp::spawn_with(|env| {
        env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
        env.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
        change(env);
    })
    .await
}

/// A second replica on the same database; returns its address.
async fn spawn_replica(database_url: &str) -> String {
    let port = free_port();
    let mut env = base_env(database_url);
    env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
    env.insert(
        "WIZBRAND_PUBLIC_URL".into(),
        format!("http://127.0.0.1:{port}"),
    );
    let app = Application::build(Config::from_source(&env).unwrap())
        .await
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    format!("http://127.0.0.1:{port}")
}

/// A Keycloak user of our own (password = username) and its users row.
pub(crate) async fn person(pool: &PgPool, orgs: &[(&str, &str)]) -> String {
    person_with_id(pool, orgs).await.0
}

/// Like [`person`], also returning the Keycloak user id.
pub(crate) async fn person_with_id(pool: &PgPool, orgs: &[(&str, &str)]) -> (String, String) {
    let username = unique("signin");
    let keycloak_id = KeycloakAdmin::connect()
        .await
        .create_user(&username, &username)
        .await;
    let email = format!("{username}@example.com");
    let user_id: Uuid = sqlx::query_scalar("INSERT INTO users (email) VALUES ($1) RETURNING id")
        .bind(&email)
        .fetch_one(pool)
        .await
        .unwrap();
    for (slug, role) in orgs {
        let org_id: Uuid = sqlx::query_scalar(
            "INSERT INTO orgs (slug, name, features) VALUES ($1, $2, ARRAY['seo']) \
             ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        )
        .bind(slug)
        .bind(format!("Org {slug}"))
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO memberships (org_id, user_id, roles) VALUES ($1, $2, $3)")
            .bind(org_id)
            .bind(user_id)
            .bind(vec![role.to_string()])
            .execute(pool)
            .await
            .unwrap();
    }
    (username, keycloak_id)
}

pub(crate) fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
}

/// Drives Keycloak's login form over HTTP: from `/login?rd=` to the callback URL that
/// Keycloak sends the browser back with.
pub(crate) async fn keycloak_login(app: &TestApp, rd: &str, username: &str) -> String {
    let start = app
        .client
        .get(format!("{}/login", app.address))
        .query(&[("rd", rd)])
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let auth_url = location(&start);
    assert!(auth_url.starts_with("http://localhost:8180/"), "{auth_url}");
    for needed in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
    ] {
        assert!(auth_url.contains(needed), "{needed} missing: {auth_url}");
    }
    let form = app.client.get(&auth_url).send().await.unwrap();
    if form.status() == StatusCode::FOUND {
        // Keycloak still knows this browser (silent SSO): straight back, no form.
        return location(&form);
    }
    assert_eq!(form.status(), StatusCode::OK);
    let page = form.text().await.unwrap();
    let action = page
        .split("id=\"kc-form-login\"")
        .nth(1)
        .and_then(|rest| rest.split("action=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no login form in Keycloak's page"));
    let submitted = app
        .client
        .post(html_unescape(action))
        .form(&[
            ("username", username),
            ("password", username),
            ("credentialId", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::FOUND, "login form refused");
    let callback = location(&submitted);
    assert!(
        callback.starts_with(&format!("{}/auth/callback?", app.address)),
        "{callback}"
    );
    callback
}

/// Signs in over HTTP; returns the callback response (a redirect to `rd`).
pub(crate) async fn sign_in(
    app: &TestApp,
    rd: &str,
    username: &str,
) -> (String, reqwest::Response) {
    let callback = keycloak_login(app, rd, username).await;
    let response = app.client.get(&callback).send().await.unwrap();
    (callback, response)
}

/// The CSRF token of the first form in a page.
pub(crate) fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field in {page}"))
        .to_owned()
}

pub(crate) async fn body(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = app.get(path).await;
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn signing_in_sets_a_fresh_small_locked_down_cookie_and_lands_on_rd() {
    let app = spawn_app().await;
    let username = person(&app.pool, &[("acme", "ORG_USER")]).await;
    let rd = format!("{}/orgs/select?rd=%2F", app.address);

    let start = app
        .client
        .get(format!("{}/login", app.address))
        .query(&[("rd", rd.as_str())])
        .send()
        .await
        .unwrap();
    let before =
        set_cookie(&start, "__Host-wizbrand_session").expect("the pending sign-in's cookie");

    let (_, done) = sign_in(&app, &rd, &username).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(location(&done), rd);
    let cookie = set_cookie(&done, "__Host-wizbrand_session").expect("a session cookie");
    assert_ne!(
        cookie.split(';').next(),
        before.split(';').next(),
        "the session changes at sign-in"
    );
    let flags = cookie.to_ascii_lowercase();
    assert!(flags.contains("httponly"), "{cookie}");
    assert!(flags.contains("samesite=lax"), "{cookie}");
    assert!(
        flags.contains("path=/;") || flags.ends_with("path=/"),
        "{cookie}"
    );
    // `__Host-`: Secure even over http (loopback and *.localhost are secure contexts).
    assert!(flags.contains("; secure"), "{cookie}");
    assert!(!flags.contains("domain="), "host-only ({cookie})");
    assert!(
        cookie.len() < 1500,
        "the cookie stays small: {}",
        cookie.len()
    );

    let (status, page) = body(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("{username}@example.com")), "{page}");
    // One org: chosen at sign-in already.
    assert!(page.contains("<strong>acme</strong>"), "{page}");

    let linked: Option<String> =
        sqlx::query_scalar("SELECT keycloak_id FROM users WHERE email = $1")
            .bind(format!("{username}@example.com"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(linked.is_some(), "the Keycloak id is recorded at sign-in");
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM session_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tokens, 1, "the ID token is kept server-side");
}

#[tokio::test]
async fn a_callback_with_a_missing_wrong_or_reused_state_is_a_400_page() {
    let app = spawn_app().await;
    let username = person(&app.pool, &[]).await;

    // No sign-in in progress at all.
    let (status, page) = body(&app, "/auth/callback?code=abc&state=xyz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("<html"), "an HTML page: {page}");
    let (status, _) = body(&app, "/auth/callback").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A real callback with its state tampered with.
    let callback = keycloak_login(&app, "/", &username).await;
    let tampered = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut tampered = tampered.clone();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let response = app.client.get(tampered.as_str()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("state"));
    // The state was used up by the failed attempt: the genuine answer is refused too.
    let response = app.client.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // A successful sign-in cannot be replayed (state and code are single-use). Keycloak
    // still knows this client from the first form, so this one is silent SSO.
    let (callback, done) = sign_in(&app, "/", &username).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let replay = app.client.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    // The same code in a new sign-in of another browser: Keycloak refuses it.
    let other = http_client();
    let start = other
        .get(format!("{}/login", app.address))
        .send()
        .await
        .unwrap();
    let auth = reqwest::Url::parse(&location(&start)).unwrap();
    let state = auth
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let code = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let reused = other
        .get(format!("{}/auth/callback", app.address))
        .query(&[("state", state.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert!(reused.text().await.unwrap().contains("refused"));
}

#[tokio::test]
async fn foreign_rd_targets_end_at_home() {
    let app = spawn_app().await;
    let username = person(&app.pool, &[]).await;
    let (_, done) = sign_in(&app, "https://evil.example/steal", &username).await;
    assert_eq!(location(&done), "/");
    // Signed in, /login goes straight to rd: the same rule applies.
    for rd in [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "javascript:alert(1)",
        "http://127.0.0.1.evil.example/",
    ] {
        let response = app
            .client
            .get(format!("{}/login", app.address))
            .query(&[("rd", rd)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(location(&response), "/", "rd={rd}");
    }
    let own = format!("{}/orgs/select", app.address);
    let response = app
        .client
        .get(format!("{}/login", app.address))
        .query(&[("rd", own.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), own);
}

#[tokio::test]
async fn a_member_of_two_orgs_picks_one_and_the_gate_follows() {
    let app = spawn_app_with(behind_traefik).await;
    let username = person(&app.pool, &[("acme", "ORG_USER"), ("beta", "ORG_ADMIN")]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    assert_eq!(done.status(), StatusCode::FOUND);

    let (status, page) = body(&app, "/orgs/select?rd=%2F").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"org-acme\"") && page.contains("id=\"org-beta\""),
        "{page}"
    );
    let csrf = csrf_of(&page);

    let post = |fields: Vec<(&'static str, String)>| {
        app.client
            .post(format!("{}/orgs/select", app.address))
            .form(&fields)
            .send()
    };
    let forged = post(vec![("csrf", "nope".into()), ("org", "beta".into())])
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let foreign = post(vec![("csrf", csrf.clone()), ("org", "gamma".into())])
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let chosen = post(vec![
        ("csrf", csrf.clone()),
        ("org", "beta".into()),
        ("rd", format!("{}/", app.address)),
    ])
    .await
    .unwrap();
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&chosen), format!("{}/", app.address));

    let stored: Option<String> = sqlx::query_scalar(
        "SELECT o.slug FROM users u JOIN orgs o ON o.id = u.preferred_org_id WHERE u.email = $1",
    )
    .bind(format!("{username}@example.com"))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored.as_deref(), Some("beta"));

    // The app host's cookie, handed over after the choice, carries it; the gate reads
    // that cookie without any call out.
    let beta_seo = crate::helpers::app_host_cookie(&app, "beta.seo.wizbrand.localhost").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let gate = reqwest::Client::new()
            .get(format!("{}/forward-auth", app.address))
            .header("cookie", &beta_seo)
            .header("X-Forwarded-Host", "beta.seo.wizbrand.localhost")
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Uri", "/")
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        if gate.status() == StatusCode::OK {
            assert_eq!(gate.headers()["x-org-slug"], "beta");
            assert_eq!(gate.headers()["x-org-roles"], "ORG_ADMIN");
            break;
        }
        assert!(Instant::now() < deadline, "gate answered {}", gate.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn no_org_says_so_and_whom_to_ask() {
    let app = spawn_app().await;
    let username = person(&app.pool, &[]).await;
    sign_in(&app, "/", &username).await;
    let (status, page) = body(&app, "/orgs/select").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"no-orgs\"") && page.contains("ORG_ADMIN"),
        "{page}"
    );
}

#[tokio::test]
async fn logout_is_csrf_protected_ends_the_session_everywhere_and_goes_to_keycloak() {
    let app = spawn_app().await;
    let replica = spawn_replica(&app.database_url).await;
    let username = person(&app.pool, &[]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    let cookie = set_cookie(&done, "__Host-wizbrand_session").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();

    // The same cookie works on the other replica.
    let on_replica = || async {
        reqwest::Client::new()
            .get(format!("{replica}/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(on_replica().await.contains("Signed in as"));

    let (_, page) = body(&app, "/").await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let forged = app
        .client
        .post(format!("{}/logout", app.address))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(body(&app, "/").await.1.contains("Signed in as"));

    let out = app
        .client
        .post(format!("{}/logout", app.address))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let to = location(&out);
    assert!(
        to.starts_with("http://localhost:8180/realms/wizbrand/protocol/openid-connect/logout?"),
        "{to}"
    );
    assert!(to.contains("id_token_hint="), "{to}");
    let post_logout = format!("{}/signed-out", app.address);
    let to_url = reqwest::Url::parse(&to).unwrap();
    assert!(
        to_url
            .query_pairs()
            .any(|(k, v)| k == "post_logout_redirect_uri" && v == post_logout),
        "{to}"
    );
    assert!(body(&app, "/").await.1.contains("not signed in"));

    // A copy of the old cookie is dead on both replicas within a second.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if on_replica().await.contains("not signed in") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica still accepts the cookie"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replayed = reqwest::Client::new()
        .get(format!("{}/", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(replayed.contains("not signed in"));
}

#[tokio::test]
async fn a_revocation_recorded_by_one_replica_ends_the_session_on_the_other_within_a_second() {
    let app = spawn_app().await;
    let replica = spawn_replica(&app.database_url).await;
    let username = person(&app.pool, &[]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    let cookie = set_cookie(&done, "__Host-wizbrand_session").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = |base: String| {
        let cookie = cookie.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert!(page(replica.clone()).await.contains("Signed in as"));
    // What the back-channel logout handler writes for Keycloak's `sid`.
    let sid: String = sqlx::query_scalar("SELECT sid FROM session_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO session_revocations (sid, expires_at) VALUES ($1, now() + interval '1 hour')",
    )
    .bind(&sid)
    .execute(&app.pool)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    for base in [replica.clone(), app.address.clone()] {
        loop {
            if page(base.clone()).await.contains("not signed in") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{base} still accepts the session"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A sign-in client of the test's own, shaped like the realm's `wizbrand-web`, for a
/// public URL and back-channel logout URL the realm's client does not name. Returns
/// (client id, secret).
pub(crate) async fn own_web_client(
    admin: &KeycloakAdmin,
    public: &str,
    backchannel: &str,
    access_token_seconds: u32,
) -> (String, String) {
    let client_id = unique("wizbrand-web-test-");
    let secret = unique("secret-");
    admin
        .send(
            reqwest::Method::POST,
            "/clients",
            Some(json!({
                "clientId": client_id,
                "enabled": true,
                "protocol": "openid-connect",
                "publicClient": false,
                "secret": secret,
                "standardFlowEnabled": true,
                "directAccessGrantsEnabled": false,
                "frontchannelLogout": false,
                // As the realm's wizbrand-web: the sign-in callback, and the invitations
                // page Keycloak's set-a-password mail leads back to.
                "redirectUris": [format!("{public}/auth/callback"), format!("{public}/invitations")],
                // As the realm's wizbrand-web: the org claims, realm roles (platform
                // admin) and the API audience in its access tokens.
                "defaultClientScopes": ["web-origins", "acr", "wizbrand-orgs", "roles", "profile", "basic", "email"],
                "attributes": {
                    "pkce.code.challenge.method": "S256",
                    "backchannel.logout.url": backchannel,
                    "backchannel.logout.session.required": "true",
                    "post.logout.redirect.uris": format!("{public}/*"),
                    "access.token.lifespan": access_token_seconds.to_string(),
                },
            })),
        )
        .await;
    (client_id, secret)
}

/// wizbrand in the dev layout on free ports: behind a Traefik of its own at
/// `auth.wizbrand.localhost:<port>`, with a sign-in client of its own in `kc`'s realm
/// (access tokens 300 s, back-channel logout to this app).
pub(crate) struct BehindTraefik {
    pub app: TestApp,
    pub traefik: TestTraefik,
    /// `http://auth.wizbrand.localhost:<port>`.
    pub public: String,
    /// Traefik's port.
    pub port: u16,
    pub client_id: String,
}

/// [`BehindTraefik`], `change` adding to the app's environment.
pub(crate) async fn spawn_behind_traefik(
    kc: &KeycloakAdmin,
    change: impl FnOnce(&mut HashMap<String, String>),
) -> BehindTraefik {
    let port = free_port();
    let app_port = free_port();
    let public = format!("http://auth.wizbrand.localhost:{port}");
    let (client_id, secret) = own_web_client(
        kc,
        &public,
        &format!("http://127.0.0.1:{app_port}/auth/backchannel-logout"),
        300,
    )
    .await;
    let app = TestApp::spawn_with(|env| {
        behind_traefik(env);
        env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{app_port}"));
        env.insert("WIZBRAND_PUBLIC_URL".into(), public.clone());
        env.insert("WIZBRAND_OIDC_CLIENT_ID".into(), client_id.clone());
        env.insert("WIZBRAND_OIDC_CLIENT_SECRET".into(), secret);
        change(env);
    })
    .await;
    let traefik = TestTraefik::start_on(port, &app.address).await;
    BehindTraefik {
        app,
        traefik,
        public,
        port,
        client_id,
    }
}

pub(crate) async fn delete_client(_admin: &KeycloakAdmin, client_id: &str) {
    // A fresh admin token: a long browser test outlives the one it started with.
    let admin = KeycloakAdmin::connect().await;
    let id = admin.get(&format!("/clients?clientId={client_id}")).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .send(reqwest::Method::DELETE, &format!("/clients/{id}"), None)
        .await;
}

#[tokio::test]
async fn keycloak_ending_the_session_signs_out_on_both_replicas_through_back_channel_logout() {
    // The realm's wizbrand-web calls back 127.0.0.1:8080 (the dev stack); this test
    // uses a client of its own whose back-channel logout URL is this app.
    let port = free_port();
    let admin = KeycloakAdmin::connect().await;
    let (client_id, secret) = own_web_client(
        &admin,
        "http://127.0.0.1",
        &format!("http://127.0.0.1:{port}/auth/backchannel-logout"),
        300,
    )
    .await;
    let app = TestApp::spawn_with(|env| {
        env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
        env.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
        env.insert("WIZBRAND_OIDC_CLIENT_ID".into(), client_id.clone());
        env.insert("WIZBRAND_OIDC_CLIENT_SECRET".into(), secret.clone());
    })
    .await;
    let replica = spawn_replica(&app.database_url).await;
    let (username, keycloak_id) = person_with_id(&app.pool, &[]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    let cookie = set_cookie(&done, "__Host-wizbrand_session").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = |base: String| {
        let cookie = cookie.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert!(page(replica.clone()).await.contains("Signed in as"));

    // An administrator ends the user's Keycloak sessions.
    admin
        .send(
            reqwest::Method::POST,
            &format!("/users/{keycloak_id}/logout"),
            None,
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(3);
    for base in [app.address.clone(), replica.clone()] {
        loop {
            if page(base.clone()).await.contains("not signed in") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{base} still accepts the session"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let revoked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM session_revocations r JOIN session_tokens t ON t.sid = r.sid",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(revoked, 1, "the revocation names the Keycloak session");
    delete_client(&admin, &client_id).await;
}

/// A back-channel logout URL of the test's own that keeps the logout tokens Keycloak
/// posts to it (answering 200), so a test can send a genuine one itself.
async fn logout_token_catcher() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/auth/backchannel-logout",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    if let Some((_, token)) = url::form_urlencoded::parse(body.as_bytes())
                        .find(|(k, _)| k == "logout_token")
                    {
                        tx.send(token.into_owned()).ok();
                    }
                    break;
                }
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await
                    .ok();
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn a_replayed_back_channel_logout_token_is_refused() {
    // A genuine logout token from Keycloak, caught on its way, then posted twice.
    let port = free_port();
    let admin = KeycloakAdmin::connect().await;
    let (catcher, mut caught) = logout_token_catcher().await;
    let (client_id, secret) = own_web_client(&admin, "http://127.0.0.1", &catcher, 300).await;
    let env = |env: &mut HashMap<String, String>| {
        env.insert("WIZBRAND_OIDC_CLIENT_ID".into(), client_id.clone());
        env.insert("WIZBRAND_OIDC_CLIENT_SECRET".into(), secret.clone());
    };
    let app = TestApp::spawn_with(|e| {
        e.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
        e.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
        env(e);
    })
    .await;
    let replica = app.replica_with(env).await;
    let (username, keycloak_id) = person_with_id(&app.pool, &[]).await;
    sign_in(&app, "/", &username).await;
    admin
        .send(
            reqwest::Method::POST,
            &format!("/users/{keycloak_id}/logout"),
            None,
        )
        .await;
    let token = tokio::time::timeout(Duration::from_secs(10), caught.recv())
        .await
        .expect("Keycloak sent no logout token")
        .unwrap();
    let claims = crate::helpers::claims(&token);
    assert!(claims["jti"].is_string(), "{claims}");
    assert!(claims["iat"].is_number(), "{claims}");

    let post = |base: String| {
        let form = [("logout_token", token.clone())];
        async move {
            reqwest::Client::new()
                .post(format!("{base}/auth/backchannel-logout"))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(post(app.address.clone()).await.status(), StatusCode::OK);
    let (_, home) = body(&app, "/").await;
    assert!(home.contains("not signed in"), "{home}");
    // Replayed, to the same replica and to another: refused, nothing more recorded.
    for base in [app.address.clone(), replica.address.clone()] {
        let replay = post(base.clone()).await;
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "{base}");
        assert_eq!(
            replay.headers()["content-type"],
            "application/problem+json",
            "{base}"
        );
        let problem: Value = replay.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("already used"),
            "{problem}"
        );
    }
    let revocations: i64 = sqlx::query_scalar("SELECT count(*) FROM session_revocations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(revocations, 1);
    delete_client(&admin, &client_id).await;
}

#[tokio::test]
async fn forged_back_channel_logout_tokens_are_refused() {
    let app = spawn_app().await;
    let url = format!("{}/auth/backchannel-logout", app.address);
    let post = |form: Vec<(&'static str, String)>| app.client.post(&url).form(&form).send();

    let missing = post(vec![]).await.unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let garbage = post(vec![("logout_token", "not.a.jwt".into())])
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);

    let issuer = format!(
        "{}/realms/wizbrand",
        crate::helpers::stack_var("KEYCLOAK_URL")
    );
    let claims = json!({
        "iss": issuer,
        "aud": "wizbrand-web",
        "iat": chrono::Utc::now().timestamp(),
        "jti": "x",
        "sid": "some-session",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    // Signed with a made-up HMAC secret, claiming one of the realm's real key ids.
    let certs: Value = reqwest::get(format!("{issuer}/protocol/openid-connect/certs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = certs["keys"][0]["kid"].as_str().unwrap().to_owned();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid);
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let response = post(vec![("logout_token", forged)]).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // alg=none.
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims));
    let response = post(vec![("logout_token", unsigned)]).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let revocations: i64 = sqlx::query_scalar("SELECT count(*) FROM session_revocations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(revocations, 0, "nothing was revoked");
}

#[tokio::test]
async fn sessions_keep_working_on_a_replica_that_cannot_reach_keycloak() {
    let app = spawn_app().await;
    let username = person(&app.pool, &[("acme", "ORG_USER")]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    let cookie = set_cookie(&done, "__Host-wizbrand_session").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let seo = crate::helpers::app_host_cookie(&app, "acme.seo.wizbrand.localhost").await;

    // Same database and session key, Keycloak nowhere.
    let port = free_port();
    let mut env = base_env(&app.database_url);
    behind_traefik(&mut env);
    env.insert(
        "KEYCLOAK_URL".into(),
        format!("http://127.0.0.1:{}", free_port()),
    );
    env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
    env.insert(
        "WIZBRAND_PUBLIC_URL".into(),
        format!("http://127.0.0.1:{port}"),
    );
    let cut_off = Application::build(Config::from_source(&env).unwrap())
        .await
        .unwrap();
    tokio::spawn(cut_off.run_until_stopped());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let home = client
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("Signed in as"), "{home}");
    let gate = client
        .get(format!("{base}/forward-auth"))
        .header("cookie", &seo)
        .header("X-Forwarded-Host", "acme.seo.wizbrand.localhost")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Uri", "/")
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(gate.status(), StatusCode::OK);
    // New sign-ins there get the 503 page.
    let login = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn keycloak_unreachable_at_login_is_a_503_page_naming_the_identity_provider() {
    let closed = free_port();
    let port = free_port();
    let app = TestApp::spawn_with(|env| {
        env.insert("KEYCLOAK_URL".into(), format!("http://127.0.0.1:{closed}"));
        env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
        env.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
    })
    .await;
    let (status, page) = body(&app, "/login?rd=%2F").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.contains("identity provider (Keycloak)"), "{page}");
}

#[tokio::test]
async fn a_person_signs_in_with_chromium_picks_an_org_and_signs_out() {
    let app = spawn_app().await;
    let username = person(&app.pool, &[("acme", "ORG_USER"), ("beta", "ORG_MANAGER")]).await;
    let browser = Browser::start().await;
    let home = format!("{}/", app.address);
    let select = format!("{}/orgs/select?rd={}", app.address, "%2F%3Ffrom%3Dtest");
    let login = reqwest::Url::parse_with_params(
        &format!("{}/login", app.address),
        &[("rd", select.as_str())],
    )
    .unwrap();

    browser.goto(login.as_str()).await;
    browser.wait_for_url("http://localhost:8180/").await;
    browser.type_into("#username", &username).await;
    browser.type_into("#password", &username).await;
    browser.click("#kc-login").await;

    // Back from Keycloak on the original rd: the org selection with both orgs.
    browser
        .wait_for_url(&format!("{}/orgs/select", app.address))
        .await;
    browser.find("#org-acme").await;
    browser.click("#org-beta").await;
    browser
        .wait_for_url(&format!("{}/?from=test", app.address))
        .await;
    let text = browser.text().await;
    assert!(text.contains("Organization: beta"), "{text}");
    assert!(text.contains(&format!("{username}@example.com")), "{text}");
    // HttpOnly: scripts cannot read the session cookie.
    let visible = browser.script("return document.cookie").await;
    assert!(
        !visible
            .as_str()
            .unwrap_or_default()
            .contains("__Host-wizbrand_session"),
        "{visible}"
    );

    // Sign out: through Keycloak's end-session endpoint back to the signed-out page.
    browser.click("#sign-out").await;
    browser
        .wait_for_url(&format!("{}/signed-out", app.address))
        .await;
    browser.goto(&home).await;
    assert!(browser.text().await.contains("not signed in"));
    // Keycloak's session ended too: signing in asks for the password again.
    browser.goto(login.as_str()).await;
    browser.wait_for_url("http://localhost:8180/").await;
    browser.find("#password").await;
    browser.quit().await;
}

#[tokio::test]
async fn through_traefik_one_sign_in_on_the_auth_host_opens_an_app_host() {
    // The dev layout on free ports: Traefik in front, wizbrand at auth.wizbrand.localhost,
    // the session cookie for Domain=wizbrand.localhost shared with the app hosts.
    let admin = KeycloakAdmin::connect().await;
    let BehindTraefik {
        app,
        traefik: _traefik,
        public,
        port: traefik_port,
        client_id,
    } = spawn_behind_traefik(&admin, |_| {}).await;
    let username = person(&app.pool, &[("acme", "ORG_USER")]).await;

    let browser = Browser::start().await;
    let seo = format!("http://acme.seo.wizbrand.localhost:{traefik_port}/");
    browser.goto(&seo).await;
    // The gate sends the browser to sign in, and the sign-in to Keycloak.
    browser.wait_for_url("http://localhost:8180/").await;
    browser.type_into("#username", &username).await;
    browser.type_into("#password", &username).await;
    browser.click("#kc-login").await;
    browser.wait_for_url(&seo).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = browser.text().await.to_ascii_lowercase();
        // The app echoes its request's headers (the refusal page, while the gate's
        // memory catches up with the sign-in, names the person too).
        if text.contains("x-org-slug") {
            assert!(text.contains(&format!("{username}@example.com")), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "the app did not answer: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.goto(&seo).await;
    }
    // The auth host knows the same session.
    browser.goto(&format!("{public}/")).await;
    assert!(browser.text().await.contains("Organization: acme"));
    browser.quit().await;
    delete_client(&admin, &client_id).await;
}

/// Makes the only session's access token due for refresh.
async fn make_refresh_due(pool: &PgPool) {
    sqlx::query("UPDATE session_tokens SET access_expires_at = now() - interval '1 second'")
        .execute(pool)
        .await
        .unwrap();
}

/// The access and refresh token of session `handle` (sealed in `session_tokens`).
async fn session_tokens(pool: &PgPool, handle: &str) -> (String, String) {
    let tokens = crate::helpers::stored_tokens(pool, handle).await;
    (tokens.access_token, tokens.refresh_token.unwrap())
}

#[tokio::test]
async fn a_refreshed_token_carries_the_chosen_org_and_racing_refreshes_keep_the_session() {
    use wizbrand::web::refresh::{RefreshOutcome, refresh_session};
    let app = spawn_app().await;
    let username = person(&app.pool, &[("acme", "ORG_USER"), ("beta", "ORG_ADMIN")]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    let handle = crate::helpers::session_handle_in(&done);
    let (_, page) = body(&app, "/orgs/select").await;
    let chosen = app
        .client
        .post(format!("{}/orgs/select", app.address))
        .form(&[("csrf", csrf_of(&page)), ("org", "beta".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    let (first_access, first_refresh) = session_tokens(&app.pool, &handle).await;
    assert_eq!(
        crate::helpers::claims(&first_access)["preferred_org"],
        Value::Null
    );

    // The sync, the one writer of user attributes, carries the choice to Keycloak.
    let config = Config::from_source(&base_env(&app.database_url)).unwrap();
    let directory = wizbrand::keycloak::directory::KeycloakDirectory::new(
        &config.keycloak,
        4,
        Duration::from_secs(5),
    );
    let options = wizbrand::sync::RunOptions {
        scope: wizbrand::sync::plan::Scope::All,
        trigger: wizbrand::sync::Trigger::Cli,
        dry_run: false,
        root: unique("t"),
        full_read_every: None,
    };
    let report = wizbrand::sync::run(&app.pool, &directory, &options, &|_, _| {})
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    // Two refreshes of one session at once (two replicas): one refreshes, the other
    // stands aside. Keycloak's refresh tokens are single-use here, so a second refresh
    // with the same token would have been refused and ended the session.
    make_refresh_due(&app.pool).await;
    let oidc = wizbrand::oidc::client::OidcClient::new(reqwest::Client::new(), &config);
    let revocations = wizbrand::web::revocations::Revocations::default();
    let (a, b) = tokio::join!(
        refresh_session(&app.pool, &oidc, &revocations, &handle),
        refresh_session(&app.pool, &oidc, &revocations, &handle),
    );
    let mut outcomes = vec![a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| o.as_str());
    assert_eq!(
        outcomes,
        vec![RefreshOutcome::Refreshed, RefreshOutcome::Skipped]
    );
    let (access, refresh) = session_tokens(&app.pool, &handle).await;
    assert_ne!(refresh, first_refresh, "Keycloak rotates the refresh token");
    assert_eq!(crate::helpers::claims(&access)["preferred_org"], "beta");
    let (_, home) = body(&app, "/").await;
    assert!(home.contains("Signed in as"), "{home}");

    // The rotated-away token is dead: the lock above is what kept the session alive.
    assert!(matches!(
        oidc.refresh(&first_refresh).await,
        Err(wizbrand::oidc::client::SignInError::Refused(_))
    ));
}

/// A client secret rotated in Keycloak but not yet here: Keycloak refuses the refresh
/// for the client, not for the person. The session must live on and the refresh work
/// again once the secret is right.
#[tokio::test]
async fn a_refresh_refused_with_invalid_client_keeps_the_session() {
    use wizbrand::oidc::client::OidcClient;
    use wizbrand::web::refresh::{RefreshError, RefreshOutcome, refresh_session};
    use wizbrand::web::revocations::Revocations;
    let app = spawn_app().await;
    let username = person(&app.pool, &[]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    let handle = crate::helpers::session_handle_in(&done);
    make_refresh_due(&app.pool).await;
    let (_, first_refresh) = session_tokens(&app.pool, &handle).await;

    let mut stale = base_env(&app.database_url);
    stale.insert("WIZBRAND_OIDC_CLIENT_SECRET".into(), "rotated-away".into());
    let stale = OidcClient::new(
        reqwest::Client::new(),
        &Config::from_source(&stale).unwrap(),
    );
    let revocations = Revocations::default();
    let outcome = refresh_session(&app.pool, &stale, &revocations, &handle).await;
    let Err(RefreshError::Refused(refused)) = &outcome else {
        panic!("expected a refusal, got {outcome:?}");
    };
    // Keycloak says `unauthorized_client` for a wrong secret (RFC 6749: `invalid_client`).
    assert!(
        ["invalid_client", "unauthorized_client"].contains(&refused.code.as_str()),
        "{refused}"
    );
    assert_eq!(outcome.as_ref().unwrap_err().metric_label(), "refused");

    // Kept: no revocation, the tokens still there, the person still signed in.
    let revoked: i64 = sqlx::query_scalar("SELECT count(*) FROM session_revocations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(revoked, 0);
    assert_eq!(session_tokens(&app.pool, &handle).await.1, first_refresh);
    let (_, home) = body(&app, "/").await;
    assert!(home.contains("Signed in as"), "{home}");

    // The next try with the right secret refreshes the same session.
    let config = Config::from_source(&base_env(&app.database_url)).unwrap();
    let oidc = OidcClient::new(reqwest::Client::new(), &config);
    assert_eq!(
        refresh_session(&app.pool, &oidc, &revocations, &handle)
            .await
            .unwrap(),
        RefreshOutcome::Refreshed
    );
}

#[tokio::test]
async fn sessions_in_use_are_refreshed_and_end_when_keycloak_refuses_the_refresh() {
    // A client of its own whose access tokens live 61 s: with the 60 s margin, a
    // session is due for refresh a second after sign-in, and again after each refresh.
    let port = free_port();
    let admin = KeycloakAdmin::connect().await;
    let (client_id, secret) = own_web_client(
        &admin,
        &format!("http://127.0.0.1:{port}"),
        "http://127.0.0.1:9/unused",
        61,
    )
    .await;
    let app = TestApp::spawn_with(|env| {
        env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
        env.insert(
            "WIZBRAND_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
        env.insert("WIZBRAND_OIDC_CLIENT_ID".into(), client_id.clone());
        env.insert("WIZBRAND_OIDC_CLIENT_SECRET".into(), secret.clone());
    })
    .await;
    let (username, keycloak_id) = person_with_id(&app.pool, &[]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    let handle = crate::helpers::session_handle_in(&done);
    let (first, _) = session_tokens(&app.pool, &handle).await;

    // In use: the app's background refresh renews the tokens; the session goes on.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, home) = body(&app, "/").await;
        assert!(home.contains("Signed in as"), "{home}");
        if session_tokens(&app.pool, &handle).await.0 != first {
            break;
        }
        assert!(Instant::now() < deadline, "the session was not refreshed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Keycloak's session ends (this client has no working back-channel logout URL):
    // the next refresh is refused, and that ends the session here.
    admin
        .send(
            reqwest::Method::POST,
            &format!("/users/{keycloak_id}/logout"),
            None,
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, home) = body(&app, "/").await;
        if home.contains("not signed in") {
            break;
        }
        assert!(Instant::now() < deadline, "the session outlived Keycloak's");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM session_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the dead session's tokens are forgotten");
    let metrics = app.metrics().await;
    for outcome in ["refreshed", "ended"] {
        assert!(
            metrics.contains(&format!(
                "wizbrand_session_refreshes_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome}: {metrics}"
        );
    }
    delete_client(&admin, &client_id).await;
}
