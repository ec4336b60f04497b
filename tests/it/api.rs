//! wizbrand-api against real Keycloak tokens: a role matrix over every route, bad
//! tokens, bad bodies, a removed member, and the router against the OpenAPI document.

use std::collections::BTreeSet;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{KeycloakAdmin, TestApp, claims, stack_var, unique, user_token};

pub(crate) const PASSWORD: &str = "pw-123456";

/// The callers of the role matrix, in the order of its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Platform,
    Admin,
    Manager,
    User,
    Outsider,
    Anonymous,
}

const EVERYONE: [Who; 6] = [
    Who::Platform,
    Who::Admin,
    Who::Manager,
    Who::User,
    Who::Outsider,
    Who::Anonymous,
];

pub(crate) struct Person {
    pub(crate) email: String,
    pub(crate) keycloak_id: String,
    pub(crate) token: String,
}

/// A test app, five Keycloak users with tokens, their `users` rows, and an org of the
/// outsider's own.
struct World {
    app: TestApp,
    platform: Person,
    admin: Person,
    manager: Person,
    user: Person,
    outsider: Person,
}

impl World {
    async fn new() -> World {
        Self::with_env(|_| {}).await
    }

    async fn with_env(
        change: impl FnOnce(&mut std::collections::HashMap<String, String>),
    ) -> World {
        let kc = KeycloakAdmin::connect().await;
        let app = TestApp::spawn_with(change).await;
        let platform = person(&kc, true).await;
        let admin = person(&kc, false).await;
        let manager = person(&kc, false).await;
        let user = person(&kc, false).await;
        let outsider = person(&kc, false).await;
        let world = World {
            app,
            platform,
            admin,
            manager,
            user,
            outsider,
        };
        for p in [
            &world.platform,
            &world.admin,
            &world.manager,
            &world.user,
            &world.outsider,
        ] {
            sqlx::query("INSERT INTO users (email, keycloak_id) VALUES ($1, $2)")
                .bind(&p.email)
                .bind(&p.keycloak_id)
                .execute(&world.app.pool)
                .await
                .unwrap();
        }
        let elsewhere = unique("else");
        world.add_org(&elsewhere).await;
        world
            .add_member(&elsewhere, &world.outsider.email, &["ORG_ADMIN"])
            .await;
        world
    }

    fn token(&self, who: Who) -> Option<&str> {
        match who {
            Who::Platform => Some(&self.platform.token),
            Who::Admin => Some(&self.admin.token),
            Who::Manager => Some(&self.manager.token),
            Who::User => Some(&self.user.token),
            Who::Outsider => Some(&self.outsider.token),
            Who::Anonymous => None,
        }
    }

    async fn add_org(&self, slug: &str) {
        sqlx::query(
            "INSERT INTO orgs (slug, name, plan, features) VALUES ($1, $1, 'pro', ARRAY['seo','files'])",
        )
        .bind(slug)
        .execute(&self.app.pool)
        .await
        .unwrap();
    }

    /// Adds a membership, creating the user row (without Keycloak id) if need be.
    async fn add_member(&self, slug: &str, email: &str, roles: &[&str]) {
        sqlx::query("INSERT INTO users (email) VALUES ($1) ON CONFLICT (email) DO NOTHING")
            .bind(email)
            .execute(&self.app.pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, $3 \
             FROM orgs o, users u WHERE o.slug = $1 AND u.email = $2",
        )
        .bind(slug)
        .bind(email)
        .bind(roles.iter().map(|r| r.to_string()).collect::<Vec<_>>())
        .execute(&self.app.pool)
        .await
        .unwrap();
    }

    /// An org where the matrix's admin, manager and user hold one role each, with a
    /// second ORG_ADMIN (`boss@…`) and a plain ORG_USER (`victim@…`).
    async fn matrix_org(&self) -> String {
        let slug = unique("o");
        self.add_org(&slug).await;
        self.add_member(&slug, &self.admin.email, &["ORG_ADMIN"])
            .await;
        self.add_member(&slug, &self.manager.email, &["ORG_MANAGER"])
            .await;
        self.add_member(&slug, &self.user.email, &["ORG_USER"])
            .await;
        self.add_member(&slug, &format!("boss@{slug}.example.com"), &["ORG_ADMIN"])
            .await;
        self.add_member(&slug, &format!("victim@{slug}.example.com"), &["ORG_USER"])
            .await;
        // A claimed (unverified) domain, `{org}.example.com`.
        sqlx::query(
            "INSERT INTO org_domains (org_id, domain, claimed_by) \
             SELECT id, $1 || '.example.com', 'matrix' FROM orgs WHERE slug = $1",
        )
        .bind(&slug)
        .execute(&self.app.pool)
        .await
        .unwrap();
        // Two pending invitations: `{inv}` (ORG_USER) and `{inv_admin}` (ORG_ADMIN).
        for (who, role) in [("invited", "ORG_USER"), ("invited-admin", "ORG_ADMIN")] {
            sqlx::query(
                "INSERT INTO invitations (org_id, email, roles, invited_by, token_hash, expires_at) \
                 SELECT id, $2, $3, 'matrix', encode(sha256(gen_random_uuid()::text::bytea), 'hex'), \
                        now() + interval '1 day' FROM orgs WHERE slug = $1",
            )
            .bind(&slug)
            .bind(format!("{who}@{slug}.example.com"))
            .bind(vec![role.to_owned()])
            .execute(&self.app.pool)
            .await
            .unwrap();
        }
        slug
    }

