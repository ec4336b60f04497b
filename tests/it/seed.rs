//! Rows a test writes straight into its own database (orgs, members, verified domains),
//! and the JSON API called as a client: the set-up the lifecycle tests share.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::TestApp;

/// `method path` on the API with `token` as the bearer (none: anonymous); the status and
/// the JSON body (`null` when there is none).
pub async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.client.request(method, format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A new org on `plan` with the seo and files features; returns its id.
pub async fn org(app: &TestApp, slug: &str, plan: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO orgs (slug, name, plan, features) VALUES ($1, $2, $3, ARRAY['seo','files']) RETURNING id",
    )
    .bind(slug)
    .bind(format!("Org {slug}"))
    .bind(plan)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// A member row with `role` (the user row made, or found by email; linked to
/// `keycloak_id` when given).
pub async fn member(app: &TestApp, org: Uuid, email: &str, keycloak_id: Option<&str>, role: &str) {
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, keycloak_id) VALUES ($1, $2) \
         ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id",
    )
    .bind(email)
    .bind(keycloak_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO memberships (org_id, user_id, roles) VALUES ($1, $2, $3)")
        .bind(org)
        .bind(user)
        .bind(vec![role.to_owned()])
        .execute(&app.pool)
        .await
        .unwrap();
}

/// A domain of `org`, verified, with `mode`.
pub async fn verified_domain(app: &TestApp, org: Uuid, domain: &str, mode: &str) {
    sqlx::query(
        "INSERT INTO org_domains (org_id, domain, mode, status, claimed_by, verified_by, verified_at) \
         VALUES ($1, $2, $3, 'verified', 'test', 'test', now())",
    )
    .bind(org)
    .bind(domain)
    .bind(mode)
    .execute(&app.pool)
    .await
    .unwrap();
}
