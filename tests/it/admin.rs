//! The admin web UI against the real stack: a headless Chromium through a Traefik of the
//! test's own, the real Keycloak, and the sync writing into Keycloak; plain HTTP where an
//! exact status code is the point.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{KeycloakAdmin, TestApp, unique};
use crate::signin::{
    BehindTraefik, body, csrf_of, delete_client, person, person_with_id, sign_in, spawn_app,
    spawn_behind_traefik,
};

/// Polls `check` every 200 ms until it gives a value, failing after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_platform_admin_creates_gamma_adds_a_member_who_sets_a_password_and_opens_files() {
    // The dev layout on free ports: Traefik in front, wizbrand at auth.wizbrand.localhost,
    // the scheduler on (changes reach Keycloak within seconds) under a group root of its own.
    let admin = KeycloakAdmin::connect().await;
    let root = unique("t");
    let BehindTraefik {
        app,
        traefik: _traefik,
        public,
        port: traefik_port,
        client_id,
    } = spawn_behind_traefik(&admin, |env| {
        env.insert("WIZBRAND_SYNC_ENABLED".into(), "true".into());
        env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), root.clone());
        // No full run on the clock during the test: the runs here are the ones it asks for.
        env.insert("WIZBRAND_SYNC_CRON".into(), "0 0 0 1 1 *".into());
    })
    .await;
    // An org whose name is markup: it must show as text.
    sqlx::query(
        "INSERT INTO orgs (slug, name, features) VALUES ('markup', '<script>alert(1)</script>', '{}')",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let browser = Browser::start().await;
    browser.goto(&format!("{public}/admin/orgs/new")).await;
    // Not signed in: Keycloak first, then back on the page asked for.
    browser.keycloak_sign_in("dana", "dana").await;
    browser
        .wait_for_url(&format!("{public}/admin/orgs/new"))
        .await;
    browser.screenshot("org-new").await;

    // A wrong slug keeps what was typed and says what is wrong next to the field.
    browser.type_into("#slug", "Gamma Org").await;
    browser.type_into("#name", "Gamma Inc").await;
    browser.click("#feature-files").await;
    browser.click("#save-org").await;
    browser.wait_for_text("is not a valid").await;
    browser.find("#slug-error").await;
    let kept = browser
        .script("return [document.querySelector('#name').value, document.querySelector('#feature-files').checked]")
        .await;
    assert_eq!(kept, json!(["Gamma Inc", true]));

    browser
        .script("document.querySelector('#slug').value = ''")
        .await;
    browser.type_into("#slug", "gamma").await;
    browser.click("#save-org").await;
    browser
        .wait_for_url(&format!("{public}/admin/orgs/gamma"))
        .await;
    let text = browser.wait_for_text("Created Gamma Inc (gamma).").await;
    assert!(text.contains("features files"), "{text}");

    // A new member by email, as ORG_USER.
    let email = format!("{}@example.com", unique("gamma-user"));
    browser.type_into("#member-email", &email).await;
    browser.click("#add-role-ORG_USER").await;
    browser.click("#add-member-button").await;
    browser
        .wait_for_text(&format!("Added {email} as ORG_USER."))
        .await;
    browser.screenshot("org-page").await;

    // The org list, with the markup org's name as plain text.
    browser.goto(&format!("{public}/admin/orgs")).await;
    let text = browser.wait_for_text("gamma").await;
    assert!(text.contains("<script>alert(1)</script>"), "{text}");
    let names = browser
        .script("return document.querySelectorAll('script').length")
        .await;
    assert_eq!(names, json!(0), "no script element made it into the page");
    browser.screenshot("orgs").await;

    // On a phone's width the org page is one column that still fits.
    browser.goto(&format!("{public}/admin/orgs/gamma")).await;
    browser.set_window(390, 844).await;
    let overflow = browser
        .script("return document.documentElement.scrollWidth > window.innerWidth + 1")
        .await;
    assert_eq!(overflow, json!(false), "no sideways scrolling on a phone");
    browser.screenshot("org-page-phone").await;
    browser.set_window(1200, 900).await;

    // The sync created the user in Keycloak, with the required actions.
    let user = eventually(
        "the sync to create the user",
        Duration::from_secs(60),
        || {
            let admin = &admin;
            let email = email.clone();
            async move { admin.user_by_email(&email).await }
        },
    )
    .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let actions = user["requiredActions"].to_string();
    assert!(actions.contains("UPDATE_PASSWORD"), "{actions}");
    // A hand-made change in Keycloak: a stray group under the root. Only a full run
    // removes it (the runs that changes trigger are scoped to their org, and the cron is
    // set a year away), so the sync page's dry run must list it, "sync now" removes it
    // and reports, and then nothing is left.
    let root_group = admin.find_group(&format!("/{root}")).await.unwrap();
    admin
        .send(
            Method::POST,
            &format!("/groups/{}/children", root_group["id"].as_str().unwrap()),
            Some(json!({"name": "ghost"})),
        )
        .await;
    // A run the scheduler started may hold the lock: the page then says so; ask again.
    let dry_run = |wanted: String| {
        let browser = &browser;
        let public = public.clone();
        async move {
            eventually(&wanted.clone(), Duration::from_secs(60), || {
                let public = public.clone();
                let wanted = wanted.clone();
                async move {
                    // The dry run is a form post (CSRF token and all), not a link.
                    browser.goto(&format!("{public}/admin/sync")).await;
                    browser.click("#show-plan").await;
                    // The click returns before the answer: wait for it, or the next
                    // goto would cancel the dry run's page.
                    browser
                        .wait_for_url(&format!("{public}/admin/sync/plan"))
                        .await;
                    let text = browser.text().await;
                    text.contains(&wanted).then_some(text)
                }
            })
            .await
        }
    };
    let plan = dry_run(format!("delete group /{root}/ghost")).await;
    assert!(plan.contains("What would change now"), "{plan}");
    browser.click("#sync-now").await;
    // The page waits up to 20 s for the run; a slower one is reported as still running.
    browser.find("#flash").await;
    let flash = browser
        .script("return document.querySelector('#flash').innerText")
        .await;
    let flash = flash.as_str().unwrap_or_default();
    assert!(
        (flash.contains("Sync run #") && flash.contains("succeeded"))
            || flash.contains("still running"),
        "{flash}"
    );
    browser.screenshot("sync").await;
    dry_run("Nothing: Keycloak matches Postgres.".to_owned()).await;
    assert!(admin.find_group(&format!("/{root}/ghost")).await.is_none());

    // What the emailed links would do (no mail server here): a temporary password
    // (Keycloak asks for a new one at sign-in) and the email confirmed.
    admin
        .send(
            Method::PUT,
            &format!("/users/{id}/reset-password"),
            Some(json!({"type": "password", "value": "temporary-1", "temporary": true})),
        )
        .await;
    let mut user = admin.get(&format!("/users/{id}")).await;
    user["emailVerified"] = json!(true);
    user["requiredActions"] = json!(["UPDATE_PASSWORD"]);
    admin
        .send(Method::PUT, &format!("/users/{id}"), Some(user))
        .await;

    // The new member opens gamma's files app through Traefik.
    let member = Browser::start().await;
    let files = format!("http://gamma.files.wizbrand.localhost:{traefik_port}/");
    member.goto(&files).await;
    member.keycloak_sign_in(&email, "temporary-1").await;
    member.find("#password-new").await;
    member.type_into("#password-new", "Chosen-Password-2").await;
    member
        .type_into("#password-confirm", "Chosen-Password-2")
        .await;
    member.click("[type=submit]").await;
    // The realm's user profile asks for names at first sign-in.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !member.url().await.starts_with(&files) {
        if member.url().await.starts_with("http://localhost:8180/")
            && member
                .script("return !!document.querySelector('#firstName')")
                .await
                == json!(true)
        {
            member.type_into("#firstName", "Gamma").await;
            member.type_into("#lastName", "Member").await;
            member.click("[type=submit]").await;
        }
        assert!(
            Instant::now() < deadline,
            "not back on the app: {}",
            member.text().await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // docs/design.md puts FileBrowser at ORG_MANAGER and up: an ORG_USER is told so.
    let refused = member.wait_for_text("needs the role ORG_MANAGER").await;
    assert!(refused.contains("Access denied"), "{refused}");
    member.screenshot("gate-403").await;

    // The platform admin makes them ORG_MANAGER on the org page; the gate follows.
    browser.goto(&format!("{public}/admin/orgs/gamma")).await;
    let row = format!("tr[data-email=\"{email}\"]");
    browser
        .click(&format!("{row} input[value=ORG_MANAGER]"))
        .await;
    browser.click(&format!("{row} .save-roles")).await;
    browser
        .wait_for_text(&format!("{email}: roles are now ORG_MANAGER, ORG_USER."))
        .await;
    let text = eventually(
        "the gate to let the manager in",
        Duration::from_secs(10),
        || {
            let member = &member;
            let files = files.clone();
            let email = email.clone();
            async move {
                member.goto(&files).await;
                let text = member.text().await;
                // The app's echo (the refusal page names the person too).
                (text.to_ascii_lowercase().contains("x-org-slug") && text.contains(&email))
                    .then_some(text)
            }
        },
    )
    .await
    .to_ascii_lowercase();
    assert!(text.contains("x-org-slug: gamma"), "{text}");
    assert!(text.contains("x-org-roles: org_manager,org_user"), "{text}");
    member.quit().await;
    browser.quit().await;
    delete_client(&admin, &client_id).await;
}

#[tokio::test]
async fn an_org_manager_gets_403_on_the_edit_plan_page_and_its_form() {
    let app = spawn_app().await;
    let manager = person(&app.pool, &[("beta", "ORG_MANAGER")]).await;
    sign_in(&app, "/", &manager).await;

    let (status, page) = body(&app, "/admin/orgs/beta").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("id=\"edit-org\""),
        "no edit link for a manager"
    );
    let csrf = csrf_of(&page);

    let (status, page) = body(&app, "/admin/orgs/beta/edit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Access denied"), "{page}");

    let post = |path: &str, form: Vec<(&str, String)>| {
        app.client
            .post(format!("{}{path}", app.address))
            .form(&form)
            .send()
    };
    let edit = post(
        "/admin/orgs/beta/edit",
        vec![
            ("csrf", csrf.clone()),
            ("name", "Beta".into()),
            ("plan", "enterprise".into()),
            ("features", "files".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(edit.status(), StatusCode::FORBIDDEN);
    let plan: String = sqlx::query_scalar("SELECT plan FROM orgs WHERE slug = 'beta'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(plan, "free", "nothing changed");

    // A manager may add ORG_USERs, never grant ORG_ADMIN.
    let escalate = post(
        "/admin/orgs/beta/members",
        vec![
            ("csrf", csrf.clone()),
            ("email", "friend@example.com".into()),
            ("roles", "ORG_ADMIN".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(escalate.status(), StatusCode::FORBIDDEN);
    let added = post(
        "/admin/orgs/beta/members",
        vec![
            ("csrf", csrf.clone()),
            ("email", "friend@example.com".into()),
            ("roles", "ORG_USER".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let (_, page) = body(&app, "/admin/orgs/beta").await;
    assert!(
        page.contains("Added friend@example.com as ORG_USER."),
        "flash after the change: {page}"
    );

    // Another org of which the manager is no member: as if it did not exist.
    sqlx::query("INSERT INTO orgs (slug, name) VALUES ('other', 'Other')")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, _) = body(&app, "/admin/orgs/other").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dry_run_refuses_get_and_runs_only_as_a_post_with_its_csrf_token() {
    let app = spawn_app().await;
    // A platform admin of the test's own (the shared dana signs in elsewhere meanwhile).
    let (username, keycloak_id) = person_with_id(&app.pool, &[]).await;
    let kc = KeycloakAdmin::connect().await;
    let role = kc.get("/roles/wizbrand-admin").await;
    kc.send(
        Method::POST,
        &format!("/users/{keycloak_id}/role-mappings/realm"),
        Some(json!([role])),
    )
    .await;
    sign_in(&app, "/", &username).await;
    let runs = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sync_runs WHERE dry_run")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    // A link from any site (the session cookie is SameSite=Lax) runs nothing.
    let (status, page) = body(&app, "/admin/sync?plan=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("id=\"plan") && page.contains("id=\"show-plan\""),
        "{page}"
    );
    assert_eq!(runs().await, 0, "a GET ran the dry run");
    // A post without the token, or with a wrong one, neither.
    let post = |fields: Vec<(&'static str, String)>| {
        app.client
            .post(format!("{}/admin/sync/plan", app.address))
            .form(&fields)
            .send()
    };
    for fields in [vec![], vec![("csrf", "wrong".to_owned())]] {
        let refused = post(fields).await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.text().await.unwrap().contains("CSRF check failed"));
    }
    assert_eq!(runs().await, 0, "a forged post ran the dry run");
    // The page's own form: the plan, read only (a dry run records no run).
    let csrf = csrf_of(&page);
    let shown = post(vec![("csrf", csrf)]).await.unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    let shown = shown.text().await.unwrap();
    assert!(shown.contains("What would change now</h2>"), "{shown}");
    assert_eq!(runs().await, 0);
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(all, 0, "a dry run wrote a sync_runs row");
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let owner = person(&app.pool, &[("acme", "ORG_ADMIN")]).await;
    sign_in(&app, "/", &owner).await;
    for (path, form) in [
        (
            "/admin/orgs/acme/members",
            vec![("email", "x@example.com"), ("roles", "ORG_USER")],
        ),
        ("/admin/orgs/acme/apps", vec![("open", "seo")]),
        ("/admin/orgs/acme/delete", vec![("confirm", "acme")]),
        ("/admin/orgs", vec![("slug", "forged"), ("name", "Forged")]),
    ] {
        for csrf in [None, Some("wrong")] {
            let mut fields = form.clone();
            if let Some(csrf) = csrf {
                fields.push(("csrf", csrf));
            }
            let response = app
                .client
                .post(format!("{}{path}", app.address))
                .form(&fields)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{path} {csrf:?}"
            );
            assert!(response.text().await.unwrap().contains("CSRF check failed"));
        }
    }
    let (orgs, members): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM orgs), (SELECT count(*) FROM memberships)")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((orgs, members), (1, 1));
}

#[tokio::test]
async fn the_last_org_admin_cannot_be_demoted_or_removed_and_the_page_says_why() {
    let app = spawn_app().await;
    let owner = person(&app.pool, &[("acme", "ORG_ADMIN")]).await;
    let email = format!("{owner}@example.com");
    sign_in(&app, "/", &owner).await;
    let (_, page) = body(&app, "/admin/orgs/acme").await;
    assert!(
        page.contains("The last ORG_ADMIN cannot be demoted or removed"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let post = |path: &str, form: Vec<(&str, String)>| {
        app.client
            .post(format!("{}{path}", app.address))
            .form(&form)
            .send()
    };
    let demote = post(
        "/admin/orgs/acme/members/roles",
        vec![
            ("csrf", csrf.clone()),
            ("email", email.clone()),
            ("roles", "ORG_USER".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(demote.status(), StatusCode::SEE_OTHER);
    let (_, page) = body(&app, "/admin/orgs/acme").await;
    assert!(
        page.contains("an org keeps at least one ORG_ADMIN"),
        "{page}"
    );
    let remove = post(
        "/admin/orgs/acme/members/remove",
        vec![("csrf", csrf.clone()), ("email", email.clone())],
    )
    .await
    .unwrap();
    assert_eq!(remove.status(), StatusCode::SEE_OTHER);
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT m.roles FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = $1",
    )
    .bind(&email)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(roles, vec!["ORG_ADMIN"]);
    // The audit log shows nothing happened; a real change shows up there.
    let added = post(
        "/admin/orgs/acme/members",
        vec![
            ("csrf", csrf.clone()),
            ("email", "second@example.com".into()),
            ("roles", "ORG_ADMIN".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let (status, page) = body(&app, "/admin/audit?action=member.").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("acme/second@example.com"), "{page}");
    assert!(!page.contains(&format!("acme/{email}")), "{page}");
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_that_forbids_framing() {
    let app = TestApp::spawn().await;
    for path in ["/", "/signed-out", "/auth/callback"] {
        let response = app.get(path).await;
        let csp = response
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert_eq!(response.headers()["x-frame-options"], "DENY", "{path}");
    }
    let css = app.get("/static/wizbrand.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

/// `/admin/explain` runs the gate's decision for a person and a URL: an ORG_ADMIN sees
/// it for URLs of their own org only, a member no more than their roles there, and a
/// platform admin everything; people without an admin role see none of it.
#[tokio::test]
async fn org_admins_explain_the_gates_decisions_for_their_own_org_only() {
    let app = spawn_app().await;
    let as_another = || app.another_browser();
    let admin = person(&app.pool, &[("acme", "ORG_ADMIN")]).await;
    let (member, member_sub) =
        person_with_id(&app.pool, &[("acme", "ORG_USER"), ("beta", "ORG_USER")]).await;
    let (outsider, outsider_sub) = person_with_id(&app.pool, &[("beta", "ORG_USER")]).await;
    // Linked as a first sign-in would link them.
    for (name, sub) in [(&member, &member_sub), (&outsider, &outsider_sub)] {
        sqlx::query("UPDATE users SET keycloak_id = $2 WHERE email = $1")
            .bind(format!("{name}@example.com"))
            .bind(sub)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    sign_in(&app, "/", &admin).await;
    let explain = |viewer: &TestApp, who: &str, url: &str| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("email", &format!("{who}@example.com"))
            .append_pair("url", url)
            .finish();
        let viewer = viewer.clone();
        async move { body(&viewer, &format!("/admin/explain?{query}")).await }
    };
    let seo = "http://acme.seo.wizbrand.localhost:8000/reports";
    // The gate's state follows the sign-in's account link within a second.
    let page = eventually(
        "the admin's link in the gate's state",
        Duration::from_secs(5),
        || async {
            let (status, page) = explain(&app, &member, seo).await;
            (status == StatusCode::OK && page.contains("id=\"outcome\"")).then_some(page)
        },
    )
    .await;
    assert!(page.contains("200: allowed"), "{page}");
    assert!(
        page.contains("<code>x-org-slug</code></td><td><code>acme</code>"),
        "{page}"
    );
    assert!(page.contains(&member_sub), "{page}");
    // A refusal names the step and the reason the person would see.
    let (_, page) = explain(&app, &member, "http://acme.files.wizbrand.localhost:8000/").await;
    assert!(page.contains("403 role-too-low"), "{page}");
    assert!(
        page.contains("class=\"stop\"><strong>role</strong>"),
        "{page}"
    );
    // Not about another org, nor about who is not in theirs.
    let (status, page) = explain(&app, &member, "http://beta.seo.wizbrand.localhost:8000/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!page.contains("id=\"steps\""), "{page}");
    let (status, page) = explain(&app, &outsider, seo).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("is not a member of"), "{page}");
    assert!(
        !page.contains(&outsider_sub) && !page.contains("id=\"steps\""),
        "{page}"
    );
    let (_, page) = explain(&app, "nobody-at-all", seo).await;
    assert!(
        page.contains("is not a member of"),
        "the same answer: {page}"
    );

    // A platform admin sees every step for anyone.
    let dana = as_another();
    sign_in(&dana, "/", "dana").await;
    let (status, page) = explain(&dana, &outsider, seo).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("403 not-member"), "{page}");
    assert!(
        page.contains("class=\"stop\"><strong>membership</strong>"),
        "{page}"
    );

    // A member without an admin role: no explanations at all.
    let plain = as_another();
    sign_in(&plain, "/", &member).await;
    let (status, _) = explain(&plain, &member, seo).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
