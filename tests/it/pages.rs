//! The pages as people meet them (issue 17): the gate's refusal on an app host, the
//! 404 page, the header on every page, the home page's orgs and apps, switching, the
//! plan select, removal with a confirmation, the audit log in words, the sync page in
//! words, refusals that name who can help, and phones. A headless Chromium through a
//! Traefik of the test's own where it is about what a person sees; plain HTTP where a
//! status code or a page's words are the point.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::helpers::{KeycloakAdmin, TestApp, TestTraefik, free_port, unique};
use crate::signin::{
    BehindTraefik, body, csrf_of, delete_client, person, person_with_id, sign_in, spawn_app,
    spawn_app_with, spawn_behind_traefik,
};

/// wizbrand behind a Traefik of its own, at `auth.wizbrand.localhost:<port>`, with a
/// sign-in client of its own.
struct Site {
    app: TestApp,
    public: String,
    port: u16,
    admin: KeycloakAdmin,
    client_id: String,
    _traefik: TestTraefik,
}

impl Site {
    async fn start() -> Site {
        let admin = KeycloakAdmin::connect().await;
        let BehindTraefik {
            app,
            traefik,
            public,
            port,
            client_id,
        } = spawn_behind_traefik(&admin, |_| {}).await;
        Site {
            app,
            public,
            port,
            admin,
            client_id,
            _traefik: traefik,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public)
    }

    fn app_host(&self, org: &str, app: &str) -> String {
        format!("http://{org}.{app}.wizbrand.localhost:{}/", self.port)
    }

    async fn stop(self) {
        delete_client(&self.admin, &self.client_id).await;
    }
}

/// Makes a test's own Keycloak user a platform admin (realm role `wizbrand-admin`).
async fn make_platform_admin(keycloak_id: &str) {
    let kc = KeycloakAdmin::connect().await;
    let role = kc.get("/roles/wizbrand-admin").await;
    kc.send(
        Method::POST,
        &format!("/users/{keycloak_id}/role-mappings/realm"),
        Some(json!([role])),
    )
    .await;
}

