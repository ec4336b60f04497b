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
pub async fn revoke<'e>(
    db: impl sqlx::PgExecutor<'e>,
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
    .fetch_one(db)
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

/// The tokens of a session, kept server-side under the cookie's random `handle`.
pub struct SessionTokens<'a> {
    pub handle: &'a str,
    pub sub: &'a str,
    pub sid: Option<&'a str>,
    pub id_token: &'a str,
    pub access_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub access_expires_at: DateTime<Utc>,
    /// When the session ends here.
    pub expires_at: DateTime<Utc>,
}

pub async fn store_tokens(pool: &PgPool, tokens: &SessionTokens<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO session_tokens \
           (handle, sub, sid, id_token, access_token, refresh_token, access_expires_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (handle) DO UPDATE \
         SET id_token = EXCLUDED.id_token, access_token = EXCLUDED.access_token, \
             refresh_token = EXCLUDED.refresh_token, \
             access_expires_at = EXCLUDED.access_expires_at, expires_at = EXCLUDED.expires_at",
    )
    .bind(tokens.handle)
    .bind(tokens.sub)
    .bind(tokens.sid)
    .bind(tokens.id_token)
    .bind(tokens.access_token)
    .bind(tokens.refresh_token)
    .bind(tokens.access_expires_at)
    .bind(tokens.expires_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Of `handles`, those whose access token expires within `margin` and can be refreshed.
pub async fn refresh_due(
    pool: &PgPool,
    handles: &[String],
    margin: chrono::Duration,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT handle FROM session_tokens WHERE handle = ANY($1) \
           AND refresh_token IS NOT NULL AND expires_at > now() \
           AND access_expires_at < now() + $2",
    )
    .bind(handles)
    .bind(margin)
    .fetch_all(pool)
    .await
}

/// A session whose refresh is due, locked for this transaction.
#[derive(Debug, sqlx::FromRow)]
pub struct DueRefresh {
    pub sub: String,
    pub sid: Option<String>,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Locks the session's row when its refresh is still due. `None` when it is not due
/// (any more), or another replica holds the lock: that one refreshes it.
pub async fn lock_due_refresh(
    tx: &mut sqlx::PgConnection,
    handle: &str,
    margin: chrono::Duration,
) -> Result<Option<DueRefresh>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sub, sid, refresh_token, expires_at FROM session_tokens \
         WHERE handle = $1 AND refresh_token IS NOT NULL AND expires_at > now() \
           AND access_expires_at < now() + $2 \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(handle)
    .bind(margin)
    .fetch_optional(tx)
    .await
}

/// Stores what a refresh returned (Keycloak may send a new ID token too).
pub async fn store_refreshed(
    tx: &mut sqlx::PgConnection,
    handle: &str,
    access_token: &str,
    refresh_token: Option<&str>,
    id_token: Option<&str>,
    access_expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE session_tokens SET access_token = $2, \
           refresh_token = COALESCE($3, refresh_token), id_token = COALESCE($4, id_token), \
           access_expires_at = $5 WHERE handle = $1",
    )
    .bind(handle)
    .bind(access_token)
    .bind(refresh_token)
    .bind(id_token)
    .bind(access_expires_at)
    .execute(tx)
    .await
    .map(|_| ())
}

/// Forgets a session's tokens (its refresh was refused: the session is over).
pub async fn delete_tokens(tx: &mut sqlx::PgConnection, handle: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM session_tokens WHERE handle = $1")
        .bind(handle)
        .execute(tx)
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

/// Links the user row of a proven email (the caller checked `email_verified` under the
/// realm's rules) to the account that signed in, with an audit entry. A no-op when the
/// row is linked already (a stored id is never replaced here) or another row holds
/// this account. Returns whether it linked.
pub async fn link_keycloak_id(pool: &PgPool, sub: &str, email: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let linked: Option<Uuid> = sqlx::query_scalar(
        "UPDATE users SET keycloak_id = $1, updated_at = now() \
         WHERE email = $2 AND keycloak_id IS NULL \
           AND NOT EXISTS (SELECT 1 FROM users WHERE keycloak_id = $1) RETURNING id",
    )
    .bind(sub)
    .bind(email)
    .fetch_optional(&mut *tx)
    .await?;
    if linked.is_some() {
        super::audit::record(
            &mut tx,
            super::audit::Entry {
                actor: super::audit::Actor {
                    sub,
                    email: Some(email),
                },
                action: "account.link",
                target: email,
                org_id: None,
                before: None,
                after: Some(
                    serde_json::json!({"keycloak_id": sub, "proof": "verified email at sign-in"}),
                ),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(linked.is_some())
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

/// The active orgs a user belongs to, by Keycloak id only.
pub async fn user_orgs(pool: &PgPool, sub: &str) -> Result<Vec<UserOrgRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.id, o.slug, o.name, m.roles, \
                (u.preferred_org_id IS NOT DISTINCT FROM o.id) AS preferred \
         FROM memberships m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id \
         WHERE o.status = 'active' \
           AND u.keycloak_id = $1 \
         ORDER BY o.name, o.slug",
    )
    .bind(sub)
    .fetch_all(pool)
    .await
}

/// Stores the chosen org on the user's row (the sync carries it to Keycloak).
pub async fn set_preferred_org(pool: &PgPool, sub: &str, org_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET preferred_org_id = $2 \
         WHERE keycloak_id = $1 AND preferred_org_id IS DISTINCT FROM $2",
    )
    .bind(sub)
    .bind(org_id)
    .execute(pool)
    .await
    .map(|_| ())
}
