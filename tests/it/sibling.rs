//! A sibling site under the cookie domain, for attacks a neighbouring app can make.
//!
//! [`Sibling`] is a tiny server the test owns, answering on any `*.wizbrand.localhost`
//! host at a port of its own; [`SIBLING_HOST`] (`evil.wizbrand.localhost`) is the name to
//! use. It stands for an app we do not trust, or an XSS in one: everything it does is
//! what such a site may do to a browser's cookies for the parent domain. Ports do not
//! separate cookies, so what it plants reaches `auth.` and every app host behind a
//! [`TestTraefik`](crate::helpers::TestTraefik) on another port.
//!
//! What it serves (all stateless: the URL says what to do):
//! - [`Sibling::set_cookie_url`]: answers with the given raw `Set-Cookie` values (a
//!   server's way, e.g. `wizbrand_session=X; Domain=wizbrand.localhost; Path=/`), then
//!   redirects to `next` if given.
//! - [`Sibling::script_cookie_url`]: a page whose script assigns each given string to
//!   `document.cookie` (a script's way, e.g. `wizbrand_session=X;
//!   domain=wizbrand.localhost; path=/admin`), then shows "cookies set" (wait for it with
//!   `Browser::wait_for_text`) or goes to `next` if given.
//! - [`Sibling::echo_url`]: the `Cookie` header the sibling itself received, as text
//!   (which of the victim's cookies a sibling can see).
//!
//! With Chromium ([`crate::browser::Browser`]) `*.localhost` resolves to loopback on its
//! own; a reqwest client needs [`Sibling::resolve`]. Example (session swap by a
//! sibling's script):
//! ```ignore
//! let sibling = Sibling::start().await;
//! browser.goto(&sibling.script_cookie_url(
//!     &["wizbrand_session=ATTACKER; domain=wizbrand.localhost; path=/admin"],
//!     Some(&format!("{public}/admin/orgs")),
//! )).await;
//! ```

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, http::header, web};

/// The sibling's host name (any `*.wizbrand.localhost` reaches it too).
pub const SIBLING_HOST: &str = "evil.wizbrand.localhost";

pub struct Sibling {
    pub port: u16,
    server: ServerHandle,
}

fn params(req: &HttpRequest) -> (Vec<String>, Option<String>) {
    let mut cookies = Vec::new();
    let mut next = None;
    for (key, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match key.as_ref() {
            "c" => cookies.push(value.into_owned()),
            "next" => next = Some(value.into_owned()),
            _ => {}
        }
    }
    (cookies, next)
}

async fn set_cookie(req: HttpRequest) -> HttpResponse {
    let (cookies, next) = params(&req);
    let mut response = match &next {
        Some(next) => {
            let mut r = HttpResponse::Found();
            r.insert_header((header::LOCATION, next.as_str()));
            r
        }
        None => HttpResponse::Ok(),
    };
    for cookie in cookies {
        response.append_header((header::SET_COOKIE, cookie));
    }
    response.content_type("text/plain").body("set")
}

/// A JSON string is a JavaScript string literal; `<` escaped so no `</script>` ends it.
fn js_string(text: &str) -> String {
    serde_json::to_string(text).unwrap().replace('<', "\\u003c")
}

async fn script_cookie(req: HttpRequest) -> HttpResponse {
    let (cookies, next) = params(&req);
    let mut script: String = cookies
        .iter()
        .map(|c| format!("document.cookie = {};\n", js_string(c)))
        .collect();
    script.push_str("document.getElementById('state').textContent = 'cookies set';\n");
    if let Some(next) = next {
        script.push_str(&format!("location.href = {};\n", js_string(&next)));
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><title>sibling</title><p id=\"state\">setting</p><script>{script}</script>"
        ))
}

async fn echo(req: HttpRequest) -> HttpResponse {
    let cookies: Vec<&str> = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .collect();
    HttpResponse::Ok()
        .content_type("text/plain")
        .body(cookies.join("\n"))
}

impl Sibling {
    pub async fn start() -> Sibling {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(|| {
            App::new()
                .route("/set-cookie", web::get().to(set_cookie))
                .route("/script-cookie", web::get().to(script_cookie))
                .route("/echo", web::get().to(echo))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Sibling {
            port,
            server: handle,
        }
    }

    /// `http://evil.wizbrand.localhost:<port>`
    pub fn origin(&self) -> String {
        format!("http://{SIBLING_HOST}:{}", self.port)
    }

    fn url(&self, path: &str, cookies: &[&str], next: Option<&str>) -> String {
        let mut url = url::Url::parse(&format!("{}{path}", self.origin())).unwrap();
        {
            let mut query = url.query_pairs_mut();
            for cookie in cookies {
                query.append_pair("c", cookie);
            }
            if let Some(next) = next {
                query.append_pair("next", next);
            }
        }
        url.to_string()
    }

    /// Answers with one `Set-Cookie` per entry (raw header values), then 302 to `next`.
    pub fn set_cookie_url(&self, set_cookies: &[&str], next: Option<&str>) -> String {
        self.url("/set-cookie", set_cookies, next)
    }

    /// A page whose script runs `document.cookie = <entry>` for each, then shows
    /// "cookies set" or goes to `next`.
    pub fn script_cookie_url(&self, assignments: &[&str], next: Option<&str>) -> String {
        self.url("/script-cookie", assignments, next)
    }

    /// The `Cookie` header(s) the sibling received, one per line.
    pub fn echo_url(&self) -> String {
        format!("{}/echo", self.origin())
    }

    /// Sends [`SIBLING_HOST`] to this server in a reqwest client.
    pub fn resolve(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.resolve(SIBLING_HOST, SocketAddr::from(([127, 0, 0, 1], self.port)))
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(self.server.stop(false));
        }
    }
}

/// The helper itself, in the browser the session-swap tests use: a sibling's script and
/// its server both plant cookies for the parent domain, which another host then gets.
#[tokio::test]
async fn a_sibling_plants_parent_domain_cookies_by_script_and_by_server_in_chromium() {
    let sibling = Sibling::start().await;
    let browser = crate::browser::Browser::start().await;
    browser
        .goto(&sibling.script_cookie_url(&["by_script=1; domain=wizbrand.localhost; path=/"], None))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !browser.text().await.contains("cookies set") {
        assert!(std::time::Instant::now() < deadline, "script did not run");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let elsewhere = format!("http://other.wizbrand.localhost:{}/echo", sibling.port);
    browser
        .goto(&sibling.set_cookie_url(
            &["by_server=2; Domain=wizbrand.localhost; Path=/; HttpOnly"],
            Some(&elsewhere),
        ))
        .await;
    browser.wait_for_url(&elsewhere).await;
    let seen = browser.text().await;
    assert!(
        seen.contains("by_script=1") && seen.contains("by_server=2"),
        "{seen}"
    );
    // And the sibling sees them itself.
    browser.goto(&sibling.echo_url()).await;
    let seen = browser.text().await;
    assert!(seen.contains("by_server=2"), "{seen}");
}
