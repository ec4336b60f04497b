//! The SQL for users and memberships.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// How a token's user is found: by Keycloak id (`$1`, the token's `sub`) only. An email
/// proves nothing here: a person may change theirs, so a row is linked to an account
/// only by the sync (the account it created) or a verified sign-in.
pub const MATCH_USER: &str = "u.keycloak_id = $1";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct MyMembership {
    pub org_id: Uuid,
    pub slug: String,
    pub name: String,
    #[schemars(with = "Vec<crate::domain::Role>")]
    pub roles: Vec<String>,
}

/// Every org a user belongs to, with their roles.
pub async fn of_user(pool: &PgPool, sub: &str) -> Result<Vec<MyMembership>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT o.id AS org_id, o.slug, o.name, m.roles FROM memberships m \
         JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id \
         WHERE {MATCH_USER} ORDER BY o.slug"
    ))
    .bind(sub)
    .fetch_all(pool)
    .await
}

/// A user's roles in one org; empty when not a member.
pub async fn roles_in(pool: &PgPool, org_id: Uuid, sub: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<Vec<String>> = sqlx::query_scalar(&format!(
        "SELECT m.roles FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $2 AND {MATCH_USER}"
    ))
    .bind(sub)
    .bind(org_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().flatten().collect())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct Member {
    pub email: String,
    pub keycloak_id: Option<String>,
    #[schemars(with = "Vec<crate::domain::Role>")]
    pub roles: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub async fn list(
    pool: &PgPool,
    org_id: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Member>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT u.email, u.keycloak_id, m.roles, m.created_at, m.updated_at FROM memberships m \
         JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY u.email LIMIT $2 OFFSET $3",
    )
    .bind(org_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

pub async fn user_id(conn: &mut PgConnection, email: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(conn)
        .await
}

/// The user's id, creating the row when the email is new. Returns whether it was created.
pub async fn ensure_user(
    conn: &mut PgConnection,
    email: &str,
) -> Result<(Uuid, bool), sqlx::Error> {
    if let Some(id) = user_id(&mut *conn, email).await? {
        return Ok((id, false));
    }
    let id = sqlx::query_scalar("INSERT INTO users (email) VALUES ($1) RETURNING id")
        .bind(email)
        .fetch_one(conn)
        .await?;
    Ok((id, true))
}

/// The member's roles, locking the row; `None` when not a member.
pub async fn roles_of(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT roles FROM memberships WHERE org_id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

pub async fn upsert(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
    roles: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, roles) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id, user_id) DO UPDATE SET roles = EXCLUDED.roles",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(roles)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn remove(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn count_admins(conn: &mut PgConnection, org_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM memberships WHERE org_id = $1 AND 'ORG_ADMIN' = ANY(roles)",
    )
    .bind(org_id)
    .fetch_one(conn)
    .await
}
