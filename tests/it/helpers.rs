//! The shared harness: the stack, a database per test, the app in-process, and typed
//! helpers for Keycloak.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use wizbrand::config::Config;
use wizbrand::startup::Application;

/// The checkout under test. `scripts/test.sh` says so at run time: a test binary in a
/// target folder shared between checkouts may have been built in another one.
pub fn repo_root() -> PathBuf {
    std::env::var_os("WIZBRAND_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// How to reach the running stack: `.stack/stack.env`, written by `scripts/stack.sh`.
pub fn stack() -> &'static HashMap<String, String> {
    static STACK: OnceLock<HashMap<String, String>> = OnceLock::new();
    STACK.get_or_init(|| {
        // Idempotent: returns in a second or two when everything already runs.
        let status = Command::new(repo_root().join("scripts/stack.sh"))
            .args(["up", "--infra"])
            .status()
            .expect("scripts/stack.sh could not be run");
        assert!(status.success(), "scripts/stack.sh up --infra failed");
        let text =
            std::fs::read_to_string(state_dir().join("stack.env")).expect("stack.env missing");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    })
}

/// The stack's state folder (`WIZBRAND_STATE_DIR`, else `.stack/` in the checkout).
pub fn state_dir() -> PathBuf {
    std::env::var("WIZBRAND_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".stack"))
}

/// The stack's SMTP server (scripts/mail_store.py). The defaults are stack.sh's, for a
/// stack.env written by a checkout that did not have the mail server yet.
pub fn smtp_url() -> String {
    let port = stack()
        .get("WIZBRAND_STACK_SMTP_PORT")
        .cloned()
        .unwrap_or_else(|| "2525".to_owned());
    format!("smtp://127.0.0.1:{port}")
}

/// Where the stack's SMTP server keeps every message (`<stamp>.json` summaries).
pub fn mail_dir() -> PathBuf {
    stack()
        .get("WIZBRAND_STACK_MAIL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir().join("mail"))
}

/// Every message the mail server kept for `to`, oldest first: its JSON summary
/// (`subject`, `text`, `html`, `rcpt_tos`, ...) plus `"file"`, the summary's path.
pub fn mails_to(to: &str) -> Vec<Value> {
    let to = to.to_lowercase();
    let mut names: Vec<PathBuf> = std::fs::read_dir(mail_dir())
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter_map(|path| {
            let mut mail: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
            let for_them = mail["rcpt_tos"]
                .as_array()
                .is_some_and(|r| r.iter().any(|a| a.as_str() == Some(to.as_str())));
            mail["file"] = json!(path.to_string_lossy());
            for_them.then_some(mail)
        })
        .collect()
}

/// Waits up to 30 s for the `n`-th (1-based) message to `to`; returns it.
pub async fn nth_mail_to(to: &str, n: usize) -> Value {
    for _ in 0..150 {
        if let Some(mail) = mails_to(to).into_iter().nth(n - 1) {
            return mail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("no mail #{n} to {to} in {}", mail_dir().display());
}

/// The first URL in `text` that starts with `prefix`.
pub fn link_in(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no link starting {prefix} in {text}"));
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

pub fn stack_var(name: &str) -> String {
    stack()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from stack.env"))
        .clone()
}

/// reqwest's cookie jar, seeing `http://*.localhost` as a browser does: a secure
/// context. (reqwest sends `Secure` cookies over http only to `localhost` and loopback
/// addresses; Chromium and Firefox also to every `*.localhost` host, which the dev
/// stack and the Traefik tests use. wizbrand's `__Host-` cookies are always `Secure`.)
pub struct BrowserJar(reqwest::cookie::Jar);

impl BrowserJar {
    fn as_browser_sees(url: &url::Url) -> url::Url {
        let mut url = url.clone();
        if url.scheme() == "http"
            && url
                .host_str()
                .is_some_and(|h| h == "localhost" || h.ends_with(".localhost"))
        {
            let _ = url.set_scheme("https");
        }
        url
    }
}

impl reqwest::cookie::CookieStore for BrowserJar {
    fn set_cookies(
        &self,
        headers: &mut dyn Iterator<Item = &reqwest::header::HeaderValue>,
        url: &url::Url,
    ) {
        self.0.set_cookies(headers, &Self::as_browser_sees(url))
    }

    fn cookies(&self, url: &url::Url) -> Option<reqwest::header::HeaderValue> {
        self.0.cookies(&Self::as_browser_sees(url))
    }
}

/// An HTTP client that follows no redirects, keeps cookies (as a browser would, see
/// [`BrowserJar`]), and sends `*.localhost` hosts to loopback (this machine's resolver
/// does not).
pub fn http_client() -> reqwest::Client {
    http_client_with_jar().0
}

/// [`http_client`] and its cookie jar (to read what a browser would hold).
pub fn http_client_with_jar() -> (reqwest::Client, std::sync::Arc<BrowserJar>) {
    let jar = std::sync::Arc::new(BrowserJar(reqwest::cookie::Jar::default()));
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(std::sync::Arc::clone(&jar));
    for host in [
        "auth.wizbrand.localhost",
        "acme.seo.wizbrand.localhost",
        "acme.files.wizbrand.localhost",
        "acme.photos.wizbrand.localhost",
        "acme.music.wizbrand.localhost",
        "beta.files.wizbrand.localhost",
    ] {
        builder = builder.resolve(host, SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    (builder.build().unwrap(), jar)
}

impl BrowserJar {
    /// The `Cookie` header this jar sends to `url`.
    pub fn header_for(&self, url: &str) -> String {
        use reqwest::cookie::CookieStore;
        self.cookies(&url::Url::parse(url).unwrap())
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// A fresh database with the migrations applied.
pub async fn fresh_database() -> (String, PgPool) {
    let admin_url = stack_var("WIZBRAND_STACK_PG_ADMIN_URL");
    let name = format!("wiz_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = admin_url.replace("/postgres", &format!("/{name}"));
    let pool = PgPool::connect(&url).await.unwrap();
    wizbrand::db::migrate(&pool).await.unwrap();
    (url, pool)
}

/// The environment a test app runs with; tests change entries before spawning.
pub fn base_env(database_url: &str) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        "KEYCLOAK_URL",
        "KEYCLOAK_REALM",
        "WIZBRAND_OIDC_CLIENT_SECRET",
        "WIZBRAND_SYNC_CLIENT_SECRET",
    ]
    .into_iter()
    .map(|k| (k.to_owned(), stack_var(k)))
    .collect();
    for (k, v) in [
        ("DATABASE_URL", database_url),
        ("WIZBRAND_LISTEN", "127.0.0.1:0"),
        // Metrics and readiness details: a free port of each app's own.
        ("WIZBRAND_OPS_LISTEN", "127.0.0.1:0"),
        ("WIZBRAND_PUBLIC_URL", "http://auth.wizbrand.localhost:8000"),
        ("WIZBRAND_COOKIE_DOMAIN", "wizbrand.localhost"),
        ("WIZBRAND_PROBE_TIMEOUT_MS", "1500"),
        // Tests share one Keycloak: a test that wants the scheduler turns it on with
        // a group root of its own.
        ("WIZBRAND_SYNC_ENABLED", "false"),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    // The stack's mail server: invitations are really sent (and kept there).
    env.insert("WIZBRAND_SMTP_URL".into(), smtp_url());
    env.insert("WIZBRAND_SESSION_KEY".into(), "t".repeat(64));
    env
}

/// For tests that go through a Traefik of their own, or call `/forward-auth` as Traefik
/// would from loopback: the app believes loopback's forwarded headers. wizbrand's default
/// names no trusted proxy.
pub fn behind_traefik(env: &mut HashMap<String, String>) {
    env.insert(
        "WIZBRAND_TRUSTED_PROXIES".into(),
        "127.0.0.1/32,::1/128".into(),
    );
}

#[derive(Clone)]
pub struct TestApp {
    pub address: String,
    /// The ops listener (`/metrics`, readiness details), which Traefik never routes to.
    pub ops_address: String,
    pub pool: PgPool,
    pub database_url: String,
    pub client: reqwest::Client,
}

impl TestApp {
    /// The same server seen from another browser (a cookie jar of its own). `clone()`
    /// is the same browser.
    pub fn another_browser(&self) -> TestApp {
        TestApp {
            client: http_client(),
            ..self.clone()
        }
    }

    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(change: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
        let (database_url, pool) = fresh_database().await;
        Self::spawn_on(database_url, pool, change).await
    }

    /// Another replica on this app's database.
    pub async fn replica(&self) -> TestApp {
        self.replica_with(|_| {}).await
    }

    /// Another replica on this app's database, its environment changed by `change`.
    pub async fn replica_with(&self, change: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
        Self::spawn_on(self.database_url.clone(), self.pool.clone(), change).await
    }

    async fn spawn_on(
        database_url: String,
        pool: PgPool,
        change: impl FnOnce(&mut HashMap<String, String>),
    ) -> TestApp {
        let mut env = base_env(&database_url);
        change(&mut env);
        let config = Config::from_source(&env).expect("test configuration is invalid");
        let app = Application::build(config).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let ops_address = ops_address(&app);
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            ops_address,
            pool,
            database_url,
            client: http_client(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// `path` on the ops listener (`/metrics`, `/readyz` with details).
    pub async fn ops_get(&self, path: &str) -> reqwest::Response {
        assert!(!self.ops_address.is_empty(), "this app has no ops listener");
        self.client
            .get(format!("{}{path}", self.ops_address))
            .send()
            .await
            .unwrap()
    }

    /// The Prometheus text of this app's ops listener.
    pub async fn metrics(&self) -> String {
        let response = self.ops_get("/metrics").await;
        assert_eq!(response.status(), 200, "/metrics on the ops listener");
        response.text().await.unwrap()
    }
}

/// `http://127.0.0.1:<ops port>` of an app built in-process ("" when it has none).
pub fn ops_address(app: &Application) -> String {
    app.ops_port()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .unwrap_or_default()
}

/// Keycloak's admin REST API, as the bootstrap admin (tests only).
pub struct KeycloakAdmin {
    pub base: String,
    pub realm: String,
    http: reqwest::Client,
    /// The master realm's admin token and when it was fetched: it lives 60 s, and a
    /// long test (or a loaded machine) outlives it, so it is fetched again at 40 s.
    token: Arc<std::sync::Mutex<(String, std::time::Instant)>>,
}

impl KeycloakAdmin {
    pub async fn connect() -> KeycloakAdmin {
        let base = stack_var("KEYCLOAK_URL");
        let http = reqwest::Client::new();
        let token = Self::fetch_token(&http, &base).await;
        KeycloakAdmin {
            realm: stack_var("KEYCLOAK_REALM"),
            base,
            http,
            token: Arc::new(std::sync::Mutex::new((token, std::time::Instant::now()))),
        }
    }

    /// A token of the master realm's admin, fresh enough for the next call.
    async fn token(&self) -> String {
        {
            let held = self.token.lock().unwrap();
            if held.1.elapsed() < Duration::from_secs(40) {
                return held.0.clone();
            }
        }
        let fresh = Self::fetch_token(&self.http, &self.base).await;
        *self.token.lock().unwrap() = (fresh.clone(), std::time::Instant::now());
        fresh
    }

    async fn fetch_token(http: &reqwest::Client, base: &str) -> String {
        let token: Value = http
            .post(format!(
                "{base}/realms/master/protocol/openid-connect/token"
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", &stack_var("WIZBRAND_STACK_KC_ADMIN")),
                ("password", &stack_var("WIZBRAND_STACK_KC_ADMIN_PASSWORD")),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["access_token"].as_str().unwrap().to_owned()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/realms/{}{path}", self.base, self.realm)
    }

    /// The same admin, acting on another realm.
    pub fn for_realm(&self, realm: &str) -> KeycloakAdmin {
        KeycloakAdmin {
            base: self.base.clone(),
            realm: realm.to_owned(),
            http: self.http.clone(),
            token: Arc::clone(&self.token),
        }
    }

    /// A new realm `name` imported from the project's realm export (its ids left out,
    /// so Keycloak makes new ones): a test that needs a realm nobody else writes to.
    pub async fn create_realm_copy(&self, name: &str) {
        fn without_ids(value: Value) -> Value {
            match value {
                Value::Object(map) => Value::Object(
                    map.into_iter()
                        .filter(|(k, _)| k != "id" && k != "containerId")
                        .map(|(k, v)| (k, without_ids(v)))
                        .collect(),
                ),
                Value::Array(items) => Value::Array(items.into_iter().map(without_ids).collect()),
                other => other,
            }
        }
        let export =
            std::fs::read_to_string(repo_root().join("keycloak-realm/wizbrand-realm.json"))
                .unwrap();
        let mut realm = without_ids(serde_json::from_str(&export).unwrap());
        realm["realm"] = json!(name);
        let response = self
            .http
            .post(format!("{}/admin/realms", self.base))
            .bearer_auth(self.token().await)
            .json(&realm)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "create realm {name}: {}",
            response.status()
        );
    }

    pub async fn delete_realm(&self, name: &str) {
        self.for_realm(name)
            .send(reqwest::Method::DELETE, "", None)
            .await;
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(self.token().await)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Sends a write and returns the status and the `Location` header, if any.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Option<String>) {
        let mut request = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(self.token().await);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = response.status();
        assert!(
            status.is_success(),
            "{method} {path}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        (status, location)
    }

    /// Creates a user with a password and the verified email `<username>@example.com`;
    /// returns its id.
    pub async fn create_user(&self, username: &str, password: &str) -> String {
        self.create_account(username, password, &format!("{username}@example.com"), true)
            .await
    }

    /// Creates a user as an administrator may: any email, verified or not; returns its id.
    pub async fn create_account(
        &self,
        username: &str,
        password: &str,
        email: &str,
        verified: bool,
    ) -> String {
        let (status, location) = self
            .send(
                reqwest::Method::POST,
                "/users",
                Some(json!({
                    "username": username,
                    "email": email,
                    "emailVerified": verified,
                    "enabled": true,
                    "firstName": "Test",
                    "lastName": "User",
                    "credentials": [{"type": "password", "value": password, "temporary": false}],
                })),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "create {username}");
        location.unwrap().rsplit('/').next().unwrap().to_owned()
    }

    /// Finds a group by path, e.g. `/orgs`.
    pub async fn group_id(&self, path: &str) -> String {
        let group = self.get(&format!("/group-by-path{path}")).await;
        group["id"].as_str().unwrap().to_owned()
    }

    /// A group by path, or `None` when there is none.
    pub async fn find_group(&self, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(self.url(&format!("/group-by-path{path}")))
            .bearer_auth(self.token().await)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            404 => None,
            200 => Some(response.json().await.unwrap()),
            other => panic!("GET group {path}: {other}"),
        }
    }

    /// Emails of a group's direct members.
    pub async fn member_emails(&self, path: &str) -> Vec<String> {
        let id = self.group_id(path).await;
        let members = self.get(&format!("/groups/{id}/members?max=1000")).await;
        let mut emails: Vec<String> = members
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["email"].as_str().map(str::to_owned))
            .collect();
        emails.sort();
        emails
    }

    /// A user by email (exact), or `None`.
    pub async fn user_by_email(&self, email: &str) -> Option<Value> {
        let found = self
            .get(&format!(
                "/users?email={email}&exact=true&briefRepresentation=false"
            ))
            .await;
        found.as_array().unwrap().first().cloned()
    }
}

/// Keycloak's account API as the person holding `token` uses it (the account console's
/// back end): `get` reads their representation, `post` asks for a change.
pub struct AccountApi {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl AccountApi {
    pub fn of(token: &str) -> AccountApi {
        AccountApi {
            url: format!("{}/realms/wizbrand/account/", stack_var("KEYCLOAK_URL")),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self) -> Value {
        self.http
            .get(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The answer's status and body.
    pub async fn post(&self, wanted: &Value) -> (reqwest::StatusCode, String) {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(wanted)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }
}

/// A password-grant token for a user through the test-only client the dev seed creates.
pub async fn user_token(username: &str, password: &str, client_id: &str) -> Value {
    let base = stack_var("KEYCLOAK_URL");
    let ask = || {
        reqwest::Client::new()
            .post(format!(
                "{base}/realms/wizbrand/protocol/openid-connect/token"
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", client_id),
                ("client_secret", test_client_secret(client_id)),
                ("username", username),
                ("password", password),
                ("scope", "openid"),
            ])
            .send()
    };
    let mut response = ask().await.unwrap();
    if response.status() == reqwest::StatusCode::BAD_REQUEST {
        // Keycloak 26 now and then reports a brand-new user as temporarily disabled by
        // brute-force detection without any failed login (keycloak/keycloak#36495), and
        // says only "invalid_grant": the tests clear that user's lock-out once and ask
        // again; a real refusal fails the second time too.
        let admin = KeycloakAdmin::connect().await;
        let users = admin
            .get(&format!("/users?username={username}&exact=true"))
            .await;
        let id = users[0]["id"].as_str().unwrap().to_owned();
        admin
            .send(
                reqwest::Method::DELETE,
                &format!("/attack-detection/brute-force/users/{id}"),
                None,
            )
            .await;
        response = ask().await.unwrap();
    }
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "token for {username}: {status} {body}");
    body
}

fn test_client_secret(client_id: &str) -> &'static str {
    match client_id {
        "wizbrand-test" => "wizbrand-test-secret",
        "wizbrand-noaud" => "wizbrand-noaud-secret",
        other => panic!("no test secret for {other}"),
    }
}

/// The claims of a JWT, unverified (tests inspect what Keycloak issued).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A Traefik of the test's own, configured from `traefik/` exactly as the dev stack
/// is, with its ForwardAuth pointing at the test's wizbrand. Stopped when dropped.
pub struct TestTraefik {
    pub port: u16,
    child: std::process::Child,
    _dir: TempDir,
}

/// A folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestTraefik {
    pub async fn start(wizbrand: &str) -> TestTraefik {
        Self::start_on(free_port(), wizbrand).await
    }

    /// On a port chosen beforehand (when wizbrand's public URL must name it).
    pub async fn start_on(port: u16, wizbrand: &str) -> TestTraefik {
        let dir = TempDir(
            std::env::temp_dir().join(format!("wizbrand-traefik-{}", uuid::Uuid::new_v4())),
        );
        std::fs::create_dir_all(&dir.0).unwrap();
        let template = std::fs::read_to_string(repo_root().join("traefik/traefik.yml")).unwrap();
        let dynamic = repo_root().join("traefik/dynamic");
        let rendered = template
            .replace("${TRAEFIK_PORT}", &port.to_string())
            .replace("${TRAEFIK_DYNAMIC_DIR}", dynamic.to_str().unwrap())
            .replace(
                "${TRAEFIK_LOG}",
                dir.0.join("traefik.log").to_str().unwrap(),
            )
            .replace(
                "${TRAEFIK_ACCESS_LOG}",
                dir.0.join("access.log").to_str().unwrap(),
            );
        let config = dir.0.join("traefik.yml");
        std::fs::write(&config, rendered).unwrap();
        let base: u16 = stack_var("WIZBRAND_STACK_ECHO_BASE_PORT").parse().unwrap();
        let mut command = Command::new(stack_var("WIZBRAND_STACK_TRAEFIK_BIN"));
        command
            .arg(format!("--configFile={}", config.display()))
            .env(
                "WIZBRAND_FORWARD_AUTH_URL",
                format!("{wizbrand}/forward-auth"),
            )
            .env("WIZBRAND_UPSTREAM_URL", wizbrand)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (i, app) in ["SEO", "MUSIC", "FILES", "PHOTOS"].iter().enumerate() {
            command.env(format!("ECHO_PORT_{app}"), (base + i as u16).to_string());
        }
        let child = command.spawn().unwrap();
        let traefik = TestTraefik {
            port,
            child,
            _dir: dir,
        };
        // Ready when the file provider's routers answer (404 until they are loaded).
        let client = traefik.client();
        let probe = traefik.url("acme", "seo", "/");
        for _ in 0..100 {
            if let Ok(r) = client.get(&probe).send().await
                && r.status() != 404
            {
                return traefik;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "Traefik did not load its routers; see {}",
            traefik._dir.0.display()
        );
    }

    /// What Traefik logged so far (configuration warnings and errors land here).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("traefik.log")).unwrap_or_default()
    }

    /// `http://<org>.<app>.wizbrand.localhost:<port><path>`
    pub fn url(&self, org: &str, app: &str, path: &str) -> String {
        format!("http://{org}.{app}.wizbrand.localhost:{}{path}", self.port)
    }

    /// A client that reaches every app host through this Traefik.
    pub fn client(&self) -> reqwest::Client {
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        for org in ["acme", "beta", "nope"] {
            for app in ["seo", "music", "files", "photos"] {
                builder = builder.resolve(
                    &format!("{org}.{app}.wizbrand.localhost"),
                    SocketAddr::from(([127, 0, 0, 1], self.port)),
                );
            }
        }
        builder.build().unwrap()
    }
}

impl Drop for TestTraefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process that is killed when dropped, so a failing test leaves none behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `name=value` of cookie `name` in a response's `Set-Cookie` headers.
pub fn cookie_pair(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// The hand-over of `app.client`'s session to app host `host`, as a browser does it:
/// the nonce cookie the gate would set, the auth host's hand-off, the exchange on the
/// app host (sent straight to the app with that `Host`). Returns the app-host cookie as
/// `name=value`.
pub async fn app_host_cookie(app: &TestApp, host: &str) -> String {
    let port = url::Url::parse(&app.address).unwrap().port().unwrap();
    let nonce = wizbrand::web::session::random_token();
    let bind = wizbrand::web::app_host::digest(&nonce);
    let rd = format!("http://{host}:{port}/");
    let hand_off = app
        .client
        .get(format!("{}/auth/hand-off", app.address))
        .query(&[("rd", rd.as_str()), ("bind", bind.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(hand_off.status(), 302, "hand-off");
    let to = url::Url::parse(hand_off.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(to.host_str(), Some(host), "{to}");
    assert_eq!(to.path(), "/_wizbrand/session", "{to}");
    let address = url::Url::parse(&app.address).unwrap();
    let exchanged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // The app's address may be a Traefik at auth.wizbrand.localhost.
        .resolve(
            address.host_str().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .build()
        .unwrap()
        .get(format!(
            "{}{}?{}",
            app.address,
            to.path(),
            to.query().unwrap()
        ))
        .header("host", format!("{host}:{port}"))
        .header("cookie", format!("__Host-wizbrand_bind={nonce}"))
        .send()
        .await
        .unwrap();
    assert_eq!(exchanged.status(), 302, "exchange");
    assert_eq!(exchanged.headers()["location"].to_str().unwrap(), rd);
    cookie_pair(&exchanged, "__Host-wizbrand_app").expect("an app-host cookie")
}

/// The random handle of the session a response's `Set-Cookie` carries, opened with the
/// test key of [`base_env`] as wizbrand opens it (the key to the session's tokens).
pub fn session_handle_in(response: &reqwest::Response) -> String {
    let pair = cookie_pair(response, wizbrand::web::session::COOKIE_NAME)
        .expect("a session cookie in the response");
    session_handle(&pair)
}

/// The handle inside a session cookie `__Host-wizbrand_session=<value>` sealed with the
/// test key.
pub fn session_handle(pair: &str) -> String {
    // actix-session percent-encodes the value.
    let cookie = actix_web::cookie::Cookie::parse_encoded(pair.to_owned()).unwrap();
    let key = actix_web::cookie::Key::from("t".repeat(64).as_bytes());
    let state = wizbrand::web::key_rotation::open_sealed(
        wizbrand::web::session::COOKIE_NAME,
        cookie.value(),
        &key,
    )
    .expect("the session cookie opens with the test key");
    // actix-session's state: a map of names to JSON text.
    let state: HashMap<String, String> = serde_json::from_str(&state).unwrap();
    let user: Value = serde_json::from_str(&state["user"]).unwrap();
    user["handle"].as_str().unwrap().to_owned()
}

/// The tokens of session `handle` as `session_tokens` holds them, opened as wizbrand does.
pub async fn stored_tokens(pool: &PgPool, handle: &str) -> wizbrand::web::token_vault::Tokens {
    let vault = wizbrand::web::token_vault::Vault::for_handle(handle);
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM session_tokens WHERE id = $1")
        .bind(vault.row_id())
        .fetch_one(pool)
        .await
        .unwrap();
    vault.open(&sealed).unwrap()
}
