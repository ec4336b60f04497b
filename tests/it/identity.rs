//! A person is their Keycloak `sub`; an email proves nothing unless verified under
//! rules the person cannot bypass. Each test here is an attack from issue 13 (the
//! threat model, docs/threat-model.md, names them).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::gate::{Gate, header};
use crate::helpers::{AccountApi, KeycloakAdmin, claims, unique, user_token};
use crate::signin::{body, sign_in, spawn_app, spawn_app_with};
use crate::sync::SyncWorld;

/// A Keycloak account made by an administrator (password = username): returns its id.
async fn account(admin: &KeycloakAdmin, username: &str, email: &str, verified: bool) -> String {
    admin
        .create_account(username, username, email, verified)
        .await
}

/// Sets an account's email as an administrator (what a realm that let people edit
/// their email would have let them do; the account API test shows ours does not).
async fn set_email(admin: &KeycloakAdmin, id: &str, email: &str, verified: bool) {
    let mut user = admin.get(&format!("/users/{id}")).await;
    user["email"] = json!(email);
    user["emailVerified"] = json!(verified);
    let (status, _) = admin
        .send(Method::PUT, &format!("/users/{id}"), Some(user))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "set email of {id}");
}

async fn keycloak_id_of(pool: &sqlx::PgPool, email: &str) -> Option<String> {
    sqlx::query_scalar("SELECT keycloak_id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_person_cannot_change_their_own_email_or_username_through_the_account_api() {
    let admin = KeycloakAdmin::connect().await;
    let name = unique("acct");
    let own = format!("{name}@example.com");
    let id = account(&admin, &name, &own, true).await;
    let token = user_token(&name, &name, "wizbrand-test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let account = AccountApi::of(&token);
    let me = account.get().await;
    assert_eq!(me["email"], own, "the account API answers: {me}");
    let invited = format!("invited.{name}@example.com");
    for change in [json!({"email": invited}), json!({"username": invited})] {
        let mut wanted = me.clone();
        for (k, v) in change.as_object().unwrap() {
            wanted[k] = v.clone();
        }
        let (status, text) = account.post(&wanted).await;
        let stored = admin.get(&format!("/users/{id}")).await;
        assert_eq!(stored["email"], own, "{change}: {status} {text}");
        assert_eq!(stored["username"], name, "{change}: {status} {text}");
        assert_eq!(stored["emailVerified"], true);
        assert!(!status.is_success(), "{change} accepted: {status} {text}");
    }
}

#[tokio::test]
async fn an_unverified_account_holding_an_invited_address_is_never_linked_nor_provisioned() {
    let w = SyncWorld::new().await;
    w.add_org("acme", "pro", &["seo"]).await;
    let invited = w.email("invited");
    let mallory = unique("mallory");
    let evil = account(&w.admin, &mallory, &format!("{mallory}@example.com"), true).await;
    // The attacker holds the address an admin is about to add, unverified.
    set_email(&w.admin, &evil, &invited, false).await;
    w.set_member("acme", "invited", &["ORG_ADMIN"]).await;

    for _ in 0..2 {
        let report = w.sync().await;
        // One clear failed operation, every run; never Keycloak's 409.
        assert_eq!(report.errors.len(), 1, "{report:#?}");
        let error = &report.errors[0];
        assert!(
            error.contains(&invited) && error.contains(&evil) && error.contains("not verified"),
            "{error}"
        );
        assert_eq!(report.counts.failed, 1, "{report:#?}");
        // (The address and the account id are random and may hold the digits 409.)
        assert!(
            !report
                .errors
                .iter()
                .any(|e| e.replace(&invited, "").replace(&evil, "").contains("409")),
            "{report:#?}"
        );
    }
    assert_eq!(keycloak_id_of(&w.pool, &invited).await, None);
    assert!(
        w.admin
            .member_emails(&w.path("/acme/ORG_ADMIN"))
            .await
            .is_empty()
    );
    let found = w
        .admin
        .get(&format!("/users?email={invited}&exact=true"))
        .await;
    assert_eq!(
        found.as_array().unwrap().len(),
        1,
        "no second account: {found}"
    );
    let token = user_token(&mallory, &mallory, "wizbrand-test").await;
    let access = claims(token["access_token"].as_str().unwrap());
    assert!(
        access["org_memberships"].is_null() || access["org_memberships"] == json!({}),
        "{access}"
    );
    // The admin pages' sync list shows it: the run row keeps the error.
    let stored: Value = sqlx::query_scalar("SELECT errors FROM sync_runs ORDER BY id DESC LIMIT 1")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert!(stored.to_string().contains("not verified"), "{stored}");
}

#[tokio::test]
async fn a_member_who_changes_their_email_keeps_their_org_and_takes_no_other() {
    let w = SyncWorld::new().await;
    w.add_org("acme", "pro", &["seo"]).await;
    w.add_org("beta", "pro", &["seo"]).await;
    w.set_member("acme", "bob", &["ORG_USER"]).await;
    let first = w.sync().await;
    assert!(first.errors.is_empty(), "{first:#?}");
    let bob = w.email("bob");
    let bob_id = keycloak_id_of(&w.pool, &bob)
        .await
        .expect("linked at creation");
    // bob now holds the address an admin adds to beta as ORG_ADMIN.
    let invited = w.email("invited");
    set_email(&w.admin, &bob_id, &invited, false).await;
    w.set_member("beta", "invited", &["ORG_ADMIN"]).await;

    let report = w.sync().await;
    assert_eq!(report.errors.len(), 1, "{report:#?}");
    assert!(report.errors[0].contains(&invited), "{report:#?}");
    // Still bob, still in acme; not in beta; no account made for his old address.
    assert_eq!(
        keycloak_id_of(&w.pool, &bob).await.as_deref(),
        Some(bob_id.as_str())
    );
    assert_eq!(keycloak_id_of(&w.pool, &invited).await, None);
    let in_acme = w.admin.get(&format!("/users/{bob_id}/groups")).await;
    let mut paths: Vec<&str> = in_acme
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["path"].as_str())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [w.path("/acme"), w.path("/acme/ORG_USER")],
        "{in_acme}"
    );
    let old = w
        .admin
        .get(&format!("/users?username={bob}&exact=true"))
        .await;
    assert_eq!(old.as_array().unwrap().len(), 1, "{old}");
    assert_eq!(old[0]["id"], bob_id.as_str());
    let old_by_email = w.admin.get(&format!("/users?email={bob}&exact=true")).await;
    assert!(
        old_by_email.as_array().unwrap().is_empty(),
        "{old_by_email}"
    );
}

