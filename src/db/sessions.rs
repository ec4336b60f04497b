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

/// A session's row in `session_tokens`: its tokens sealed under a key only the
/// session's cookie holds (`web::token_vault`); `id` is derived from the cookie's
/// handle, never the handle itself.
pub struct SessionTokens<'a> {
    pub id: &'a str,
    pub sub: &'a str,
    pub sid: Option<&'a str>,
    /// The sealed tokens (ID, access, refresh).
    pub sealed: &'a [u8],
    /// Whether Keycloak gave a refresh token.
    pub refreshable: bool,
    pub access_expires_at: DateTime<Utc>,
    /// When the session ends here.
    pub expires_at: DateTime<Utc>,
}

pub async fn store_tokens(pool: &PgPool, tokens: &SessionTokens<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO session_tokens \
           (id, sub, sid, sealed, refreshable, access_expires_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE \
         SET sealed = EXCLUDED.sealed, refreshable = EXCLUDED.refreshable, \
             access_expires_at = EXCLUDED.access_expires_at, expires_at = EXCLUDED.expires_at",
    )
    .bind(tokens.id)
    .bind(tokens.sub)
    .bind(tokens.sid)
    .bind(tokens.sealed)
    .bind(tokens.refreshable)
    .bind(tokens.access_expires_at)
    .bind(tokens.expires_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Of the rows `ids`, those whose access token expires within `margin` and can be
/// refreshed.
pub async fn refresh_due(
    pool: &PgPool,
    ids: &[String],
    margin: chrono::Duration,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM session_tokens WHERE id = ANY($1) \
           AND refreshable AND expires_at > now() \
           AND access_expires_at < now() + $2",
    )
    .bind(ids)
    .bind(margin)
    .fetch_all(pool)
    .await
}

/// A session whose refresh is due, locked for this transaction.
#[derive(Debug, sqlx::FromRow)]
pub struct DueRefresh {
    pub sub: String,
    pub sid: Option<String>,
    /// The sealed tokens, to be opened with the session's handle.
    pub sealed: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// Locks the session's row when its refresh is still due. `None` when it is not due
/// (any more), or another replica holds the lock: that one refreshes it.
pub async fn lock_due_refresh(
    tx: &mut sqlx::PgConnection,
    id: &str,
    margin: chrono::Duration,
) -> Result<Option<DueRefresh>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sub, sid, sealed, expires_at FROM session_tokens \
         WHERE id = $1 AND refreshable AND expires_at > now() \
           AND access_expires_at < now() + $2 \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(id)
    .bind(margin)
    .fetch_optional(tx)
    .await
}

/// Stores what a refresh returned, sealed again.
pub async fn store_refreshed(
    tx: &mut sqlx::PgConnection,
    id: &str,
    sealed: &[u8],
    refreshable: bool,
    access_expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE session_tokens SET sealed = $2, refreshable = $3, access_expires_at = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(sealed)
    .bind(refreshable)
    .bind(access_expires_at)
    .execute(tx)
    .await
    .map(|_| ())
}

/// Forgets a session's tokens (its refresh was refused: the session is over).
pub async fn delete_tokens(tx: &mut sqlx::PgConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM session_tokens WHERE id = $1")
        .bind(id)
        .execute(tx)
        .await
        .map(|_| ())
}

/// Removes a session's row and hands back its sealed tokens (logout: the ID token is
/// the hint).
pub async fn take_tokens(pool: &PgPool, id: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("DELETE FROM session_tokens WHERE id = $1 RETURNING sealed")
        .bind(id)
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