    /// The id of the matrix org's invitation of `who@<org>.example.com`.
    async fn invitation_id(&self, slug: &str, who: &str) -> String {
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM invitations WHERE email = $1")
            .bind(format!("{who}@{slug}.example.com"))
            .fetch_one(&self.app.pool)
            .await
            .unwrap();
        id.to_string()
    }

    async fn add_app(&self) -> String {
        let key = unique("a");
        sqlx::query(
            "INSERT INTO apps (key, name, host_pattern, required_feature) VALUES ($1, $1, $1 || '.example.test', 'seo')",
        )
        .bind(&key)
        .execute(&self.app.pool)
        .await
        .unwrap();
        key
    }

    async fn call(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        call(&self.app, self.token(who), method, path, body).await
    }
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = app.client.request(method, format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A Keycloak user with a fresh access token; `platform` gives the realm role first.
pub(crate) async fn person(kc: &KeycloakAdmin, platform: bool) -> Person {
    let username = unique("api");
    let keycloak_id = kc.create_user(&username, PASSWORD).await;
    if platform {
        let role = kc.get("/roles/wizbrand-admin").await;
        kc.send(
            Method::POST,
            &format!("/users/{keycloak_id}/role-mappings/realm"),
            Some(json!([role])),
        )
        .await;
    }
    let tokens = user_token(&username, PASSWORD, "wizbrand-test").await;
    Person {
        email: format!("{username}@example.com"),
        keycloak_id,
        token: tokens["access_token"].as_str().unwrap().to_owned(),
    }
}

struct Case {
    method: Method,
    /// `{org}`: a fresh matrix org; `{app}`: a fresh app; `{new}`: a fresh slug or key.
    path: &'static str,
    body: Option<Value>,
    /// Platform, ORG_ADMIN, ORG_MANAGER, ORG_USER, member of another org, no token.
    expect: [u16; 6],
}

fn case(method: Method, path: &'static str, body: Option<Value>, expect: [u16; 6]) -> Case {
    Case {
        method,
        path,
        body,
        expect,
    }
}

#[tokio::test]
async fn role_matrix_over_every_route() {
    let world = World::new().await;
    use Method as M;
    let cases = vec![
        case(M::GET, "/api/v1/me", None, [200, 200, 200, 200, 200, 401]),
        case(M::GET, "/api/v1/orgs", None, [200, 200, 200, 200, 200, 401]),
        case(
            M::POST,
            "/api/v1/orgs",
            Some(json!({"slug": "{new}", "name": "New"})),
            [201, 403, 403, 403, 403, 401],
        ),
        case(
            M::GET,
            "/api/v1/orgs/{org}",
            None,
            [200, 200, 200, 200, 404, 401],
        ),
        case(
            M::GET,
            "/api/v1/orgs/nonesuch-org",
            None,
            [404, 404, 404, 404, 404, 401],
        ),
        case(
            M::PATCH,
            "/api/v1/orgs/{org}",
            Some(json!({"name": "Renamed"})),
            [200, 200, 403, 403, 404, 401],
        ),
        case(
            M::PATCH,
            "/api/v1/orgs/{org}",
            Some(json!({"plan": "enterprise"})),
            [200, 403, 403, 403, 404, 401],
        ),
        case(
            M::PATCH,
            "/api/v1/orgs/{org}",
            Some(json!({"status": "suspended"})),
            [200, 403, 403, 403, 404, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/orgs/{org}",
            None,
            [204, 403, 403, 403, 404, 401],
        ),
        case(
            M::GET,
            "/api/v1/orgs/{org}/members",
            None,
            [200, 200, 200, 403, 404, 401],
        ),
        case(
            M::PUT,
            "/api/v1/orgs/{org}/members/new@example.com",
            Some(json!({"roles": ["ORG_USER"]})),
            [201, 201, 201, 403, 404, 401],
        ),
        case(
            M::PUT,
            "/api/v1/orgs/{org}/members/new@example.com",
            Some(json!({"roles": ["ORG_MANAGER"]})),
            [201, 201, 403, 403, 404, 401],
        ),
        case(
            M::PUT,
            "/api/v1/orgs/{org}/members/victim@{org}.example.com",
            Some(json!({"roles": ["ORG_USER"]})),
            [200, 200, 200, 403, 404, 401],
        ),
        case(
            M::PUT,
            "/api/v1/orgs/{org}/members/victim@{org}.example.com",
            Some(json!({"roles": ["ORG_ADMIN"]})),
            [200, 200, 403, 403, 404, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/orgs/{org}/members/victim@{org}.example.com",
            None,
            [204, 204, 204, 403, 404, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/orgs/{org}/members/boss@{org}.example.com",
            None,
            [204, 204, 403, 403, 404, 401],
        ),
        case(
            M::GET,
            "/api/v1/orgs/{org}/entitlements",
            None,
            [200, 200, 200, 200, 404, 401],
        ),
        case(
            M::GET,
            "/api/v1/orgs/{org}/scim",
            None,
            [200, 200, 403, 403, 404, 401],
        ),
        case(
            M::PATCH,
            "/api/v1/orgs/{org}/scim",
            Some(json!({"adopt_hand_added": true})),
            [200, 200, 403, 403, 404, 401],
        ),
        case(
            M::POST,
            "/api/v1/orgs/{org}/scim/tokens",
            Some(json!({"name": "Entra ID"})),
            [201, 201, 403, 403, 404, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/orgs/{org}/scim/tokens/00000000-0000-4000-8000-000000000000",
            None,
            [404, 404, 403, 403, 404, 401],
        ),
        case(
            M::GET,
            "/api/v1/orgs/{org}/invitations",
            None,
            [200, 200, 200, 403, 404, 401],
        ),
        case(
            M::POST,
            "/api/v1/orgs/{org}/invitations",
            Some(json!({"emails": ["{new}@example.com"], "roles": ["ORG_USER"]})),
            [201, 201, 201, 403, 404, 401],
        ),
        case(
            M::POST,
            "/api/v1/orgs/{org}/invitations",
            Some(json!({"emails": ["{new}@example.com"], "roles": ["ORG_MANAGER"]})),
            [201, 201, 403, 403, 404, 401],
        ),
        case(
            M::POST,
            "/api/v1/orgs/{org}/invitations/{inv}/resend",
            None,
            [200, 200, 200, 403, 404, 401],
        ),
        case(
            M::POST,
            "/api/v1/orgs/{org}/invitations/{inv_admin}/resend",
            None,
            [200, 200, 403, 403, 404, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/orgs/{org}/invitations/{inv}",
            None,
            [204, 204, 204, 403, 404, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/orgs/{org}/invitations/{inv_admin}",
            None,
            [204, 204, 403, 403, 404, 401],
        ),
        // A token nobody was mailed: as if there were no invitation, for anyone.
        case(
            M::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": "{new}"})),
            [404, 404, 404, 404, 404, 401],
        ),
        case(
            M::GET,
            "/api/v1/orgs/{org}/domains",
            None,
            [200, 200, 403, 403, 404, 401],
        ),
        case(
            M::PUT,
            "/api/v1/orgs/{org}/domains/{new}.example",
            Some(json!({"mode": "suggest"})),
            [201, 201, 403, 403, 404, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/orgs/{org}/domains/{org}.example.com",
            None,
            [204, 204, 403, 403, 404, 401],
        ),
        // Verifying is the platform's: an ORG_ADMIN cannot vouch for their own claim.
        case(
            M::POST,
            "/api/v1/orgs/{org}/domains/{org}.example.com/verify",
            None,
            [200, 403, 403, 403, 404, 401],
        ),
        // The matrix org has no provider: 404 for those who may see it. Connecting
        // one needs an issuer Keycloak reads; this one it cannot (422), which shows the
        // caller got past the role check (tests/it/sso.rs connects a real one).
        case(
            M::GET,
            "/api/v1/orgs/{org}/sso",
            None,
            [404, 404, 403, 403, 404, 401],
        ),
        case(
            M::PUT,
            "/api/v1/orgs/{org}/sso",
            Some(
                json!({"issuer": "http://127.0.0.1:9/realms/{new}", "client_id": "c", "client_secret": "s"}),
            ),
            [422, 422, 403, 403, 404, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/orgs/{org}/sso",
            None,
            [404, 404, 403, 403, 404, 401],
        ),
        case(M::GET, "/api/v1/apps", None, [200, 200, 200, 200, 200, 401]),
        case(
            M::POST,
            "/api/v1/apps",
            Some(
                json!({"key": "{new}", "name": "N", "host_pattern": "{new}.example.test", "required_feature": "seo"}),
            ),
            [201, 403, 403, 403, 403, 401],
        ),
        case(
            M::GET,
            "/api/v1/apps/{app}",
            None,
            [200, 200, 200, 200, 200, 401],
        ),
        case(
            M::GET,
            "/api/v1/apps/nonesuch",
            None,
            [404, 404, 404, 404, 404, 401],
        ),
        case(
            M::PATCH,
            "/api/v1/apps/{app}",
            Some(json!({"name": "Renamed", "min_role": "ORG_ADMIN"})),
            [200, 403, 403, 403, 403, 401],
        ),
        case(
            M::DELETE,
            "/api/v1/apps/{app}",
            None,
            [204, 403, 403, 403, 403, 401],
        ),
        // The test app runs without the scheduler: the platform admin is told so.
        case(
            M::POST,
            "/api/v1/sync",
            None,
            [503, 403, 403, 403, 403, 401],
        ),
        case(
            M::GET,
            "/api/v1/sync/runs",
            None,
            [200, 403, 403, 403, 403, 401],
        ),
        case(
            M::GET,
            "/api/v1/openapi.json",
            None,
            [200, 200, 200, 200, 200, 200],
        ),
    ];

    // Every documented route is in the matrix.
    let doc = openapi(&world.app).await;
    let covered: BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.method.to_string(), template(c.path)))
        .collect();
    for (method, path) in operations(&doc) {
        assert!(
            covered.contains(&(method.clone(), path.clone())),
            "matrix lacks {method} {path}"
        );
    }

    let mut failures = Vec::new();
    let mut checked = 0;
    for c in &cases {
        for (who, expected) in EVERYONE.iter().zip(c.expect) {
            // A fresh org and app per call, so writes never affect the next row.
            let org = world.matrix_org().await;
            let app = world.add_app().await;
            let new = unique("n");
            let inv = world.invitation_id(&org, "invited").await;
            let inv_admin = world.invitation_id(&org, "invited-admin").await;
            let fill = |s: &str| {
                s.replace("{org}", &org)
                    .replace("{app}", &app)
                    .replace("{new}", &new)
                    .replace("{inv_admin}", &inv_admin)
                    .replace("{inv}", &inv)
            };
            let path = fill(c.path);
            let body = c
                .body
                .as_ref()
                .map(|b| serde_json::from_str::<Value>(&fill(&b.to_string())).unwrap());
            let (status, answer) = world
                .call(*who, c.method.clone(), &path, body.as_ref())
                .await;
            checked += 1;
            if status.as_u16() != expected {
                failures.push(format!(
                    "{who:?} {} {path}: expected {expected}, got {status} {answer}",
                    c.method
                ));
            }
            let is_problem = answer["status"] == json!(status.as_u16())
                && answer["type"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("https://wizbrand.dev/problems/");
            if !status.is_success() && !is_problem {
                failures.push(format!(
                    "{who:?} {} {path}: not a problem document: {answer}",
                    c.method
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} calls wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `/api/v1/orgs/acme` → `/api/v1/orgs/{slug}`: the matrix path as documented.
fn template(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let named = match (segments.get(i.wrapping_sub(1)), i) {
            (Some(&"orgs"), 4) => "{slug}",
            (Some(&"apps"), 4) => "{key}",
            (Some(&"members"), 6) => "{email}",
            (Some(&"tokens"), 7) => "{id}",
            (Some(&"invitations"), 6) => "{id}",
            (Some(&"domains"), 6) => "{domain}",
            _ => seg,
        };
        out.push(named);
    }
    out.join("/")
}

async fn openapi(app: &TestApp) -> Value {
    let (status, doc) = call(app, None, Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn router_and_openapi_document_agree() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let documented = operations(&doc);
    assert_eq!(documented.len(), wizbrand::api::table().docs.len());
    let paths: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    let all = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut wrong = Vec::new();
    for path in &paths {
        let concrete = path
            .replace("{slug}", "acme")
            .replace("{key}", "seo")
            .replace("{email}", "a@example.com")
            .replace("{domain}", "acme.example")
            .replace("{id}", "00000000-0000-4000-8000-000000000000");
        for method in &all {
            let (status, _) = call(&app, None, method.clone(), &concrete, None).await;
            let is_documented = documented.contains(&(method.to_string(), path.clone()));
            // Documented: the router serves it (401 without a token; the document is
            // public). Not documented: the router has the path but not the method.
            let expected = match (is_documented, path.as_str()) {
                (true, "/api/v1/openapi.json") => 200,
                (true, _) => 401,
                (false, _) => 405,
            };
            if status.as_u16() != expected {
                wrong.push(format!(
                    "{method} {path}: expected {expected}, got {status}"
                ));
            }
        }
    }
    // Paths the document lacks are not routed at all.
    for path in [
        "/api/v1/nonesuch",
        "/api/v1/orgs/acme/nonesuch",
        "/api/v1/me/x",
    ] {
        let (status, body) = call(&app, None, Method::GET, path, None).await;
        if status != 404 || body["status"] != 404 {
            wrong.push(format!(
                "GET {path}: expected a 404 problem, got {status} {body}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let world = World::new().await;
    let good = world.user.token.clone();
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();

    // Signature tampered: one character in the middle of the signature changed.
    let mut signature: Vec<char> = parts[2].chars().collect();
    let mid = signature.len() / 2;
    signature[mid] = if signature[mid] == 'A' { 'B' } else { 'A' };
    let tampered_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        signature.iter().collect::<String>()
    );
    // Claims changed under the old signature.
    let mut changed = claims(&good);
    changed["sub"] = json!(world.platform.keycloak_id);
    let tampered_claims = format!(
        "{}.{}.{}",
        parts[0],
        b64(changed.to_string().as_bytes()),
        parts[2]
    );
    // `alg: none`, no signature.
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": kid})
            .to_string()
            .as_bytes()),
        parts[1]
    );
    // HS256 with the realm's public key (its certificate, as PEM and as raw `n`) as the secret.
    let jwks: Value = reqwest::get(format!(
        "{}/realms/wizbrand/protocol/openid-connect/certs",
        stack_var("KEYCLOAK_URL")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == json!(kid))
        .unwrap()
        .clone();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        jwk["x5c"][0].as_str().unwrap()
    );
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let claims_now = claims(&good);
    let hs_pem = jsonwebtoken::encode(
        &hs_header,
        &claims_now,
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    let hs_n = jsonwebtoken::encode(
        &hs_header,
        &claims_now,
        &jsonwebtoken::EncodingKey::from_secret(jwk["n"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    // A client without the wizbrand-api audience.
    let username = world.user.email.split('@').next().unwrap().to_owned();
    let noaud = user_token(&username, PASSWORD, "wizbrand-noaud").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A token from another realm (master's admin-cli).
    let foreign: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            stack_var("KEYCLOAK_URL")
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
    let foreign = foreign["access_token"].as_str().unwrap().to_owned();

    // The genuine token works.
    let (status, _) = call(&world.app, Some(&good), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200);

    for (name, token) in [
        ("tampered signature", tampered_signature.as_str()),
        ("tampered claims", &tampered_claims),
        ("alg none", &none),
        ("HS256 with the public key (PEM)", &hs_pem),
        ("HS256 with the public key (n)", &hs_n),
        ("no wizbrand-api audience", &noaud),
        ("another realm", &foreign),
        ("garbage", "not-a-jwt"),
    ] {
        let response = world
            .app
            .client
            .get(format!("{}/api/v1/orgs", world.app.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{name}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["type"], "https://wizbrand.dev/problems/unauthorized",
            "{name}"
        );
    }
    // Not a bearer scheme at all.
    let response = world
        .app
        .client
        .get(format!("{}/api/v1/me", world.app.address))
        .header("authorization", format!("Basic {}", b64(b"a:b")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_removed_member_gets_404_with_a_still_valid_token() {
    let world = World::new().await;
    let org = world.matrix_org().await;
    let path = format!("/api/v1/orgs/{org}");
    let (status, _) = world.call(Who::User, Method::GET, &path, None).await;
    assert_eq!(status, 200);

    let (status, _) = world
        .call(
            Who::Admin,
            Method::DELETE,
            &format!("{path}/members/{}", world.user.email),
            None,
        )
        .await;
    assert_eq!(status, 204);
    for p in [path.clone(), format!("{path}/entitlements")] {
        let (status, body) = world.call(Who::User, Method::GET, &p, None).await;
        assert_eq!(status, 404, "{p}: {body}");
    }
    let (_, orgs) = world
        .call(Who::User, Method::GET, "/api/v1/orgs", None)
        .await;
    assert_eq!(orgs["total"], 0, "{orgs}");

    // The removal is in the audit log, by the admin, with what was there before.
    let (actor, action, target, before, after): (String, String, String, Value, Option<Value>) =
        sqlx::query_as(
            "SELECT actor, action, target, before, after FROM audit_log ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&world.app.pool)
        .await
        .unwrap();
    // The actor is the admin's `sub` (which they cannot change), not their email.
    assert_eq!(actor, world.admin.keycloak_id);
    assert_eq!(action, "member.delete");
    assert_eq!(target, format!("{org}/{}", world.user.email));
    assert_eq!(before["roles"], json!(["ORG_USER"]));
    assert_eq!(after, None);
}

#[tokio::test]
async fn me_and_memberships_follow_postgres_and_puts_are_idempotent() {
    let world = World::new().await;
    let org = world.matrix_org().await;
    let (status, me) = world
        .call(Who::Manager, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["sub"], world.manager.keycloak_id);
    assert_eq!(me["email"], world.manager.email);
    assert_eq!(me["platform_admin"], false);
    assert_eq!(me["memberships"][0]["slug"], org);
    assert_eq!(me["memberships"][0]["roles"], json!(["ORG_MANAGER"]));
    let (_, me) = world
        .call(Who::Platform, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(me["platform_admin"], true);

    // Members list their own orgs; platform admins list them all.
    let (_, mine) = world
        .call(Who::Manager, Method::GET, "/api/v1/orgs", None)
        .await;
    assert_eq!(mine["total"], 1, "{mine}");
    assert_eq!(mine["items"][0]["slug"], org);
    let (_, all) = world
        .call(Who::Platform, Method::GET, "/api/v1/orgs", None)
        .await;
    assert_eq!(all["total"], 2, "{all}");

    // A user row not linked to the token's account is not the caller's, whatever the
    // email says (identity is the `sub`).
    sqlx::query("UPDATE users SET keycloak_id = NULL WHERE email = $1")
        .bind(&world.user.email)
        .execute(&world.app.pool)
        .await
        .unwrap();
    let (status, me) = world.call(Who::User, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(me["memberships"], json!([]), "{me}");
    sqlx::query("UPDATE users SET keycloak_id = $2 WHERE email = $1")
        .bind(&world.user.email)
        .bind(&world.user.keycloak_id)
        .execute(&world.app.pool)
        .await
        .unwrap();
    let (_, me) = world.call(Who::User, Method::GET, "/api/v1/me", None).await;
    assert_eq!(me["memberships"][0]["slug"], org, "{me}");

    // PUT twice: created, then the same again changes and records nothing.
    let path = format!("/api/v1/orgs/{org}/members/%20Carol@Example.COM");
    let body = json!({"roles": ["ORG_USER", "ORG_MANAGER", "ORG_USER"]});
    let (status, member) = world
        .call(Who::Admin, Method::PUT, &path, Some(&body))
        .await;
    assert_eq!(status, 201, "{member}");
    assert_eq!(
        member,
        json!({"email": "carol@example.com", "roles": ["ORG_MANAGER", "ORG_USER"]})
    );
    let audits = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_log WHERE action = 'member.put'")
            .fetch_one(&world.app.pool)
            .await
            .unwrap()
    };
    assert_eq!(audits().await, 1);
    let (status, again) = world
        .call(Who::Admin, Method::PUT, &path, Some(&body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again, member);
    assert_eq!(audits().await, 1);

    // Roles stored in another order (by hand, in SQL) are still "the same roles".
    world
        .add_member(&org, "dave@example.com", &["ORG_USER", "ORG_MANAGER"])
        .await;
    let (status, _) = world
        .call(
            Who::Admin,
            Method::PUT,
            &format!("/api/v1/orgs/{org}/members/dave@example.com"),
            Some(&json!({"roles": ["ORG_MANAGER", "ORG_USER"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(audits().await, 1);

    // Lists are paged with a total.
    let (status, page) = world
        .call(
            Who::Manager,
            Method::GET,
            &format!("/api/v1/orgs/{org}/members?limit=2&offset=1"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 7, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        (page["limit"].clone(), page["offset"].clone()),
        (json!(2), json!(1))
    );
    for bad in [
        "?limit=0",
        "?limit=1000",
        "?offset=-1",
        "?limit=x",
        "?colour=red",
    ] {
        let (status, body) = world
            .call(
                Who::Platform,
                Method::GET,
                &format!("/api/v1/apps{bad}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Entitlements: plan, features, quotas from the fixed table.
    let (_, ent) = world
        .call(
            Who::User,
            Method::GET,
            &format!("/api/v1/orgs/{org}/entitlements"),
            None,
        )
        .await;
    assert_eq!(ent["plan"], "pro");
    assert_eq!(ent["features"], json!(["seo", "files"]));
    assert_eq!(ent["quotas"]["members"], 50);
}

#[tokio::test]
async fn bad_bodies_are_problems_that_name_the_problem() {
    let world = World::new().await;
    let org = world.matrix_org().await;
    let send = |method: Method, path: String, body: String| {
        let world = &world;
        async move {
            let response = world
                .app
                .client
                .request(method, format!("{}{path}", world.app.address))
                .bearer_auth(&world.platform.token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            let body: Value = response.json().await.unwrap();
            (
                status,
                body["detail"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let orgs = "/api/v1/orgs".to_owned();
    let checks: Vec<(Method, String, String, u16, &str)> = vec![
        (Method::POST, orgs.clone(), "{\"slug\": ".into(), 400, "not valid JSON"),
        (Method::POST, orgs.clone(), r#"{"slug": 7, "name": "x"}"#.into(), 422, "invalid type"),
        (Method::POST, orgs.clone(), r#"{"slug": "okay", "name": "x", "colour": "red"}"#.into(), 422, "unknown field `colour`"),
        (Method::POST, orgs.clone(), format!(r#"{{"slug": "big", "name": "{}"}}"#, "x".repeat(1 << 20)), 400, "too large"),
        (Method::POST, orgs.clone(), r#"{"slug": "Bad_Slug", "name": "x"}"#.into(), 422, "not a valid org slug"),
        (Method::POST, orgs.clone(), r#"{"slug": "admin", "name": "x"}"#.into(), 422, "reserved"),
        (Method::POST, orgs.clone(), format!(r#"{{"slug": "{org}", "name": "x"}}"#), 409, "orgs_slug_key"),
        (Method::POST, orgs.clone(), r#"{"slug": "blank", "name": "  "}"#.into(), 422, "orgs_name_not_blank"),
        (Method::POST, orgs.clone(), r#"{"slug": "feat", "name": "x", "features": ["Not ok"]}"#.into(), 422, "not a feature name"),
        (Method::PATCH, format!("/api/v1/orgs/{org}"), r#"{"status": "gone"}"#.into(), 422, "orgs_status_known"),
        (Method::PUT, format!("/api/v1/orgs/{org}/members/x@example.com"), r#"{"roles": ["OWNER"]}"#.into(), 422, "unknown variant `OWNER`"),
        (Method::PUT, format!("/api/v1/orgs/{org}/members/x@example.com"), r#"{"roles": []}"#.into(), 422, "at least one"),
        (Method::PUT, format!("/api/v1/orgs/{org}/members/not-an-email"), r#"{"roles": ["ORG_USER"]}"#.into(), 422, "not an email"),
        (Method::POST, "/api/v1/apps".into(), r#"{"key": "Bad Key", "name": "x", "host_pattern": "x.example.test", "required_feature": "seo"}"#.into(), 422, "apps_key_format"),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, expected, needle) in checks {
        let (status, detail) = send(method.clone(), path.clone(), body).await;
        if status != expected || !detail.contains(needle) {
            wrong.push(format!(
                "{method} {path}: expected {expected} with `{needle}`, got {status} `{detail}`"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The last ORG_ADMIN stays: demoting or removing the one admin is refused.
    let solo = unique("solo");
    world.add_org(&solo).await;
    world
        .add_member(&solo, &world.admin.email, &["ORG_ADMIN"])
        .await;
    let me = format!("/api/v1/orgs/{solo}/members/{}", world.admin.email);
    let (status, body) = world
        .call(
            Who::Admin,
            Method::PUT,
            &me,
            Some(&json!({"roles": ["ORG_USER"]})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("at least one ORG_ADMIN"),
        "{body}"
    );
    let (status, _) = world.call(Who::Platform, Method::DELETE, &me, None).await;
    assert_eq!(status, 409);
    let (status, _) = world
        .call(
            Who::Admin,
            Method::GET,
            &format!("/api/v1/orgs/{solo}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "the admin is still there");
}

#[tokio::test]
async fn expired_tokens_are_refused_after_the_leeway() {
    // A client of this test's own whose access tokens live two seconds.
    let kc = KeycloakAdmin::connect().await;
    let client_id = unique("short");
    let secret = "short-lived-secret";
    kc.send(
        Method::POST,
        "/clients",
        Some(json!({
            "clientId": client_id, "enabled": true, "protocol": "openid-connect",
            "publicClient": false, "secret": secret, "standardFlowEnabled": false,
            "directAccessGrantsEnabled": true, "fullScopeAllowed": true,
            "defaultClientScopes": ["basic", "profile", "email", "roles", "wizbrand-orgs"],
            "attributes": {"access.token.lifespan": "2"},
        })),
    )
    .await;
    let username = unique("api");
    kc.create_user(&username, PASSWORD).await;
    let tokens: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/wizbrand/protocol/openid-connect/token",
            stack_var("KEYCLOAK_URL")
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret),
            ("username", username.as_str()),
            ("password", PASSWORD),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let exp = claims(&token)["exp"].as_i64().unwrap();
    let app = TestApp::spawn().await;

    let (status, _) = call(&app, Some(&token), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "fresh");
    // Past `exp` but within the 30 s leeway: still accepted (clock skew).
    let now = || chrono::Utc::now().timestamp();
    tokio::time::sleep(std::time::Duration::from_secs(
        (exp + 2 - now()).max(0) as u64
    ))
    .await;
    let (status, _) = call(&app, Some(&token), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "within the leeway");
    tokio::time::sleep(std::time::Duration::from_secs(
        (exp + 32 - now()).max(0) as u64
    ))
    .await;
    let (status, body) = call(&app, Some(&token), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401, "expired: {body}");

    let found = kc.get(&format!("/clients?clientId={client_id}")).await;
    let id = found[0]["id"].as_str().unwrap();
    kc.send(Method::DELETE, &format!("/clients/{id}"), None)
        .await;
}

#[tokio::test]
async fn a_platform_admin_queues_a_sync_when_the_scheduler_runs() {
    // The scheduler on, under a group root of this test's own (its database has no orgs).
    let root = unique("t");
    let world = World::with_env(|env| {
        env.insert("WIZBRAND_SYNC_ENABLED".into(), "true".into());
        env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), root.clone());
    })
    .await;
    // Let the runs that the set-up's own changes caused finish first: close requests
    // are coalesced into one run, labelled with the first request's trigger.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = Value::Null;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let (_, runs) = world
            .call(Who::Platform, Method::GET, "/api/v1/sync/runs", None)
            .await;
        let quiet = runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] != "running");
        if quiet && runs["total"] == last && runs["total"] != 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sync never settled: {runs}"
        );
        last = runs["total"].clone();
    }
    let (status, body) = world
        .call(Who::Platform, Method::POST, "/api/v1/sync", None)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["scope"], "all");
    let (status, _) = world
        .call(Who::Admin, Method::POST, "/api/v1/sync", None)
        .await;
    assert_eq!(status, 403);

    // The run shows up in the journal, as asked for through the API.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, runs) = world
            .call(
                Who::Platform,
                Method::GET,
                "/api/v1/sync/runs?limit=10",
                None,
            )
            .await;
        assert_eq!(status, 200);
        let items = runs["items"].as_array().unwrap();
        if items
            .iter()
            .any(|r| r["trigger"] == "api" && r["status"] != "running")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no finished api run: {runs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log WHERE actor = $1")
        .bind(&world.platform.keycloak_id)
        .fetch_all(&world.app.pool)
        .await
        .unwrap();
    assert_eq!(actions, vec!["sync.request"]);
}

/// A confidential client with a service account of this test's own; `reader` gives it
/// the `wizbrand-api` client role `entitlements-reader`. Returns (client id, token).
async fn service_client(kc: &KeycloakAdmin, reader: bool) -> (String, String) {
    let client_id = unique("svc");
    let secret = "svc-secret";
    kc.send(
        Method::POST,
        "/clients",
        Some(json!({
            "clientId": client_id, "enabled": true, "protocol": "openid-connect",
            "publicClient": false, "secret": secret, "standardFlowEnabled": false,
            "directAccessGrantsEnabled": false, "serviceAccountsEnabled": true,
            "fullScopeAllowed": true, "defaultClientScopes": ["basic", "roles"],
        })),
    )
    .await;
    let id = kc.get(&format!("/clients?clientId={client_id}")).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    if reader {
        let api = kc.get("/clients?clientId=wizbrand-api").await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let role = kc
            .get(&format!("/clients/{api}/roles/entitlements-reader"))
            .await;
        let user = kc.get(&format!("/clients/{id}/service-account-user")).await;
        let user = user["id"].as_str().unwrap();
        kc.send(
            Method::POST,
            &format!("/users/{user}/role-mappings/clients/{api}"),
            Some(json!([role])),
        )
        .await;
    }
    let tokens: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/wizbrand/protocol/openid-connect/token",
            stack_var("KEYCLOAK_URL")
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (id, tokens["access_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn service_clients_with_the_reader_role_read_any_orgs_entitlements() {
    let kc = KeycloakAdmin::connect().await;
    let world = World::new().await;
    let org = world.matrix_org().await;
    let (reader_id, reader) = service_client(&kc, true).await;
    let (plain_id, plain) = service_client(&kc, false).await;
    let entitlements = format!("/api/v1/orgs/{org}/entitlements");

    let (status, body) = call(&world.app, Some(&reader), Method::GET, &entitlements, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plan"], "pro");
    // Only the entitlements: the org itself stays hidden from the service client.
    let (status, _) = call(
        &world.app,
        Some(&reader),
        Method::GET,
        &format!("/api/v1/orgs/{org}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &world.app,
        Some(&reader),
        Method::GET,
        "/api/v1/orgs/nonesuch/entitlements",
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Without the role a service client's token is either refused (no wizbrand-api
    // audience) or, if it has one, not a member: never the entitlements.
    let (status, _) = call(&world.app, Some(&plain), Method::GET, &entitlements, None).await;
    assert!(status == 401 || status == 404, "{status}");

    for id in [reader_id, plain_id] {
        kc.send(Method::DELETE, &format!("/clients/{id}"), None)
            .await;
    }
}

/// The master realm's admin token (tests only).
async fn master_token() -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            stack_var("KEYCLOAK_URL")
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
    answer["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn key_rotation_needs_no_restart_and_removed_keys_stop_verifying() {
    // A realm of this test's own: rotating the shared realm's keys would break the
    // tokens every other test holds.
    let base = stack_var("KEYCLOAK_URL");
    let realm = unique("rot");
    let http = reqwest::Client::new();
    let admin = master_token().await;
    let send = |method: Method, path: String, body: Option<Value>| {
        let http = &http;
        let admin = &admin;
        let base = &base;
        async move {
            let mut request = http
                .request(method.clone(), format!("{base}/admin/realms{path}"))
                .bearer_auth(admin);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "{method} {path}: {status} {text}");
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
        }
    };
    send(
        Method::POST,
        String::new(),
        Some(json!({"realm": realm, "enabled": true})),
    )
    .await;
    send(
        Method::POST,
        format!("/{realm}/clients"),
        Some(json!({
            "clientId": "rot", "enabled": true, "publicClient": false, "secret": "rot-secret",
            "standardFlowEnabled": false, "directAccessGrantsEnabled": true,
            "protocolMappers": [{
                "name": "api audience", "protocol": "openid-connect",
                "protocolMapper": "oidc-audience-mapper",
                "config": {"included.custom.audience": "wizbrand-api",
                           "access.token.claim": "true", "id.token.claim": "false"}
            }],
        })),
    )
    .await;
    send(
        Method::POST,
        format!("/{realm}/users"),
        Some(json!({
            "username": "rot", "email": "rot@example.com", "emailVerified": true,
            "enabled": true, "firstName": "Rot", "lastName": "Ation",
            "credentials": [{"type": "password", "value": PASSWORD, "temporary": false}],
        })),
    )
    .await;
    let token = || async {
        let answer: Value = http
            .post(format!(
                "{base}/realms/{realm}/protocol/openid-connect/token"
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "rot"),
                ("client_secret", "rot-secret"),
                ("username", "rot"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    };
    let kid = |jwt: &str| {
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<Value>(&header).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // A verifier for that realm that trusts a fetched key set for two seconds.
    let (url, _pool) = crate::helpers::fresh_database().await;
    let mut env = crate::helpers::base_env(&url);
    env.insert("KEYCLOAK_REALM".into(), realm.clone());
    let config = wizbrand::config::Config::from_source(&env).unwrap();
    let max_age = std::time::Duration::from_secs(2);
    let verifier = wizbrand::oidc::jwks::TokenVerifier::new(
        wizbrand::keycloak::http_client(std::time::Duration::from_secs(5)),
        &config.keycloak,
    )
    .with_max_age(max_age);

    let old = token().await;
    assert_eq!(
        verifier.verify(&old).await.unwrap().email.as_deref(),
        Some("rot@example.com")
    );

    // Rotate: a new RSA key with a higher priority signs from now on.
    let realm_id = send(Method::GET, format!("/{realm}"), None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        Method::POST,
        format!("/{realm}/components"),
        Some(json!({
            "name": "rotated", "providerId": "rsa-generated",
            "providerType": "org.keycloak.keys.KeyProvider", "parentId": realm_id,
            "config": {"priority": ["500"], "algorithm": ["RS256"], "keySize": ["2048"]},
        })),
    )
    .await;
    let new = token().await;
    assert_ne!(kid(&new), kid(&old), "the new key signs");
    tokio::time::sleep(max_age).await;
    verifier
        .verify(&new)
        .await
        .expect("a new key's token, without restart");
    verifier
        .verify(&old)
        .await
        .expect("the old key is still in the realm");

    // Remove the old key: once the cached set is older than max_age, its tokens fail.
    let providers = send(
        Method::GET,
        format!("/{realm}/components?type=org.keycloak.keys.KeyProvider"),
        None,
    )
    .await;
    for p in providers.as_array().unwrap() {
        if p["providerId"] == "rsa-generated" && p["name"] != "rotated" {
            send(
                Method::DELETE,
                format!("/{realm}/components/{}", p["id"].as_str().unwrap()),
                None,
            )
            .await;
        }
    }
    tokio::time::sleep(max_age + std::time::Duration::from_millis(200)).await;
    let refused = verifier.verify(&old).await;
    assert!(
        matches!(refused, Err(wizbrand::oidc::jwks::TokenError::UnknownKey)),
        "the removed key's token: {refused:?}"
    );
    verifier
        .verify(&new)
        .await
        .expect("the new key's token still verifies");

    send(Method::DELETE, format!("/{realm}"), None).await;
}

#[tokio::test]
async fn a_platform_admin_lets_an_app_have_the_callers_authorization_audited() {
    let world = World::new().await;
    let body = json!({"pass_authorization": true});
    let (status, _) = world
        .call(Who::Admin, Method::PATCH, "/api/v1/apps/files", Some(&body))
        .await;
    assert_eq!(status, 403, "an ORG_ADMIN may not");
    let (status, app) = world
        .call(
            Who::Platform,
            Method::PATCH,
            "/api/v1/apps/files",
            Some(&body),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["pass_authorization"], true);
    let (_, listed) = world
        .call(Who::User, Method::GET, "/api/v1/apps/files", None)
        .await;
    assert_eq!(listed["pass_authorization"], true);
    let (actor, after): (String, Value) = sqlx::query_as(
        "SELECT actor, after FROM audit_log WHERE action = 'app.update' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&world.app.pool)
    .await
    .unwrap();
    assert_eq!(actor, world.platform.keycloak_id);
    assert_eq!(after["pass_authorization"], true);
    // The gate follows: its snapshot carries the flag (tests/it/gate.rs shows the header).
    let enabled: bool =
        sqlx::query_scalar("SELECT pass_authorization FROM apps WHERE key = 'files'")
            .fetch_one(&world.app.pool)
            .await
            .unwrap();
    assert!(enabled);
}