#[tokio::test]
async fn a_username_taken_by_an_account_with_another_email_is_one_conflict_not_a_409_loop() {
    let w = SyncWorld::new().await;
    w.add_org("acme", "pro", &["seo"]).await;
    let old = w.email("old");
    // The account the sync once made for `old`, whose email has changed since.
    let holder = account(&w.admin, &old, &w.email("elsewhere"), true).await;
    w.set_member("acme", "old", &["ORG_USER"]).await;
    for _ in 0..2 {
        let report = w.sync().await;
        assert_eq!(report.errors.len(), 1, "{report:#?}");
        assert!(
            report.errors[0].contains(&holder) && report.errors[0].contains("username"),
            "{report:#?}"
        );
        assert_eq!(report.calls.get("write:create_user"), None, "{report:#?}");
    }
    assert_eq!(keycloak_id_of(&w.pool, &old).await, None);
}

#[tokio::test]
async fn an_account_with_the_members_verified_address_is_linked_once_and_audited() {
    let w = SyncWorld::new().await;
    w.add_org("acme", "pro", &["seo"]).await;
    let ann = w.email("ann");
    let id = account(&w.admin, &unique("ann"), &ann, true).await;
    w.set_member("acme", "ann", &["ORG_ADMIN"]).await;
    let report = w.sync().await;
    assert!(report.errors.is_empty(), "{report:#?}");
    assert_eq!(
        keycloak_id_of(&w.pool, &ann).await.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        w.admin.member_emails(&w.path("/acme/ORG_ADMIN")).await,
        std::slice::from_ref(&ann)
    );
    let (actor, after): (String, Value) = sqlx::query_as(
        "SELECT actor, after FROM audit_log WHERE action = 'account.link' AND target = $1",
    )
    .bind(&ann)
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(actor, "wizbrand");
    assert_eq!(after["keycloak_id"], id.as_str());
    assert_eq!(after["proof"], "verified email in Keycloak");
}

