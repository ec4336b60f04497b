//! The SQL of browser sessions: revocations, server-side tokens, and the user's orgs.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevocationRow {
    pub sid: Option<String>,
    pub sub: Option<String>,
    pub revoked_at: DateTime<Utc>,
}

/// Every revocation still in force (its sessions may not have expired yet).
pub async fn live_revocations(pool: &PgPool) -> Result<Vec<RevocationRow>, sqlx::Error> {
    sqlx::query_as("SELECT sid, sub, revoked_at FROM session_revocations WHERE expires_at > now()")
        .fetch_all(pool)
        .await
}

/// Records a revocation; the insert notifies every replica.
pub async fn revoke(
    pool: &PgPool,
    sid: Option<&str>,
    sub: Option<&str>,
    expires_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO session_revocations (sid, sub, expires_at) VALUES ($1, $2, $3) \
         RETURNING revoked_at",
    )
    .bind(sid)
    .bind(sub)
    .bind(expires_at)
    .fetch_one(pool)
    .await
}

/// Drops revocations and token rows whose sessions have expired anyway.
pub async fn purge_expired(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM session_revocations WHERE expires_at < now() - interval '1 hour'")
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM session_tokens WHERE expires_at < now()")
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn store_tokens(
    pool: &PgPool,
    handle: &str,
    sub: &str,
    sid: Option<&str>,
    id_token: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO session_tokens (handle, sub, sid, id_token, expires_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (handle) DO UPDATE \
         SET id_token = EXCLUDED.id_token, expires_at = EXCLUDED.expires_at",
    )
    .bind(handle)
    .bind(sub)
    .bind(sid)
    .bind(id_token)
    .bind(expires_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Removes a session's tokens and hands back its ID token (the logout hint).
pub async fn take_id_token(pool: &PgPool, handle: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("DELETE FROM session_tokens WHERE handle = $1 RETURNING id_token")
        .bind(handle)
        .fetch_optional(pool)
        .await
}

/// Records the Keycloak id of a user Postgres knows by email only. A no-op when the
/// row already has an id or another row holds this one.
pub async fn link_keycloak_id(pool: &PgPool, sub: &str, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET keycloak_id = $1 WHERE email = $2 AND keycloak_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM users WHERE keycloak_id = $1)",
    )
    .bind(sub)
    .bind(email)
    .execute(pool)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserOrgRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub roles: Vec<String>,
    /// `true` when this is the user's stored preference.
    pub preferred: bool,
}

/// The active orgs a user belongs to: by Keycloak id, else by email for a user row
/// whose Keycloak id is not known yet.
pub async fn user_orgs(
    pool: &PgPool,
    sub: &str,
    email: Option<&str>,
) -> Result<Vec<UserOrgRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.id, o.slug, o.name, m.roles, \
                (u.preferred_org_id IS NOT DISTINCT FROM o.id) AS preferred \
         FROM memberships m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id \
         WHERE o.status = 'active' \
           AND (u.keycloak_id = $1 OR (u.keycloak_id IS NULL AND u.email = $2)) \
         ORDER BY o.name, o.slug",
    )
    .bind(sub)
    .bind(email)
    .fetch_all(pool)
    .await
}

/// Stores the chosen org on the user's row (the sync carries it to Keycloak).
pub async fn set_preferred_org(
    pool: &PgPool,
    sub: &str,
    email: Option<&str>,
    org_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET preferred_org_id = $3 \
         WHERE (keycloak_id = $1 OR (keycloak_id IS NULL AND email = $2)) \
           AND preferred_org_id IS DISTINCT FROM $3",
    )
    .bind(sub)
    .bind(email)
    .bind(org_id)
    .execute(pool)
    .await
    .map(|_| ())
}
