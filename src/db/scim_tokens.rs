//! The SQL for SCIM bearer tokens: stored as their SHA-256 only.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct ScimToken {
    pub id: Uuid,
    #[serde(skip)]
    pub org_id: Uuid,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    /// The creator's Keycloak subject.
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

const COLUMNS: &str = "id, org_id, name, prefix, created_by, created_at, last_used_at, revoked_at";

pub async fn insert(
    conn: &mut PgConnection,
    org_id: Uuid,
    name: &str,
    secret_hash: &[u8],
    prefix: &str,
    created_by: &str,
) -> Result<ScimToken, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO scim_tokens (org_id, name, secret_hash, prefix, created_by) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(name)
    .bind(secret_hash)
    .bind(prefix)
    .bind(created_by)
    .fetch_one(conn)
    .await
}

/// An org's tokens, newest first (revoked ones too, so the page shows when).
pub async fn list(pool: &PgPool, org_id: Uuid) -> Result<Vec<ScimToken>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scim_tokens WHERE org_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(org_id)
    .fetch_all(pool)
    .await
}

/// The token, locked, if it is the org's.
pub async fn lock(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<ScimToken>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scim_tokens WHERE org_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn revoke(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE scim_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

#[derive(sqlx::FromRow)]
struct WithSlug {
    #[sqlx(flatten)]
    token: ScimToken,
    slug: String,
}

/// A token that is not revoked, with its org's slug, by the hash of what was presented.
pub async fn by_hash(
    pool: &PgPool,
    secret_hash: &[u8],
) -> Result<Option<(ScimToken, String)>, sqlx::Error> {
    let row: Option<WithSlug> = sqlx::query_as(
        "SELECT t.id, t.org_id, t.name, t.prefix, t.created_by, t.created_at, t.last_used_at, \
         t.revoked_at, o.slug FROM scim_tokens t JOIN orgs o ON o.id = t.org_id \
         WHERE t.secret_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(secret_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.token, r.slug)))
}

/// Records a use; at most once a minute per token, so requests do not each write.
pub async fn touch(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE scim_tokens SET last_used_at = now() WHERE id = $1 \
         AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Whether SCIM may take over members added by hand in the org.
pub async fn adopts_hand_added(conn: &mut PgConnection, org_id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<bool> =
        sqlx::query_scalar("SELECT adopt_hand_added FROM scim_settings WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.unwrap_or(false))
}

pub async fn set_adopt_hand_added(
    conn: &mut PgConnection,
    org_id: Uuid,
    adopt: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO scim_settings (org_id, adopt_hand_added) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO UPDATE SET adopt_hand_added = EXCLUDED.adopt_hand_added",
    )
    .bind(org_id)
    .bind(adopt)
    .execute(conn)
    .await
    .map(|_| ())
}