#[tokio::test]
async fn sign_in_links_a_member_only_by_a_verified_email_and_audits_it() {
    let app = spawn_app().await;
    let admin = KeycloakAdmin::connect().await;
    sqlx::query("INSERT INTO orgs (slug, name, features) VALUES ('acme', 'Acme', ARRAY['seo'])")
        .execute(&app.pool)
        .await
        .unwrap();
    let add = |email: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query("INSERT INTO users (email) VALUES ($1)")
                .bind(&email)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, '{ORG_ADMIN}' \
                 FROM orgs o, users u WHERE o.slug = 'acme' AND u.email = $1",
            )
            .bind(&email)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    // Unverified: signs in, but is nobody's member.
    let eve = unique("eve");
    let eve_email = format!("{eve}@example.com");
    account(&admin, &eve, &eve_email, false).await;
    add(eve_email.clone()).await;
    let (_, done) = sign_in(&app, "/", &eve).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(keycloak_id_of(&app.pool, &eve_email).await, None);
    let (_, page) = body(&app, "/orgs/select?rd=%2F").await;
    assert!(!page.contains("Acme"), "{page}");

    // Verified: linked, and the link is in the audit log with its proof.
    let app = spawn_app().await;
    sqlx::query("INSERT INTO orgs (slug, name, features) VALUES ('acme', 'Acme', ARRAY['seo'])")
        .execute(&app.pool)
        .await
        .unwrap();
    let ann = unique("ann");
    let ann_email = format!("{ann}@example.com");
    let ann_id = account(&admin, &ann, &ann_email, true).await;
    let pool = app.pool.clone();
    sqlx::query("INSERT INTO users (email) VALUES ($1)")
        .bind(&ann_email)
        .execute(&pool)
        .await
        .unwrap();
    let (_, done) = sign_in(&app, "/", &ann).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(
        keycloak_id_of(&pool, &ann_email).await.as_deref(),
        Some(ann_id.as_str())
    );
    let (actor, actor_email, after): (String, Option<String>, Value) = sqlx::query_as(
        "SELECT actor, actor_email, after FROM audit_log WHERE action = 'account.link'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor, ann_id);
    assert_eq!(actor_email.as_deref(), Some(ann_email.as_str()));
    assert_eq!(after["proof"], "verified email at sign-in");
}

