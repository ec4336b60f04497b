//! Bad input, table-driven: every case is one request against the real app (in-process,
//! its own Postgres database, the real Keycloak for sign-ins and tokens) with the status
//! it must get. No case may get a 5xx; API answers must be problem+json. Each table
//! also holds a genuine request (the control), so a refusal proves the bad part was
//! refused, not everything.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, CookieJar, Key};
use base64::Engine;
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use wizbrand::config::Config;
use wizbrand::startup::Application;
use wizbrand::web::app_host::HostPass;
use wizbrand::web::session::SignedIn;

use crate::helpers::{
    KeycloakAdmin, TestApp, base_env, behind_traefik, claims, free_port, http_client, unique,
};

/// The test apps' session key (`helpers::base_env`).
const TEST_KEY: &str = "tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt";
/// Another app's key.
const OTHER_KEY: &str = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
/// The app host every table asks the gate about (seeded app `seo`, org in the host).
const SEO: &str = "acme.seo.wizbrand.localhost";

/// What a case expects besides its status.
#[derive(Debug, Clone)]
enum Expect {
    Status(u16),
    /// API: the status, and a problem+json body.
    Problem(u16),
    /// A redirect to exactly this `Location`.
    Redirect(u16, String),
    /// A redirect whose `Location` starts with this.
    RedirectPrefix(u16, String),
    /// A request head past the server's limit (128 KiB): `431`, or the connection
    /// closed by the server before the client finished sending.
    TooLarge,
}

impl Expect {
    fn status(&self) -> u16 {
        match self {
            Expect::Status(s)
            | Expect::Problem(s)
            | Expect::Redirect(s, _)
            | Expect::RedirectPrefix(s, _) => *s,
            Expect::TooLarge => 431,
        }
    }
}

enum Request {
    Http(Box<RequestBuilder>),
    /// Bytes written to a TCP connection, for what an HTTP client refuses to send.
    Raw {
        address: String,
        bytes: Vec<u8>,
    },
}

struct Case {
    name: String,
    request: Request,
    expect: Expect,
}

fn case(name: impl Into<String>, request: RequestBuilder, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request: Request::Http(Box::new(request)),
        expect,
    }
}

fn raw_case(name: impl Into<String>, app: &TestApp, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request: Request::Raw {
            address: app.address.trim_start_matches("http://").to_owned(),
            bytes,
        },
        expect,
    }
}

