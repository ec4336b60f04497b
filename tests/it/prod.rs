//! The production-shaped stack (`scripts/prod-stack.sh`, docs/deploy.md): the image,
//! TLS through Traefik, Keycloak in production mode (`kc.sh start`), two wizbrand
//! replicas in containers behind Traefik's load balancer. The first test here brings the
//! stack up (idempotent, as `stack()` does for the dev stack; `scripts/test.sh` starts it
//! before the tests). The stack is one and some tests stop a replica, so the tests take
//! turns (`turn()`), and each leaves it as it found it. Figures (failed requests while a
//! replica stops, the image size) go to `$CARGO_TARGET_DIR/prod-figures.jsonl`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::helpers::{free_port, repo_root};

/// How to reach the production-shaped stack: its `prod-stack.env`.
struct Prod {
    vars: HashMap<String, String>,
}

fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WIZBRAND_PROD_STATE_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("WIZBRAND_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".stack"))
        .join("prod")
}

fn prod() -> &'static Prod {
    static PROD: OnceLock<Prod> = OnceLock::new();
    PROD.get_or_init(|| {
        let status = Command::new(repo_root().join("scripts/prod-stack.sh"))
            .arg("up")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("scripts/prod-stack.sh could not be run");
        assert!(status.success(), "scripts/prod-stack.sh up failed");
        let text = std::fs::read_to_string(state_dir().join("prod-stack.env"))
            .expect("prod-stack.env missing");
        Prod {
            vars: text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    })
}

/// One test at a time on the stack.
async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

const HOSTS: [&str; 6] = [
    "auth.wizbrand.localhost",
    "keycloak.wizbrand.localhost",
    "acme.seo.wizbrand.localhost",
    "acme.files.wizbrand.localhost",
    "beta.seo.wizbrand.localhost",
    "acme.music.wizbrand.localhost",
];