#[tokio::test]
async fn the_gate_and_the_api_find_members_by_sub_never_by_email() {
    let gate = Gate::new().await;
    let mallory = gate.member(&[]).await;
    // A member row with mallory's (verified) address, but not linked to her account:
    // her own row is under another address.
    sqlx::query("UPDATE users SET email = $1 WHERE keycloak_id = $2")
        .bind(format!("old.{}", mallory.email))
        .bind(&mallory.sub)
        .execute(&gate.app.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (email) VALUES ($1)")
        .bind(&mallory.email)
        .execute(&gate.app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, '{ORG_ADMIN}' \
         FROM orgs o, users u WHERE o.slug = 'acme' AND u.email = $1",
    )
    .bind(&mallory.email)
    .execute(&gate.app.pool)
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let response = gate
        .get("acme", "seo", "/")
        .bearer_auth(&mallory.token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let me: Value = gate
        .app
        .client
        .get(format!("{}/api/v1/me", gate.app.address))
        .bearer_auth(&mallory.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["memberships"], json!([]), "{me}");
}

#[tokio::test]
async fn an_email_reaches_an_app_only_verified_and_well_formed() {
    let gate = Gate::new().await;
    let admin = KeycloakAdmin::connect().await;
    let name = unique("hdr");
    let sub = account(&admin, &name, &format!("{name}@example.com"), true).await;
    sqlx::query("INSERT INTO users (email, keycloak_id) VALUES ($1, $2)")
        .bind(format!("{name}@example.com"))
        .bind(&sub)
        .execute(&gate.app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, '{ORG_USER}' \
         FROM orgs o, users u WHERE o.slug = 'acme' AND u.keycloak_id = $1",
    )
    .bind(&sub)
    .execute(&gate.app.pool)
    .await
    .unwrap();
    let first = user_token(&name, &name, "wizbrand-test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The membership reaches the gate's state through a notification: wait for it.
    let started = std::time::Instant::now();
    while gate
        .get("acme", "seo", "/api/echo")
        .bearer_auth(&first)
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(started.elapsed().as_secs() < 2, "not admitted within 2 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let echo_of = |token: String| {
        let request = gate
            .get("acme", "seo", "/api/echo")
            .bearer_auth(token)
            .header("X-User-Email", "forged@example.com");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let token = || async {
        user_token(&name, &name, "wizbrand-test").await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let echo = echo_of(token().await).await;
    assert_eq!(
        header(&echo, "X-User-Email"),
        Some(vec![format!("{name}@example.com")])
    );
    // Unverified: no header at all, and the client's own does not get through.
    set_email(&admin, &sub, &format!("{name}.new@example.com"), false).await;
    let echo = echo_of(token().await).await;
    assert_eq!(header(&echo, "X-User-Email"), None, "{echo}");
    assert_eq!(header(&echo, "X-User-Id"), Some(vec![sub.clone()]));
    // Verified but not an address an app can take: a comma splits headers.
    let mut user = admin.get(&format!("/users/{sub}")).await;
    user["email"] = json!(format!("\"bob@example.com,alice\"@{name}.example.com"));
    user["emailVerified"] = json!(true);
    let (status, _) = admin
        .send(Method::PUT, &format!("/users/{sub}"), Some(user))
        .await;
    if status == StatusCode::NO_CONTENT {
        let echo = echo_of(token().await).await;
        assert_eq!(header(&echo, "X-User-Email"), None, "{echo}");
    } else {
        // This Keycloak refuses such an address outright; the unit test
        // `only_verified_valid_addresses_are_proven` holds the rule on our side.
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_platform_admin_removed_in_keycloak_loses_the_admin_pages_within_the_recheck() {
    let app = spawn_app_with(|env| {
        env.insert("WIZBRAND_ADMIN_RECHECK_SECONDS".into(), "1".into());
    })
    .await;
    let admin = KeycloakAdmin::connect().await;
    let name = unique("padm");
    let id = account(&admin, &name, &format!("{name}@example.com"), true).await;
    let role = admin.get("/roles/wizbrand-admin").await;
    let mappings = format!("/users/{id}/role-mappings/realm");
    let (status, _) = admin
        .send(Method::POST, &mappings, Some(json!([role.clone()])))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, done) = sign_in(&app, "/admin/orgs", &name).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let (status, page) = body(&app, "/admin/orgs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"new-org\""), "a platform admin: {page}");

    // Removed in Keycloak: within the re-check the pages say so, and the platform
    // pages refuse.
    let (status, _) = admin
        .send(Method::DELETE, &mappings, Some(json!([role.clone()])))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, page) = body(&app, "/admin/orgs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("id=\"new-org\""),
        "still a platform admin: {page}"
    );
    let (status, _) = body(&app, "/admin/orgs/new").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The new answer is kept in the session: the next page within the second agrees.
    let (_, page) = body(&app, "/admin/orgs").await;
    assert!(!page.contains("id=\"new-org\""));

    // Given back: the pages follow the same way.
    admin
        .send(Method::POST, &mappings, Some(json!([role])))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, page) = body(&app, "/admin/orgs").await;
    assert!(page.contains("id=\"new-org\""), "admin again: {page}");
}
