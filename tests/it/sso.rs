//! Per-org single sign-on end to end, in Chromium against the real Keycloak, Postgres and
//! a Traefik of the test's own: a realm of the test's own (a copy of the project's
//! export, whose service account may manage identity providers) is wizbrand's; a second
//! realm plays the org's corporate provider. An ORG_ADMIN connects it on the admin page;
//! a person of the corporate realm who never signed in before gives their address on
//! `/login`, is sent to the provider, comes back a member with the configured role and
//! opens an app through Traefik. The attacks: the provider's addresses at another org's
//! verified domain, and an address that names an existing wizbrand user.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::browser::Browser;
use crate::helpers::{KeycloakAdmin, TestApp, TestTraefik, unique};
use crate::seed::{member, org, verified_domain};
use crate::signin::{BehindTraefik, spawn_behind_traefik};

const SECRET: &str = "corp-broker-secret-7f3a";

/// Everything the tests share: wizbrand's realm, the corporate realm, the app behind its
/// own Traefik, and an org `slug` with the verified domain `domain`.
struct World {
    kc: KeycloakAdmin,
    realm: String,
    corp: String,
    app: TestApp,
    traefik: TestTraefik,
    public: String,
    slug: String,
    org_id: Uuid,
    domain: String,
}

impl World {
    async fn new() -> World {
        let kc = KeycloakAdmin::connect().await;
        let realm = unique("wizsso");
        let corp = unique("corp");
        kc.create_realm_copy(&realm).await;
        let created = reqwest::Client::new()
            .post(format!("{}/admin/realms", kc.base))
            .bearer_auth(crate::domains::master_token(&kc).await)
            .json(&json!({"realm": corp, "enabled": true}))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "create {corp}");
        let slug = unique("sso");
        // The corporate realm's client for wizbrand's Keycloak (the broker).
        kc.for_realm(&corp)
            .send(
                reqwest::Method::POST,
                "/clients",
                Some(json!({
                    "clientId": "wizbrand-broker",
                    "enabled": true,
                    "protocol": "openid-connect",
                    "publicClient": false,
                    "secret": SECRET,
                    "standardFlowEnabled": true,
                    "directAccessGrantsEnabled": false,
                    "redirectUris": [format!("{}/realms/{realm}/broker/org-{slug}/endpoint", kc.base)],
                })),
            )
            .await;

