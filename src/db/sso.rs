//! The SQL for per-org single sign-on (`org_sso`).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An org's provider, as the pages show it (never the secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgSso {
    pub org_id: Uuid,
    pub alias: String,
    pub issuer: String,
    pub client_id: String,
    pub join_role: String,
    pub configured_by: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "org_id, alias, issuer, client_id, join_role, configured_by, updated_at";

pub async fn of_org(pool: &PgPool, org_id: Uuid) -> Result<Option<OrgSso>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM org_sso WHERE org_id = $1"))
        .bind(org_id)
        .fetch_optional(pool)
        .await
}

pub async fn by_alias(pool: &PgPool, alias: &str) -> Result<Option<OrgSso>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM org_sso WHERE alias = $1"))
        .bind(alias)
        .fetch_optional(pool)
        .await
}

/// Whether any org has a provider (sign-in asks for the email first only then).
pub async fn any(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM org_sso)")
        .fetch_one(pool)
        .await
}

/// The provider alias for an address at `domain`: a *verified* domain of an active org
/// with single sign-on.
pub async fn alias_for_domain(pool: &PgPool, domain: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT s.alias FROM org_domains d JOIN org_sso s ON s.org_id = d.org_id \
         JOIN orgs o ON o.id = d.org_id \
         WHERE d.domain = $1 AND d.status = 'verified' AND o.status = 'active'",
    )
    .bind(domain)
    .fetch_optional(pool)
    .await
}

pub struct NewSso<'a> {
    pub org_id: Uuid,
    pub alias: &'a str,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub sealed: &'a [u8],
    pub join_role: &'a str,
    pub by: &'a str,
}

pub async fn upsert(conn: &mut PgConnection, new: &NewSso<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO org_sso (org_id, alias, issuer, client_id, client_secret_sealed, join_role, configured_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (org_id) DO UPDATE SET alias = EXCLUDED.alias, issuer = EXCLUDED.issuer, \
           client_id = EXCLUDED.client_id, client_secret_sealed = EXCLUDED.client_secret_sealed, \
           join_role = EXCLUDED.join_role, configured_by = EXCLUDED.configured_by",
    )
    .bind(new.org_id)
    .bind(new.alias)
    .bind(new.issuer)
    .bind(new.client_id)
    .bind(new.sealed)
    .bind(new.join_role)
    .bind(new.by)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn delete(conn: &mut PgConnection, org_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM org_sso WHERE org_id = $1")
        .bind(org_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A user row made for an account that signed in through an org's provider: its
/// address, unverified, is only a label; the row is the account's from the start.
pub async fn insert_user(
    conn: &mut PgConnection,
    email: &str,
    sub: &str,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO users (email, keycloak_id) VALUES ($1, $2) RETURNING id")
        .bind(email)
        .bind(sub)
        .fetch_one(conn)
        .await
}

pub async fn user_email(conn: &mut PgConnection, user_id: Uuid) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(conn)
        .await
}
