//! A real browser for the tests: Debian's Chromium through chromedriver's W3C WebDriver
//! HTTP API (driven with reqwest; a fresh profile and chromedriver port per browser).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::free_port;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: TempDir,
    _home: Option<TempDir>,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test still closes Chromium: chromedriver quits it on DELETE (a plain
        // blocking request, as Drop cannot await); killing chromedriver alone would not.
        if !self.session.is_empty()
            && let Some(addr) = self.base.strip_prefix("http://")
            && let Ok(mut stream) = std::net::TcpStream::connect(addr)
        {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    pub async fn start() -> Browser {
        Self::start_with_home(None).await
    }

    /// A browser that trusts the CA certificate `ca_pem` (PEM) for TLS servers, as a
    /// person who installed it would: Chromium on Linux reads the NSS database in
    /// `$HOME/.pki/nssdb`, here a fresh HOME of this browser's own.
    pub async fn start_trusting(ca_pem: &std::path::Path) -> Browser {
        let home = std::env::temp_dir().join(format!("wizbrand-chromium-home-{}", Uuid::new_v4()));
        let nssdb = home.join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let db = format!("sql:{}", nssdb.display());
        for args in [
            vec!["-N", "-d", &db, "--empty-password"],
            vec![
                "-A",
                "-d",
                &db,
                "-n",
                "wizbrand local CA",
                "-t",
                "C,,",
                "-i",
                ca_pem.to_str().unwrap(),
            ],
        ] {
            let status = Command::new("certutil")
                .args(&args)
                .status()
                .expect("certutil (libnss3-tools)");
            assert!(status.success(), "certutil {args:?}");
        }
        Self::start_with_home(Some(TempDir(home))).await
    }

    async fn start_with_home(home: Option<TempDir>) -> Browser {
        let port = free_port();
        let mut command = Command::new("/usr/bin/chromedriver");
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(home) = &home {
            command.env("HOME", &home.0);
        }
        let driver = command.spawn().expect("chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("wizbrand-chromium-{}", Uuid::new_v4()));
        let mut browser = Browser {
            driver,
            http,
            base,
            session: String::new(),
            _profile: TempDir(profile.clone()),
            _home: home,
        };
        let created = browser
            .call(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": [
                            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--window-size=1200,900",
                            "--disable-component-update", "--disable-sync",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                }}}),
            )
            .await;
        browser.session = created["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = if self.session.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut request = self.http.request(method.clone(), &url);
        if method == reqwest::Method::POST {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let value: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Waits for an element by CSS selector and returns its id.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let response = self
                .http
                .post(&url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap();
            if response.status().is_success() {
                let value: Value = response.json().await.unwrap();
                return value["value"][ELEMENT].as_str().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no `{css}` at {}: {}",
                self.url().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Waits (20 s at most) until the page's text contains `needle`; returns the text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` not on {}: {text}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if url.starts_with(prefix) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "still at {url}, waiting for {prefix}: {}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The cookies the browser holds for the current page's URL, as WebDriver reports
    /// them (name, value, secure, httpOnly, sameSite, domain, path).
    pub async fn cookies(&self) -> Vec<Value> {
        self.call(reqwest::Method::GET, "/cookie", Value::Null)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn quit(mut self) {
        self.call(reqwest::Method::DELETE, "", Value::Null).await;
        self.session.clear();
    }
}

impl Browser {
    /// [`Browser::screenshot`], also copied into `docs/screenshots/` when asked to
    /// (`WIZBRAND_DOCS_SCREENSHOTS=1`): the pictures in the docs.
    pub async fn screenshot_for_docs(&self, name: &str) -> PathBuf {
        let shot = self.screenshot(name).await;
        if std::env::var_os("WIZBRAND_DOCS_SCREENSHOTS").is_some() {
            let to = crate::helpers::repo_root().join(format!("docs/screenshots/{name}.png"));
            std::fs::copy(&shot, to).unwrap();
        }
        shot
    }

    /// Writes a PNG of the window to the build output's `screenshots/` folder
    /// (`$CARGO_TARGET_DIR/screenshots`) and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Sets the window's size (a phone's width, say).
    pub async fn set_window(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// Signs in on Keycloak's login form, once the browser is there.
    pub async fn keycloak_sign_in(&self, username: &str, password: &str) {
        self.wait_for_url("http://localhost:8180/").await;
        self.type_into("#username", username).await;
        self.type_into("#password", password).await;
        self.click("#kc-login").await;
    }
}

/// `$CARGO_TARGET_DIR/screenshots`, else `target/screenshots` in the checkout.
pub fn screenshots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::helpers::repo_root().join("target"))
        .join("screenshots")
}