impl Prod {
    fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from prod-stack.env"))
    }

    fn https_port(&self) -> u16 {
        self.var("WIZBRAND_PROD_HTTPS_PORT").parse().unwrap()
    }

    fn public(&self) -> String {
        self.var("WIZBRAND_PROD_PUBLIC_URL").to_owned()
    }

    fn app_url(&self, org: &str, app: &str) -> String {
        format!(
            "https://{org}.{app}.wizbrand.localhost:{}/",
            self.https_port()
        )
    }

    /// A client that trusts the stack's CA (and nothing else), follows no redirects,
    /// keeps cookies and sends the stack's hosts to loopback.
    fn client(&self) -> reqwest::Client {
        let ca = std::fs::read(self.var("WIZBRAND_PROD_CA")).unwrap();
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .timeout(Duration::from_secs(10));
        for host in HOSTS {
            builder = builder.resolve(host, SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        builder.build().unwrap()
    }

    fn replica_ports(&self) -> Vec<u16> {
        self.var("WIZBRAND_PROD_REPLICAS")
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    }

    fn replica(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}", self.replica_ports()[n - 1])
    }

    fn container(&self, n: usize) -> String {
        format!("{}-{n}", self.var("WIZBRAND_PROD_CONTAINER_PREFIX"))
    }

    fn podman(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", self.var("CONTAINERS_CONF"))
            .output()
            .expect("podman")
    }

    async fn podman_async(&self, args: &[&str]) -> Output {
        tokio::process::Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", self.var("CONTAINERS_CONF"))
            .output()
            .await
            .expect("podman")
    }

    async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.var("WIZBRAND_PROD_DATABASE_URL"))
            .await
            .unwrap()
    }

    /// An access token of a demo user (password grant of the seeded test client),
    /// asked of Keycloak through Traefik over TLS, as any client would.
    async fn token(&self, user: &str) -> String {
        let response = self
            .client()
            .post(format!(
                "{}/realms/wizbrand/protocol/openid-connect/token",
                self.var("WIZBRAND_PROD_KEYCLOAK_URL")
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "wizbrand-test"),
                ("client_secret", "wizbrand-test-secret"),
                ("username", user),
                ("password", user),
                ("scope", "openid"),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "token for {user}: {status} {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Keycloak's admin API on its loopback address (not routed by Traefik).
    async fn keycloak_admin(&self, method: reqwest::Method, path: &str) -> Value {
        let base = self.var("WIZBRAND_PROD_KEYCLOAK_ADMIN_URL");
        let http = reqwest::Client::new();
        let token: Value = http
            .post(format!(
                "{base}/realms/master/protocol/openid-connect/token"
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", self.var("WIZBRAND_PROD_KC_ADMIN")),
                ("password", self.var("WIZBRAND_PROD_KC_ADMIN_PASSWORD")),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = http
            .request(
                method.clone(),
                format!("{base}/admin/realms/wizbrand{path}"),
            )
            .bearer_auth(token["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(status.is_success(), "{method} {path}: {status}");
        response.json().await.unwrap_or(Value::Null)
    }

    /// Waits until replica `n` answers `/healthz` again.
    async fn wait_ready(&self, n: usize) -> Duration {
        let started = Instant::now();
        let url = format!("{}/healthz", self.replica(n));
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "replica {n} did not come back: {}",
                String::from_utf8_lossy(
                    &self
                        .podman(&["logs", "--tail", "20", &self.container(n)])
                        .stderr
                )
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Starts replica `n` again when dropped, so a failing test leaves the stack whole.
struct StartAgain(usize);

impl Drop for StartAgain {
    fn drop(&mut self) {
        let _ = prod().podman(&["start", &prod().container(self.0)]);
    }
}

/// Appends one measurement to `$CARGO_TARGET_DIR/prod-figures.jsonl` (and prints it).
fn record(figure: Value) {
    use std::io::Write;
    eprintln!("prod figure: {figure}");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("prod-figures.jsonl"))
    {
        let _ = writeln!(file, "{figure}");
    }
}

// ------------------------------------------------------------------- the edge

#[tokio::test]
async fn http_goes_to_https_every_answer_has_hsts_and_keycloak_shows_only_its_public_paths() {
    let prod = prod();
    let _turn = turn().await;
    let client = prod.client();
    let http_port = prod.var("WIZBRAND_PROD_HTTP_PORT");
    let redirect = client
        .get(format!(
            "http://auth.wizbrand.localhost:{http_port}/orgs/select?rd=%2F"
        ))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(redirect.status().as_u16(), 301 | 308),
        "{}",
        redirect.status()
    );
    assert_eq!(
        redirect.headers()["location"],
        format!("{}/orgs/select?rd=%2F", prod.public()).as_str()
    );

    for url in [
        format!("{}/healthz", prod.public()),
        prod.app_url("acme", "seo"),
        format!(
            "{}/realms/wizbrand/.well-known/openid-configuration",
            prod.var("WIZBRAND_PROD_KEYCLOAK_URL")
        ),
    ] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{url}"
        );
    }

    // Keycloak behind the proxy: the issuer is its public HTTPS URL (hostname), and the
    // endpoints it announces are on that URL too (proxy headers believed from Traefik).
    let keycloak = prod.var("WIZBRAND_PROD_KEYCLOAK_URL");
    let discovery: Value = client
        .get(format!(
            "{keycloak}/realms/wizbrand/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], format!("{keycloak}/realms/wizbrand"));
    assert!(
        discovery["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{keycloak}/")),
        "{discovery}"
    );
    // The admin console and API are not on the public side.
    for path in ["/admin/", "/admin/realms/wizbrand/users", "/health/ready"] {
        let response = client
            .get(format!("{keycloak}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // The internal entry point's routes are not public: an app host's path
    // /forward-auth goes to the app behind the gate, not to wizbrand.
    let ping = client
        .get(format!("{}/ping", prod.public()))
        .send()
        .await
        .unwrap();
    assert_ne!(ping.status(), StatusCode::OK, "Traefik's ping is public");

    // A client that does not trust the local CA gets no connection at all.
    let untrusting = reqwest::Client::builder()
        .resolve(
            "auth.wizbrand.localhost",
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("{}/healthz", prod.public()))
            .send()
            .await
            .is_err()
    );
    // Traefik printed no warning or error about this configuration.
    let log = std::fs::read_to_string(prod.var("WIZBRAND_PROD_TRAEFIK_LOG")).unwrap();
    // Since the running Traefik started (the log file outlives restarts).
    let log = log
        .rfind(" INF Traefik version")
        .map_or(log.as_str(), |at| &log[at..]);
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WRN ") || l.contains(" ERR "))
        // A replica that is down (started after Traefik, or stopped by the tests below).
        .filter(|l| !l.to_ascii_lowercase().contains("health check failed"))
        .collect();
    assert!(noisy.is_empty(), "Traefik warns: {noisy:#?}");
}

#[test]
fn the_gate_middlewares_are_the_dev_stacks() {
    // Both stacks describe the ForwardAuth middleware and the header stripping; they
    // must not drift apart (comments and the address aside).
    fn block(path: &str, from: &str, to: &str) -> Vec<String> {
        let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
        let start = text
            .find(from)
            .unwrap_or_else(|| panic!("{from} in {path}"));
        let rest = &text[start..];
        let end = rest.find(to).unwrap_or_else(|| panic!("{to} in {path}"));
        rest[..end]
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }
    let dev = block(
        "traefik/dynamic/wizbrand.yml",
        "    wizbrand-auth:",
        "\n  routers:",
    );
    let prod = block(
        "traefik/prod/dynamic/wizbrand.yml",
        "    wizbrand-auth:",
        "    # END gate middlewares",
    );
    assert_eq!(dev, prod);
}

// ------------------------------------------------------------------- a person

/// Signs in over HTTPS with `client` as `user` (Keycloak's form, as a browser posts it),
/// starting at `/login?rd=<rd>`; returns the callback's answer.
async fn sign_in(prod: &Prod, client: &reqwest::Client, rd: &str, user: &str) -> reqwest::Response {
    let start = client
        .get(format!("{}/login", prod.public()))
        .query(&[("rd", rd)])
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let auth = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        auth.starts_with(&format!(
            "{}/realms/wizbrand/",
            prod.var("WIZBRAND_PROD_KEYCLOAK_URL")
        )),
        "{auth}"
    );
    let form = client.get(&auth).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK, "Keycloak's login page");
    let page = form.text().await.unwrap();
    let action = page
        .split("id=\"kc-form-login\"")
        .nth(1)
        .and_then(|rest| rest.split("action=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("Keycloak's login form")
        .replace("&amp;", "&");
    let submitted = client
        .post(action)
        .form(&[("username", user), ("password", user), ("credentialId", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::FOUND, "login refused");
    let callback = submitted.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("{}/auth/callback?", prod.public())),
        "{callback}"
    );
    client.get(&callback).send().await.unwrap()
}

#[tokio::test]
async fn a_member_signs_in_with_chromium_over_https_picks_an_org_reaches_an_app_and_signs_out() {
    let prod = prod();
    let _turn = turn().await;
    let public = prod.public();
    let app = prod.app_url("beta", "seo");
    let select = format!(
        "{public}/orgs/select?rd={}",
        url::form_urlencoded::byte_serialize(app.as_bytes()).collect::<String>()
    );
    let login =
        reqwest::Url::parse_with_params(&format!("{public}/login"), &[("rd", &select)]).unwrap();
    let browser = Browser::start_trusting(std::path::Path::new(prod.var("WIZBRAND_PROD_CA"))).await;

    browser.goto(login.as_str()).await;
    browser
        .wait_for_url(&format!(
            "{}/realms/wizbrand/",
            prod.var("WIZBRAND_PROD_KEYCLOAK_URL")
        ))
        .await;
    // carol: acme ORG_USER and beta ORG_MANAGER, so she chooses.
    browser.type_into("#username", "carol").await;
    browser.type_into("#password", "carol").await;
    browser.click("#kc-login").await;
    browser.wait_for_url(&format!("{public}/orgs/select")).await;
    let session = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "__Host-wizbrand_session")
        .expect("a session cookie on the auth host");
    assert_eq!(session["secure"], true, "{session}");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert!(
        matches!(session["sameSite"].as_str(), Some("Lax" | "Strict")),
        "{session}"
    );
    browser.find("#org-acme").await;
    browser.click("#org-beta").await;

    // On to the app through the gate (the load-balanced ForwardAuth), with her identity.
    browser.wait_for_url(&app).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = browser.text().await.to_ascii_lowercase();
        if text.contains("carol@example.com") {
            assert!(text.contains("x-org-slug: beta"), "{text}");
            assert!(text.contains("x-org-roles: org_manager"), "{text}");
            assert!(text.contains("x-user-id: "), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "the app did not answer: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.goto(&app).await;
    }
    let host_cookie = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "__Host-wizbrand_app")
        .expect("the app host's own cookie");
    assert_eq!(host_cookie["secure"], true, "{host_cookie}");
    assert_eq!(host_cookie["httpOnly"], true, "{host_cookie}");
    assert!(
        matches!(host_cookie["sameSite"].as_str(), Some("Lax" | "Strict")),
        "{host_cookie}"
    );
    browser.screenshot("prod-app-over-https").await;

    // Sign out through Keycloak's end-session endpoint, back to the signed-out page.
    browser.goto(&format!("{public}/")).await;
    assert!(browser.text().await.contains("Organization: beta"));
    browser.click("#sign-out").await;
    browser.wait_for_url(&format!("{public}/signed-out")).await;
    // Signed out on the app host too, and at Keycloak: the password is asked again.
    browser.goto(&app).await;
    browser
        .wait_for_url(&format!(
            "{}/realms/wizbrand/",
            prod.var("WIZBRAND_PROD_KEYCLOAK_URL")
        ))
        .await;
    browser.find("#password").await;
    browser.quit().await;
}

#[tokio::test]
async fn keycloak_ending_a_session_reaches_the_replicas_through_back_channel_logout() {
    let prod = prod();
    let _turn = turn().await;
    let client = prod.client();
    let done = sign_in(prod, &client, &format!("{}/", prod.public()), "bob").await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let cookie = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-wizbrand_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let on = |n: usize| {
        let cookie = cookie.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{}/", prod.replica(n)))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    for n in 1..=2 {
        assert!(on(n).await.contains("Signed in as"), "replica {n}");
    }
    // An administrator ends bob's sessions in Keycloak; Keycloak posts a logout token
    // to the back-channel URL, Traefik's internal entry point, which hands it to one
    // replica; the revocation reaches the other through Postgres.
    let user = prod
        .keycloak_admin(reqwest::Method::GET, "/users?username=bob&exact=true")
        .await;
    let id = user[0]["id"].as_str().unwrap().to_owned();
    prod.keycloak_admin(reqwest::Method::POST, &format!("/users/{id}/logout"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    for n in 1..=2 {
        loop {
            if on(n).await.contains("not signed in") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {n} still accepts the session"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let access = std::fs::read_to_string(
        PathBuf::from(prod.var("WIZBRAND_PROD_TRAEFIK_LOG")).with_file_name("traefik-access.log"),
    )
    .unwrap();
    assert!(
        access
            .lines()
            .any(|l| l.contains("POST /auth/backchannel-logout") && l.contains("wizbrand-internal")),
        "the logout token did not go through Traefik's load balancer"
    );
}

// ------------------------------------------------------------------- two replicas

/// The gate of replica `n`, asked as Traefik asks it, for `host` with a Bearer token.
async fn gate(prod: &Prod, n: usize, host: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}/forward-auth", prod.replica(n)))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", "/")
        .header("accept", "application/json")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn set_roles(prod: &Prod, n: usize, token: &str, roles: &[&str]) {
    let response = reqwest::Client::new()
        .put(format!(
            "{}/api/v1/orgs/acme/members/carol@example.com",
            prod.replica(n)
        ))
        .bearer_auth(token)
        .json(&json!({ "roles": roles }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "PUT roles on replica {n}: {status} {}",
        response.text().await.unwrap_or_default()
    );
}

/// How long until replica `n`'s gate answers `wanted` for carol on acme.files.
async fn gate_becomes(prod: &Prod, n: usize, token: &str, wanted: StatusCode) -> Duration {
    let started = Instant::now();
    loop {
        let got = gate(prod, n, "acme.files.wizbrand.localhost", token).await;
        if got == wanted {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica {n}'s gate still answers {got}, not {wanted}, a second after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_membership_change_on_one_replica_is_enforced_by_the_others_gate_and_one_replica_syncs() {
    let prod = prod();
    let _turn = turn().await;
    let pool = prod.pool().await;
    let admin = prod.token("alice").await;
    let carol = prod.token("carol").await;
    // The demo state (a failed run of this test may have left carol a manager).
    set_roles(prod, 1, &admin, &["ORG_USER"]).await;
    let since: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM sync_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    let logs_since = chrono::Utc::now().to_rfc3339();
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 1..=2 {
        // She is a member (her account linked): acme's seo opens, files (ORG_MANAGER) not.
        while gate(prod, n, "acme.seo.wizbrand.localhost", &carol).await != StatusCode::OK {
            assert!(
                Instant::now() < deadline,
                "carol is not a member on replica {n}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        gate_becomes(prod, n, &carol, StatusCode::FORBIDDEN).await;
    }

    // Made a manager through replica 1: replica 2's gate lets her into files.
    set_roles(prod, 1, &admin, &["ORG_MANAGER"]).await;
    let granted = gate_becomes(prod, 2, &carol, StatusCode::OK).await;
    // And back through replica 2: replica 1's gate keeps her out again.
    set_roles(prod, 2, &admin, &["ORG_USER"]).await;
    let revoked = gate_becomes(prod, 1, &carol, StatusCode::FORBIDDEN).await;
    record(
        json!({"figure": "membership change seen by the other replica's gate",
                  "granted_ms": granted.as_millis(), "revoked_ms": revoked.as_millis()}),
    );

    // Each change woke the sync on both replicas at once; one ran it, the other found
    // the advisory lock taken and recorded `skipped`. (Two runs one after the other
    // are fine too, so the change is made again until both outcomes were seen.)
    let outcomes = |n: usize| -> (usize, usize) {
        let logs = prod.podman(&["logs", "--since", &logs_since, &prod.container(n)]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
        let finished: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "sync run finished" && v["span"]["trigger"] == "change")
            .collect();
        let count = |status: &str| finished.iter().filter(|v| v["status"] == status).count();
        (count("skipped"), count("succeeded"))
    };
    let mut roles = ["ORG_MANAGER", "ORG_USER"].iter().cycle();
    let mut changes = 2;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // The runs the changes woke (the safety-net cron may run meanwhile, also twice).
        let runs: Vec<(String, String)> = sqlx::query_as(
            "SELECT trigger, status FROM sync_runs WHERE id > $1 AND trigger = 'change' ORDER BY id",
        )
        .bind(since)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            runs.iter()
                .all(|(_, s)| s == "running" || s == "succeeded" || s == "skipped"),
            "a sync run woken by a change did not succeed: {runs:?}"
        );
        // Changes close together may share one run per replica, so the count of runs
        // is not fixed: what matters is both outcomes, once every woken run is over.
        if runs.len() >= 2 && runs.iter().all(|(_, s)| s != "running") {
            let (skipped_1, ran_1) = outcomes(1);
            let (skipped_2, ran_2) = outcomes(2);
            if (skipped_1 > 0 && ran_2 > 0) || (skipped_2 > 0 && ran_1 > 0) {
                assert!(runs.iter().any(|(_, s)| s == "skipped"), "{runs:?}");
                record(
                    json!({"figure": "sync runs of two replicas", "changes": changes,
                              "runs": runs, "replica_1": {"skipped": skipped_1, "ran": ran_1},
                              "replica_2": {"skipped": skipped_2, "ran": ran_2}}),
                );
                break;
            }
            assert!(
                changes < 8,
                "after {changes} changes no replica skipped while the other ran: {runs:?}"
            );
            set_roles(prod, 1, &admin, &[roles.next().unwrap()]).await;
            changes += 1;
        }
        assert!(Instant::now() < deadline, "sync runs: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The demo state again.
    set_roles(prod, 1, &admin, &["ORG_USER"]).await;
}

// ------------------------------------------------------------------- a replica stops

struct LoadReport {
    ok: u64,
    failures: Vec<(f64, String)>,
    seconds: f64,
}

impl LoadReport {
    fn failure_window(&self) -> f64 {
        match (self.failures.first(), self.failures.last()) {
            (Some((first, _)), Some((last, _))) => last - first,
            _ => 0.0,
        }
    }
}

/// `connections` clients request through Traefik for `seconds`: an app page through
/// the gate (Bearer token of bob, acme ORG_USER) and wizbrand's own /healthz, in turn.
/// `disrupt` runs beside them from the start.
async fn load<F: std::future::Future<Output = Value>>(
    prod: &Prod,
    connections: usize,
    seconds: u64,
    disrupt: F,
) -> (LoadReport, Value) {
    let token = prod.token("bob").await;
    let client = prod.client();
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let urls = [
        prod.app_url("acme", "seo"),
        format!("{}/healthz", prod.public()),
    ];
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (client, token, ok, failures, urls) = (
            client.clone(),
            token.clone(),
            Arc::clone(&ok),
            Arc::clone(&failures),
            urls.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = worker;
            while Instant::now() < until {
                let url = &urls[i % 2];
                i += 1;
                let outcome = client.get(url).bearer_auth(&token).send().await;
                let failure = match outcome {
                    Ok(r) if r.status() == StatusCode::OK => match r.bytes().await {
                        Ok(_) => None,
                        Err(e) => Some(format!("{url}: body: {e}")),
                    },
                    Ok(r) => Some(format!("{url}: {}", r.status())),
                    Err(e) => Some(format!("{url}: {e:?}")),
                };
                match failure {
                    None => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(what) => failures
                        .lock()
                        .unwrap()
                        .push((started.elapsed().as_secs_f64(), what)),
                }
            }
        }));
    }
    let disrupted = disrupt.await;
    for worker in workers {
        worker.await.unwrap();
    }
    let mut failures = std::mem::take(&mut *failures.lock().unwrap());
    failures.sort_by(|a, b| a.0.total_cmp(&b.0));
    (
        LoadReport {
            ok: ok.load(Ordering::Relaxed),
            failures,
            seconds: started.elapsed().as_secs_f64(),
        },
        disrupted,
    )
}

/// After 5 s, sends `signal` to replica 1, waits for it to exit, starts it again and
/// waits until it answers; returns when each happened.
async fn stop_and_start(prod: &Prod, signal: &str) -> Value {
    tokio::time::sleep(Duration::from_secs(5)).await;
    let container = prod.container(1);
    let started = Instant::now();
    let killed = prod
        .podman_async(&["kill", "--signal", signal, &container])
        .await;
    assert!(killed.status.success(), "podman kill: {killed:?}");
    let waited = prod.podman_async(&["wait", &container]).await;
    let exited = started.elapsed();
    let exit_code = String::from_utf8_lossy(&waited.stdout).trim().to_owned();
    let again = prod.podman_async(&["start", &container]).await;
    assert!(again.status.success(), "podman start: {again:?}");
    prod.wait_ready(1).await;
    let ready = started.elapsed();
    json!({"signal": signal, "exited_after_s": exited.as_secs_f64(),
           "exit_code": exit_code, "answering_again_after_s": ready.as_secs_f64()})
}

/// Load through Traefik (64 connections, 20 s) while replica 1 gets `signal` and is
/// started again; the figures recorded, and the load seen running.
async fn replica_stopped_under_load(prod: &Prod, signal: &str) -> LoadReport {
    let (report, replica) = load(prod, 64, 20, stop_and_start(prod, signal)).await;
    record(
        json!({"figure": format!("SIG{signal} of one replica under load through Traefik"),
                  "connections": 64, "seconds": report.seconds, "ok": report.ok,
                  "failed": report.failures.len(), "failure_window_s": report.failure_window(),
                  "replica": replica, "first_failures": report.failures.iter().take(5).collect::<Vec<_>>()}),
    );
    assert!(
        report.ok > 100,
        "the load did not run: {} requests",
        report.ok
    );
    report
}

#[tokio::test]
async fn a_replica_stopped_with_sigterm_under_load_fails_no_request() {
    let prod = prod();
    let _turn = turn().await;
    let _start_again = StartAgain(1);
    let report = replica_stopped_under_load(prod, "TERM").await;
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed while a replica stopped: {:?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        &report.failures[..report.failures.len().min(10)]
    );
}

#[tokio::test]
async fn a_replica_killed_with_sigkill_under_load_is_measured_and_the_stack_recovers() {
    let prod = prod();
    let _turn = turn().await;
    let _start_again = StartAgain(1);
    let report = replica_stopped_under_load(prod, "KILL").await;
    // Whatever failed, failed around the kill: none in the last five seconds, when the
    // replica has long been back.
    let late: Vec<_> = report
        .failures
        .iter()
        .filter(|(at, _)| *at > report.seconds - 5.0)
        .collect();
    assert!(late.is_empty(), "failures long after the kill: {late:?}");
}

// ------------------------------------------------------------------- the image

#[tokio::test]
async fn the_image_runs_as_non_root_on_a_read_only_root_and_answers_readyz() {
    let prod = prod();
    let _turn = turn().await;
    let image = prod.var("WIZBRAND_PROD_IMAGE");
    let inspect = prod.podman(&["image", "inspect", image]);
    let config: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let config = &config[0];
    assert_eq!(config["Config"]["User"], "65532:65532");
    assert_eq!(
        config["Config"]["Entrypoint"],
        json!(["/usr/local/bin/wizbrand"])
    );
    assert_eq!(config["Config"]["Cmd"], json!(["serve"]));
    record(json!({"figure": "image size", "image": image,
                  "bytes": config["Size"], "mb": config["Size"].as_u64().unwrap_or(0) / 1_000_000}));

    // A third container from the image, beside the replicas: read-only root without
    // podman's writable tmpfs, every capability dropped, the image's user, text logs.
    let port = free_port();
    let name = format!("wizbrand-image-test-{port}");
    let env_file = state_dir().join("wizbrand.env");
    let started = prod.podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        "--add-host",
        "keycloak.wizbrand.localhost:127.0.0.1",
        "--add-host",
        "keycloak-internal.wizbrand.localhost:127.0.0.1",
        "-v",
        &format!(
            "{}:/etc/wizbrand/ca-bundle.pem:ro",
            state_dir().join("tls/ca-bundle.pem").display()
        ),
        "--env-file",
        env_file.to_str().unwrap(),
        "-e",
        &format!("WIZBRAND_LISTEN=127.0.0.1:{port}"),
        // The host's network: the default ops port may be another wizbrand's.
        "-e",
        "WIZBRAND_OPS_LISTEN=off",
        "-e",
        "WIZBRAND_SYNC_ENABLED=false",
        "-e",
        "WIZBRAND_LOG_FORMAT=text",
        image,
    ]);
    struct Remove<'a>(&'a Prod, String);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = self.0.podman(&["rm", "-f", "-t", "5", &self.1]);
        }
    }
    let _remove = Remove(prod, name.clone());
    assert!(started.status.success(), "podman run: {started:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let readiness: Value = loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status() == StatusCode::OK
        {
            break r.json().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the container is not ready: {}",
            String::from_utf8_lossy(&prod.podman(&["logs", &name]).stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(readiness["ready"], true, "{readiness}");

    let state: Value =
        serde_json::from_slice(&prod.podman(&["container", "inspect", &name]).stdout).unwrap();
    assert_eq!(state[0]["HostConfig"]["ReadonlyRootfs"], true);
    // The process, seen from the host: not root.
    let pid = state[0]["State"]["Pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65532"),
        "{uid}"
    );
    // Nothing writable: not the root, not /tmp.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/"))
        .unwrap();
    assert!(
        root.split_whitespace()
            .nth(3)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{root}"
    );
    assert!(
        !mounts
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("/tmp")),
        "{mounts}"
    );
    // Its logs, not a terminal: no colour codes.
    let logs = prod.podman(&["logs", &name]);
    let text =
        String::from_utf8_lossy(&logs.stderr).into_owned() + &String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("wizbrand is listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI codes in the logs: {text:?}");
}

#[tokio::test]
async fn the_image_without_ca_roots_refuses_to_start_and_says_why() {
    let prod = prod();
    let _turn = turn().await;
    // An operator's trust store that holds nothing (an empty bundle mounted over it).
    let empty = std::env::temp_dir().join(format!("wizbrand-empty-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&empty, "").unwrap();
    let output = prod.podman(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "-v",
        &format!("{}:/etc/ssl/certs/ca-certificates.crt:ro", empty.display()),
        "--env-file",
        state_dir().join("wizbrand.env").to_str().unwrap(),
        "-e",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "-e",
        &format!("WIZBRAND_LISTEN=127.0.0.1:{}", free_port()),
        "-e",
        "WIZBRAND_OPS_LISTEN=off",
        prod.var("WIZBRAND_PROD_IMAGE"),
    ]);
    let _ = std::fs::remove_file(&empty);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("no TLS trust store"), "{said}");
    assert!(said.contains("ca-certificates"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}
