//! The ForwardAuth gate through a real Traefik, with the echo upstream showing what
//! reached the app.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{KeycloakAdmin, TestApp, TestTraefik, behind_traefik, unique, user_token};

/// A Keycloak user with an access token, known to the test's Postgres.
pub(crate) struct Member {
    pub(crate) sub: String,
    pub(crate) email: String,
    pub(crate) token: String,
}

pub(crate) struct Gate {
    pub(crate) app: TestApp,
    pub(crate) traefik: TestTraefik,
    pub(crate) client: reqwest::Client,
}

impl Gate {
    /// acme (pro: every app) and beta (free: seo only), as in the demo data.
    pub(crate) async fn new() -> Gate {
        Self::new_with(|_| {}).await
    }

    /// [`Gate::new`] with the app's environment changed by `change`.
    pub(crate) async fn new_with(
        change: impl FnOnce(&mut std::collections::HashMap<String, String>),
    ) -> Gate {
        let app = TestApp::spawn_with(|env| {
            behind_traefik(env);
            change(env);
        })
        .await;
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

    pub(crate) async fn member(&self, memberships: &[(&str, &str)]) -> Member {
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

    /// Waits (up to a second) until the gate's in-memory state lets `who` into `app` of
    /// `org`: a membership written to Postgres reaches it through a notification.
    pub(crate) async fn admitted(&self, who: &Member, org: &str, app: &str) {
        within_a_second(
            "admitted",
            || async {
                self.get(org, app, "/api")
                    .bearer_auth(&who.token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            },
            200,
        )
        .await;
    }

    pub(crate) fn get(&self, org: &str, app: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.traefik.url(org, app, path))
    }
}

/// Polls `probe` until it answers `wanted`; fails the test after one second.
async fn within_a_second<F, Fut>(what: &str, probe: F, wanted: u16)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let started = Instant::now();
    while probe().await != wanted {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not {what} ({wanted}) within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn header(echo: &Value, name: &str) -> Option<Vec<String>> {
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
    // The auth host's hand-off (which signs in first when needed), bound to a nonce
    // cookie that the gate sets on the app host (Traefik passes it on).
    assert_eq!(location.path(), "/auth/hand-off");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(
        param("rd").as_deref(),
        Some(gate.traefik.url("acme", "seo", "/reports?page=2").as_str())
    );
    let nonce = browser
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-wizbrand_bind="))
        .and_then(|v| v.split(';').next())
        .expect("the nonce cookie reaches the browser")
        .to_owned();
    assert_eq!(param("bind"), Some(wizbrand::web::app_host::digest(&nonce)));

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
    within_a_second("refused", || status("acme", "files"), 403).await;

    // Feature dropped from the plan.
    assert_eq!(status("acme", "seo").await, 200);
    sqlx::query("UPDATE orgs SET features = array_remove(features, 'seo') WHERE slug = 'acme'")
        .execute(&gate.app.pool)
        .await
        .unwrap();
    within_a_second("refused", || status("acme", "seo"), 403).await;

    // Org suspended.
    assert_eq!(status("acme", "photos").await, 200);
    sqlx::query("UPDATE orgs SET status = 'suspended' WHERE slug = 'acme'")
        .execute(&gate.app.pool)
        .await
        .unwrap();
    within_a_second("refused", || status("acme", "photos"), 403).await;

    // Membership removed: refused within a second, on a second replica too.
    let replica = gate.app.replica_with(behind_traefik).await;
    sqlx::query("UPDATE orgs SET status = 'active' WHERE slug = 'acme'")
        .execute(&gate.app.pool)
        .await
        .unwrap();
    let reactivated = Instant::now();
    while status("acme", "photos").await != 200 {
        assert!(
            reactivated.elapsed() < Duration::from_secs(1),
            "not back after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ask_gate(&replica, "acme.photos.wizbrand.localhost", &carol.token).await,
        200
    );
    gate.set_role(&carol.email, "acme", None).await;
    let removed = Instant::now();
    loop {
        let here = status("acme", "photos").await;
        let there = ask_gate(&replica, "acme.photos.wizbrand.localhost", &carol.token).await;
        if here == 403 && there == 403 {
            break;
        }
        assert!(
            removed.elapsed() < Duration::from_secs(1),
            "still allowed after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
async fn every_gate_answer_says_no_store() {
    let gate = Gate::new().await;
    let url = format!("{}/forward-auth", gate.app.address);
    let ask = |host: Option<&str>, accept: &str| {
        let mut request = gate.app.client.get(&url).header("Accept", accept);
        if let Some(host) = host {
            request = request
                .header("X-Forwarded-Host", host)
                .header("X-Forwarded-Uri", "/");
        }
        request
    };
    let seo = Some("acme.seo.wizbrand.localhost");
    let unknown = Some("nope.unknown.wizbrand.localhost");
    let cases = [
        ("no credentials (script)", ask(seo, "application/json"), 401),
        (
            "a bad token",
            ask(seo, "application/json").bearer_auth("not.a.jwt"),
            401,
        ),
        ("no credentials (browser)", ask(seo, "text/html"), 302),
        (
            "an unknown host (script)",
            ask(unknown, "application/json"),
            403,
        ),
        ("an unknown host (browser)", ask(unknown, "text/html"), 403),
        ("no X-Forwarded-Host", ask(None, "application/json"), 400),
    ];
    for (what, request, status) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
    }
    // The refusal reaches the client through Traefik with it.
    let xhr = gate
        .get("acme", "seo", "/api")
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(xhr.status(), 401);
    assert_eq!(xhr.headers()["cache-control"], "no-store");

    // With the default configuration no proxy is trusted, and that refusal says it too.
    let untrusting = TestApp::spawn().await;
    let refused = untrusting
        .client
        .get(format!("{}/forward-auth", untrusting.address))
        .header("X-Forwarded-Host", "acme.seo.wizbrand.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["cache-control"], "no-store");
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
    let text = gate.app.metrics().await;
    assert!(
        text.contains(r#"wizbrand_gate_decisions_total{app="seo",outcome="allow"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("wizbrand_gate_decision_seconds_count"),
        "{text}"
    );
}

/// Calls the gate as Traefik would, straight from loopback (a trusted proxy).
async fn ask_gate(app: &TestApp, host: &str, token: &str) -> reqwest::StatusCode {
    app.client
        .get(format!("{}/forward-auth", app.address))
        .header("X-Forwarded-Host", host)
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Uri", "/")
        .header("X-Forwarded-Method", "GET")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let gate = Gate::new().await;
    let eve = gate.member(&[("acme", "ORG_ADMIN")]).await;
    let host = "acme.seo.wizbrand.localhost";
    assert_eq!(ask_gate(&gate.app, host, &eve.token).await, 200);

    let parts: Vec<&str> = eve.token.split('.').collect();
    let header: Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[0])
                .unwrap(),
        )
        .unwrap()
    };
    let kid = header["kid"].as_str().unwrap();

    // The payload changed, the signature kept.
    let mut claims = crate::helpers::claims(&eve.token);
    claims["org_memberships"] = serde_json::json!({"beta": ["ORG_ADMIN"]});
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    // No signature at all.
    let none_header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid});
    let unsigned = format!("{}.{}.", b64(none_header.to_string().as_bytes()), parts[1]);
    // HS256 with the realm's public certificate as the shared secret.
    let certs: Value = reqwest::get(format!(
        "{}/realms/wizbrand/protocol/openid-connect/certs",
        crate::helpers::stack_var("KEYCLOAK_URL")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let public = certs["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()["x5c"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid.to_owned());
    let hmac = jsonwebtoken::encode(
        &hs_header,
        &crate::helpers::claims(&eve.token),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    // A real token of the realm, but for a client without the wizbrand-api audience.
    let name = eve.email.trim_end_matches("@example.com");
    let no_audience = user_token(name, "pw-123456", "wizbrand-noaud").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A real ID token (audience wizbrand-test, typ ID).
    let id_token = user_token(name, "pw-123456", "wizbrand-test").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();

    for (what, token) in [
        ("tampered", tampered),
        ("alg none", unsigned),
        ("HS256 with the public key", hmac),
        ("no wizbrand-api audience", no_audience),
        ("an ID token", id_token),
    ] {
        assert_eq!(ask_gate(&gate.app, host, &token).await, 401, "{what}");
    }
}

#[tokio::test]
async fn cached_keys_keep_verifying_while_keycloak_is_unreachable() {
    // wizbrand reaches Keycloak through a cable of the test's own; once the keys are
    // cached, the cable is cut and the same token must still pass.
    let keycloak: url::Url = crate::helpers::stack_var("KEYCLOAK_URL").parse().unwrap();
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], keycloak.port().unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cable = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let app = TestApp::spawn_with(|env| {
        behind_traefik(env);
        env.insert(
            "KEYCLOAK_INTERNAL_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
    })
    .await;
    sqlx::raw_sql("INSERT INTO orgs (slug, name, plan, features) VALUES ('acme', 'Acme', 'pro', ARRAY['seo'])")
        .execute(&app.pool)
        .await
        .unwrap();
    let gate = Gate {
        traefik: TestTraefik::start(&app.address).await,
        client: reqwest::Client::new(),
        app,
    };
    let frank = gate.member(&[("acme", "ORG_USER")]).await;
    let host = "acme.seo.wizbrand.localhost";
    assert_eq!(ask_gate(&gate.app, host, &frank.token).await, 200);

    cable.abort();
    let _ = cable.await;
    assert_eq!(
        ask_gate(&gate.app, host, &frank.token).await,
        200,
        "cache not used"
    );
    // An unknown key cannot be fetched now: refused, not an error page.
    let parts: Vec<&str> = frank.token.split('.').collect();
    let other_kid = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "rotated-away"});
    let unknown = format!(
        "{}.{}.{}",
        b64(other_kid.to_string().as_bytes()),
        parts[1],
        parts[2]
    );
    assert_eq!(ask_gate(&gate.app, host, &unknown).await, 401);
}

#[tokio::test]
async fn an_org_admin_closes_an_app_for_the_org_through_the_api() {
    let gate = Gate::new().await;
    let admin = gate.member(&[("acme", "ORG_ADMIN")]).await;
    let user = gate.member(&[("acme", "ORG_USER")]).await;
    // The new membership reaches the gate's state within a second.
    gate.admitted(&user, "acme", "seo").await;
    let patch = |token: &str, body: Value| {
        gate.app
            .client
            .patch(format!("{}/api/v1/orgs/acme", gate.app.address))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };
    // A plain member may not; an unknown app is named; the admin may.
    let refused = patch(&user.token, serde_json::json!({"hidden_apps": ["seo"]}))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let unknown = patch(&admin.token, serde_json::json!({"hidden_apps": ["nope"]}))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("`nope` is not an app")
    );
    let done = patch(&admin.token, serde_json::json!({"hidden_apps": ["seo"]}))
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let org: Value = done.json().await.unwrap();
    assert_eq!(org["hidden_apps"], serde_json::json!(["seo"]));

    let changed = Instant::now();
    loop {
        let response = gate
            .get("acme", "seo", "/api")
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        if response.status() == 403 {
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["type"], "https://wizbrand.dev/problems/app-hidden");
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "still open after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Other apps stay open.
    assert_eq!(
        gate.get("acme", "music", "/api")
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// The `Cookie` and `Authorization` headers the echo app received.
fn credentials(echo: &Value) -> (Option<Vec<String>>, Option<Vec<String>>) {
    (header(echo, "Cookie"), header(echo, "Authorization"))
}

async fn echo_of(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_app_gets_its_own_cookies_but_no_wizbrand_cookie_and_no_consumed_bearer() {
    let gate = Gate::new().await;
    let alice = gate.member(&[("acme", "ORG_USER")]).await;
    gate.admitted(&alice, "acme", "seo").await;
    let api = |cookies: &[&str]| {
        let mut request = gate.get("acme", "seo", "/api").bearer_auth(&alice.token);
        for cookie in cookies {
            request = request.header("Cookie", *cookie);
        }
        request
    };

    // Ours among the app's: the app gets the rest, in order, and no Bearer token.
    let echo = echo_of(api(&[
        "theme=dark; wizbrand_session=stolen; __Host-wizbrand-app=x; lang=de",
    ]))
    .await;
    assert_eq!(
        credentials(&echo),
        (Some(vec!["theme=dark; lang=de".to_owned()]), None),
        "{echo}"
    );
    // Split over two headers, ours in one: the same.
    let echo = echo_of(api(&["wizbrand_session=stolen", "theme=dark"])).await;
    assert_eq!(
        credentials(&echo),
        (Some(vec!["theme=dark".to_owned()]), None),
        "{echo}"
    );
    // Only ours: Traefik drops the client's Cookie as the gate's answer has none.
    let echo = echo_of(api(&["wizbrand_session=stolen"])).await;
    assert_eq!(credentials(&echo), (None, None), "{echo}");
    // None of ours: the app's cookies as they came.
    let echo = echo_of(api(&["theme=dark;lang=de"])).await;
    assert_eq!(
        credentials(&echo),
        (Some(vec!["theme=dark;lang=de".to_owned()]), None),
        "{echo}"
    );
    // The identity headers still arrive.
    assert_eq!(header(&echo, "X-User-Id"), Some(vec![alice.sub.clone()]));
}

#[tokio::test]
async fn an_app_configured_for_it_gets_the_callers_authorization() {
    let gate = Gate::new().await;
    let bob = gate.member(&[("acme", "ORG_MANAGER")]).await;
    gate.admitted(&bob, "acme", "files").await;
    sqlx::query("UPDATE apps SET pass_authorization = true WHERE key = 'files'")
        .execute(&gate.app.pool)
        .await
        .unwrap();
    let bearer = format!("Bearer {}", bob.token);
    let authorization_at = |app: &'static str| {
        let request = gate.get("acme", app, "/api").bearer_auth(&bob.token);
        async move { header(&echo_of(request).await, "Authorization") }
    };
    let started = Instant::now();
    while authorization_at("files").await != Some(vec![bearer.clone()]) {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "files did not get the Authorization within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another app of the same caller still does not.
    assert_eq!(authorization_at("seo").await, None);
}

#[tokio::test]
async fn client_forwarded_and_x_original_headers_do_not_reach_the_apps() {
    let gate = Gate::new().await;
    let carol = gate.member(&[("acme", "ORG_USER")]).await;
    gate.admitted(&carol, "acme", "seo").await;
    let forged = [
        ("Forwarded", "for=10.0.0.1;host=admin.internal;proto=https"),
        ("X-Original-Host", "admin.internal"),
        ("X-Original-URL", "/admin/delete-everything"),
        ("X-Original-URI", "/admin"),
        ("X-Original-Method", "DELETE"),
        ("X-Original-Forwarded-For", "10.0.0.1"),
        ("X-Rewrite-URL", "/admin"),
        // A name nobody listed: the ForwardAuth regex removes every X-Original-*.
        ("X-Original-Whatever", "forged"),
    ];
    let mut request = gate.get("acme", "seo", "/api").bearer_auth(&carol.token);
    for (name, value) in forged {
        request = request.header(name, value);
    }
    let echo = echo_of(request).await;
    for (name, _) in forged {
        assert_eq!(header(&echo, name), None, "{name} reached the app: {echo}");
    }
    // The auth host's router has the middleware too and still answers.
    let auth = reqwest::Client::builder()
        .resolve(
            "auth.wizbrand.localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], gate.traefik.port)),
        )
        .build()
        .unwrap();
    let mut request = auth.get(format!(
        "http://auth.wizbrand.localhost:{}/healthz",
        gate.traefik.port
    ));
    for (name, value) in forged {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    // Traefik takes the configuration without a complaint.
    let log = gate.traefik.log();
    assert!(
        !log.lines()
            .any(|l| l.contains(" WRN ") || l.contains(" ERR ")),
        "Traefik complained:\n{log}"
    );
}

#[tokio::test]
async fn a_cookie_a_sibling_sets_for_the_cookie_domain_never_reaches_an_app() {
    let gate = Gate::new().await;
    let dave = gate.member(&[("acme", "ORG_USER")]).await;
    gate.admitted(&dave, "acme", "seo").await;
    let sibling = crate::sibling::Sibling::start().await;
    // One browser-like client with a cookie jar: the sibling's host and the app's.
    let client = sibling
        .resolve(
            reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none()),
        )
        .resolve(
            "acme.seo.wizbrand.localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], gate.traefik.port)),
        )
        .build()
        .unwrap();
    let planted = client
        .get(sibling.set_cookie_url(
            &[
                "wizbrand_session=planted; Domain=wizbrand.localhost; Path=/",
                "wizbrand_pending=planted; Domain=wizbrand.localhost; Path=/api",
                "gallery=mine; Domain=wizbrand.localhost; Path=/",
            ],
            None,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(planted.status(), 200);
    let echo = echo_of(
        client
            .get(gate.traefik.url("acme", "seo", "/api"))
            .bearer_auth(&dave.token),
    )
    .await;
    let cookies = header(&echo, "Cookie").unwrap_or_default().join("; ");
    assert!(
        cookies.contains("gallery=mine"),
        "the jar sent nothing: {echo}"
    );
    assert!(!cookies.contains("wizbrand"), "{echo}");
}
