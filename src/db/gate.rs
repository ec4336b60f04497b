//! The SQL behind the gate's in-memory state.

use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub struct AppRow {
    pub key: String,
    pub name: String,
    pub host_pattern: String,
    pub required_feature: String,
    pub min_role: String,
    pub pass_authorization: bool,
}

#[derive(Debug, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub slug: String,
    pub status: String,
    pub features: Vec<String>,
    pub hidden_apps: Vec<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct MemberRow {
    pub slug: String,
    pub keycloak_id: String,
    pub roles: Vec<String>,
}

pub async fn apps(pool: &PgPool) -> Result<Vec<AppRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT key, name, host_pattern, required_feature, min_role, pass_authorization \
         FROM apps ORDER BY key",
    )
    .fetch_all(pool)
    .await
}

pub async fn orgs(pool: &PgPool) -> Result<Vec<OrgRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, slug, status, features, hidden_apps FROM orgs")
        .fetch_all(pool)
        .await
}

/// Memberships of users linked to a Keycloak account; a member nobody has been linked
/// to yet (no account, or one whose email is not proven) reaches no app.
pub async fn members(pool: &PgPool) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.slug, u.keycloak_id, m.roles FROM memberships m \
         JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id \
         WHERE u.keycloak_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await
}

/// A person as `explain` looks them up: by email (the operator's handle), with the
/// Keycloak account the gate knows them by and their chosen org.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PersonRow {
    pub email: String,
    pub keycloak_id: Option<String>,
    pub preferred_org: Option<String>,
}

/// `email` is normalised (lower-case, trimmed), as the table holds it.
pub async fn person_by_email(pool: &PgPool, email: &str) -> Result<Option<PersonRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.email, u.keycloak_id, o.slug AS preferred_org \
         FROM users u LEFT JOIN orgs o ON o.id = u.preferred_org_id WHERE u.email = $1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}