        let BehindTraefik {
            app,
            traefik,
            public,
            ..
        } = spawn_behind_traefik(&kc.for_realm(&realm), |env| {
            env.insert("KEYCLOAK_REALM".into(), realm.clone());
        })
        .await;
        let org_id = org(&app, &slug, "pro").await;
        let domain = format!("{slug}.example");
        verified_domain(&app, org_id, &domain, "none").await;
        World {
            kc,
            realm,
            corp,
            app,
            traefik,
            public,
            slug,
            org_id,
            domain,
        }
    }

    /// An account of the corporate realm (password = user name); its email verified there.
    async fn corp_person(&self, email: &str) -> String {
        let username = unique("corp");
        self.kc
            .for_realm(&self.corp)
            .create_account(&username, &username, email, true)
            .await;
        username
    }

    /// The ORG_ADMIN connects the corporate realm on the single sign-on page, in
    /// Chromium, with `join_role` for new members; returns the page's HTML afterwards.
    async fn connect(&self, join_role: &str) -> String {
        let wiz = self.kc.for_realm(&self.realm);
        let admin = unique("ssoadmin");
        let admin_id = wiz.create_user(&admin, &admin).await;
        member(
            &self.app,
            self.org_id,
            &format!("{admin}@example.com"),
            Some(&admin_id),
            "ORG_ADMIN",
        )
        .await;
        let browser = Browser::start().await;
        browser
            .goto(&format!("{}/admin/orgs/{}/sso", self.public, self.slug))
            .await;
        browser.keycloak_sign_in(&admin, &admin).await;
        browser.wait_for_text("Connect a provider").await;
        browser
            .type_into("#issuer", &format!("{}/realms/{}", self.kc.base, self.corp))
            .await;
        browser.type_into("#client_id", "wizbrand-broker").await;
        browser.type_into("#client_secret", SECRET).await;
        browser
            .click(&format!("#join_role option[value={join_role}]"))
            .await;
        browser.click("#sso-save").await;
        browser.wait_for_text("Single sign-on is connected").await;
        let html = browser
            .script("return document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap()
            .to_owned();
        browser.quit().await;
        html
    }

    /// Chromium at `start` (an app host or wizbrand's own page): the identity-first
    /// question answered with `typed`, then the corporate realm's form with `username`,
    /// Keycloak's first-broker-login pages if any, until the browser is at a URL
    /// starting with `until`.
    async fn sign_in_through_provider(
        &self,
        browser: &Browser,
        start: &str,
        typed: &str,
        username: &str,
        until: &str,
    ) {
        browser.goto(start).await;
        browser.wait_for_text("Your work email address").await;
        browser.screenshot_for_docs("identity-first").await;
        browser.type_into("#email", typed).await;
        browser.click("#continue").await;
        // Sent by kc_idp_hint straight past wizbrand's realm to the corporate one.
        let corp_login = format!("{}/realms/{}/", self.kc.base, self.corp);
        browser.wait_for_url(&corp_login).await;
        browser.type_into("#username", username).await;
        browser.type_into("#password", username).await;
        browser.click("#kc-login").await;
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let url = browser.url().await;
            if url.starts_with(until) {
                return;
            }
            assert!(
                url.starts_with(&self.kc.base) || url.starts_with(&self.public),
                "left the sign-in for {url}: {}",
                browser.text().await
            );
            assert!(
                Instant::now() < deadline,
                "not at {until}: {url}: {}",
                browser.text().await
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn done(self) {
        // A fresh admin token: a long browser test outlives the one it started with.
        let kc = KeycloakAdmin::connect().await;
        kc.delete_realm(&self.realm).await;
        kc.delete_realm(&self.corp).await;
        drop(self.traefik);
    }
}

/// The app's page as the browser gets it through Traefik, once the gate lets it in
/// (lower-cased: the echo app prints the headers it received).
async fn app_page(browser: &Browser, url: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        browser.goto(url).await;
        let text = browser.text().await.to_ascii_lowercase();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{url}: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Roles of the users row `email` in `org`, with the row's Keycloak id.
async fn membership(
    app: &TestApp,
    org: Uuid,
    email: &str,
) -> Option<(Vec<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT m.roles, u.keycloak_id FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $1 AND u.email = $2",
    )
    .bind(org)
    .bind(email)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

async fn audit(app: &TestApp, action: &str) -> Vec<(String, String, Value)> {
    sqlx::query_as(
        "SELECT actor, target, COALESCE(after, 'null'::jsonb) FROM audit_log \
         WHERE action = $1 ORDER BY at",
    )
    .bind(action)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_person_of_the_orgs_provider_signs_in_for_the_first_time_joins_with_the_configured_role_and_opens_an_app()
 {
    let world = World::new().await;
    let html = world.connect("ORG_MANAGER").await;
    // The page says a secret is set and never shows it.
    assert!(html.contains("set (kept sealed; never shown)"), "{html}");
    assert!(!html.contains(SECRET), "{html}");

    let email = format!("carl@{}", world.domain);
    let carl = world.corp_person(&email).await;
    let files = world.traefik.url(&world.slug, "files", "/");
    let browser = Browser::start().await;
    // Chromium starts at the org's app: the gate sends it to /login, which asks.
    world
        .sign_in_through_provider(&browser, &files, &email, &carl, &files)
        .await;

    // wizbrand's realm made the account through the provider: its user name bound to
    // the provider, its address unverified (trustEmail off).
    let wiz = world.kc.for_realm(&world.realm);
    let account = wiz.user_by_email(&email).await.expect("the account");
    let sub = account["id"].as_str().unwrap().to_owned();
    assert_eq!(account["emailVerified"], false, "{account}");
    assert!(
        account["username"]
            .as_str()
            .unwrap()
            .starts_with(&format!("org-{}.", world.slug)),
        "{account}"
    );
    let links = wiz.get(&format!("/users/{sub}/federated-identity")).await;
    assert_eq!(links[0]["identityProvider"], format!("org-{}", world.slug));

    // A member of the org with the configured role, the row linked to the account.
    let (roles, linked) = membership(&world.app, world.org_id, &email)
        .await
        .expect("the membership");
    assert_eq!(roles, vec!["ORG_MANAGER"]);
    assert_eq!(linked.as_deref(), Some(sub.as_str()));
    let joins = audit(&world.app, "sso.join").await;
    assert_eq!(joins.len(), 1, "{joins:?}");
    assert_eq!(joins[0].0, sub);
    assert_eq!(joins[0].1, format!("{}/{email}", world.slug));
    assert_eq!(joins[0].2["alias"], format!("org-{}", world.slug));
    assert_eq!(joins[0].2["roles"], json!(["ORG_MANAGER"]));

    // The ORG_MANAGER app through Traefik, with the identity headers; no X-User-Email
    // (the provider's address is not proven here).
    let text = app_page(&browser, &files, &format!("x-org-slug: {}", world.slug)).await;
    assert!(text.contains(&format!("x-user-id: {sub}")), "{text}");
    assert!(text.contains("x-org-roles: org_manager"), "{text}");
    assert!(!text.contains("x-user-email"), "{text}");

    // wizbrand's home page: the org is the session's, and it says how they joined.
    browser.goto(&format!("{}/", world.public)).await;
    let home = browser
        .wait_for_text(&format!("Welcome to Org {}", world.slug))
        .await;
    assert!(home.contains("ORG_MANAGER"), "{home}");
    assert!(
        home.contains(&format!("Organization: {}", world.slug)),
        "{home}"
    );

    browser.quit().await;

    // The secret is in no audit entry.
    let all: Vec<String> =
        sqlx::query_scalar("SELECT concat(before::text, after::text, target) FROM audit_log")
            .fetch_all(&world.app.pool)
            .await
            .unwrap();
    assert!(all.iter().all(|a| !a.contains(SECRET)), "{all:?}");
    world.done().await;
}

#[tokio::test]
async fn the_orgs_provider_cannot_make_anyone_a_member_of_another_org_nor_take_over_a_user() {
    let world = World::new().await;
    world.connect("ORG_USER").await;
    // beta: another org, its verified domain joins people automatically.
    let beta_slug = unique("beta");
    let beta = org(&world.app, &beta_slug, "pro").await;
    let beta_domain = format!("{beta_slug}.example");
    verified_domain(&world.app, beta, &beta_domain, "auto_join").await;
    // bob is beta's ORG_ADMIN, added by email and not signed in yet (no Keycloak id).
    let bob = format!("bob@{beta_domain}");
    member(&world.app, beta, &bob, None, "ORG_ADMIN").await;

    // mallory's account at acme's provider has an address at beta's domain (verified
    // there). Typing an acme address takes her to acme's provider.
    let mallory_email = format!("mallory@{beta_domain}");
    let mallory = world.corp_person(&mallory_email).await;
    let browser = Browser::start().await;
    let home = format!("{}/", world.public);
    world
        .sign_in_through_provider(
            &browser,
            &format!("{}/login?rd=%2F", world.public),
            &format!("anyone@{}", world.domain),
            &mallory,
            &home,
        )
        .await;
    // A member of the provider's org, never of beta: the address stays unverified.
    let (roles, _) = membership(&world.app, world.org_id, &mallory_email)
        .await
        .expect("a member of the provider's org");
    assert_eq!(roles, vec!["ORG_USER"]);
    assert!(membership(&world.app, beta, &mallory_email).await.is_none());
    assert!(audit(&world.app, "domain.join").await.is_empty());
    let beta_app = world.traefik.url(&beta_slug, "seo", "/");
    browser.goto(&beta_app).await;
    let text = browser.text().await;
    assert!(!text.to_ascii_lowercase().contains("x-org-slug"), "{text}");
    browser.quit().await;

    // An account of acme's provider with bob's address: no take-over of bob's row, no
    // membership anywhere; a page says why.
    let fake_bob = world.corp_person(&bob).await;
    let browser = Browser::start().await;
    world
        .sign_in_through_provider(
            &browser,
            &format!("{}/login?rd=%2F", world.public),
            &format!("bob@{}", world.domain),
            &fake_bob,
            &format!("{}/auth/callback", world.public),
        )
        .await;
    let page = browser.wait_for_text("cannot take it over").await;
    assert!(page.contains(&bob), "{page}");
    let (roles, linked) = membership(&world.app, beta, &bob).await.unwrap();
    assert_eq!(roles, vec!["ORG_ADMIN"]);
    assert_eq!(linked, None, "bob's row must stay unlinked");
    assert!(membership(&world.app, world.org_id, &bob).await.is_none());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(&bob)
        .fetch_one(&world.app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    let joins = audit(&world.app, "sso.join").await;
    assert_eq!(joins.len(), 1, "mallory's only: {joins:?}");
    browser.quit().await;
    world.done().await;
}

/// A token of `username` (password = user name) from wizbrand's realm of this world,
/// through a client made as the stack seeds `wizbrand-test` (password grant, the org
/// claims and the API audience through `wizbrand-orgs`).
async fn realm_token(world: &World, username: &str) -> String {
    world
        .kc
        .for_realm(&world.realm)
        .send(
            reqwest::Method::POST,
            "/clients",
            Some(json!({
                "clientId": "wizbrand-test",
                "enabled": true,
                "protocol": "openid-connect",
                "publicClient": false,
                "secret": "wizbrand-test-secret",
                "standardFlowEnabled": false,
                "directAccessGrantsEnabled": true,
                "defaultClientScopes": ["basic", "profile", "email", "roles", "acr", "wizbrand-orgs"],
            })),
        )
        .await;
    let body: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/{}/protocol/openid-connect/token",
            world.kc.base, world.realm
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "wizbrand-test"),
            ("client_secret", "wizbrand-test-secret"),
            ("username", username),
            ("password", username),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("token for {username}: {body}"))
        .to_owned()
}

async fn api(
    world: &World,
    token: &str,
    method: reqwest::Method,
    body: Option<Value>,
) -> (reqwest::StatusCode, String, Value) {
    let mut request = reqwest::Client::new()
        .request(
            method,
            format!("{}/api/v1/orgs/{}/sso", world.app.address, world.slug),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    assert!(!text.contains(SECRET), "the secret in an answer: {text}");
    if !status.is_success() {
        assert_eq!(kind, "application/problem+json", "{status} {text}");
    }
    (
        status,
        text.clone(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_sso_api_connects_reads_and_disconnects_and_never_answers_the_secret() {
    use reqwest::Method as M;
    use reqwest::StatusCode as S;
    let world = World::new().await;
    let wiz = world.kc.for_realm(&world.realm);
    let admin = unique("ssoapi");
    let admin_id = wiz.create_user(&admin, &admin).await;
    member(
        &world.app,
        world.org_id,
        &format!("{admin}@example.com"),
        Some(&admin_id),
        "ORG_ADMIN",
    )
    .await;
    let token = realm_token(&world, &admin).await;
    let issuer = format!("{}/realms/{}", world.kc.base, world.corp);
    let alias = format!("org-{}", world.slug);

    let (status, _, problem) = api(&world, &token, M::GET, None).await;
    assert_eq!(status, S::NOT_FOUND, "{problem}");
    // Bad input: 422 naming what is wrong, and nothing made.
    for (body, words) in [
        (
            json!({"issuer": "http://evil.example/realms/x", "client_id": "c", "client_secret": SECRET}),
            "https",
        ),
        (
            json!({"issuer": issuer, "client_id": "", "client_secret": SECRET}),
            "client id",
        ),
        (
            json!({"issuer": issuer, "client_id": "c", "client_secret": ""}),
            "client secret",
        ),
        (
            json!({"issuer": format!("{}/realms/{}", world.kc.base, unique("nonesuch")), "client_id": "c", "client_secret": SECRET}),
            "discovery",
        ),
    ] {
        let (status, text, _) = api(&world, &token, M::PUT, Some(body)).await;
        assert_eq!(status, S::UNPROCESSABLE_ENTITY, "{text}");
        assert!(text.contains(words), "{words}: {text}");
    }
    for body in [
        json!({"issuer": issuer, "client_id": "c", "client_secret": SECRET, "join_role": "OWNER"}),
        json!({"issuer": issuer, "client_id": "c", "client_secret": SECRET, "alias": "org-beta"}),
        json!({"issuer": issuer, "client_id": "c"}),
    ] {
        let (status, text, _) = api(&world, &token, M::PUT, Some(body)).await;
        assert!(status.is_client_error(), "{status} {text}");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM org_sso")
        .fetch_one(&world.app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);

    // Connected: 201, then replaced: 200; the answer says a secret is set, never which.
    let body = json!({"issuer": issuer, "client_id": "wizbrand-broker", "client_secret": SECRET});
    let (status, _, made) = api(&world, &token, M::PUT, Some(body)).await;
    assert_eq!(status, S::CREATED, "{made}");
    assert_eq!(made["alias"], alias.as_str());
    assert_eq!(made["issuer"], issuer.as_str());
    assert_eq!(made["join_role"], "ORG_USER");
    assert_eq!(made["client_secret_set"], true);
    assert_eq!(
        made["redirect_uri"],
        format!(
            "{}/realms/{}/broker/{alias}/endpoint",
            world.kc.base, world.realm
        )
    );
    assert!(made.get("client_secret").is_none(), "{made}");
    let body = json!({"issuer": issuer, "client_id": "wizbrand-broker", "client_secret": SECRET, "join_role": "ORG_MANAGER"});
    let (status, _, replaced) = api(&world, &token, M::PUT, Some(body)).await;
    assert_eq!(status, S::OK, "{replaced}");
    let (status, _, read) = api(&world, &token, M::GET, None).await;
    assert_eq!(status, S::OK);
    assert_eq!(read["join_role"], "ORG_MANAGER");
    assert_eq!(read["configured_by"], admin_id.as_str());
    let idp = wiz
        .get(&format!("/identity-provider/instances/{alias}"))
        .await;
    assert_eq!(idp["trustEmail"], false, "{idp}");
    assert_eq!(idp["config"]["clientId"], "wizbrand-broker", "{idp}");
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT concat(before::text, after::text) FROM audit_log")
            .fetch_all(&world.app.pool)
            .await
            .unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|a| !a.contains(SECRET)), "{audit:?}");

    // Disconnected: 204, gone here and in Keycloak; a second DELETE is a 404.
    let (status, _, _) = api(&world, &token, M::DELETE, None).await;
    assert_eq!(status, S::NO_CONTENT);
    let (status, _, _) = api(&world, &token, M::GET, None).await;
    assert_eq!(status, S::NOT_FOUND);
    let (status, _, _) = api(&world, &token, M::DELETE, None).await;
    assert_eq!(status, S::NOT_FOUND);
    let idps = wiz.get("/identity-provider/instances").await;
    assert!(
        idps.as_array()
            .unwrap()
            .iter()
            .all(|i| i["alias"] != alias.as_str()),
        "{idps}"
    );
    world.done().await;
}

#[tokio::test]
async fn a_full_org_refuses_an_sso_join_with_the_quota_page_and_writes_nothing() {
    let world = World::new().await;
    world.connect("ORG_USER").await;
    // A free org holds 5: the ORG_ADMIN who connected it and four more.
    sqlx::query("UPDATE orgs SET plan = 'free' WHERE id = $1")
        .bind(world.org_id)
        .execute(&world.app.pool)
        .await
        .unwrap();
    for i in 0..4 {
        member(
            &world.app,
            world.org_id,
            &format!("m{i}@{}", world.domain),
            None,
            "ORG_USER",
        )
        .await;
    }
    let email = format!("dora@{}", world.domain);
    let dora = world.corp_person(&email).await;
    let browser = Browser::start().await;
    world
        .sign_in_through_provider(
            &browser,
            &format!("{}/login?rd=%2F", world.public),
            &email,
            &dora,
            &format!("{}/auth/callback", world.public),
        )
        .await;
    let page = browser
        .wait_for_text(&format!("No seat is free in Org {}", world.slug))
        .await;
    assert!(page.contains("members quota is 5"), "{page}");
    assert!(page.contains("Continue"), "{page}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(&world.app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no users row is left");
    assert!(audit(&world.app, "sso.join").await.is_empty());
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE org_id = $1")
        .bind(world.org_id)
        .fetch_one(&world.app.pool)
        .await
        .unwrap();
    assert_eq!(members, 5);
    browser.quit().await;
    world.done().await;
}
