//! The tenant lifecycle against the real stack: seats that hold (members plus pending
//! invitations), invitations mailed through the stack's SMTP server and read back from
//! its store, every refusal of a link, and (in Chromium, through a Traefik of the
//! test's own) an invited person creating their account through Keycloak, landing in
//! the org and opening an ORG_MANAGER app.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{PASSWORD, Person, person};
use crate::browser::Browser;
use crate::helpers::{KeycloakAdmin, TestApp, link_in, mails_to, nth_mail_to, unique, user_token};
use crate::seed::{call, member, org};
use crate::signin::{BehindTraefik, delete_client, person_with_id, spawn_behind_traefik};

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

fn assert_quota_exceeded(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["type"], "https://wizbrand.dev/problems/quota-exceeded",
        "{body}"
    );
    assert_eq!(body["quota"], "members", "{body}");
    assert_eq!(body["limit"], 5, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("members quota is 5"),
        "{body}"
    );
}

#[tokio::test]
async fn a_free_org_at_its_quota_refuses_a_member_and_an_invitation_leaving_nothing_behind() {
    let app = TestApp::spawn().await;
    let kc = KeycloakAdmin::connect().await;
    let admin = person(&kc, false).await;
    let slug = unique("seats");
    let org_id = org(&app, &slug, "free").await;
    member(
        &app,
        org_id,
        &admin.email,
        Some(&admin.keycloak_id),
        "ORG_ADMIN",
    )
    .await;
    for i in 0..4 {
        member(
            &app,
            org_id,
            &format!("{slug}-m{i}@example.com"),
            None,
            "ORG_USER",
        )
        .await;
    }
    let token = Some(admin.token.as_str());
    let newcomer = format!("{}@example.com", unique("newcomer"));
    let invitee = format!("{}@example.com", unique("invitee"));

    // Five seats, five members: a sixth member and an invitation are both refused.
    let (status, body) = call(
        &app,
        token,
        Method::PUT,
        &format!("/api/v1/orgs/{slug}/members/{newcomer}"),
        Some(json!({"roles": ["ORG_USER"]})),
    )
    .await;
    assert_quota_exceeded(status, &body);
    assert_eq!(body["used"], 5, "{body}");
    let (status, body) = call(
        &app,
        token,
        Method::POST,
        &format!("/api/v1/orgs/{slug}/invitations"),
        Some(json!({"emails": [invitee], "roles": ["ORG_USER"]})),
    )
    .await;
    assert_quota_exceeded(status, &body);
    // Nothing partial: no user row, no invitation, no mail, no audit entry, no account.
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) FROM users WHERE email IN ('{newcomer}', '{invitee}')")
        )
        .await,
        0
    );
    assert_eq!(count(&app, "SELECT count(*) FROM invitations").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM audit_log").await, 0);
    assert!(
        mails_to(&invitee).is_empty(),
        "a refused invitation was mailed"
    );
    assert!(kc.user_by_email(&newcomer).await.is_none());

    // A seat freed by a removal is taken by an invitation, which then holds it: the
    // member the admin adds next is refused, though only four are members.
    let (status, _) = call(
        &app,
        token,
        Method::DELETE,
        &format!("/api/v1/orgs/{slug}/members/{slug}-m0@example.com"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(
        &app,
        token,
        Method::POST,
        &format!("/api/v1/orgs/{slug}/invitations"),
        Some(json!({"emails": [invitee], "roles": ["ORG_USER"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        &app,
        token,
        Method::PUT,
        &format!("/api/v1/orgs/{slug}/members/{newcomer}"),
        Some(json!({"roles": ["ORG_USER"]})),
    )
    .await;
    assert_quota_exceeded(status, &body);
    // The invited person added directly takes no second seat.
    let (status, body) = call(
        &app,
        token,
        Method::PUT,
        &format!("/api/v1/orgs/{slug}/members/{invitee}"),
        Some(json!({"roles": ["ORG_USER"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A downgrade below the count keeps everyone and blocks new seats only.
    sqlx::query("UPDATE orgs SET plan = 'pro' WHERE id = $1")
        .bind(org_id)
        .execute(&app.pool)
        .await
        .unwrap();
    for i in 0..3 {
        let (status, body) = call(
            &app,
            token,
            Method::PUT,
            &format!("/api/v1/orgs/{slug}/members/{slug}-extra{i}@example.com"),
            Some(json!({"roles": ["ORG_USER"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    sqlx::query("UPDATE orgs SET plan = 'free' WHERE id = $1")
        .bind(org_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = call(
        &app,
        token,
        Method::GET,
        &format!("/api/v1/orgs/{slug}/members"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["total"], 8,
        "everyone stays after the downgrade: {body}"
    );
    let (status, body) = call(
        &app,
        token,
        Method::PUT,
        &format!("/api/v1/orgs/{slug}/members/{newcomer}"),
        Some(json!({"roles": ["ORG_USER"]})),
    )
    .await;
    assert_quota_exceeded(status, &body);
    assert_eq!(body["used"], 8, "{body}");
    // Changing the roles of someone who is in takes no seat.
    let (status, body) = call(
        &app,
        token,
        Method::PUT,
        &format!("/api/v1/orgs/{slug}/members/{slug}-extra0@example.com"),
        Some(json!({"roles": ["ORG_MANAGER"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The token in the newest invitation mail to `to`.
async fn token_mailed(to: &str, n: usize) -> String {
    let mail = nth_mail_to(to, n).await;
    let link = link_in(mail["text"].as_str().unwrap(), "http");
    assert!(link.contains("/invitation?token="), "{link}");
    let url = url::Url::parse(&link).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

async fn invite(app: &TestApp, by: &Person, slug: &str, email: &str, roles: Value) -> Value {
    let (status, body) = call(
        app,
        Some(&by.token),
        Method::POST,
        &format!("/api/v1/orgs/{slug}/invitations"),
        Some(json!({"emails": [email], "roles": roles})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["items"][0].clone()
}

/// The invitation page a link opens, not signed in: its status and text.
async fn link_page(app: &TestApp, token: &str) -> (StatusCode, String) {
    let response = crate::helpers::http_client()
        .get(format!("{}/invitation", app.address))
        .query(&[("token", token)])
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn accept(app: &TestApp, token: &str, bearer: &str) -> (StatusCode, Value) {
    call(
        app,
        Some(bearer),
        Method::POST,
        "/api/v1/invitations/accept",
        Some(json!({"token": token})),
    )
    .await
}

async fn state(app: &TestApp, slug: &str) -> (i64, Vec<String>, i64) {
    let members = count(
        app,
        &format!("SELECT count(*) FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE o.slug = '{slug}'"),
    )
    .await;
    let statuses: Vec<String> = sqlx::query_scalar(
        "SELECT i.status || ':' || i.email FROM invitations i JOIN orgs o ON o.id = i.org_id \
         WHERE o.slug = $1 ORDER BY i.email",
    )
    .bind(slug)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let audit = count(app, "SELECT count(*) FROM audit_log").await;
    (members, statuses, audit)
}

#[tokio::test]
async fn invitation_links_used_twice_expired_revoked_replaced_or_opened_by_someone_else_are_refused_and_change_nothing()
 {
    let app = TestApp::spawn().await;
    let kc = KeycloakAdmin::connect().await;
    let admin = person(&kc, false).await;
    let slug = unique("inv");
    let org_id = org(&app, &slug, "pro").await;
    member(
        &app,
        org_id,
        &admin.email,
        Some(&admin.keycloak_id),
        "ORG_ADMIN",
    )
    .await;

    // The invitee has an account with the invited, verified address.
    let invitee_name = unique("invitee");
    let invitee_email = format!("{invitee_name}@example.com");
    kc.create_user(&invitee_name, PASSWORD).await;
    let invitee_token = user_token(&invitee_name, PASSWORD, "wizbrand-test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let invitation = invite(&app, &admin, &slug, &invitee_email, json!(["ORG_MANAGER"])).await;
    assert_eq!(invitation["status"], "pending");
    assert!(
        invitation.get("token").is_none() && invitation.get("token_hash").is_none(),
        "{invitation}"
    );
    let mail = nth_mail_to(&invitee_email, 1).await;
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("Org {slug}")),
        "{mail}"
    );
    assert!(
        mail["html"]
            .as_str()
            .unwrap()
            .contains("Open the invitation")
    );
    let first = token_mailed(&invitee_email, 1).await;
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM invitations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_ne!(stored, first, "the token is stored hashed");

    // Someone else, signed in with another verified address: refused.
    let stranger = person(&kc, false).await;
    let before = state(&app, &slug).await;
    let (status, body) = accept(&app, &first, &stranger.token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("someone else"),
        "{body}"
    );
    // An account holding the invited address unverified proves nothing.
    let unverified_name = unique("unverified");
    kc.create_account(
        &unverified_name,
        PASSWORD,
        &format!("{unverified_name}@example.com"),
        false,
    )
    .await;
    let unverified = user_token(&unverified_name, PASSWORD, "wizbrand-test").await;
    let (status, _) = accept(&app, &first, unverified["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Forged and truncated tokens: as if there were none.
    for forged in [
        first[..first.len() - 1].to_owned(),
        format!("{}A", &first[..first.len() - 1]),
        "x".repeat(43),
        String::new(),
        "../../etc/passwd".to_owned(),
    ] {
        let (status, _) = accept(&app, &forged, &invitee_token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{forged}");
        let (status, page) = link_page(&app, &forged).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{forged}");
        assert!(page.contains("No such invitation"), "{page}");
    }
    assert_eq!(
        state(&app, &slug).await,
        before,
        "a refusal changed something"
    );

    // Sent again: the old link says it was replaced, the new one works once.
    let id = invitation["id"].as_str().unwrap();
    let (status, body) = call(
        &app,
        Some(&admin.token),
        Method::POST,
        &format!("/api/v1/orgs/{slug}/invitations/{id}/resend"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = token_mailed(&invitee_email, 2).await;
    assert_ne!(first, second);
    let before = state(&app, &slug).await;
    let (status, page) = link_page(&app, &first).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("replaced by a newer one"), "{page}");
    let (status, _) = accept(&app, &first, &invitee_token).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(state(&app, &slug).await, before);
    let (status, page) = link_page(&app, &second).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Create my account") && page.contains("Sign in to accept"),
        "{page}"
    );

    let (status, body) = accept(&app, &second, &invitee_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT m.roles FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.keycloak_id = \
         (SELECT keycloak_id FROM users WHERE email = $1)",
    )
    .bind(&invitee_email)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(roles, vec!["ORG_MANAGER"]);
    let accepted = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE action IN ('invitation.accept', 'account.link')",
    )
    .await;
    assert_eq!(
        accepted, 2,
        "accepting is audited, and so is linking the account"
    );
    // Used twice: refused, and nothing changes.
    let before = state(&app, &slug).await;
    let (status, body) = accept(&app, &second, &invitee_token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, page) = link_page(&app, &second).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("used already"), "{page}");
    assert_eq!(state(&app, &slug).await, before);

    // Expired and revoked links.
    let late = format!("{}@example.com", unique("late"));
    invite(&app, &admin, &slug, &late, json!(["ORG_USER"])).await;
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE email = $1")
        .bind(&late)
        .execute(&app.pool)
        .await
        .unwrap();
    let late_token = token_mailed(&late, 1).await;
    let (status, page) = link_page(&app, &late_token).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("has expired"), "{page}");
    let gone = format!("{}@example.com", unique("gone"));
    let withdrawn = invite(&app, &admin, &slug, &gone, json!(["ORG_USER"])).await;
    let (status, _) = call(
        &app,
        Some(&admin.token),
        Method::DELETE,
        &format!(
            "/api/v1/orgs/{slug}/invitations/{}",
            withdrawn["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone_token = token_mailed(&gone, 1).await;
    let (status, page) = link_page(&app, &gone_token).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("was withdrawn"), "{page}");
    let before = state(&app, &slug).await;
    for token in [&late_token, &gone_token] {
        let (status, _) = accept(&app, token, &invitee_token).await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
    assert_eq!(state(&app, &slug).await, before);

    // The list shows all of them; the audit log has every step.
    let (status, body) = call(
        &app,
        Some(&admin.token),
        Method::GET,
        &format!("/api/v1/orgs/{slug}/invitations"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 3, "{body}");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT action FROM audit_log ORDER BY action")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for wanted in [
        "invitation.create",
        "invitation.resend",
        "invitation.revoke",
        "invitation.accept",
    ] {
        assert!(
            actions.iter().any(|a| a == wanted),
            "{wanted} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn managers_invite_only_org_users_and_bad_batches_change_nothing() {
    let app = TestApp::spawn().await;
    let kc = KeycloakAdmin::connect().await;
    let manager = person(&kc, false).await;
    let slug = unique("mgr");
    let org_id = org(&app, &slug, "pro").await;
    member(
        &app,
        org_id,
        &manager.email,
        Some(&manager.keycloak_id),
        "ORG_MANAGER",
    )
    .await;
    let path = format!("/api/v1/orgs/{slug}/invitations");
    let post = |body: Value| call(&app, Some(&manager.token), Method::POST, &path, Some(body));

    let (status, _) = post(json!({"emails": ["boss@example.com"], "roles": ["ORG_ADMIN"]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let huge: Vec<String> = (0..51).map(|i| format!("p{i}@example.com")).collect();
    for (body, wanted) in [
        (
            json!({"emails": huge, "roles": ["ORG_USER"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"emails": [], "roles": ["ORG_USER"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"emails": ["ok@example.com", "not an address"], "roles": ["ORG_USER"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"emails": ["a@example.com\r\nBcc: evil@example.com"], "roles": ["ORG_USER"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"emails": ["ok@example.com"], "roles": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"emails": ["ok@example.com"], "roles": ["OWNER"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"emails": "ok@example.com", "roles": ["ORG_USER"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, problem) = post(body.clone()).await;
        assert_eq!(status, wanted, "{body}: {problem}");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM invitations").await, 0);
    assert!(
        mails_to("ok@example.com")
            .iter()
            .all(|m| { !m["subject"].as_str().unwrap_or_default().contains(&slug) })
    );
    let (status, body) = post(json!({"emails": ["ok@example.com"], "roles": ["ORG_USER"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Invited already: a second invitation is a conflict, not a second seat.
    let (status, _) = post(json!({"emails": ["OK@example.com"], "roles": ["ORG_USER"]})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Revoking as a stranger: as if the org did not exist.
    let stranger = person(&kc, false).await;
    let id = body["items"][0]["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        Some(&stranger.token),
        Method::DELETE,
        &format!("{path}/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM invitations WHERE status = 'pending'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_invited_person_creates_their_account_through_keycloak_lands_in_the_org_and_opens_an_org_manager_app()
 {
    let kc = KeycloakAdmin::connect().await;
    let BehindTraefik {
        app,
        traefik: _traefik,
        public,
        port: traefik_port,
        client_id,
    } = spawn_behind_traefik(&kc, |_| {}).await;
    let slug = unique("lc");
    org(&app, &slug, "pro").await;
    let (inviter, _) = person_with_id(&app.pool, &[(slug.as_str(), "ORG_ADMIN")]).await;

    // The ORG_ADMIN invites a new person as ORG_MANAGER on the invitations page.
    let admin = Browser::start().await;
    admin
        .goto(&format!("{public}/admin/orgs/{slug}/invitations"))
        .await;
    admin.keycloak_sign_in(&inviter, &inviter).await;
    admin.wait_for_text("Invite people").await;
    let newcomer = format!("{}@example.com", unique("newcomer"));
    admin.type_into("#invite-emails", &newcomer).await;
    admin.click("#invite-role-ORG_MANAGER").await;
    admin.click("#invite-button").await;
    let text = admin
        .wait_for_text(&format!("Invited {newcomer} as ORG_MANAGER"))
        .await;
    assert!(text.contains("Seats: 2 of 50"), "{text}");
    admin.screenshot_for_docs("invitations").await;

    // The mail, read from the stack's SMTP server, as the person sees it.
    let mail = nth_mail_to(&newcomer, 1).await;
    let html = mail["file"].as_str().unwrap().replace(".json", ".html");
    let person = Browser::start().await;
    person.goto(&format!("file://{html}")).await;
    person.wait_for_text("You are invited to").await;
    person.screenshot_for_docs("invitation-mail").await;
    let link = link_in(
        mail["text"].as_str().unwrap(),
        &format!("{public}/invitation?token="),
    );

    // The link: no account yet, so "create my account".
    person.goto(&link).await;
    person.wait_for_text("Create my account").await;
    person.screenshot_for_docs("invitation-page").await;
    person.click("#create-account-button").await;
    person.wait_for_text("Check your mail").await;
    let account = kc.user_by_email(&newcomer).await.expect("the account");
    assert_eq!(account["emailVerified"], true, "{account}");

    // Keycloak's own mail (through the realm's SMTP settings): set a password.
    let set_password = nth_mail_to(&newcomer, 2).await;
    let action = link_in(
        set_password["text"].as_str().unwrap(),
        "http://localhost:8180/realms/wizbrand/login-actions/action-token",
    );
    person.goto(&action).await;
    let password = "Chosen-Password-7";
    const PROCEED: &str = "a[href*=\"action-token\"], a[href*=\"/invitations\"]";
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let url = person.url().await;
        if url.starts_with(&format!("{public}/invitations")) {
            break;
        }
        let has = |css: &'static str| {
            let person = &person;
            async move {
                person
                    .script(&format!("return !!document.querySelector({})", json!(css)))
                    .await
                    == json!(true)
            }
        };
        if url.starts_with("http://localhost:8180/") {
            if has("#password-new").await {
                person.type_into("#password-new", password).await;
                person.type_into("#password-confirm", password).await;
                person.click("[type=submit]").await;
            } else if has("#firstName").await {
                person.type_into("#firstName", "New").await;
                person.type_into("#lastName", "Comer").await;
                person.click("[type=submit]").await;
            } else if has("#username").await {
                person.type_into("#username", &newcomer).await;
                person.type_into("#password", password).await;
                person.click("#kc-login").await;
            } else if has(PROCEED).await {
                // "Click here to proceed", then "Back to application".
                person.click(PROCEED).await;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not back on the invitations page: {url}: {}",
            person.text().await
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Signed in as the new account: the invitation is there, and accepting lands in the org.
    person.wait_for_text(&format!("Org {slug}")).await;
    person.click(&format!("#accept-{slug}")).await;
    let home = person
        .wait_for_text(&format!("Welcome to Org {slug}"))
        .await;
    assert!(home.contains(&format!("Organization: {slug}")), "{home}");
    let (roles, linked): (Vec<String>, Option<String>) = sqlx::query_as(
        "SELECT m.roles, u.keycloak_id FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE u.email = $1",
    )
    .bind(&newcomer)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(roles, vec!["ORG_MANAGER"]);
    assert_eq!(linked.as_deref(), account["id"].as_str());

    // The ORG_MANAGER app (files) through Traefik, with the identity headers.
    let files = format!("http://{slug}.files.wizbrand.localhost:{traefik_port}/");
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        // The gate follows Postgres within a second; ask again until it has.
        person.goto(&files).await;
        let text = person.text().await;
        if text.contains(&newcomer) {
            break text.to_ascii_lowercase();
        }
        assert!(Instant::now() < deadline, "the files app: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(text.contains(&format!("x-org-slug: {slug}")), "{text}");
    assert!(text.contains("x-org-roles: org_manager"), "{text}");

    person.quit().await;
    admin.quit().await;
    delete_client(&kc, &client_id).await;
}

#[tokio::test]
async fn the_admin_pages_say_when_no_seat_is_free() {
    let app = crate::signin::spawn_app().await;
    let owner = crate::signin::person(&app.pool, &[("beta", "ORG_ADMIN")]).await;
    sqlx::query("UPDATE orgs SET plan = 'free' WHERE slug = 'beta'")
        .execute(&app.pool)
        .await
        .unwrap();
    let beta: Uuid = sqlx::query_scalar("SELECT id FROM orgs WHERE slug = 'beta'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for i in 0..4 {
        member(
            &app,
            beta,
            &format!("{}@example.com", unique(&format!("m{i}-"))),
            None,
            "ORG_USER",
        )
        .await;
    }
    crate::signin::sign_in(&app, "/", &owner).await;
    let (status, page) = crate::signin::body(&app, "/admin/orgs/beta/invitations").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Seats: <strong>5</strong> of <strong>5</strong>"),
        "{page}"
    );
    assert!(page.contains("No seat is free"), "{page}");
    let csrf = crate::signin::csrf_of(&page);
    let post = |path: &str, form: Vec<(&str, String)>| {
        app.client
            .post(format!("{}{path}", app.address))
            .form(&form)
            .send()
    };
    let invited = post(
        "/admin/orgs/beta/invitations",
        vec![
            ("csrf", csrf.clone()),
            ("emails", "one@example.com\ntwo@example.com".into()),
            ("roles", "ORG_USER".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(invited.status(), StatusCode::FORBIDDEN);
    let page = invited.text().await.unwrap();
    assert!(page.contains("Quota exceeded"), "{page}");
    assert!(page.contains("members quota is 5"), "{page}");
    assert!(
        page.contains("one@example.com"),
        "the form keeps what was typed: {page}"
    );
    let added = post(
        "/admin/orgs/beta/members",
        vec![
            ("csrf", csrf.clone()),
            ("email", "three@example.com".into()),
            ("roles", "ORG_USER".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(added.status(), StatusCode::FORBIDDEN);
    let page = added.text().await.unwrap();
    assert!(
        page.contains("Quota exceeded") && page.contains("members quota is 5"),
        "{page}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM invitations").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE email LIKE 'three@%' OR email LIKE 'one@%'"
        )
        .await,
        0
    );
}
