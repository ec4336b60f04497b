//! The ForwardAuth gate through a real Traefik, with the echo upstream showing what
//! reached the app.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{KeycloakAdmin, TestApp, TestTraefik, unique, user_token};

/// A Keycloak user with an access token, known to the test's Postgres.
struct Member {
    sub: String,
    email: String,
    token: String,
}

struct Gate {
    app: TestApp,
    traefik: TestTraefik,
    client: reqwest::Client,
}

impl Gate {
    /// acme (pro: every app) and beta (free: seo only), as in the demo data.
    async fn new() -> Gate {
        let app = TestApp::spawn().await;
        sqlx::raw_sql(
            "INSERT INTO orgs (slug, name, plan, features) VALUES \
             ('acme', 'Acme', 'pro', ARRAY['seo','music','files','photos']), \
             ('beta', 'Beta', 'free', ARRAY['seo'])",
        )
        .execute(&app.pool)
        .await
        .unwrap();
        let traefik = TestTraefik::start(&app.address).await;
        let client = traefik.client();
        Gate {
            app,
            traefik,
            client,
        }
    }

    async fn member(&self, memberships: &[(&str, &str)]) -> Member {
        let admin = KeycloakAdmin::connect().await;
        let name = unique("g-");
        let sub = admin.create_user(&name, "pw-123456").await;
        let email = format!("{name}@example.com");
        sqlx::query("INSERT INTO users (email, keycloak_id) VALUES ($1, $2)")
            .bind(&email)
            .bind(&sub)
            .execute(&self.app.pool)
            .await
            .unwrap();
        for (org, role) in memberships {
            self.set_role(&email, org, Some(role)).await;
        }
        let token = user_token(&name, "pw-123456", "wizbrand-test").await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        Member { sub, email, token }
    }

    async fn set_role(&self, email: &str, org: &str, role: Option<&str>) {
        match role {
            Some(role) => sqlx::query(
                "INSERT INTO memberships (org_id, user_id, roles) \
                 SELECT o.id, u.id, ARRAY[$3] FROM orgs o, users u WHERE o.slug = $2 AND u.email = $1 \
                 ON CONFLICT (org_id, user_id) DO UPDATE SET roles = EXCLUDED.roles",
            )
            .bind(email)
            .bind(org)
            .bind(role),
            None => sqlx::query(
                "DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE email = $1) \
                 AND org_id = (SELECT id FROM orgs WHERE slug = $2)",
            )
            .bind(email)
            .bind(org),
        }
        .execute(&self.app.pool)
        .await
        .unwrap();
    }

    fn get(&self, org: &str, app: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.traefik.url(org, app, path))
    }
}

fn header(echo: &Value, name: &str) -> Option<Vec<String>> {
    echo["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| serde_json::from_value(v.clone()).unwrap())
}

#[tokio::test]
async fn a_member_reaches_the_app_with_identity_headers_clients_cannot_forge() {
    let gate = Gate::new().await;
    let alice = gate.member(&[("acme", "ORG_ADMIN")]).await;
    let org_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM orgs WHERE slug = 'acme'")
        .fetch_one(&gate.app.pool)
        .await
        .unwrap();

    let response = gate
        .get("acme", "files", "/api/list")
        .bearer_auth(&alice.token)
        // A client's own identity headers, in plain and aliased spellings.
        .header("X-User-Id", "forged")
        .header("X-Org-Roles", "ORG_ADMIN,PLATFORM")
        .header("X-Org-Slug", "beta")
        .header("X_User_Id", "forged-alias")
        .header("X.Org.Slug", "forged-alias")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["name"], "files");
    assert_eq!(header(&echo, "X-User-Id"), Some(vec![alice.sub.clone()]));
    assert_eq!(
        header(&echo, "X-User-Email"),
        Some(vec![alice.email.clone()])
    );
    assert_eq!(header(&echo, "X-Org-Id"), Some(vec![org_id.to_string()]));
    assert_eq!(header(&echo, "X-Org-Slug"), Some(vec!["acme".to_owned()]));
    assert_eq!(
        header(&echo, "X-Org-Roles"),
        Some(vec!["ORG_ADMIN".to_owned()])
    );
    assert_eq!(
        header(&echo, "X_User_Id"),
        None,
        "alias reached the app: {echo}"
    );
    assert_eq!(
        header(&echo, "X.Org.Slug"),
        None,
        "alias reached the app: {echo}"
    );
}