async fn attr(browser: &Browser, css: &str, name: &str) -> String {
    browser.find(css).await;
    browser
        .script(&format!(
            "return document.querySelector('{css}').getAttribute('{name}')"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The site's header is there: the brand linking home, and who is signed in (or not).
async fn assert_header(browser: &Browser, signed_in: bool) {
    let found = browser
        .script(
            "return [!!document.querySelector('header nav .brand'), \
             !!document.querySelector('#who'), !!document.querySelector('a.skip')]",
        )
        .await;
    assert_eq!(
        found,
        json!([true, signed_in, true]),
        "header on {}",
        browser.url().await
    );
}

/// Opens `url` until its page shows `needle` (the gate's memory follows a sign-in's
/// link of the account within a second); returns the text.
async fn open_until(browser: &Browser, url: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = browser.text().await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "`{needle}` not on {}: {text}",
            browser.url().await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        browser.goto(url).await;
    }
}

/// Whether the page scrolls sideways at the window's width.
async fn overflows(browser: &Browser) -> bool {
    browser
        .script("return document.documentElement.scrollWidth > window.innerWidth + 1")
        .await
        == json!(true)
}

#[tokio::test]
async fn the_refusal_on_an_app_host_is_styled_and_its_links_reach_the_auth_host() {
    let site = Site::start().await;
    // Two orgs; files needs ORG_MANAGER: refused in acme.
    let username = person(
        &site.app.pool,
        &[("acme", "ORG_USER"), ("beta", "ORG_USER")],
    )
    .await;
    let browser = Browser::start().await;
    let files = site.app_host("acme", "files");
    browser.goto(&files).await;
    browser.keycloak_sign_in(&username, &username).await;
    browser.wait_for_url(&files).await;
    let text = open_until(&browser, &files, "needs the role ORG_MANAGER").await;
    assert!(text.contains("Access denied"), "{text}");

    // Styled: the stylesheet comes from the auth host (the app host serves none).
    let sheet = attr(&browser, "link[rel=stylesheet]", "href").await;
    assert_eq!(sheet, site.url("/static/wizbrand.css"));
    let header_background = browser
        .script("return getComputedStyle(document.querySelector('header')).backgroundColor")
        .await;
    assert_eq!(header_background, json!("rgb(246, 247, 250)"), "unstyled");
    assert_header(&browser, true).await;
    browser.screenshot("gate-403-app-host").await;

    // Every link goes to the auth host: none is relative to the app host.
    let hrefs = browser
        .script("return [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
        .await;
    for href in hrefs.as_array().unwrap() {
        let href = href.as_str().unwrap();
        assert!(
            href == "#main" || href.starts_with(&site.public),
            "a link off the auth host: {href}"
        );
    }
    assert_eq!(attr(&browser, "#home", "href").await, site.url("/"));
    assert_eq!(
        attr(&browser, "#sign-out-link", "href").await,
        site.url("/logout")
    );
    // The chooser on the auth host, and from there back through the hand-off (which
    // renews this host's cookie with the new org).
    let switch = attr(&browser, "#switch-org", "href").await;
    assert!(
        switch.starts_with(&site.url("/orgs/select?rd=")) && switch.contains("hand-off"),
        "{switch}"
    );

    // "Switch organization" lands on the chooser on the auth host, with the header: no loop.
    browser.click("#switch-org").await;
    browser.wait_for_url(&site.url("/orgs/select")).await;
    browser.wait_for_text("Choose an organization").await;
    assert_header(&browser, true).await;
    browser.find("#org-beta").await;

    // Home, from the refusal.
    browser.goto(&files).await;
    browser.wait_for_text("Access denied").await;
    browser.click("#home").await;
    browser.wait_for_url(&site.url("/")).await;
    browser.wait_for_text("Your organizations").await;

    // Sign out, from the refusal: the auth host asks first, then signs out.
    browser.goto(&files).await;
    browser.wait_for_text("Access denied").await;
    browser.click("#sign-out-link").await;
    browser.wait_for_url(&site.url("/logout")).await;
    browser.wait_for_text("Sign out?").await;
    browser.click("#confirm-sign-out").await;
    browser.wait_for_url(&site.url("/signed-out")).await;
    browser.wait_for_text("You are signed out").await;
    assert_header(&browser, false).await;

    // Someone with one org is not offered a switch that could change nothing.
    let single = person(&site.app.pool, &[("acme", "ORG_USER")]).await;
    browser.goto(&files).await;
    browser.keycloak_sign_in(&single, &single).await;
    browser.wait_for_url(&files).await;
    open_until(&browser, &files, "needs the role ORG_MANAGER").await;
    let switch = browser
        .script("return !!document.querySelector('#switch-org')")
        .await;
    assert_eq!(switch, json!(false));
    browser.quit().await;
    site.stop().await;
}

#[tokio::test]
async fn home_lists_each_org_with_its_apps_and_a_switch_is_confirmed() {
    let site = Site::start().await;
    let username = person(
        &site.app.pool,
        &[("acme", "ORG_USER"), ("beta", "ORG_USER")],
    )
    .await;
    sqlx::query("UPDATE orgs SET features = ARRAY['seo','music'] WHERE slug = 'acme'")
        .execute(&site.app.pool)
        .await
        .unwrap();
    let browser = Browser::start().await;
    browser.goto(&site.url("/orgs/select?rd=%2F")).await;
    browser.keycloak_sign_in(&username, &username).await;
    browser.wait_for_url(&site.url("/orgs/select")).await;
    assert_header(&browser, true).await;
    browser.click("#org-acme").await;
    browser.wait_for_url(&site.url("/")).await;
    // The choice is confirmed.
    let text = browser.wait_for_text("Switched to Org acme (acme).").await;
    assert!(text.contains("Organization: acme"), "{text}");

    // Each org with the apps open to this person there, as links; hosts that name an
    // org are explained.
    assert!(text.contains("always opens in that organization"), "{text}");
    assert_eq!(
        attr(&browser, "#open-acme-seo", "href").await,
        site.app_host("acme", "seo")
    );
    assert_eq!(
        attr(&browser, "#open-acme-music", "href").await,
        site.app_host("acme", "music")
    );
    assert_eq!(
        attr(&browser, "#open-beta-seo", "href").await,
        site.app_host("beta", "seo")
    );
    let closed = browser
        .script("return [!!document.querySelector('#open-beta-music'), !!document.querySelector('#open-acme-files')]")
        .await;
    assert_eq!(closed, json!([false, false]), "apps not open are not links");
    browser.screenshot("home").await;

    // Switching from home: the other org's button, confirmed at once.
    browser.click("#switch-beta").await;
    let text = browser.wait_for_text("Switched to Org beta (beta).").await;
    assert!(text.contains("Organization: beta"), "{text}");
    let switch_to_current = browser
        .script("return !!document.querySelector('#switch-beta')")
        .await;
    assert_eq!(switch_to_current, json!(false));
    // An app link works: the app answers for that org.
    browser.click("#open-acme-seo").await;
    browser.wait_for_url(&site.app_host("acme", "seo")).await;
    let text = browser
        .wait_for_text("X-Org-Slug")
        .await
        .to_ascii_lowercase();
    assert!(text.contains("x-org-slug: acme"), "{text}");
    browser.quit().await;

    // One org: no switch anywhere.
    let single = person(&site.app.pool, &[("acme", "ORG_USER")]).await;
    let browser = Browser::start().await;
    browser.goto(&site.url("/")).await;
    browser.click("#home-sign-in").await;
    browser.keycloak_sign_in(&single, &single).await;
    browser.wait_for_url(&site.url("/")).await;
    let text = browser.wait_for_text("Your organizations").await;
    assert!(!text.contains("Switch"), "{text}");
    browser.quit().await;
    site.stop().await;
}

#[tokio::test]
async fn every_page_has_the_header_and_unknown_paths_get_a_page() {
    let site = Site::start().await;
    let browser = Browser::start().await;

    // The landing page says what this is; its skip link, focused, covers nothing.
    browser.goto(&site.url("/")).await;
    let text = browser.wait_for_text("You are not signed in").await;
    assert!(
        text.contains("signs people in to their organization's apps"),
        "{text}"
    );
    assert_header(&browser, false).await;
    let overlap = browser
        .script(
            "const s = document.querySelector('a.skip'); s.focus(); \
             const a = s.getBoundingClientRect(), b = document.querySelector('.brand').getBoundingClientRect(); \
             return document.activeElement === s && !(a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top)",
        )
        .await;
    assert_eq!(
        overlap,
        json!(false),
        "the focused skip link covers the logo"
    );
    browser.screenshot("landing").await;

    // A path nothing serves: a page with the header and a way home.
    browser.goto(&site.url("/admin/nowhere")).await;
    browser.wait_for_text("Page not found").await;
    assert_header(&browser, false).await;
    browser.click("#home").await;
    browser.wait_for_url(&site.url("/")).await;

    // No org: the page has the header, and no dead-end switch.
    let (nobody, keycloak_id) = person_with_id(&site.app.pool, &[]).await;
    make_platform_admin(&keycloak_id).await;
    browser.goto(&site.url("/orgs/select")).await;
    browser.keycloak_sign_in(&nobody, &nobody).await;
    browser.wait_for_url(&site.url("/orgs/select")).await;
    let text = browser.wait_for_text("No organization").await;
    assert_header(&browser, true).await;
    assert!(
        text.contains("create an organization"),
        "a platform admin: {text}"
    );
    browser.goto(&site.url("/")).await;
    let text = browser
        .wait_for_text("not a member of any organization")
        .await;
    assert!(!text.contains("Switch"), "{text}");
    // Signed in, the 404 page shows who and where to go.
    browser
        .goto(&site.url("/admin/orgs/acme/nothing-here"))
        .await;
    browser.wait_for_text("Page not found").await;
    assert_header(&browser, true).await;
    browser.screenshot("not-found").await;
    browser.quit().await;
    site.stop().await;
}

#[tokio::test]
async fn unknown_paths_answer_a_page_or_problem_json_and_form_addresses_lead_back() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(format!("{}/no/such/page", app.address))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.headers().contains_key("content-security-policy"));
    let text = page.text().await.unwrap();
    assert!(
        text.contains("Page not found") && text.contains("/no/such/page"),
        "{text}"
    );
    assert!(text.contains("href=\"/static/wizbrand.css\""), "{text}");
    // On an app host (Traefik sends `/_wizbrand/…` there to wizbrand), the page links to
    // the auth host.
    let on_app_host = app
        .client
        .get(format!("{}/_wizbrand/nothing", app.address))
        .header("host", "acme.seo.wizbrand.localhost")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(on_app_host.status(), StatusCode::NOT_FOUND);
    let text = on_app_host.text().await.unwrap();
    assert!(
        text.contains(&format!("href=\"{}/static/wizbrand.css\"", app.address)),
        "{text}"
    );
    assert!(!text.contains("href=\"/"), "{text}");
    let machine = app.get("/no/such/thing").await;
    assert_eq!(machine.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        machine.headers()["content-type"],
        "application/problem+json"
    );
    // The API keeps its own problem+json 404.
    let api = app.get("/api/v1/nothing").await;
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(api.headers()["content-type"], "application/problem+json");

    // A form's address asked for with GET (a reload after an error): the org page.
    for path in [
        "/admin/orgs/acme/members",
        "/admin/orgs/acme/members/roles",
        "/admin/orgs/acme/apps",
        "/admin/orgs/acme/status",
    ] {
        let back = app.get(path).await;
        assert_eq!(back.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(back.headers()["location"], "/admin/orgs/acme", "{path}");
    }
    let back = app.get("/admin/sync/plan").await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(back.headers()["location"], "/admin/sync");
}

#[tokio::test]
async fn the_plan_is_chosen_from_the_known_set_and_anything_else_is_refused_with_the_choices() {
    let app = spawn_app().await;
    let (username, keycloak_id) = person_with_id(&app.pool, &[]).await;
    make_platform_admin(&keycloak_id).await;
    sign_in(&app, "/", &username).await;
    let (status, page) = body(&app, "/admin/orgs/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<select id=\"plan\" name=\"plan\""), "{page}");
    for plan in ["free", "pro", "enterprise"] {
        assert!(
            page.contains(&format!("<option value=\"{plan}\"")),
            "{page}"
        );
    }
    let csrf = csrf_of(&page);
    let post = |fields: Vec<(&'static str, &str)>| {
        let fields: Vec<(&str, String)> =
            fields.into_iter().map(|(k, v)| (k, v.to_owned())).collect();
        app.client
            .post(format!("{}/admin/orgs", app.address))
            .form(&fields)
            .send()
    };
    let refused = post(vec![
        ("csrf", &csrf),
        ("slug", "Bad Slug!"),
        ("name", "Platinum"),
        ("plan", "platinum"),
    ])
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("&#34;platinum&#34; is not a plan; plans are free, pro, enterprise"),
        "{page}"
    );
    // The slug comes back as typed, not lower-cased, and the summary sits at the top.
    assert!(page.contains("value=\"Bad Slug!\""), "{page}");
    assert!(
        page.contains("&#34;Bad Slug!&#34; is not a valid org slug"),
        "{page}"
    );
    assert!(!page.contains('`'), "no backticks for people: {page}");
    let summary = page.find("id=\"errors\"").unwrap();
    assert!(summary < page.find("id=\"org-form\"").unwrap(), "{page}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orgs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);

    // The API says the same, with the allowed values, and its document agrees.
    let token = crate::helpers::user_token(&username, &username, "wizbrand-test").await;
    let token = token["access_token"].as_str().unwrap();
    let api = |method: Method, path: &str, body: Value| {
        app.client
            .request(method, format!("{}/api/v1{path}", app.address))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let refused = api(
        Method::POST,
        "/orgs",
        json!({"slug": "plat", "name": "Plat", "plan": "platinum"}),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("platinum") && detail.contains("`free`, `pro`, `enterprise`"),
        "{detail}"
    );
    let created = api(
        Method::POST,
        "/orgs",
        json!({"slug": "plat", "name": "Plat", "plan": "enterprise"}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let patched = api(Method::PATCH, "/orgs/plat", json!({"plan": "gold"}))
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert_eq!(
        doc["components"]["schemas"]["Plan"]["enum"],
        json!(["free", "pro", "enterprise"])
    );
    assert_eq!(
        doc["components"]["schemas"]["OrgCreate"]["properties"]["plan"]["$ref"],
        "#/components/schemas/Plan"
    );
}

#[tokio::test]
async fn forms_validate_removal_asks_first_and_phones_get_cards() {
    let site = Site::start().await;
    let (username, keycloak_id) = person_with_id(&site.app.pool, &[]).await;
    make_platform_admin(&keycloak_id).await;
    let browser = Browser::start().await;
    browser.goto(&site.url("/admin/orgs/new")).await;
    browser.keycloak_sign_in(&username, &username).await;
    browser.wait_for_url(&site.url("/admin/orgs/new")).await;

    // A bad slug: shown back as typed, the summary at the top, the page there.
    browser.type_into("#slug", "Bad Slug!").await;
    browser.type_into("#name", "Delta").await;
    let plans = browser
        .script("return [...document.querySelectorAll('#plan option')].map(o => o.value)")
        .await;
    assert_eq!(plans, json!(["free", "pro", "enterprise"]));
    browser.click("#save-org").await;
    browser.find("#errors").await;
    assert!(
        browser.url().await.ends_with("#errors"),
        "{}",
        browser.url().await
    );
    let kept = browser
        .script("return document.querySelector('#slug').value")
        .await;
    assert_eq!(kept, json!("Bad Slug!"));
    let summary_top = browser
        .script("return document.querySelector('#errors').getBoundingClientRect().top")
        .await;
    assert!(
        summary_top
            .as_f64()
            .is_some_and(|t| (0.0..900.0).contains(&t)),
        "the summary is in view: {summary_top}"
    );
    browser.screenshot("org-new-errors").await;
    browser
        .script("document.querySelector('#slug').value = ''")
        .await;
    browser.type_into("#slug", "delta").await;
    browser
        .script("document.querySelector('#plan').value = 'pro'")
        .await;
    browser.click("#feature-seo").await;
    browser.click("#save-org").await;
    browser.wait_for_url(&site.url("/admin/orgs/delta")).await;
    browser.wait_for_text("Created Delta (delta).").await;
    assert_eq!(
        browser
            .script("return document.querySelector('#org-plan').innerText")
            .await,
        json!("pro")
    );

    // Two members; removing one asks first, and Cancel keeps them.
    for (email, role) in [
        ("first@example.com", "ORG_ADMIN"),
        ("second@example.com", "ORG_USER"),
    ] {
        browser.type_into("#member-email", email).await;
        browser.click(&format!("#add-role-{role}")).await;
        browser.click("#add-member-button").await;
        browser
            .wait_for_text(&format!("Added {email} as {role}."))
            .await;
        // The message is in view, not scrolled away to the form.
        let top = browser
            .script("return document.querySelector('#flash').getBoundingClientRect().top")
            .await;
        assert!(
            top.as_f64().is_some_and(|t| (0.0..900.0).contains(&t)),
            "the flash is out of sight: {top}"
        );
    }
    let labels = browser
        .script("return [...document.querySelectorAll('tr[data-email=\"second@example.com\"] input[type=checkbox]')].map(i => i.getAttribute('aria-label'))")
        .await;
    assert_eq!(
        labels,
        json!([
            "second@example.com: ORG_ADMIN",
            "second@example.com: ORG_MANAGER",
            "second@example.com: ORG_USER"
        ])
    );
    // The last ORG_ADMIN's boxes cannot be ticked, and the row says why.
    let locked = browser
        .script("return [...document.querySelectorAll('tr[data-email=\"first@example.com\"] input[type=checkbox]')].every(i => i.disabled)")
        .await;
    assert_eq!(locked, json!(true));
    let row = "tr[data-email=\"second@example.com\"]";
    browser.click(&format!("{row} .remove-member")).await;
    browser.wait_for_text("Remove second@example.com?").await;
    browser.screenshot("member-remove").await;
    browser.click("#cancel-remove").await;
    browser.wait_for_url(&site.url("/admin/orgs/delta")).await;
    browser.find(row).await;
    browser.click(&format!("{row} .remove-member")).await;
    browser.click("#confirm-remove").await;
    browser.wait_for_text("Removed second@example.com.").await;
    let gone = browser
        .script(&format!("return !!document.querySelector('{row}')"))
        .await;
    assert_eq!(gone, json!(false));

    // Phones: no page scrolls sideways, and every button is whole.
    browser.set_window(390, 844).await;
    for (path, shot) in [
        ("/admin/orgs/delta", "phone-org-page"),
        ("/admin/orgs", "phone-orgs"),
        ("/admin/audit", "phone-audit"),
        ("/admin/sync", "phone-sync"),
        ("/", "phone-home"),
    ] {
        browser.goto(&site.url(path)).await;
        browser.find("main").await;
        assert!(
            !overflows(&browser).await,
            "{path} scrolls sideways on a phone"
        );
        let cut = browser
            .script(
                "return [...document.querySelectorAll('main button, main a.button')] \
                 .filter(b => b.getBoundingClientRect().right > window.innerWidth + 1 || b.scrollWidth > b.clientWidth + 1) \
                 .map(b => b.innerText)",
            )
            .await;
        assert_eq!(cut, json!([]), "{path}: buttons cut off");
        browser.screenshot(shot).await;
    }
    // The audit log's columns are all on screen, each under its name.
    browser.goto(&site.url("/admin/audit")).await;
    let offscreen = browser
        .script("return [...document.querySelectorAll('#audit td')].some(td => td.getBoundingClientRect().right > window.innerWidth + 1)")
        .await;
    assert_eq!(offscreen, json!(false));
    browser.quit().await;
    site.stop().await;
}

#[tokio::test]
async fn refusals_name_who_can_help_and_never_send_an_org_admin_to_an_org_admin() {
    let app = spawn_app().await;
    let owner = person(&app.pool, &[("acme", "ORG_ADMIN")]).await;
    sign_in(&app, "/", &owner).await;
    for path in ["/admin/sync", "/admin/orgs/new", "/admin/orgs/acme/edit"] {
        let (status, page) = body(&app, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            page.contains("Only platform administrators can"),
            "{path}: {page}"
        );
        assert!(!page.contains("ORG_ADMIN of this"), "{path}: {page}");
        assert!(
            !page.to_lowercase().contains("ask an org_admin"),
            "{path}: {page}"
        );
        assert!(!page.contains("your roles do not allow"), "{path}: {page}");
    }
    // An ORG_USER is told who can: the org's ORG_ADMINs.
    let app = spawn_app().await;
    let member = person(&app.pool, &[("acme", "ORG_USER")]).await;
    sign_in(&app, "/", &member).await;
    let (_, page) = body(&app, "/admin/orgs/acme").await;
    let csrf = csrf_of(&page);
    let refused = app
        .client
        .post(format!("{}/admin/orgs/acme/apps", app.address))
        .form(&[("csrf", csrf.as_str()), ("open", "seo")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Only the organization&#39;s ORG_ADMINs can change this"),
        "{page}"
    );
}

#[tokio::test]
async fn an_app_reads_the_same_to_every_member_and_apps_outside_the_plan_offer_no_switch() {
    let app = spawn_app().await;
    let owner = person(&app.pool, &[("acme", "ORG_ADMIN")]).await;
    let user = person(&app.pool, &[("acme", "ORG_USER")]).await;
    sqlx::query("UPDATE orgs SET features = ARRAY['seo','files'] WHERE slug = 'acme'")
        .execute(&app.pool)
        .await
        .unwrap();
    let status_of = |page: &str, app_key: &str| {
        let row = page
            .split(&format!("id=\"app-{app_key}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no {app_key} row in {page}"));
        row.split("</tr>").next().unwrap().to_owned()
    };
    sign_in(&app, "/", &owner).await;
    let (_, as_owner) = body(&app, "/admin/orgs/acme").await;
    let owner_files = status_of(&as_owner, "files");
    assert!(
        owner_files.contains("Open to ORG_MANAGER and above"),
        "{owner_files}"
    );
    assert!(
        owner_files.contains("<a href="),
        "the owner can open it: {owner_files}"
    );
    // Music is not in the plan: nothing to tick for it.
    let music = status_of(&as_owner, "music");
    assert!(music.contains("Not in the plan"), "{music}");
    assert!(!music.contains("type=\"checkbox\""), "{music}");

    // The member signs in on a second replica (a browser of their own).
    let app_user = app
        .replica_with(|env| {
            let port = free_port();
            env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
            env.insert(
                "WIZBRAND_PUBLIC_URL".into(),
                format!("http://127.0.0.1:{port}"),
            );
        })
        .await;
    sign_in(&app_user, "/", &user).await;
    let (_, as_user) = body(&app_user, "/admin/orgs/acme").await;
    let user_files = status_of(&as_user, "files");
    assert!(
        user_files.contains("Open to ORG_MANAGER and above"),
        "{user_files}"
    );
    assert!(
        user_files.contains("Not to you: it needs ORG_MANAGER"),
        "{user_files}"
    );
    assert!(!user_files.contains("<a href="), "{user_files}");
}

#[tokio::test]
async fn the_audit_log_reads_as_sentences_and_says_when_there_is_nothing_to_see() {
    let app = spawn_app().await;
    let owner = person(&app.pool, &[("acme", "ORG_ADMIN")]).await;
    sign_in(&app, "/", &owner).await;
    let (_, page) = body(&app, "/admin/orgs/acme").await;
    let csrf = csrf_of(&page);
    let post = |path: &str, fields: Vec<(&str, &str)>| {
        app.client
            .post(format!("{}{path}", app.address))
            .form(&fields)
            .send()
    };
    let added = post(
        "/admin/orgs/acme/members",
        vec![
            ("csrf", &csrf),
            ("email", "reader@example.com"),
            ("roles", "ORG_USER"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    // seo's box unticked, the others ticked: seo closed.
    let hidden = post(
        "/admin/orgs/acme/apps",
        vec![
            ("csrf", &csrf),
            ("open", "files"),
            ("open", "music"),
            ("open", "photos"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(hidden.status(), StatusCode::SEE_OTHER);
    let (status, page) = body(&app, "/admin/audit?org=AC").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Added reader@example.com as ORG_USER"),
        "{page}"
    );
    assert!(page.contains("closed seo for the members"), "{page}");
    assert!(page.contains(" UTC"), "{page}");
    assert!(
        page.contains("<code>member.put</code>"),
        "the code stays beside: {page}"
    );
    let (_, page) = body(&app, "/admin/audit?action=member.").await;
    assert!(!page.contains("closed seo"), "{page}");
    assert!(page.contains("Added reader@example.com"), "{page}");

    // Someone who administers nothing is told so, rather than "no entries".
    let app = spawn_app().await;
    let member = person(&app.pool, &[("acme", "ORG_USER")]).await;
    sign_in(&app, "/", &member).await;
    let (status, page) = body(&app, "/admin/audit").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"no-audit-access\""), "{page}");
    assert!(page.contains("ORG_ADMIN of no organization"), "{page}");
}

#[tokio::test]
async fn the_sync_page_says_when_runs_happen_who_started_them_for_which_orgs_and_what_failed() {
    let root = unique("t");
    let app = spawn_app_with(|env| {
        env.insert("WIZBRAND_SYNC_ENABLED".into(), "true".into());
        env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), root.clone());
        env.insert("WIZBRAND_SYNC_CRON".into(), "0 30 3 * * *".into());
    })
    .await;
    let (username, keycloak_id) = person_with_id(&app.pool, &[]).await;
    make_platform_admin(&keycloak_id).await;
    sign_in(&app, "/", &username).await;
    // Runs from elsewhere: one after a change to acme with an error, one from the API.
    sqlx::query(
        "INSERT INTO sync_runs (trigger, scope, status, finished_at, failed, errors) VALUES \
         ('change', 'acme,beta', 'partial', now(), 1, '[\"add x@example.com to /orgs/acme: Keycloak said 500\"]'), \
         ('api', NULL, 'succeeded', now(), 0, '[]')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (status, page) = body(&app, "/admin/sync").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("every day at 03:30 UTC"), "{page}");
    assert!(page.contains("change in Postgres"), "{page}");
    assert!(page.contains("acme, beta"), "{page}");
    assert!(page.contains("all organizations"), "{page}");
    assert!(page.contains("API request"), "{page}");
    assert!(
        page.contains("<li>add x@example.com to /orgs/acme: Keycloak said 500</li>"),
        "{page}"
    );
    assert!(!page.contains("[]"), "no raw JSON: {page}");
    assert!(!page.contains("[&#34;"), "no raw JSON: {page}");

    // "Sync now" from the page is labelled as such. (Asked for while runs after the
    // sign-in's changes are queued, it would join their run, which keeps its trigger:
    // let those finish first.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sync_runs WHERE finished_at IS NULL OR finished_at > now() - interval '2 seconds'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if busy == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the sync never settled");
    }
    let csrf = csrf_of(&page);
    let asked = app
        .client
        .post(format!("{}/admin/sync", app.address))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    let from_page: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE trigger = 'web'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(from_page, 1);
    let (_, page) = body(&app, "/admin/sync").await;
    assert!(page.contains("Sync now (this page)"), "{page}");
}

#[tokio::test]
async fn the_gate_tells_an_org_admin_what_they_can_do_not_to_ask_an_org_admin() {
    let gate = crate::gate::Gate::new().await;
    let owner = gate.member(&[("beta", "ORG_ADMIN")]).await;
    gate.admitted(&owner, "beta", "seo").await;
    let page = |app: &'static str| {
        let request = gate
            .get("beta", app, "/")
            .bearer_auth(&owner.token)
            .header("Accept", "text/html");
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    // beta's plan has no music.
    let (status, html) = page("music").await;
    assert_eq!(status, 403);
    assert!(
        html.contains("As an ORG_ADMIN of &#34;beta&#34;, ask a platform administrator"),
        "{html}"
    );
    assert!(!html.contains("An ORG_ADMIN of"), "{html}");
    // seo closed for the members: the ORG_ADMIN is told they can open it again.
    sqlx::query("UPDATE orgs SET hidden_apps = ARRAY['seo'] WHERE slug = 'beta'")
        .execute(&gate.app.pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let html = loop {
        let (status, html) = page("seo").await;
        if status == 403 {
            break html;
        }
        assert!(Instant::now() < deadline, "seo still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(html.contains("you can open it again"), "{html}");
    assert!(!html.contains("Ask them"), "{html}");
}
