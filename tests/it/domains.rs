//! Verified email domains against the real stack: an ORG_ADMIN claims, a platform admin
//! verifies, a domain belongs to one org; auto-join at sign-in (through Keycloak's real
//! login form) takes a seat and says so when none is free; "suggest" offers a join on
//! the home page and the org chooser. The attacks: an unverified address at the domain,
//! an address at a subdomain, an unverified claim, a join without CSRF or of an org
//! that offers nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Person, person};
use crate::helpers::{KeycloakAdmin, TestApp, http_client, unique};
use crate::seed::{member, org, verified_domain};
use crate::signin::{csrf_of, keycloak_login, spawn_app};

async fn call(
    app: &TestApp,
    who: &Person,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    crate::seed::call(app, Some(&who.token), method, path, body).await
}

async fn count(app: &TestApp, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The roles of `email` in `org` (None: not a member).
async fn roles(app: &TestApp, org: Uuid, email: &str) -> Option<Vec<String>> {
    sqlx::query_scalar(
        "SELECT m.roles FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $1 AND u.email = $2",
    )
    .bind(org)
    .bind(email)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

/// The same app seen from a browser of its own (its own cookies).
fn new_browser(app: &TestApp) -> TestApp {
    TestApp {
        address: app.address.clone(),
        ops_address: app.ops_address.clone(),
        pool: app.pool.clone(),
        database_url: app.database_url.clone(),
        client: http_client(),
    }
}

/// A Keycloak account (password = user name) with `email`, verified or not.
async fn account(kc: &KeycloakAdmin, email: &str, verified: bool) -> (String, String) {
    let username = unique("dom");
    let id = kc
        .create_account(&username, &username, email, verified)
        .await;
    (username, id)
}

/// Signs `username` in through Keycloak's login form in a browser of its own; returns
/// that browser and the callback's answer.
async fn sign_in(app: &TestApp, username: &str) -> (TestApp, reqwest::Response) {
    let browser = new_browser(app);
    let callback = keycloak_login(&browser, "/", username).await;
    let response = browser.client.get(&callback).send().await.unwrap();
    (browser, response)
}

async fn page(browser: &TestApp, path: &str) -> (StatusCode, String) {
    let response = browser.get(path).await;
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn an_org_admin_claims_a_platform_admin_verifies_and_a_second_org_is_refused() {
    let app = TestApp::spawn().await;
    let kc = KeycloakAdmin::connect().await;
    let platform = person(&kc, true).await;
    let (alice, bob) = (person(&kc, false).await, person(&kc, false).await);
    let (acme, beta) = (unique("acme"), unique("beta"));
    let acme_id = org(&app, &acme, "pro").await;
    let beta_id = org(&app, &beta, "pro").await;
    member(
        &app,
        acme_id,
        &alice.email,
        Some(&alice.keycloak_id),
        "ORG_ADMIN",
    )
    .await;
    member(
        &app,
        beta_id,
        &bob.email,
        Some(&bob.keycloak_id),
        "ORG_ADMIN",
    )
    .await;
    let domain = format!("{acme}.example");
    let path = format!("/api/v1/orgs/{acme}/domains/{domain}");

    // Claimed, in any case and with a trailing dot: stored normalised, unverified.
    let (status, body) = call(
        &app,
        &alice,
        Method::PUT,
        &format!("/api/v1/orgs/{acme}/domains/{}.", domain.to_uppercase()),
        Some(json!({"mode": "auto_join"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["domain"], domain.as_str());
    assert_eq!(body["status"], "claimed");
    assert_eq!(body["mode"], "auto_join");
    assert_eq!(body["claimed_by"], alice.keycloak_id.as_str());
    // The same again changes nothing; another mode is a change, audited.
    let (status, _) = call(
        &app,
        &alice,
        Method::PUT,
        &path,
        Some(json!({"mode": "auto_join"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &app,
        &alice,
        Method::PUT,
        &path,
        Some(json!({"mode": "suggest"})),
    )
    .await;
    assert_eq!(
        (status, body["mode"].as_str()),
        (StatusCode::OK, Some("suggest"))
    );

    // A second org cannot claim it, and is not told whose it is.
    let (status, body) = call(
        &app,
        &bob,
        Method::PUT,
        &format!("/api/v1/orgs/{beta}/domains/{domain}"),
        Some(json!({"mode": "auto_join"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // The domain names the slug here; the org itself is not named.
    assert!(!body["detail"].as_str().unwrap().contains("Org "), "{body}");
    // Nor remove or verify it through its own org.
    let (status, _) = call(
        &app,
        &bob,
        Method::DELETE,
        &format!("/api/v1/orgs/{beta}/domains/{domain}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        &platform,
        Method::POST,
        &format!("/api/v1/orgs/{beta}/domains/{domain}/verify"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM org_domains WHERE domain = $1",
            &domain
        )
        .await,
        1
    );

    // The ORG_ADMIN cannot vouch for their own claim; a platform admin can.
    let (status, body) = call(&app, &alice, Method::POST, &format!("{path}/verify"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call(
        &app,
        &platform,
        Method::POST,
        &format!("{path}/verify"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "verified");
    assert_eq!(body["verified_by"], platform.keycloak_id.as_str());
    let (status, body) = call(
        &app,
        &alice,
        Method::GET,
        &format!("/api/v1/orgs/{acme}/domains"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["status"], "verified", "{body}");

    // Bad domains: 422 naming the problem, nothing stored.
    for bad in [
        "gmail.com",
        "localhost",
        "10.0.0.1",
        "a..b",
        "-x.example",
        "x_y.example",
    ] {
        let (status, body) = call(
            &app,
            &alice,
            Method::PUT,
            &format!("/api/v1/orgs/{acme}/domains/{bad}"),
            Some(json!({"mode": "none"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, _) = call(
        &app,
        &alice,
        Method::PUT,
        &path,
        Some(json!({"mode": "always"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM org_domains WHERE org_id::text = $1",
            &acme_id.to_string()
        )
        .await,
        1
    );

    // Every change is audited with its actor.
    let actions: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, actor FROM audit_log WHERE action LIKE 'domain.%' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        vec![
            ("domain.claim".to_owned(), alice.keycloak_id.clone()),
            ("domain.mode".to_owned(), alice.keycloak_id.clone()),
            ("domain.verify".to_owned(), platform.keycloak_id.clone()),
        ]
    );

    // Given up, the domain is free for the second org.
    let (status, _) = call(&app, &alice, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(
        &app,
        &bob,
        Method::PUT,
        &format!("/api/v1/orgs/{beta}/domains/{domain}"),
        Some(json!({"mode": "none"})),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::CREATED, Some("claimed"))
    );
}

#[tokio::test]
async fn auto_join_at_sign_in_needs_a_verified_address_at_a_verified_domain() {
    let app = spawn_app().await;
    let kc = KeycloakAdmin::connect().await;
    let slug = unique("auto");
    let org_id = org(&app, &slug, "pro").await;
    let domain = format!("{slug}.example");
    verified_domain(&app, org_id, &domain, "auto_join").await;
    // A claim nobody verified offers nothing, whatever its mode.
    let unverified_domain = format!("{slug}-unverified.example");
    sqlx::query(
        "INSERT INTO org_domains (org_id, domain, mode, claimed_by) VALUES ($1, $2, 'auto_join', 't')",
    )
    .bind(org_id)
    .bind(&unverified_domain)
    .execute(&app.pool)
    .await
    .unwrap();

    // The attacks first: none of these joins, and nothing is written.
    // An administrator could set any address on an account unverified; Keycloak's
    // realm lets nobody set their own (docs/threat-model.md).
    let eve_email = format!("eve@{domain}");
    let (eve, _) = account(&kc, &eve_email, false).await;
    let sub_email = format!("sam@sub.{domain}");
    let (sam, _) = account(&kc, &sub_email, true).await;
    let uma_email = format!("uma@{unverified_domain}");
    let (uma, _) = account(&kc, &uma_email, true).await;
    for (username, email) in [(&eve, &eve_email), (&sam, &sub_email), (&uma, &uma_email)] {
        let (browser, done) = sign_in(&app, username).await;
        assert_eq!(done.status(), StatusCode::FOUND, "{username}");
        assert_eq!(roles(&app, org_id, email).await, None, "{email} joined");
        let (_, home) = page(&browser, "/").await;
        assert!(
            !home.contains("join-offer"),
            "{email} is offered a join: {home}"
        );
        // Asking by hand is refused too.
        let csrf = csrf_of(&home);
        let refused = browser
            .client
            .post(format!("{}/orgs/join", app.address))
            .form(&[("csrf", csrf.as_str()), ("org", slug.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{email}");
    }
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM memberships WHERE org_id::text = $1",
            &org_id.to_string()
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE email LIKE '%' || $1",
            &domain
        )
        .await,
        0
    );

    // A verified address at the verified domain: an ORG_USER at once, and the org is
    // the session's.
    let ann_email = format!("Ann@{}", domain.to_uppercase());
    let (ann, ann_id) = account(&kc, &ann_email, true).await;
    let ann_email = ann_email.to_lowercase();
    let (browser, done) = sign_in(&app, &ann).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(
        roles(&app, org_id, &ann_email).await,
        Some(vec!["ORG_USER".to_owned()])
    );
    let (_, home) = page(&browser, "/").await;
    assert!(home.contains(&format!("Welcome to Org {slug}")), "{home}");
    assert!(
        home.contains(&format!("Organization: <strong>{slug}</strong>")),
        "{home}"
    );
    let (after,): (Value,) =
        sqlx::query_as("SELECT after FROM audit_log WHERE action = 'domain.join' AND actor = $1")
            .bind(&ann_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(after["via"], "auto_join");
    assert_eq!(after["domain"], domain.as_str());
    // Signing in again adds nothing.
    let (_, again) = sign_in(&app, &ann).await;
    assert_eq!(again.status(), StatusCode::FOUND);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'domain.join' AND actor = $1",
            &ann_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_full_org_refuses_auto_join_with_a_page_and_writes_nothing() {
    let app = spawn_app().await;
    let kc = KeycloakAdmin::connect().await;
    let slug = unique("full");
    let org_id = org(&app, &slug, "free").await;
    for i in 0..5 {
        member(&app, org_id, &format!("m{i}@{slug}.test"), None, "ORG_USER").await;
    }
    let domain = format!("{slug}.example");
    verified_domain(&app, org_id, &domain, "auto_join").await;
    let email = format!("late@{domain}");
    let (late, _) = account(&kc, &email, true).await;
    let (browser, done) = sign_in(&app, &late).await;
    assert_eq!(done.status(), StatusCode::FORBIDDEN);
    let text = done.text().await.unwrap();
    assert!(
        text.contains(&format!("No seat is free in Org {slug}")),
        "{text}"
    );
    assert!(text.contains("members quota is 5"), "{text}");
    assert!(text.contains("id=\"continue\""), "{text}");
    assert_eq!(roles(&app, org_id, &email).await, None);
    assert_eq!(
        count(&app, "SELECT count(*) FROM users WHERE email = $1", &email).await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE target LIKE '%' || $1",
            &email
        )
        .await,
        0
    );
    // Signed in all the same.
    let (status, home) = page(&browser, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("id=\"signed-in\""), "{home}");
}

#[tokio::test]
async fn suggest_offers_a_join_that_takes_a_csrf_checked_post() {
    let app = spawn_app().await;
    let kc = KeycloakAdmin::connect().await;
    let slug = unique("sugg");
    let org_id = org(&app, &slug, "pro").await;
    let other = unique("other");
    org(&app, &other, "pro").await;
    let domain = format!("{slug}.example");
    verified_domain(&app, org_id, &domain, "suggest").await;
    let email = format!("sue@{domain}");
    let (sue, sue_id) = account(&kc, &email, true).await;
    let (browser, done) = sign_in(&app, &sue).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    // Suggest joins nobody at sign-in.
    assert_eq!(roles(&app, org_id, &email).await, None);
    let (_, home) = page(&browser, "/").await;
    assert!(home.contains(&format!("id=\"join-{slug}\"")), "{home}");
    assert!(home.contains(&format!("Join Org {slug}")), "{home}");
    let (_, chooser) = page(&browser, "/orgs/select").await;
    assert!(
        chooser.contains(&format!("id=\"join-{slug}\"")),
        "{chooser}"
    );

    let join = |csrf: String, org: String| {
        let browser = &browser;
        async move {
            browser
                .client
                .post(format!("{}/orgs/join", browser.address))
                .form(&[("csrf", csrf), ("org", org)])
                .send()
                .await
                .unwrap()
        }
    };
    // Without the session's CSRF token, or for an org that offers nothing: refused.
    assert_eq!(
        join("forged".into(), slug.clone()).await.status(),
        StatusCode::BAD_REQUEST
    );
    let csrf = csrf_of(&home);
    assert_eq!(
        join(csrf.clone(), other.clone()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(roles(&app, org_id, &email).await, None);

    let joined = join(csrf.clone(), slug.clone()).await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        roles(&app, org_id, &email).await,
        Some(vec!["ORG_USER".to_owned()])
    );
    let (_, home) = page(&browser, "/").await;
    assert!(
        home.contains(&format!("Welcome to Org {slug}: you joined as ORG_USER")),
        "{home}"
    );
    assert!(!home.contains("join-offer"), "{home}");
    let (after,): (Value,) =
        sqlx::query_as("SELECT after FROM audit_log WHERE action = 'domain.join' AND actor = $1")
            .bind(&sue_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(after["via"], "suggest");
}

#[tokio::test]
async fn the_domains_page_claims_with_csrf_and_only_platform_admins_mark_verified() {
    let app = spawn_app().await;
    let kc = KeycloakAdmin::connect().await;
    let slug = unique("page");
    let org_id = org(&app, &slug, "pro").await;
    let admin_email = format!("{}@example.com", unique("adm"));
    let (admin, admin_id) = account(&kc, &admin_email, true).await;
    member(&app, org_id, &admin_email, Some(&admin_id), "ORG_ADMIN").await;
    let (browser, _) = sign_in(&app, &admin).await;
    let url = format!("/admin/orgs/{slug}/domains");
    let (status, text) = page(&browser, &url).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("id=\"no-domains\""), "{text}");
    let csrf = csrf_of(&text);
    let post = |path: &str, form: Vec<(&str, String)>| {
        let request = browser
            .client
            .post(format!("{}{path}", browser.address))
            .form(&form);
        async move { request.send().await.unwrap() }
    };
    let domain = format!("{slug}.example");
    let forged = post(
        &url,
        vec![
            ("csrf", "x".into()),
            ("domain", domain.clone()),
            ("mode", "auto_join".into()),
        ],
    )
    .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let bad = post(
        &url,
        vec![
            ("csrf", csrf.clone()),
            ("domain", "not a domain".into()),
            ("mode", "none".into()),
        ],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad_text = bad.text().await.unwrap();
    assert!(bad_text.contains("not an email domain"), "{bad_text}");
    assert!(bad_text.contains("value=\"not a domain\""), "{bad_text}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM org_domains WHERE domain LIKE $1 || '%'",
            &slug
        )
        .await,
        0
    );
    let claimed = post(
        &url,
        vec![
            ("csrf", csrf.clone()),
            ("domain", domain.clone()),
            ("mode", "auto_join".into()),
        ],
    )
    .await;
    assert_eq!(claimed.status(), StatusCode::SEE_OTHER);
    let (_, text) = page(&browser, &url).await;
    assert!(text.contains(&format!("Claimed {domain}")), "{text}");
    assert!(text.contains("waiting for a platform admin"), "{text}");
    assert!(!text.contains("Mark verified"), "{text}");
    // The verify form posted by the ORG_ADMIN anyway: refused.
    let refused = post(
        &format!("{url}/verify"),
        vec![("csrf", csrf.clone()), ("domain", domain.clone())],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let status: String = sqlx::query_scalar("SELECT status FROM org_domains WHERE domain = $1")
        .bind(&domain)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "claimed");

    // A platform admin sees "Mark verified" and it works.
    let (dana, dana_id) = account(&kc, &format!("{}@example.com", unique("pa")), true).await;
    let role = kc.get("/roles/wizbrand-admin").await;
    kc.send(
        Method::POST,
        &format!("/users/{dana_id}/role-mappings/realm"),
        Some(json!([role])),
    )
    .await;
    let (platform, _) = sign_in(&app, &dana).await;
    let (status, text) = page(&platform, &url).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("Mark verified"), "{text}");
    let verified = platform
        .client
        .post(format!("{}{url}/verify", platform.address))
        .form(&[("csrf", csrf_of(&text)), ("domain", domain.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), StatusCode::SEE_OTHER);
    let (_, text) = page(&platform, &url).await;
    assert!(text.contains(&format!("{domain} is verified")), "{text}");
    assert!(!text.contains("Mark verified"), "{text}");

    let removed = post(
        &format!("{url}/remove"),
        vec![("csrf", csrf.clone()), ("domain", domain.clone())],
    )
    .await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM org_domains WHERE domain = $1",
            &domain
        )
        .await,
        0
    );
}

/// Per-org single sign-on against the real Keycloak: a second realm plays the org's own
/// provider; wizbrand creates the identity provider in a realm of the test's own (a copy
/// of the project's export, whose service account holds `manage-identity-providers`).
/// A person signing in through it in Chromium: tests/it/sso.rs.
#[tokio::test]
async fn an_org_admin_connects_sso_keycloak_gets_the_provider_and_login_routes_by_domain() {
    let kc = KeycloakAdmin::connect().await;
    let realm = unique("wizsso");
    let corp = unique("corp");
    kc.create_realm_copy(&realm).await;
    let (status, _) = reqwest::Client::new()
        .post(format!("{}/admin/realms", kc.base))
        .bearer_auth(master_token(&kc).await)
        .json(&json!({"realm": corp, "enabled": true}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert!(status.is_success(), "create {corp}: {status}");

    let app = spawn_app().await;
    let slug = unique("sso");
    let org_id = org(&app, &slug, "pro").await;
    let admin = person(&kc, false).await;
    member(
        &app,
        org_id,
        &admin.email,
        Some(&admin.keycloak_id),
        "ORG_ADMIN",
    )
    .await;
    let who = wizbrand::domain::Principal {
        sub: admin.keycloak_id.clone(),
        email: Some(admin.email.clone()),
        preferred_org: None,
        platform_admin: false,
    };
    let mut env = crate::helpers::base_env(&app.database_url);
    env.insert("KEYCLOAK_REALM".into(), realm.clone());
    let config = wizbrand::config::Config::from_source(&env).unwrap();
    let providers = wizbrand::keycloak::providers::IdentityProviders::new(
        &config.keycloak,
        std::time::Duration::from_secs(10),
    );
    let secret = secrecy::SecretString::from("corp-client-secret".to_owned());
    let issuer = format!("{}/realms/{corp}", kc.base);
    let settings = wizbrand::manage::sso::Settings {
        issuer: &issuer,
        client_id: "wizbrand-broker",
        client_secret: &secret,
        join_role: "ORG_USER",
    };
    let seal = |o: &wizbrand::db::orgs::Org| {
        Ok(wizbrand::web::token_vault::seal_setting(
            "k".repeat(64).as_str(),
            &o.id.to_string(),
            "corp-client-secret",
        )
        .unwrap())
    };
    // Bad input first: nothing made.
    let bad = wizbrand::manage::sso::Settings {
        issuer: "http://evil.example/realms/x",
        ..settings
    };
    assert!(matches!(
        wizbrand::manage::sso::configure(&app.pool, &providers, &who, &slug, &bad, seal).await,
        Err(wizbrand::error::AppError::Unprocessable(_))
    ));
    let wrong = wizbrand::manage::sso::Settings {
        issuer: &format!("{}/realms/{}", kc.base, unique("nonesuch")),
        ..settings
    };
    assert!(matches!(
        wizbrand::manage::sso::configure(&app.pool, &providers, &who, &slug, &wrong, seal).await,
        Err(wizbrand::error::AppError::Unprocessable(_))
    ));
    wizbrand::manage::sso::configure(&app.pool, &providers, &who, &slug, &settings, seal)
        .await
        .unwrap();

    // Keycloak holds the provider, bound to the org, its addresses never trusted,
    // hidden from the login page, with the username mapper.
    let alias = format!("org-{slug}");
    let idp = kc
        .for_realm(&realm)
        .get(&format!("/identity-provider/instances/{alias}"))
        .await;
    assert_eq!(idp["trustEmail"], false, "{idp}");
    assert_eq!(idp["hideOnLogin"], true, "{idp}");
    assert_eq!(idp["config"]["issuer"], issuer.as_str(), "{idp}");
    assert_eq!(idp["config"]["clientId"], "wizbrand-broker", "{idp}");
    let mappers = kc
        .for_realm(&realm)
        .get(&format!("/identity-provider/instances/{alias}/mappers"))
        .await;
    assert_eq!(
        mappers[0]["config"]["template"], "${ALIAS}.${CLAIM.sub}",
        "{mappers}"
    );
    // The secret is stored sealed only, and never in the audit log.
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT client_secret_sealed FROM org_sso")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!sealed.windows(18).any(|w| w == b"corp-client-secret"));
    let audit: String =
        sqlx::query_scalar("SELECT after::text FROM audit_log WHERE action = 'sso.configure'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!audit.contains("corp-client-secret"), "{audit}");

    // /login asks for the email first now; a verified domain of the org goes to its
    // provider, any other address (and an unverified claim) to the password form.
    let domain = format!("{slug}.example");
    verified_domain(&app, org_id, &domain, "none").await;
    let (status, text) = page(&app, "/login?rd=%2F").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("id=\"identity-first\""), "{text}");
    for (email, hinted) in [
        (format!("carl@{domain}"), true),
        (format!("carl@sub.{domain}"), false),
        ("dana@example.com".to_owned(), false),
    ] {
        let browser = new_browser(&app);
        let response = browser
            .client
            .get(format!("{}/login", app.address))
            .query(&[("rd", "/"), ("email", email.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{email}");
        let to = crate::signin::location(&response);
        assert_eq!(
            to.contains(&format!("kc_idp_hint={alias}")),
            hinted,
            "{email}: {to}"
        );
        assert!(to.contains("login_hint="), "{to}");
    }
    let skip = page(&app, "/login?password=1&rd=%2F").await;
    assert_eq!(skip.0, StatusCode::FOUND);

    // Disconnected: gone from Keycloak too.
    wizbrand::manage::sso::remove(&app.pool, &providers, &who, &slug)
        .await
        .unwrap();
    let (status, _) = page(&app, "/login?rd=%2F").await;
    assert_eq!(status, StatusCode::FOUND);
    kc.delete_realm(&realm).await;
    kc.delete_realm(&corp).await;
}

pub(crate) async fn master_token(kc: &KeycloakAdmin) -> String {
    let _ = kc;
    let token: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            crate::helpers::stack_var("KEYCLOAK_URL")
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            (
                "username",
                &crate::helpers::stack_var("WIZBRAND_STACK_KC_ADMIN"),
            ),
            (
                "password",
                &crate::helpers::stack_var("WIZBRAND_STACK_KC_ADMIN_PASSWORD"),
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"].as_str().unwrap().to_owned()
}