#[tokio::test]
async fn wrong_org_low_role_and_missing_feature_are_refused_with_reasons() {
    let gate = Gate::new().await;
    let bob = gate
        .member(&[("acme", "ORG_USER"), ("beta", "ORG_ADMIN")])
        .await;
    let cases = [
        // (org, app, kind)
        ("acme", "files", "role-too-low"),
        ("beta", "music", "feature-missing"),
        ("nope", "seo", "not-member"),
    ];
    for (org, app, kind) in cases {
        let response = gate
            .get(org, app, "/api")
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{org}.{app}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{org}.{app}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            format!("https://wizbrand.dev/problems/{kind}")
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(org), "{detail}");
    }
    // Browsers get a page naming the org and offering to switch.
    let page = gate
        .get("acme", "files", "/")
        .bearer_auth(&bob.token)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("ORG_MANAGER") && html.contains("acme"),
        "{html}"
    );
    assert!(html.contains("Switch organization"));
    // And the allowed app still works for the same token.
    let ok = gate
        .get("acme", "seo", "/api")
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn without_credentials_browsers_are_sent_to_sign_in_and_scripts_get_401() {
    let gate = Gate::new().await;
    let browser = gate
        .get("acme", "seo", "/reports?page=2")
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 302);
    let location = browser.headers()["location"].to_str().unwrap().to_owned();
    let location = url::Url::parse(&location).expect("absolute Location");
    assert_eq!(location.host_str(), Some("auth.wizbrand.localhost"));
    assert_eq!(location.path(), "/login");
    let rd = location
        .query_pairs()
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        rd.as_deref(),
        Some(gate.traefik.url("acme", "seo", "/reports?page=2").as_str())
    );

    let form_post = gate
        .client
        .post(gate.traefik.url("acme", "seo", "/save"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(form_post.status(), 303);

    let xhr = gate
        .get("acme", "seo", "/api")
        .header("Accept", "text/html")
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(xhr.status(), 401);
    assert_eq!(xhr.headers()["www-authenticate"], "Bearer");

    let bad_token = gate
        .get("acme", "seo", "/api")
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_token.status(), 401);
}

#[tokio::test]
async fn removing_a_member_or_a_feature_takes_effect_within_a_second() {
    let gate = Gate::new().await;
    let carol = gate.member(&[("acme", "ORG_MANAGER")]).await;
    let status = |org: &'static str, app: &'static str| {
        let request = gate.get(org, app, "/api").bearer_auth(&carol.token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("acme", "files").await, 200);

    // Role lowered in Postgres: the same token is refused within a second.
    gate.set_role(&carol.email, "acme", Some("ORG_USER")).await;
    let changed = Instant::now();
    while status("acme", "files").await != 403 {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "still allowed after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Feature dropped from the plan.
    assert_eq!(status("acme", "seo").await, 200);
    sqlx::query("UPDATE orgs SET features = array_remove(features, 'seo') WHERE slug = 'acme'")
        .execute(&gate.app.pool)
        .await
        .unwrap();
    let changed = Instant::now();
    while status("acme", "seo").await != 403 {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "still allowed after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Org suspended.
    assert_eq!(status("acme", "photos").await, 200);
    sqlx::query("UPDATE orgs SET status = 'suspended' WHERE slug = 'acme'")
        .execute(&gate.app.pool)
        .await
        .unwrap();
    let changed = Instant::now();
    while status("acme", "photos").await != 403 {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "still allowed after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Membership removed.
    sqlx::query("UPDATE orgs SET status = 'active' WHERE slug = 'acme'")
        .execute(&gate.app.pool)
        .await
        .unwrap();
    gate.set_role(&carol.email, "acme", None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status("acme", "photos").await, 403);
}

#[tokio::test]
async fn the_gate_refuses_callers_that_are_not_trusted_proxies() {
    let app = TestApp::spawn_with(|env| {
        env.insert("WIZBRAND_TRUSTED_PROXIES".into(), "10.1.2.3".into());
    })
    .await;
    let response = app
        .client
        .get(format!("{}/forward-auth", app.address))
        .header("X-Forwarded-Host", "acme.seo.wizbrand.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://wizbrand.dev/problems/untrusted-proxy"
    );
}

#[tokio::test]
async fn gate_metrics_count_decisions_by_outcome_and_app() {
    let gate = Gate::new().await;
    let dana = gate.member(&[("acme", "ORG_USER")]).await;
    let ok = gate
        .get("acme", "seo", "/api")
        .bearer_auth(&dana.token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let text = gate.app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"wizbrand_gate_decisions_total{app="seo",outcome="allow"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("wizbrand_gate_decision_seconds_count"),
        "{text}"
    );
}
