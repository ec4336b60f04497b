//! The cookie layout against the sibling attacks of issue 14 (docs/cookies.md): a
//! headless Chromium as the victim, through a Traefik of the test's own, with a stand-in
//! sibling server on `evil.wizbrand.localhost`; raw `Cookie` headers where a browser
//! adds nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::Browser;
use crate::helpers::{
    KeycloakAdmin, TestApp, TestTraefik, app_host_cookie, behind_traefik, cookie_pair,
    http_client_with_jar,
};
use crate::signin::{
    BehindTraefik, csrf_of, delete_client, keycloak_login, person, sign_in, spawn_app_with,
    spawn_behind_traefik,
};

const SEO: &str = "acme.seo.wizbrand.localhost";

/// wizbrand behind its Traefik on free ports, with a sign-in client of its own.
struct Stack {
    app: TestApp,
    traefik: TestTraefik,
    public: String,
    client_id: String,
}

impl Stack {
    async fn start() -> Stack {
        let BehindTraefik {
            app,
            traefik,
            public,
            client_id,
            ..
        } = spawn_behind_traefik(&KeycloakAdmin::connect().await, |_| {}).await;
        Stack {
            app,
            traefik,
            public,
            client_id,
        }
    }

    /// A person of acme, every app open to them.
    async fn member(&self) -> String {
        let username = person(&self.app.pool, &[("acme", "ORG_ADMIN")]).await;
        sqlx::query(
            "UPDATE orgs SET features = ARRAY['seo','music','files','photos'] WHERE slug = 'acme'",
        )
        .execute(&self.app.pool)
        .await
        .unwrap();
        username
    }

    /// A client of its own reaching wizbrand through Traefik at the public URL, and its
    /// cookie jar.
    fn client(&self) -> (TestApp, Arc<crate::helpers::BrowserJar>) {
        let (client, jar) = http_client_with_jar();
        (
            TestApp {
                address: self.public.clone(),
                ops_address: self.app.ops_address.clone(),
                pool: self.app.pool.clone(),
                database_url: self.app.database_url.clone(),
                client,
            },
            jar,
        )
    }

    async fn stop(self) {
        delete_client(&KeycloakAdmin::connect().await, &self.client_id).await;
    }
}