/// Writes `bytes` and reads the status of the answer; `None` when the server closed
/// the connection without one.
async fn send_raw(address: &str, bytes: &[u8]) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before everything is written.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// Sends every case; fails listing every case that got something else. Returns how many
/// cases ran.
async fn run(table: &str, cases: Vec<Case>) -> usize {
    let count = cases.len();
    let mut wrong = Vec::new();
    for case in cases {
        let wanted = case.expect.status();
        assert!(
            wanted < 500,
            "{table}/{}: a case may not expect a 5xx",
            case.name
        );
        let too_large = matches!(case.expect, Expect::TooLarge);
        let request = match case.request {
            Request::Http(request) => *request,
            Request::Raw { address, bytes } => {
                match send_raw(&address, &bytes).await {
                    Some(status) if status == wanted => {}
                    None if too_large => {}
                    other => wrong.push(format!("{}: expected {wanted}, got {other:?}", case.name)),
                }
                continue;
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            // The server may close the connection before the client is done sending.
            Err(_) if too_large => continue,
            Err(e) => {
                let e: String = e.to_string().chars().take(200).collect();
                wrong.push(format!("{}: no answer ({e})", case.name));
                continue;
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let content_type = header("content-type").unwrap_or_default();
        let location = header("location").unwrap_or_default();
        let body = response.text().await.unwrap_or_default();
        let short: String = body.chars().take(200).collect();
        if status >= 500 {
            wrong.push(format!("{}: {status} (a 5xx) {short}", case.name));
            continue;
        }
        if status != wanted {
            wrong.push(format!(
                "{}: expected {wanted}, got {status} {location} {short}",
                case.name
            ));
            continue;
        }
        match &case.expect {
            Expect::Problem(_) if content_type != "application/problem+json" => {
                wrong.push(format!(
                    "{}: content-type `{content_type}`, not problem+json",
                    case.name
                ))
            }
            Expect::Problem(_) if serde_json::from_str::<Value>(&body).is_err() => {
                wrong.push(format!("{}: problem body is not JSON: {short}", case.name))
            }
            Expect::Redirect(_, want) if &location != want => wrong.push(format!(
                "{}: Location `{location}`, expected `{want}`",
                case.name
            )),
            Expect::RedirectPrefix(_, want) if !location.starts_with(want.as_str()) => {
                wrong.push(format!(
                    "{}: Location `{location}`, expected it to start with `{want}`",
                    case.name
                ))
            }
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{table}: {} of {count} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    eprintln!("{table}: {count} cases as expected");
    count
}

/// A client that keeps no cookies and follows no redirects: each case says exactly
/// what it sends.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A fresh connection per case: a 431 closes the one it came on.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// `/forward-auth` as Traefik calls it (from loopback, a trusted proxy), for `host`;
/// an API client (no `text/html`), so "not signed in" is a 401.
fn gate(client: &reqwest::Client, app: &TestApp, host: &str) -> RequestBuilder {
    client
        .get(format!("{}/forward-auth", app.address))
        .header("X-Forwarded-Host", host)
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Uri", "/")
        .header("X-Forwarded-Method", "GET")
        .header("accept", "application/json")
}

/// A session cookie as the app with `key` would make it, holding `state` (the JSON map
/// actix-session keeps).
fn sealed_cookie(key: &str, state: &str) -> String {
    let mut jar = CookieJar::new();
    jar.private_mut(&Key::from(key.as_bytes()))
        .add(Cookie::new("__Host-wizbrand_session", state.to_owned()));
    format!(
        "__Host-wizbrand_session={}",
        jar.get("__Host-wizbrand_session").unwrap().value()
    )
}

fn signed_in(sub: &str, exp: chrono::DateTime<chrono::Utc>) -> SignedIn {
    let now = chrono::Utc::now();
    SignedIn {
        sub: sub.to_owned(),
        email: Some(format!("{sub}@example.com")),
        name: None,
        sid: Some(unique("sid-")),
        org: Some("acme".into()),
        admin: false,
        admin_checked: now.timestamp_millis(),
        iat: (now - chrono::Duration::hours(1)).timestamp_millis(),
        exp: exp.timestamp_millis(),
        handle: unique("h-"),
        csrf: unique("c-"),
        refresh_at: 0,
    }
}

/// An app-host cookie as the app with `key` would seal it, holding `state` (a
/// [`HostPass`] as JSON).
fn sealed_app_cookie(key: &str, state: &str) -> String {
    let mut jar = CookieJar::new();
    jar.private_mut(&Key::from(key.as_bytes()))
        .add(Cookie::new("__Host-wizbrand_app", state.to_owned()));
    format!(
        "__Host-wizbrand_app={}",
        jar.get("__Host-wizbrand_app").unwrap().value()
    )
}

/// `user`'s pass for acme.seo, as JSON ([`sealed_app_cookie`]'s `state`).
fn pass_state(user: &impl serde::Serialize) -> String {
    json!({"host": SEO, "user": user}).to_string()
}

fn session_state(user: &impl serde::Serialize) -> String {
    serde_json::to_string(&HashMap::from([(
        "user",
        serde_json::to_string(user).unwrap(),
    )]))
    .unwrap()
}

/// Org `acme` (every app) and `beta` (seo only).
async fn seed_orgs(app: &TestApp) {
    sqlx::raw_sql(
        "INSERT INTO orgs (slug, name, plan, features) VALUES \
         ('acme', 'Acme', 'pro', ARRAY['seo','music','files','photos']), \
         ('beta', 'Beta', 'free', ARRAY['seo'])",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

/// A `users` row with a Keycloak id and an acme membership.
async fn acme_member(app: &TestApp, email: &str, sub: &str, role: &str) {
    sqlx::query("INSERT INTO users (email, keycloak_id) VALUES ($1, $2)")
        .bind(email)
        .bind(sub)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, roles) \
         SELECT o.id, u.id, ARRAY[$2] FROM orgs o, users u WHERE o.slug = 'acme' AND u.email = $1",
    )
    .bind(email)
    .bind(role)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// Waits until the gate's in-memory state (following Postgres) lets `request` through.
async fn until_allowed(request: impl Fn() -> RequestBuilder) {
    let started = Instant::now();
    loop {
        let status = request().send().await.unwrap().status();
        if status == 200 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the control case is not allowed ({status})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Another app on the same database whose public URL is its own address, with a
/// session key of its own.
async fn app_with_key(database_url: &str, pool: &sqlx::PgPool, key: &str) -> TestApp {
    let port = free_port();
    let mut env = base_env(database_url);
    behind_traefik(&mut env);
    env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
    env.insert(
        "WIZBRAND_PUBLIC_URL".into(),
        format!("http://127.0.0.1:{port}"),
    );
    env.insert("WIZBRAND_SESSION_KEY".into(), key.to_owned());
    let app = Application::build(Config::from_source(&env).unwrap())
        .await
        .unwrap();
    let ops_address = crate::helpers::ops_address(&app);
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        ops_address,
        pool: pool.clone(),
        database_url: database_url.to_owned(),
        client: http_client(),
    }
}

#[tokio::test]
async fn bad_session_cookies_never_sign_anyone_in() {
    use crate::signin::{person, set_cookie, sign_in, spawn_app_with};
    // App A (the test key) and app B (another key) on one database; one real sign-in on each.
    let a = spawn_app_with(behind_traefik).await;
    let b = app_with_key(&a.database_url, &a.pool, OTHER_KEY).await;
    let username = person(&a.pool, &[("acme", "ORG_USER")]).await;
    sqlx::query("UPDATE orgs SET features = ARRAY['seo'] WHERE slug = 'acme'")
        .execute(&a.pool)
        .await
        .unwrap();
    let cookie_of = |response: &reqwest::Response| {
        set_cookie(response, "__Host-wizbrand_session")
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let (_, done) = sign_in(&a, &format!("{}/", a.address), &username).await;
    assert_eq!(done.status(), 302);
    let genuine_session = cookie_of(&done);
    // The gate reads only the app host's own cookie, handed over from the session.
    let genuine = crate::helpers::app_host_cookie(&a, SEO).await;
    let (_, done) = sign_in(&b, &format!("{}/", b.address), &username).await;
    assert_eq!(done.status(), 302);
    let other_key_session = cookie_of(&done);
    let other_key = crate::helpers::app_host_cookie(&b, SEO).await;
    let other_host = crate::helpers::app_host_cookie(&a, "acme.files.wizbrand.localhost").await;
    let sub: String = sqlx::query_scalar("SELECT keycloak_id FROM users WHERE email = $1")
        .bind(format!("{username}@example.com"))
        .fetch_one(&a.pool)
        .await
        .unwrap();

    let client = bare_client();
    let at = |app: &TestApp, cookie: &str| {
        gate(&client, app, SEO).header(
            "cookie",
            HeaderValue::from_bytes(cookie.as_bytes()).unwrap(),
        )
    };
    until_allowed(|| at(&a, &genuine)).await;

    let value = genuine
        .trim_start_matches("__Host-wizbrand_app=")
        .to_owned();
    let mut flipped: Vec<u8> = value.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let random_sealed_size = b64(&[7u8; 300]);
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let forged = |state: &str| sealed_app_cookie(TEST_KEY, state);
    let raw = |bytes: &[u8]| {
        let mut v = b"__Host-wizbrand_app=".to_vec();
        v.extend_from_slice(bytes);
        v
    };
    let with_bytes = |bytes: Vec<u8>| {
        gate(&client, &a, SEO).header("cookie", HeaderValue::from_bytes(&bytes).unwrap())
    };

    let s = |v: &str| Expect::Status(v.parse().unwrap());
    let cases = vec![
        case("control: the genuine cookie", at(&a, &genuine), s("200")),
        case(
            "control: the other app's cookie at the other app",
            at(&b, &other_key),
            s("200"),
        ),
        case(
            "control: a cookie sealed with the test key, not expired",
            at(&a, &forged(&pass_state(&signed_in(&sub, future)))),
            s("200"),
        ),
        case("no cookie", gate(&client, &a, SEO), s("401")),
        case("empty value", at(&a, "__Host-wizbrand_app="), s("401")),
        case(
            "garbage",
            at(&a, "__Host-wizbrand_app=not-a-cookie"),
            s("401"),
        ),
        case(
            "garbage with cookie syntax",
            at(&a, "__Host-wizbrand_app=\"a;b=c\"; =; ;;"),
            s("401"),
        ),
        case(
            "truncated by half",
            at(&a, &genuine[..genuine.len() / 2]),
            s("401"),
        ),
        case(
            "truncated by one character",
            at(&a, &genuine[..genuine.len() - 1]),
            s("401"),
        ),
        case(
            "one character changed",
            at(&a, &format!("__Host-wizbrand_app={flipped}")),
            s("401"),
        ),
        case(
            "random bytes of a sealed cookie's size",
            at(&a, &format!("__Host-wizbrand_app={random_sealed_size}")),
            s("401"),
        ),
        case(
            "the genuine value under another name",
            at(&a, &format!("other={value}")),
            s("401"),
        ),
        case(
            "oversized: 8 KiB",
            at(&a, &format!("__Host-wizbrand_app={}", "A".repeat(8 << 10))),
            s("401"),
        ),
        case(
            "oversized: 64 KiB",
            at(&a, &format!("__Host-wizbrand_app={}", "A".repeat(64 << 10))),
            s("401"),
        ),
        case(
            "oversized: 200 KiB (past the request-head limit)",
            at(
                &a,
                &format!("__Host-wizbrand_app={}", "A".repeat(200 << 10)),
            ),
            Expect::TooLarge,
        ),
        case(
            "non-UTF-8 bytes",
            with_bytes(raw(b"\xff\xfe\x80garbage")),
            s("401"),
        ),
        case(
            "another key's (a real sign-in at an app with another WIZBRAND_SESSION_KEY)",
            at(&a, &other_key),
            s("401"),
        ),
        case(
            "this app's cookie at the app with the other key",
            at(&b, &genuine),
            s("401"),
        ),
        case(
            "expired (sealed with the right key, exp a minute ago)",
            at(&a, &forged(&pass_state(&signed_in(&sub, past)))),
            s("401"),
        ),
        case(
            "exp at the epoch",
            at(
                &a,
                &forged(&pass_state(&SignedIn {
                    exp: 0,
                    ..signed_in(&sub, future)
                })),
            ),
            s("401"),
        ),
        case(
            "sealed, the user is not JSON",
            at(
                &a,
                &forged(&json!({"host": SEO, "user": "not json"}).to_string()),
            ),
            s("401"),
        ),
        case(
            "sealed, the user with wrong types",
            at(
                &a,
                &forged(&pass_state(
                    &json!({"sub": 5, "iat": "x", "exp": [], "handle": null, "csrf": {}}),
                )),
            ),
            s("401"),
        ),
        case(
            "sealed, the user without exp",
            at(
                &a,
                &forged(&pass_state(
                    &json!({"sub": sub, "iat": 0, "handle": "h", "csrf": "c"}),
                )),
            ),
            s("401"),
        ),
        case(
            "sealed, the state is not a map",
            at(&a, &forged("[1,2,3]")),
            s("401"),
        ),
        case(
            "sealed, the state is not JSON",
            at(&a, &forged("\u{0}\u{1}binary")),
            s("401"),
        ),
        case(
            "sealed, exp beyond any date",
            at(
                &a,
                &forged(&pass_state(&SignedIn {
                    exp: i64::MAX,
                    iat: i64::MIN,
                    ..signed_in(&sub, future)
                })),
            ),
            s("401"),
        ),
        case(
            "a genuine cookie of another app host (acme.files) at acme.seo",
            at(&a, &other_host),
            s("401"),
        ),
        case(
            "sealed with the right key for another host",
            at(
                &a,
                &sealed_app_cookie(
                    TEST_KEY,
                    &serde_json::to_string(&HostPass {
                        host: "acme.files.wizbrand.localhost".into(),
                        user: signed_in(&sub, future),
                    })
                    .unwrap(),
                ),
            ),
            s("401"),
        ),
        case(
            "the auth host's session cookie sent to the gate",
            at(&a, &genuine_session),
            s("401"),
        ),
        case(
            "the session cookie's value under the app cookie's name",
            at(
                &a,
                &format!(
                    "__Host-wizbrand_app={}",
                    genuine_session.trim_start_matches("__Host-wizbrand_session=")
                ),
            ),
            s("401"),
        ),
        case(
            "two genuine app cookies",
            at(&a, &format!("{genuine}; {genuine}")),
            s("401"),
        ),
        case(
            "two session cookies, a forged one first",
            at(&a, &format!("__Host-wizbrand_app=forged; {genuine}")),
            s("401"),
        ),
    ];
    let mut count = run("session cookies", cases).await;

    // The pages read the same cookie: never signed in, never a 5xx.
    let page = |cookie: &str, path: &str| {
        client.get(format!("{}{path}", a.address)).header(
            "cookie",
            HeaderValue::from_bytes(cookie.as_bytes()).unwrap(),
        )
    };
    let cases = vec![
        case(
            "home with another key's cookie",
            page(&other_key_session, "/"),
            s("200"),
        ),
        case(
            "org selection with another key's cookie: sign in first",
            page(&other_key_session, "/orgs/select"),
            Expect::RedirectPrefix(302, format!("{}/login", a.address)),
        ),
        case(
            "org selection with an expired cookie: sign in first",
            page(
                &sealed_cookie(TEST_KEY, &session_state(&signed_in(&sub, past))),
                "/orgs/select",
            ),
            Expect::RedirectPrefix(302, format!("{}/login", a.address)),
        ),
        case(
            "logout with a garbage cookie",
            client
                .post(format!("{}/logout", a.address))
                .header("cookie", "__Host-wizbrand_session=garbage")
                .form(&[("csrf", "x")]),
            Expect::Redirect(303, format!("{}/signed-out", a.address)),
        ),
    ];
    count += run("session cookies on pages", cases).await;
    let home = client
        .get(format!("{}/", a.address))
        .header("cookie", other_key_session.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("You are not signed in"), "{home}");
    assert!(count >= 30);
}

#[tokio::test]
async fn bad_bearer_tokens_are_401_at_the_api_and_the_gate() {
    use crate::api::{PASSWORD, person};
    let app = TestApp::spawn_with(behind_traefik).await;
    seed_orgs(&app).await;
    let kc = KeycloakAdmin::connect().await;
    let member = person(&kc, false).await;
    acme_member(&app, &member.email, &member.keycloak_id, "ORG_USER").await;
    let username = member.email.split('@').next().unwrap().to_owned();
    let all = crate::helpers::user_token(&username, PASSWORD, "wizbrand-test").await;
    let id_token = all["id_token"].as_str().unwrap().to_owned();
    let refresh_token = all["refresh_token"].as_str().unwrap().to_owned();
    let good = member.token.clone();
    let parts: Vec<&str> = good.split('.').collect();
    let (head, payload, sig) = (parts[0], parts[1], parts[2]);
    let kid = crate::helpers::claims(&format!("x.{head}"))["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut wrong_types = claims(&good);
    wrong_types["sub"] = json!(5);
    wrong_types["exp"] = json!("tomorrow");
    wrong_types["aud"] = json!({"wizbrand-api": true});
    wrong_types["iss"] = json!(["x"]);
    wrong_types["realm_access"] = json!("wizbrand-admin");
    let mut huge_exp = claims(&good);
    huge_exp["exp"] = json!(1e300);
    let mut negative_exp = claims(&good);
    negative_exp["exp"] = json!(-1);
    let enc = |v: &Value| b64(v.to_string().as_bytes());
    let with_header = |h: Value| format!("{}.{payload}.{sig}", enc(&h));
    let with_claims = |c: &Value| format!("{head}.{}.{sig}", enc(c));
    let hs256 = format!(
        "{}.{payload}.{}",
        enc(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
        b64(b"not a mac")
    );

    let tokens: Vec<(&str, Vec<u8>, u16)> = vec![
        ("control: genuine", format!("Bearer {good}").into(), 200),
        (
            "control: lower-case scheme",
            format!("bearer {good}").into(),
            200,
        ),
        (
            "control: extra spaces before the token",
            format!("Bearer    {good}").into(),
            200,
        ),
        ("scheme only", b"Bearer".to_vec(), 401),
        ("scheme and a space", b"Bearer ".to_vec(), 401),
        (
            "Basic credentials",
            format!("Basic {}", b64(b"alice:alice")).into(),
            401,
        ),
        ("the token without a scheme", good.clone().into(), 401),
        ("one segment", b"Bearer not-a-jwt".to_vec(), 401),
        (
            "two segments",
            format!("Bearer {head}.{payload}").into(),
            401,
        ),
        ("four segments", format!("Bearer {good}.x").into(), 401),
        ("empty segments", b"Bearer ..".to_vec(), 401),
        (
            "header not base64",
            format!("Bearer !!!.{payload}.{sig}").into(),
            401,
        ),
        (
            "header not JSON",
            format!("Bearer {}.{payload}.{sig}", b64(b"garbage")).into(),
            401,
        ),
        (
            "header a JSON array",
            format!("Bearer {}", with_header(json!([1, 2]))).into(),
            401,
        ),
        (
            "header alg a number",
            format!("Bearer {}", with_header(json!({"alg": 256, "kid": kid}))).into(),
            401,
        ),
        (
            "header kid a number",
            format!("Bearer {}", with_header(json!({"alg": "RS256", "kid": 7}))).into(),
            401,
        ),
        (
            "header unknown alg",
            format!("Bearer {}", with_header(json!({"alg": "XYZ", "kid": kid}))).into(),
            401,
        ),
        (
            "alg none",
            format!(
                "Bearer {}.{payload}.",
                enc(&json!({"alg": "none", "kid": kid}))
            )
            .into(),
            401,
        ),
        (
            "alg None",
            format!(
                "Bearer {}.{payload}.",
                enc(&json!({"alg": "None", "kid": kid}))
            )
            .into(),
            401,
        ),
        (
            "alg HS256 with the realm's kid",
            format!("Bearer {hs256}").into(),
            401,
        ),
        (
            "an unknown kid",
            format!(
                "Bearer {}",
                with_header(json!({"alg": "RS256", "kid": "no-such-key"}))
            )
            .into(),
            401,
        ),
        (
            "no kid",
            format!("Bearer {}", with_header(json!({"alg": "RS256"}))).into(),
            401,
        ),
        (
            "claims of wrong types under the genuine signature",
            format!("Bearer {}", with_claims(&wrong_types)).into(),
            401,
        ),
        (
            "claims not JSON under the genuine signature",
            format!("Bearer {head}.{}.{sig}", b64(b"{\"sub\":")).into(),
            401,
        ),
        (
            "exp 1e300",
            format!("Bearer {}", with_claims(&huge_exp)).into(),
            401,
        ),
        (
            "exp negative",
            format!("Bearer {}", with_claims(&negative_exp)).into(),
            401,
        ),
        (
            "empty signature",
            format!("Bearer {head}.{payload}.").into(),
            401,
        ),
        (
            "signature not base64",
            format!("Bearer {head}.{payload}.@@@").into(),
            401,
        ),
        ("an ID token", format!("Bearer {id_token}").into(), 401),
        (
            "a refresh token",
            format!("Bearer {refresh_token}").into(),
            401,
        ),
        (
            "non-ASCII bytes",
            [
                b"Bearer ".as_slice(),
                head.as_bytes(),
                b".\xff\xfe.",
                sig.as_bytes(),
            ]
            .concat(),
            401,
        ),
        (
            "huge: 100 KiB",
            format!("Bearer {head}.{}.{sig}", "A".repeat(100 << 10)).into(),
            401,
        ),
        (
            "huge: 200 KiB (past the request-head limit)",
            format!("Bearer {}", "A".repeat(200 << 10)).into(),
            431,
        ),
    ];
    let client = bare_client();
    until_allowed(|| gate(&client, &app, SEO).bearer_auth(&good)).await;
    let mut cases = Vec::new();
    for (name, value, status) in tokens {
        let value = HeaderValue::from_bytes(&value).unwrap();
        let api_expect = match status {
            200 => Expect::Status(200),
            431 => Expect::TooLarge,
            s => Expect::Problem(s),
        };
        cases.push(case(
            format!("API /me, {name}"),
            client
                .get(format!("{}/api/v1/me", app.address))
                .header("authorization", value.clone()),
            api_expect.clone(),
        ));
        cases.push(case(
            format!("gate, {name}"),
            gate(&client, &app, SEO).header("authorization", value),
            api_expect,
        ));
    }
    let count = run("bearer tokens", cases).await;
    assert!(count >= 60);
}

#[tokio::test]
async fn odd_forwarded_headers_at_the_gate() {
    use crate::api::person;
    let app = TestApp::spawn_with(behind_traefik).await;
    seed_orgs(&app).await;
    let kc = KeycloakAdmin::connect().await;
    let member = person(&kc, false).await;
    acme_member(&app, &member.email, &member.keycloak_id, "ORG_USER").await;
    let token = member.token.clone();
    let client = bare_client();
    until_allowed(|| gate(&client, &app, SEO).bearer_auth(&token)).await;

    let url = format!("{}/forward-auth", app.address);
    // The gate without any X-Forwarded-* header, with the member's token.
    let bare = || client.get(&url).bearer_auth(&token);
    let with_host = |host: &[u8]| {
        bare()
            .header("X-Forwarded-Host", HeaderValue::from_bytes(host).unwrap())
            .header("X-Forwarded-Uri", "/")
    };
    let host = |h: &str| with_host(h.as_bytes());
    // A browser without a session.
    let browser = |host: &str| {
        client
            .get(&url)
            .header("X-Forwarded-Host", host)
            .header("accept", "text/html,application/xhtml+xml")
    };
    // The hand-off to the auth host, bound to a fresh nonce (`&bind=…`).
    let login = "http://auth.wizbrand.localhost:8000/auth/hand-off?rd=";
    let long_uri = format!("/{}", "a".repeat(16 << 10));
    let mut many_headers = bare().header("X-Forwarded-Host", SEO);
    for i in 0..100 {
        many_headers = many_headers.header(format!("x-filler-{i}"), "1");
    }
    let s = Expect::Status;
    let p = Expect::Problem;
    let cases = vec![
        case("control: the member's app host", host(SEO), s(200)),
        case("no X-Forwarded-Host", bare(), p(400)),
        case("empty X-Forwarded-Host", host(""), p(400)),
        case("blank X-Forwarded-Host", host("   "), p(400)),
        case(
            "upper case host",
            host("ACME.SEO.WIZBRAND.LOCALHOST"),
            s(200),
        ),
        case(
            "host with the port",
            host("acme.seo.wizbrand.localhost:8000"),
            s(200),
        ),
        case(
            "host with a trailing dot",
            host("acme.seo.wizbrand.localhost."),
            s(200),
        ),
        case(
            "host with an empty port",
            host("acme.seo.wizbrand.localhost:"),
            s(200),
        ),
        case(
            "host with a port of 20 digits",
            host("acme.seo.wizbrand.localhost:99999999999999999999"),
            s(200),
        ),
        case(
            "host with a port that is not a number",
            host("acme.seo.wizbrand.localhost:http"),
            p(403),
        ),
        case("IPv6 literal", host("[::1]:8000"), p(403)),
        case("IPv4 literal", host("127.0.0.1"), p(403)),
        case(
            "IDN as raw UTF-8",
            host("acmé.seo.wizbrand.localhost"),
            p(400),
        ),
        case(
            "Cyrillic look-alike of acme as raw UTF-8",
            host("асme.seo.wizbrand.localhost"),
            p(400),
        ),
        case(
            "IDN as punycode (not a member there)",
            host("xn--acm-bma.seo.wizbrand.localhost"),
            p(403),
        ),
        case(
            "Latin-1 bytes",
            with_host(b"acm\xe9.seo.wizbrand.localhost"),
            p(400),
        ),
        case(
            "a label too many",
            host("x.acme.seo.wizbrand.localhost"),
            p(403),
        ),
        case("empty org label", host(".seo.wizbrand.localhost"), p(403)),
        case(
            "the app's bare domain",
            host("seo.wizbrand.localhost"),
            p(403),
        ),
        case(
            "our suffix under a foreign domain",
            host("acme.seo.wizbrand.localhost.evil.example"),
            p(403),
        ),
        case("a foreign host", host("evil.example"), p(403)),
        case(
            "userinfo in the host",
            host("alice@acme.seo.wizbrand.localhost"),
            p(403),
        ),
        case(
            "a path in the host",
            host("acme.seo.wizbrand.localhost/admin"),
            p(403),
        ),
        case(
            "the pattern itself",
            host("{org}.seo.wizbrand.localhost"),
            p(403),
        ),
        case("a wildcard", host("*.seo.wizbrand.localhost"), p(403)),
        case(
            "a tab in the host",
            host("acme\t.seo.wizbrand.localhost"),
            p(403),
        ),
        case(
            "a 10 KiB label",
            host(&format!("{}.seo.wizbrand.localhost", "a".repeat(10 << 10))),
            p(403),
        ),
        case(
            "a comma-separated list of hosts",
            host("acme.seo.wizbrand.localhost, beta.seo.wizbrand.localhost"),
            p(403),
        ),
        case(
            "duplicated X-Forwarded-Host, own org first",
            host(SEO).header("X-Forwarded-Host", "beta.seo.wizbrand.localhost"),
            p(400),
        ),
        case(
            "duplicated X-Forwarded-Host, other org first",
            bare()
                .header("X-Forwarded-Host", "beta.seo.wizbrand.localhost")
                .header("X-Forwarded-Host", SEO),
            p(400),
        ),
        case(
            "duplicated X-Forwarded-Uri",
            host(SEO).header("X-Forwarded-Uri", "/other"),
            p(400),
        ),
        case(
            "duplicated X-Forwarded-Proto",
            host(SEO)
                .header("X-Forwarded-Proto", "http")
                .header("X-Forwarded-Proto", "https"),
            p(400),
        ),
        case(
            "a very long X-Forwarded-Uri (16 KiB)",
            bare()
                .header("X-Forwarded-Host", SEO)
                .header("X-Forwarded-Uri", long_uri.as_str()),
            s(200),
        ),
        case("a very long query on /forward-auth (60 KiB)", client.get(format!("{url}?{}", "q".repeat(60 << 10))).bearer_auth(&token).header("X-Forwarded-Host", SEO), s(200)),
        raw_case("a request line past the head limit (200 KiB)", &app, format!("GET /forward-auth?{} HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: {SEO}\r\n\r\n", "q".repeat(200 << 10)).into_bytes(), Expect::TooLarge),
        raw_case("a header line without a colon", &app, format!("GET /forward-auth HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host {SEO}\r\n\r\n").into_bytes(), s(400)),
        raw_case("a NUL byte in X-Forwarded-Host", &app, b"GET /forward-auth HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: acme\0.seo.wizbrand.localhost\r\n\r\n".to_vec(), s(400)),
        case("more headers than the server takes", many_headers, Expect::TooLarge),
        case(
            "browser, no session: to sign-in with the original URL",
            browser(SEO).header("X-Forwarded-Uri", "/x?y=1"),
            Expect::RedirectPrefix(
                302,
                format!("{login}http%3A%2F%2Facme.seo.wizbrand.localhost%2Fx%3Fy%3D1&bind="),
            ),
        ),
        case(
            "browser, no session, a POST: 303",
            browser(SEO)
                .header("X-Forwarded-Uri", "/")
                .header("X-Forwarded-Method", "POST"),
            Expect::RedirectPrefix(303, login.into()),
        ),
        case(
            "browser, no session, an absolute X-Forwarded-Uri is not followed",
            browser(SEO).header("X-Forwarded-Uri", "https://evil.example/x"),
            Expect::RedirectPrefix(
                302,
                format!("{login}http%3A%2F%2Facme.seo.wizbrand.localhost%2F&bind="),
            ),
        ),
        case(
            "browser, no session, a very long X-Forwarded-Uri",
            browser(SEO).header("X-Forwarded-Uri", long_uri.as_str()),
            Expect::RedirectPrefix(302, login.into()),
        ),
        case(
            "browser, no session, an odd X-Forwarded-Proto",
            browser(SEO)
                .header("X-Forwarded-Uri", "/")
                .header("X-Forwarded-Proto", "javascript"),
            Expect::RedirectPrefix(
                302,
                format!("{login}http%3A%2F%2Facme.seo.wizbrand.localhost%2F&bind="),
            ),
        ),
        case(
            "XHR without a session: 401, not a redirect",
            browser(SEO).header("X-Requested-With", "XMLHttpRequest"),
            p(401),
        ),
        case(
            "browser, no session, a foreign host: 403",
            browser("evil.example"),
            s(403),
        ),
    ];
    let count = run("forwarded headers", cases).await;
    assert!(count >= 40);
}

#[tokio::test]
async fn open_redirect_tricks_in_rd_land_home() {
    // Public URL http://auth.wizbrand.localhost:8000, cookie domain wizbrand.localhost;
    // 56 sign-in requests from one address: the rate limit (attacks.rs) is off here.
    let app = TestApp::spawn_with(|env| {
        env.insert("WIZBRAND_SIGNIN_RATE_PER_MINUTE".into(), "0".into());
    })
    .await;
    let client = bare_client();
    let session = sealed_cookie(
        TEST_KEY,
        &session_state(&signed_in(
            "rd-tester",
            chrono::Utc::now() + chrono::Duration::hours(1),
        )),
    );
    // Signed in already, `/login` sends the browser straight to the checked `rd`.
    let login = |rd: &str| {
        client
            .get(format!("{}/login", app.address))
            .query(&[("rd", rd)])
            .header("cookie", session.as_str())
    };
    let raw_query = |query: &str| {
        client
            .get(format!("{}/login?{query}", app.address))
            .header("cookie", session.as_str())
    };
    let home = || Expect::Redirect(302, "/".into());
    let to = |url: &str| Expect::Redirect(302, url.into());
    let public = "http://auth.wizbrand.localhost:8000";
    let mut cases = vec![
        case(
            "control: a path here",
            login("/orgs/select?x=1"),
            to(&format!("{public}/orgs/select?x=1")),
        ),
        case(
            "control: an app host under the cookie domain",
            login("http://acme.seo.wizbrand.localhost:8000/x?y=1"),
            to("http://acme.seo.wizbrand.localhost:8000/x?y=1"),
        ),
        case(
            "control: upper-case host is normalised",
            login("http://ACME.SEO.wizbrand.localhost:8000/x"),
            to("http://acme.seo.wizbrand.localhost:8000/x"),
        ),
        case(
            "no rd",
            client
                .get(format!("{}/login", app.address))
                .header("cookie", session.as_str()),
            home(),
        ),
        case("empty rd", login(""), home()),
        case("blank rd", login("   "), home()),
        case(
            "a same-scheme relative `http:x` stays here",
            login("http:evil.example"),
            to(&format!("{public}/evil.example")),
        ),
        case(
            "percent-encoded //",
            login("%2F%2Fevil.example"),
            to(&format!("{public}/%2F%2Fevil.example")),
        ),
        case(
            "percent-encoded // after `http:`",
            login("http:%2F%2Fevil.example"),
            to(&format!("{public}/%2F%2Fevil.example")),
        ),
        case(
            "a percent-encoded scheme is a path here",
            login("%68ttps://evil.example"),
            to(&format!("{public}/%68ttps://evil.example")),
        ),
        case(
            "double-encoded //",
            login("%252F%252Fevil.example"),
            to(&format!("{public}/%252F%252Fevil.example")),
        ),
        case(
            "encoded CR LF stays encoded",
            login("/%0d%0aSet-Cookie:x=1"),
            to(&format!("{public}/%0d%0aSet-Cookie:x=1")),
        ),
        case(
            "a Cyrillic look-alike host under the cookie domain (punycode, still ours)",
            login("http://аuth.wizbrand.localhost:8000/"),
            Expect::RedirectPrefix(302, "http://xn--".into()),
        ),
        case(
            "invalid percent-encoding in the query",
            raw_query("rd=%zz"),
            to(&format!("{public}/%zz")),
        ),
        case(
            "invalid UTF-8 in the query",
            raw_query("rd=%FF%FE"),
            Expect::RedirectPrefix(302, format!("{public}/")),
        ),
        case(
            "rd given twice",
            raw_query("rd=%2F&rd=https%3A%2F%2Fevil.example"),
            Expect::Status(400),
        ),
    ];
    for rd in [
        "https://evil.example",
        "http://evil.example",
        "//evil.example",
        "///evil.example",
        "////evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "https:evil.example",
        "https:/evil.example",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "javascript://auth.wizbrand.localhost:8000/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "http://auth.wizbrand.localhost:8000@evil.example/",
        "http://user:pw@auth.wizbrand.localhost:8000/",
        "http://evil.example%2F@auth.wizbrand.localhost:8000/",
        "http://evil.example\\@auth.wizbrand.localhost:8000/",
        "http://evil.example#@auth.wizbrand.localhost:8000/",
        "http://evil.example?@auth.wizbrand.localhost:8000/",
        "http://evil.example/auth.wizbrand.localhost:8000",
        "http://acme.seo.wizbrand.localhost:9999/",
        "https://acme.seo.wizbrand.localhost:8000/",
        "http://evilwizbrand.localhost:8000/",
        "http://wizbrand.localhost.evil.example:8000/",
        "http://auth.wizbrand.localhost。evil.example:8000/",
        "http://evil。example:8000/",
        "http://127.0.0.1:8000/",
        "http://[::1]:8000/",
        "http://0x7f.1:8000/",
        "http://%65vil.example/",
        "ftp://acme.seo.wizbrand.localhost:8000/",
    ] {
        cases.push(case(format!("rd {rd:?}"), login(rd), home()));
    }
    // Not signed in: the checked `rd` waits in the session while Keycloak signs in.
    let fresh = |rd: &str| {
        client
            .get(format!("{}/login", app.address))
            .query(&[("rd", rd)])
    };
    let keycloak = crate::helpers::stack_var("KEYCLOAK_URL");
    cases.push(case(
        "not signed in: a foreign rd, to Keycloak",
        fresh("//evil.example"),
        Expect::RedirectPrefix(302, keycloak.clone()),
    ));
    cases.push(case(
        "not signed in: a 6 KiB rd here, to Keycloak",
        fresh(&format!("/{}", "a".repeat(6 << 10))),
        Expect::RedirectPrefix(302, keycloak.clone()),
    ));
    cases.push(case(
        "not signed in: a 6 KiB rd on an app host, to Keycloak",
        fresh(&format!(
            "http://acme.seo.wizbrand.localhost:8000/{}",
            "%41".repeat(2 << 10)
        )),
        Expect::RedirectPrefix(302, keycloak),
    ));
    let count = run("rd values", cases).await;
    assert!(count >= 50);
}

#[tokio::test]
async fn bad_api_bodies_and_queries_are_problems() {
    use crate::api::person;
    let app = TestApp::spawn().await;
    let kc = KeycloakAdmin::connect().await;
    let admin = person(&kc, true).await;
    let org = unique("bad");
    sqlx::query(
        "INSERT INTO orgs (slug, name, plan, features) VALUES ($1, $1, 'pro', ARRAY['seo'])",
    )
    .bind(&org)
    .execute(&app.pool)
    .await
    .unwrap();
    let client = bare_client();
    let api = |method: Method, path: &str| {
        client
            .request(method, format!("{}/api/v1{path}", app.address))
            .bearer_auth(&admin.token)
    };
    let json_body = |method: Method, path: &str, body: String| {
        api(method, path)
            .header("content-type", "application/json")
            .body(body)
    };
    let orgs = |body: &str| json_body(Method::POST, "/orgs", body.to_owned());
    let patch = |body: &str| json_body(Method::PATCH, &format!("/orgs/{org}"), body.to_owned());
    let member = |body: &str| {
        json_body(
            Method::PUT,
            &format!("/orgs/{org}/members/erin@example.com"),
            body.to_owned(),
        )
    };
    let apps = |body: &str| json_body(Method::POST, "/apps", body.to_owned());
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_features = format!(
        r#"{{"slug":"deep","name":"x","features":{}{}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let deep_object = format!(
        r#"{{"slug":"deep","name":"x","x":{}1{}}}"#,
        r#"{"a":"#.repeat(3_000),
        "}".repeat(3_000)
    );
    let p = Expect::Problem;
    let cases = vec![
        case(
            "control: a valid org",
            orgs(r#"{"slug":"good-one","name":"Good"}"#),
            Expect::Status(201),
        ),
        case("malformed: cut short", orgs(r#"{"slug": "#), p(400)),
        case(
            "a method the route does not take",
            api(Method::PUT, "/orgs"),
            p(405),
        ),
        case(
            "two Authorization headers",
            api(Method::GET, "/me").header("authorization", "Bearer other"),
            p(401),
        ),
        case("malformed: empty body", orgs(""), p(400)),
        case(
            "malformed: trailing garbage",
            orgs(r#"{"slug":"x1","name":"x"} trailing"#),
            p(400),
        ),
        case(
            "malformed: single quotes",
            orgs("{'slug':'x1','name':'x'}"),
            p(400),
        ),
        case(
            "malformed: a comment",
            orgs(r#"{"slug":"x1", /* hi */ "name":"x"}"#),
            p(400),
        ),
        case(
            "malformed: NaN",
            orgs(r#"{"slug":"x1","name":NaN}"#),
            p(400),
        ),
        case(
            "malformed: invalid UTF-8",
            json_body(Method::POST, "/orgs", String::new())
                .body(b"{\"slug\":\"\xff\",\"name\":\"x\"}".to_vec()),
            p(400),
        ),
        case(
            "malformed: a lone surrogate escape",
            orgs(r#"{"slug":"x1","name":"\ud800"}"#),
            p(400),
        ),
        case(
            "malformed: a number out of range",
            orgs(r#"{"slug":"x1","name":"x","features":[1e999]}"#),
            p(400),
        ),
        case("not an object: null", orgs("null"), p(422)),
        case("not an object: an array", orgs("[]"), p(422)),
        case("not an object: a string", orgs(r#""slug""#), p(422)),
        case("missing fields", orgs("{}"), p(422)),
        case("deep nesting: 10,000 arrays", orgs(&deep_array), p(422)),
        case(
            "deep nesting inside a known field",
            orgs(&deep_features),
            p(422),
        ),
        case(
            "deep nesting inside an unknown field",
            orgs(&deep_object),
            p(422),
        ),
        case(
            "huge: 1 MiB with Content-Length",
            orgs(&format!(
                r#"{{"slug":"big","name":"{}"}}"#,
                "x".repeat(1 << 20)
            )),
            p(400),
        ),
        case(
            "huge: one byte over 64 KiB",
            orgs(&format!(
                r#"{{"slug":"big","name":"{}"}}"#,
                "x".repeat((64 << 10) - 23)
            )),
            p(400),
        ),
        case(
            "unknown field",
            orgs(r#"{"slug":"x1","name":"x","colour":"red"}"#),
            p(422),
        ),
        case(
            "unknown field: admin",
            orgs(r#"{"slug":"x1","name":"x","platform_admin":true}"#),
            p(422),
        ),
        case(
            "duplicate key",
            orgs(r#"{"slug":"x1","slug":"x2","name":"x"}"#),
            p(422),
        ),
        case(
            "wrong type: slug a number",
            orgs(r#"{"slug":7,"name":"x"}"#),
            p(422),
        ),
        case(
            "wrong type: name an object",
            orgs(r#"{"slug":"x1","name":{"a":1}}"#),
            p(422),
        ),
        case(
            "wrong type: features a string",
            orgs(r#"{"slug":"x1","name":"x","features":"seo"}"#),
            p(422),
        ),
        case(
            "wrong type: features numbers",
            orgs(r#"{"slug":"x1","name":"x","features":[1,2]}"#),
            p(422),
        ),
        case(
            "wrong type: plan null",
            orgs(r#"{"slug":"x1","name":"x","plan":null}"#),
            p(422),
        ),
        case(
            "no content type",
            api(Method::POST, "/orgs").body(r#"{"slug":"x1","name":"x"}"#),
            p(400),
        ),
        case(
            "text/plain",
            api(Method::POST, "/orgs")
                .header("content-type", "text/plain")
                .body(r#"{"slug":"x1","name":"x"}"#),
            p(400),
        ),
        case(
            "form-encoded",
            api(Method::POST, "/orgs").form(&[("slug", "x1"), ("name", "x")]),
            p(400),
        ),
        case("patch: wrong type status", patch(r#"{"status":1}"#), p(422)),
        case(
            "patch: hidden_apps a string",
            patch(r#"{"hidden_apps":"music"}"#),
            p(422),
        ),
        case(
            "patch: unknown field",
            patch(r#"{"slug":"renamed"}"#),
            p(422),
        ),
        case("patch: an array", patch("[]"), p(422)),
        case(
            "member: roles a string",
            member(r#"{"roles":"ORG_USER"}"#),
            p(422),
        ),
        case(
            "member: roles with null",
            member(r#"{"roles":[null]}"#),
            p(422),
        ),
        case(
            "member: role in lower case",
            member(r#"{"roles":["org_user"]}"#),
            p(422),
        ),
        case(
            "member: roles an object",
            member(r#"{"roles":{"ORG_USER":true}}"#),
            p(422),
        ),
        case(
            "app: min_role unknown",
            apps(
                r#"{"key":"k1","name":"k","host_pattern":"k1.example.test","required_feature":"seo","min_role":"ROOT"}"#,
            ),
            p(422),
        ),
        case(
            "app: key a bool",
            apps(
                r#"{"key":true,"name":"k","host_pattern":"k1.example.test","required_feature":"seo"}"#,
            ),
            p(422),
        ),
        case(
            "query: limit not a number",
            api(Method::GET, "/orgs?limit=abc"),
            p(400),
        ),
        case(
            "query: limit negative",
            api(Method::GET, "/orgs?limit=-1"),
            p(400),
        ),
        case(
            "query: limit zero",
            api(Method::GET, "/orgs?limit=0"),
            p(400),
        ),
        case(
            "query: limit huge",
            api(Method::GET, "/orgs?limit=99999999999999999999999"),
            p(400),
        ),
        case(
            "query: offset negative",
            api(Method::GET, "/orgs?offset=-5"),
            p(400),
        ),
        case(
            "query: limit twice",
            api(Method::GET, "/orgs?limit=1&limit=2"),
            p(400),
        ),
        case(
            "unknown API path",
            api(Method::GET, "/nothing-here"),
            p(404),
        ),
    ];
    let count = run("API bodies", cases).await;
    assert!(count >= 40);
}

#[tokio::test]
async fn slugs_and_emails_are_parsed_strictly() {
    use crate::api::person;
    let app = TestApp::spawn().await;
    let kc = KeycloakAdmin::connect().await;
    let admin = person(&kc, true).await;
    let org = unique("se");
    sqlx::query(
        "INSERT INTO orgs (slug, name, plan, features) VALUES ($1, $1, 'pro', ARRAY['seo'])",
    )
    .bind(&org)
    .execute(&app.pool)
    .await
    .unwrap();
    let client = bare_client();
    let api = |method: Method, path: &str| {
        client
            .request(method, format!("{}/api/v1{path}", app.address))
            .bearer_auth(&admin.token)
    };
    let create =
        |slug: &str| api(Method::POST, "/orgs").json(&json!({"slug": slug, "name": "Some org"}));
    let put = |email: &str| {
        let path = format!("/orgs/{org}/members/{}", url_path_segment(email));
        api(Method::PUT, &path).json(&json!({"roles": ["ORG_USER"]}))
    };
    let p = Expect::Problem;
    let s = Expect::Status;
    let mut cases = vec![
        case("control: a plain slug", create("plain-slug-1"), s(201)),
        case("control: 63 characters", create(&"a".repeat(63)), s(201)),
        case("control: an email", put("erin@example.com"), s(201)),
        case(
            "an email in upper case is the same member",
            put("ERIN@Example.COM"),
            s(200),
        ),
        case(
            "an email with spaces around is the same member",
            put(" erin@example.com "),
            s(200),
        ),
        case(
            "slug: the existing one in upper case",
            create(&org.to_uppercase()),
            p(422),
        ),
        case("slug: 64 characters", create(&"a".repeat(64)), p(422)),
        case("slug: 1,000 characters", create(&"a".repeat(1000)), p(422)),
        case("slug: empty", create(""), p(422)),
        case("slug: Cyrillic look-alike of acme", create("асme"), p(422)),
        case("slug: Latin small letter dotless i", create("ıbm"), p(422)),
        case("slug: full-width letters", create("ａｃｍｅ"), p(422)),
        case("slug: a zero-width space", create("ac\u{200b}me"), p(422)),
        case("slug: a combining accent", create("acme\u{301}"), p(422)),
        case("slug: a dot", create("acme.evil"), p(422)),
        case("slug: an underscore", create("ac_me"), p(422)),
        case("slug: a leading dash", create("-acme"), p(422)),
        case("slug: a trailing dash", create("acme-"), p(422)),
        case("slug: a NUL", create("ac\0me"), p(422)),
        case("slug: a slash", create("ac/me"), p(422)),
        case("slug: `{org}`", create("{org}"), p(422)),
        case(
            "path: the org in upper case",
            api(Method::GET, &format!("/orgs/{}", org.to_uppercase())),
            p(404),
        ),
        case(
            "path: a 1,000-character slug",
            api(Method::GET, &format!("/orgs/{}", "a".repeat(1000))),
            p(404),
        ),
        case(
            "path: a Cyrillic look-alike",
            api(Method::GET, "/orgs/%D0%B0%D1%81me"),
            p(404),
        ),
        case(
            "path: encoded dots",
            api(Method::GET, "/orgs/%2e%2e"),
            p(404),
        ),
        case(
            "path: encoded slash",
            api(Method::GET, &format!("/orgs/{org}%2Fmembers")),
            p(404),
        ),
        case(
            "path: invalid UTF-8",
            api(Method::GET, "/orgs/%FF%FE"),
            p(404),
        ),
        case(
            "path: member email invalid UTF-8",
            api(Method::PUT, &format!("/orgs/{org}/members/%FF@example.com"))
                .json(&json!({"roles": ["ORG_USER"]})),
            p(422),
        ),
        case("email: no @", put("erin.example.com"), p(422)),
        case("email: two @", put("erin@evil@example.com"), p(422)),
        case("email: no domain dot", put("erin@localhost"), p(422)),
        case("email: empty local part", put("@example.com"), p(422)),
        case(
            "email: a space inside",
            put("erin smith@example.com"),
            p(422),
        ),
        case(
            "email: a control character",
            put("erin\u{7}@example.com"),
            p(422),
        ),
        case(
            "email: 300 characters",
            put(&format!("{}@example.com", "e".repeat(288))),
            p(422),
        ),
        case(
            "email: a local part over 64 characters",
            put(&format!("{}@example.com", "e".repeat(65))),
            p(422),
        ),
        case(
            "email: a domain label over 63 characters",
            put(&format!("erin@{}.com", "e".repeat(64))),
            p(422),
        ),
        case(
            "email: a Cyrillic look-alike domain",
            put("erin@ехample.com"),
            p(422),
        ),
        case("email: a full-width @", put("erin＠example.com"), p(422)),
        case("email: markup", put("<script>@example.com"), p(422)),
        case(
            "email: a domain ending with a dot",
            put("erin@example.com."),
            p(422),
        ),
    ];
    for reserved in [
        "www", "auth", "api", "admin", "login", "keycloak", "metrics",
    ] {
        cases.push(case(
            format!("slug: reserved `{reserved}`"),
            create(reserved),
            p(422),
        ));
    }
    let count = run("slugs and emails", cases).await;
    assert!(count >= 40);
}

/// Percent-encodes everything but unreserved characters, for one path segment.
fn url_path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `wizbrand_gate_pass_cache_entries`, read from `/metrics`.
async fn pass_cache_entries(app: &TestApp) -> i64 {
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("wizbrand_gate_pass_cache_entries "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pass cache gauge in {text}"))
}

/// The gate keeps the passes it opened; a flood of distinct cookies must not make it
/// grow without bound. Forged ones never open, so they are never kept at all; genuine
/// ones (sealed with the key, as a stolen key or many real sign-ins would make them)
/// are kept up to the configured size per worker, and the oldest are pushed out.
#[tokio::test]
async fn a_flood_of_distinct_cookies_leaves_the_gates_pass_cache_bounded() {
    const CAPACITY: i64 = 40;
    let app = TestApp::spawn_with(|env| {
        behind_traefik(env);
        env.insert("WIZBRAND_GATE_PASS_CACHE".into(), CAPACITY.to_string());
    })
    .await;
    seed_orgs(&app).await;
    let sub = unique("flood-");
    acme_member(&app, &format!("{sub}@example.com"), &sub, "ORG_USER").await;
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let genuine = |_: usize| sealed_app_cookie(TEST_KEY, &pass_state(&signed_in(&sub, future)));
    let client = reqwest::Client::new();
    let first = genuine(0);
    until_allowed(|| gate(&client, &app, SEO).header("cookie", first.clone())).await;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let before = pass_cache_entries(&app).await;
    assert!((1..=workers).contains(&before), "{before}");

    // Forged cookies of a sealed cookie's size, each different: refused, none kept.
    let forged = |i: usize| {
        let bytes: Vec<u8> = (0..19)
            .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
            .chain(i.to_le_bytes())
            .collect();
        format!("__Host-wizbrand_app={}", b64(&bytes))
    };
    for batch in 0..60 {
        let answers = futures_util::future::join_all((0..50).map(|i| {
            gate(&client, &app, SEO)
                .header("cookie", forged(batch * 50 + i))
                .send()
        }))
        .await;
        for answer in answers {
            assert_eq!(answer.unwrap().status(), 401);
        }
    }
    assert_eq!(
        pass_cache_entries(&app).await,
        before,
        "forged cookies were kept"
    );

    // Distinct genuine passes: each allowed, the cache never past its size.
    for batch in 0..12 {
        let answers = futures_util::future::join_all((0..50).map(|i| {
            gate(&client, &app, SEO)
                .header("cookie", genuine(batch * 50 + i))
                .send()
        }))
        .await;
        for answer in answers {
            assert_eq!(answer.unwrap().status(), 200);
        }
        let entries = pass_cache_entries(&app).await;
        assert!(
            entries <= CAPACITY * workers,
            "{entries} passes kept by {workers} workers of {CAPACITY}"
        );
    }
    // The first pass, pushed out long ago, opens again.
    let again = gate(&client, &app, SEO)
        .header("cookie", first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}