/// A stand-in sibling app on `evil.wizbrand.localhost`: answers every request with a
/// small page and the given `Set-Cookie` headers, and records the `Cookie` it got.
struct Sibling {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sibling {
    async fn start(set_cookies: Vec<String>) -> Sibling {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let seen = Arc::clone(&seen);
                    let set_cookies = set_cookies.clone();
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        let cookie = head
                            .lines()
                            .find_map(|l| {
                                l.split_once(':')
                                    .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
                                    .map(|(_, v)| v.trim().to_owned())
                            })
                            .unwrap_or_default();
                        seen.lock().unwrap().push(cookie);
                        let body = "<html><body><p id=\"sibling\">a sibling app</p></body></html>";
                        let mut answer = String::from(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n",
                        );
                        for c in &set_cookies {
                            answer.push_str(&format!("Set-Cookie: {c}\r\n"));
                        }
                        answer.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
                        let _ = stream.write_all(answer.as_bytes()).await;
                    });
                }
            }
        });
        Sibling { port, seen, task }
    }

    fn url(&self) -> String {
        format!("http://evil.wizbrand.localhost:{}/", self.port)
    }

    fn last_cookie(&self) -> String {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The value of a `name=value` pair.
fn value(pair: &str) -> String {
    pair.split_once('=').unwrap().1.to_owned()
}

/// A `Set-Cookie` for the whole cookie domain, as a sibling may send.
fn for_parent(name: &str, value: &str, path: &str) -> String {
    format!("{name}={value}; Domain=wizbrand.localhost; Path={path}")
}

/// Opens `url` until the echo app answers (the gate may still be loading the org).
async fn echo_text(browser: &Browser, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        browser.goto(url).await;
        let text = browser.text().await.to_ascii_lowercase();
        if text.contains("x-org-slug") {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the app did not answer at {}: {text}",
            browser.url().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_siblings_script_or_server_cannot_swap_the_session_on_the_auth_host_or_an_app_host() {
    let stack = Stack::start().await;
    let victim = stack.member().await;
    let attacker = stack.member().await;
    let (victim_email, attacker_email) = (
        format!("{victim}@example.com"),
        format!("{attacker}@example.com"),
    );
    // The attacker's own genuine cookies: the auth host's session and acme.seo's.
    let (attackers, _) = stack.client();
    let (_, done) = sign_in(&attackers, &format!("{}/", stack.public), &attacker).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let attacker_session = cookie_pair(&done, "__Host-wizbrand_session").unwrap();
    let attacker_seo = app_host_cookie(&attackers, SEO).await;

    // The victim signs in with Chromium, on the app host.
    let browser = Browser::start().await;
    let seo = stack.traefik.url("acme", "seo", "/");
    browser.goto(&seo).await;
    browser.keycloak_sign_in(&victim, &victim).await;
    browser.wait_for_url(&seo).await;
    assert!(echo_text(&browser, &seo).await.contains(&victim_email));

    // The sibling's server sets the attacker's cookies for the parent domain, at `/`
    // and at the longer paths a browser would list first.
    let mut planted = Vec::new();
    for path in ["/", "/admin", "/orgs"] {
        planted.push(for_parent(
            "__Host-wizbrand_session",
            &value(&attacker_session),
            path,
        ));
        planted.push(for_parent(
            "__Host-wizbrand_app",
            &value(&attacker_seo),
            path,
        ));
        planted.push(format!(
            "{}; Secure; HttpOnly; SameSite=Lax",
            for_parent("__Host-wizbrand_session", &value(&attacker_session), path)
        ));
    }
    // The old shared name: still accepted by the browser, never read by wizbrand.
    planted.push(for_parent(
        "wizbrand_session",
        &value(&attacker_session),
        "/",
    ));
    let sibling = Sibling::start(planted).await;
    browser.goto(&sibling.url()).await;
    browser.find("#sibling").await;
    // And its script (an XSS in any app) does the same from the page.
    let script = format!(
        "for (const p of ['/', '/admin', '/orgs']) {{\
           document.cookie = '__Host-wizbrand_session={s}; domain=wizbrand.localhost; path=' + p;\
           document.cookie = '__Host-wizbrand_app={a}; domain=wizbrand.localhost; path=' + p;\
           document.cookie = '__Host-wizbrand_session={s}; domain=wizbrand.localhost; path=' + p + '; secure';\
         }}\
         document.cookie = 'wizbrand_app={a}; domain=wizbrand.localhost; path=/';\
         return document.cookie;",
        s = value(&attacker_session),
        a = value(&attacker_seo),
    );
    browser.script(&script).await;
    // Control: the plant itself works (the sibling gets its parent-domain cookies back);
    // only the `__Host-` rule keeps ours out of reach.
    browser.goto(&sibling.url()).await;
    let back = sibling.last_cookie();
    assert!(
        back.contains("wizbrand_session=") && back.contains("wizbrand_app="),
        "{back}"
    );
    assert!(!back.contains("__Host-wizbrand"), "{back}");

    // The auth host: still the victim, on every path.
    for path in ["/", "/admin/orgs", "/orgs/select"] {
        browser.goto(&format!("{}{path}", stack.public)).await;
        let text = browser.text().await;
        assert!(!text.contains(&attacker_email), "{path}: {text}");
    }
    browser.goto(&format!("{}/", stack.public)).await;
    let home = browser.text().await;
    assert!(home.contains(&victim_email), "{home}");
    // The app host: still the victim, at `/` and under the longer paths.
    for path in ["/", "/admin/x", "/orgs/y"] {
        let text = echo_text(&browser, &stack.traefik.url("acme", "seo", path)).await;
        assert!(text.contains(&victim_email), "{path}: {text}");
        assert!(
            !text.contains(&format!("x-user-email\": [\"{attacker_email}")),
            "{text}"
        );
    }
    browser.quit().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_planted_pending_sign_in_or_ticket_cannot_sign_the_victim_in_as_someone_else() {
    let stack = Stack::start().await;
    let victim = stack.member().await;
    let attacker = stack.member().await;
    let attacker_email = format!("{attacker}@example.com");
    // The attacker starts a sign-in and answers Keycloak, but keeps the code unused.
    let (attackers, jar) = stack.client();
    let callback = keycloak_login(&attackers, &format!("{}/", stack.public), &attacker).await;
    let pending = jar.header_for(&format!("{}/auth/callback", stack.public));
    assert!(pending.starts_with("__Host-wizbrand_session="), "{pending}");

    // The sibling plants that pending sign-in for the callback path, then sends the
    // victim to the attacker's callback.
    let sibling = Sibling::start(vec![
        for_parent(
            "__Host-wizbrand_session",
            &value(&pending),
            "/auth/callback",
        ),
        format!(
            "{}; Secure; HttpOnly",
            for_parent(
                "__Host-wizbrand_session",
                &value(&pending),
                "/auth/callback"
            )
        ),
        for_parent("wizbrand_session", &value(&pending), "/auth/callback"),
    ])
    .await;
    let browser = Browser::start().await;
    browser.goto(&sibling.url()).await;
    browser.find("#sibling").await;
    browser.goto(&callback).await;
    let text = browser.text().await;
    assert!(text.contains("No sign-in is in progress"), "{text}");
    browser.goto(&format!("{}/", stack.public)).await;
    let home = browser.text().await;
    assert!(
        home.contains("not signed in") && !home.contains(&attacker_email),
        "{home}"
    );
    // Control: the code was live; in the attacker's own browser it signs in.
    let own = attackers.client.get(&callback).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::FOUND);

    // The same on an app host: the victim signs in, and is then sent to a ticket the
    // attacker got for acme.seo (bound to the attacker's browser).
    let seo = stack.traefik.url("acme", "seo", "/");
    browser.goto(&seo).await;
    browser.keycloak_sign_in(&victim, &victim).await;
    browser.wait_for_url(&seo).await;
    assert!(
        echo_text(&browser, &seo)
            .await
            .contains(&format!("{victim}@example.com"))
    );
    let nonce = wizbrand::web::session::random_token();
    let bind = wizbrand::web::app_host::digest(&nonce);
    let hand_off = attackers
        .client
        .get(format!("{}/auth/hand-off", stack.public))
        .query(&[("rd", seo.as_str()), ("bind", bind.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(hand_off.status(), StatusCode::FOUND);
    let ticket_url = hand_off.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        ticket_url.contains("/_wizbrand/session?ticket="),
        "{ticket_url}"
    );
    browser.goto(&ticket_url).await;
    let text = browser.text().await;
    assert!(text.contains("another browser"), "{text}");
    let text = echo_text(&browser, &seo).await;
    assert!(text.contains(&format!("{victim}@example.com")), "{text}");
    assert!(!text.contains(&attacker_email), "{text}");
    browser.quit().await;
    stack.stop().await;
}

#[tokio::test]
async fn junk_or_duplicate_cookies_cannot_block_sign_in_or_choose_a_session() {
    let app = spawn_app_with(behind_traefik).await;
    let bob = person(&app.pool, &[("acme", "ORG_USER")]).await;
    let carol = person(&app.pool, &[("acme", "ORG_USER")]).await;
    let as_client = || {
        let (client, jar) = http_client_with_jar();
        (
            TestApp {
                address: app.address.clone(),
                ops_address: app.ops_address.clone(),
                pool: app.pool.clone(),
                database_url: app.database_url.clone(),
                client,
            },
            jar,
        )
    };
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let callback_with =
        |callback: &str, cookie: String| bare.get(callback).header("cookie", cookie).send();

    // Junk under the old shared name and others, listed before the real pending one.
    let (bobs, jar) = as_client();
    let callback = keycloak_login(&bobs, "/", &bob).await;
    let pending = jar.header_for(&format!("{}/auth/callback", app.address));
    let done = callback_with(
        &callback,
        format!("wizbrand_session=junk; __Host-wizbrand_sessio=x; other=1; {pending}"),
    )
    .await
    .unwrap();
    assert_eq!(done.status(), StatusCode::FOUND, "junk blocked the sign-in");
    assert!(cookie_pair(&done, "__Host-wizbrand_session").is_some());

    // Two of our session cookies: neither counts, the page says so, and the browser is
    // told to drop them; without the junk the same sign-in then completes.
    let (carols, jar) = as_client();
    let callback = keycloak_login(&carols, "/", &carol).await;
    let pending = jar.header_for(&format!("{}/auth/callback", app.address));
    let refused = callback_with(
        &callback,
        format!("__Host-wizbrand_session=junk; {pending}"),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let cleared = refused
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-wizbrand_session=;"))
        .expect("the duplicates are cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let page = refused.text().await.unwrap();
    assert!(page.contains("two wizbrand sign-in cookies"), "{page}");
    let done = carols.client.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::FOUND, "the sign-in recovers");
    let carol_session = cookie_pair(&done, "__Host-wizbrand_session").unwrap();

    // Two people's sessions in one request, in either order: nobody, never by order.
    let (_, done) = sign_in(&bobs, "/", &bob).await;
    let bob_session = cookie_pair(&done, "__Host-wizbrand_session").unwrap();
    for pair in [
        format!("{bob_session}; {carol_session}"),
        format!("{carol_session}; {bob_session}"),
    ] {
        let home = bare
            .get(format!("{}/", app.address))
            .header("cookie", &pair)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            home.contains("not signed in") && !home.contains(&bob) && !home.contains(&carol),
            "{home}"
        );
    }
    // The same at the gate, with two app-host cookies.
    let bob_seo = app_host_cookie(&bobs, SEO).await;
    let carol_seo = app_host_cookie(&carols, SEO).await;
    let gate = |cookie: String| {
        bare.get(format!("{}/forward-auth", app.address))
            .header("X-Forwarded-Host", SEO)
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Uri", "/")
            .header("cookie", cookie)
            .send()
    };
    // Controls, once the gate's state (following Postgres) has both sign-ins' links.
    for single in [&bob_seo, &carol_seo] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while gate(single.clone()).await.unwrap().status() != StatusCode::OK {
            assert!(Instant::now() < deadline, "control: {single} not allowed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for pair in [
        format!("{bob_seo}; {carol_seo}"),
        format!("{carol_seo}; {bob_seo}"),
        format!("__Host-wizbrand_app=junk; {bob_seo}"),
    ] {
        let answer = gate(pair.clone()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{pair}");
        assert!(answer.headers().get("x-user-id").is_none());
    }
    // Junk under other names beside a genuine one changes nothing.
    let answer = gate(format!("wizbrand_app=junk; {bob_seo}; x=1"))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}

/// Follows redirects by hand from `url`: every URL asked for, and the last answer.
async fn follow(client: &reqwest::Client, url: &str) -> (Vec<String>, reqwest::Response) {
    let mut hops = vec![url.to_owned()];
    loop {
        let response = client
            .get(hops.last().unwrap())
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        if !response.status().is_redirection() || hops.len() > 10 {
            return (hops, response);
        }
        let next = url::Url::parse(hops.last().unwrap())
            .unwrap()
            .join(response.headers()["location"].to_str().unwrap())
            .unwrap();
        hops.push(next.to_string());
    }
}

#[tokio::test]
async fn signed_in_once_more_app_hosts_open_through_one_hand_off_each_and_logout_ends_them_all() {
    let stack = Stack::start().await;
    let username = stack.member().await;
    let email = format!("{username}@example.com");
    let replica = stack.app.replica_with(behind_traefik).await;
    let (person, jar) = stack.client();
    let (_, done) = sign_in(&person, &format!("{}/", stack.public), &username).await;
    assert_eq!(done.status(), StatusCode::FOUND);

    // The first app host (once the gate has seen the sign-in link the member's row).
    let seo = stack.traefik.url("acme", "seo", "/start");
    let deadline = Instant::now() + Duration::from_secs(5);
    while follow(&person.client, &seo).await.1.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the first app host did not open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hosts = ["seo", "files", "photos"];
    // The second and third: one hand-off each, no Keycloak.
    for app in &hosts[1..] {
        let url = stack.traefik.url("acme", app, "/start");
        let (hops, answer) = follow(&person.client, &url).await;
        // The auth host's hand-off, the app host's exchange, the page: no Keycloak.
        assert_eq!(hops.len(), 4, "{hops:#?}");
        assert!(
            hops[1].starts_with(&format!("{}/auth/hand-off?", stack.public)),
            "{hops:#?}"
        );
        assert!(
            hops[2].starts_with(&stack.traefik.url("acme", app, "/_wizbrand/session?ticket=")),
            "{hops:#?}"
        );
        assert_eq!(hops[3], url);
        assert!(hops.iter().all(|h| !h.contains(":8180")), "{hops:#?}");
        assert_eq!(answer.status(), StatusCode::OK, "{app}");
        let echo = answer.text().await.unwrap();
        assert!(echo.contains(&email), "{echo}");
        // Then straight in.
        let (hops, answer) = follow(&person.client, &url).await;
        assert_eq!((hops.len(), answer.status()), (1, StatusCode::OK), "{app}");
    }
    // Each host holds a cookie of its own: none opens another host.
    let seo_cookie = jar.header_for(&stack.traefik.url("acme", "seo", "/"));
    let files_cookie = jar.header_for(&stack.traefik.url("acme", "files", "/"));
    assert_ne!(seo_cookie, files_cookie);
    let gate = |base: String, cookie: String, host: &'static str| {
        reqwest::Client::new()
            .get(format!("{base}/forward-auth"))
            .header("X-Forwarded-Host", host)
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Uri", "/")
            .header("cookie", cookie)
            .send()
    };
    let status = |base: &str, cookie: &str, host: &'static str| {
        let request = gate(base.to_owned(), cookie.to_owned(), host);
        async move { request.await.unwrap().status() }
    };
    assert_eq!(
        status(&replica.address, &seo_cookie, SEO).await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            &replica.address,
            &seo_cookie,
            "acme.files.wizbrand.localhost"
        )
        .await,
        StatusCode::UNAUTHORIZED
    );

    // Logout on the auth host ends every host's cookie, on every replica within a second.
    let home = person
        .client
        .get(format!("{}/", stack.public))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let out = person
        .client
        .post(format!("{}/logout", stack.public))
        .form(&[("csrf", csrf_of(&home))])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = cookie_pair(&out, "__Host-wizbrand_session").unwrap_or_default();
    assert_eq!(
        cleared, "__Host-wizbrand_session=",
        "the auth cookie is cleared"
    );
    for app in hosts {
        let answer = person
            .client
            .get(stack.traefik.url("acme", app, "/start"))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::FOUND, "{app} still open");
    }
    let started = Instant::now();
    while status(&replica.address, &seo_cookie, SEO).await != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the replica still accepts the app-host cookie"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_ticket_works_once_for_its_host_only() {
    let app = spawn_app_with(behind_traefik).await;
    let username = person(&app.pool, &[("acme", "ORG_USER")]).await;
    let (_, done) = sign_in(&app, "/", &username).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let port = url::Url::parse(&app.address).unwrap().port().unwrap();
    let nonce = wizbrand::web::session::random_token();
    let bind = wizbrand::web::app_host::digest(&nonce);
    let ticket_for = |host: &'static str| {
        let rd = format!("http://{host}:{port}/x");
        let bind = bind.clone();
        let request = app
            .client
            .get(format!("{}/auth/hand-off", app.address))
            .query(&[("rd", rd), ("bind", bind)]);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FOUND);
            let to = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
            format!("{}?{}", to.path(), to.query().unwrap())
        }
    };
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let exchange = |path: &str, host: &str, nonce: &str| {
        bare.get(format!("{}{path}", app.address))
            .header("host", format!("{host}:{port}"))
            .header("cookie", format!("__Host-wizbrand_bind={nonce}"))
            .send()
    };
    // Used at another app host: refused, and used up.
    let ticket = ticket_for(SEO).await;
    let elsewhere = exchange(&ticket, "acme.files.wizbrand.localhost", &nonce)
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
    assert!(cookie_pair(&elsewhere, "__Host-wizbrand_app").is_none());
    assert!(elsewhere.text().await.unwrap().contains("another host"));
    let again = exchange(&ticket, SEO, &nonce).await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    // Used right: a cookie and on to rd; a second use is refused.
    let ticket = ticket_for(SEO).await;
    let first = exchange(&ticket, SEO, &nonce).await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    assert_eq!(
        first.headers()["location"].to_str().unwrap(),
        format!("http://{SEO}:{port}/x")
    );
    let cookie = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-wizbrand_app="))
        .unwrap();
    let flags = cookie.to_ascii_lowercase();
    for flag in ["; path=/", "; secure", "; httponly", "; samesite=lax"] {
        assert!(flags.contains(flag), "{cookie}");
    }
    assert!(!flags.contains("domain="), "{cookie}");
    let second = exchange(&ticket, SEO, &nonce).await.unwrap();
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    // Too late: 30 s.
    let ticket = ticket_for(SEO).await;
    sqlx::query("UPDATE host_tickets SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let late = exchange(&ticket, SEO, &nonce).await.unwrap();
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert!(late.text().await.unwrap().contains("expired"));
    // An rd on another host is not followed from the exchange.
    let ticket = ticket_for(SEO).await;
    let path = ticket.replace("rd=http%3A%2F%2Facme.seo", "rd=http%3A%2F%2Facme.files");
    let moved = exchange(&path, SEO, &nonce).await.unwrap();
    assert_eq!(moved.status(), StatusCode::FOUND);
    assert_eq!(moved.headers()["location"].to_str().unwrap(), "/");
}
