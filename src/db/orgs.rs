//! The SQL for orgs.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct Org {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub features: Vec<String>,
    #[schemars(extend("enum" = ["active", "suspended"]))]
    pub status: String,
    /// Apps (by key) an ORG_ADMIN closed for this org.
    pub hidden_apps: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str =
    "o.id, o.slug, o.name, o.plan, o.features, o.status, o.hidden_apps, o.created_at, o.updated_at";

/// Every org, by slug.
pub async fn list_all(
    pool: &PgPool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Org>, i64), sqlx::Error> {
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orgs o ORDER BY o.slug LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM orgs")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

/// The orgs a user belongs to (see [`super::members::MATCH_USER`]).
/// Orgs whose slug or name contains `query` (all when empty), by slug.
pub async fn search(
    pool: &PgPool,
    query: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Org>, i64), sqlx::Error> {
    let filter = "WHERE $1 = '' OR o.slug ILIKE '%' || $1 || '%' OR o.name ILIKE '%' || $1 || '%'";
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orgs o {filter} ORDER BY o.slug LIMIT $2 OFFSET $3"
    ))
    .bind(query)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM orgs o {filter}"))
        .bind(query)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

pub async fn list_for(
    pool: &PgPool,
    sub: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Org>, i64), sqlx::Error> {
    let from = format!(
        "FROM orgs o JOIN memberships m ON m.org_id = o.id JOIN users u ON u.id = m.user_id \
         WHERE {}",
        super::members::MATCH_USER
    );
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} {from} ORDER BY o.slug LIMIT $2 OFFSET $3"
    ))
    .bind(sub)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) {from}"))
        .bind(sub)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

pub async fn by_slug(pool: &PgPool, slug: &str) -> Result<Option<Org>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM orgs o WHERE o.slug = $1"))
        .bind(slug)
        .fetch_optional(pool)
        .await
}

/// The org, locked until the transaction ends (membership changes count admins under it).
pub async fn lock_by_slug(conn: &mut PgConnection, slug: &str) -> Result<Option<Org>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orgs o WHERE o.slug = $1 FOR UPDATE"
    ))
    .bind(slug)
    .fetch_optional(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    slug: &str,
    name: &str,
    plan: &str,
    features: &[String],
) -> Result<Org, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO orgs AS o (slug, name, plan, features) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(slug)
    .bind(name)
    .bind(plan)
    .bind(features)
    .fetch_one(conn)
    .await
}

/// Writes the given fields; `None` keeps the current value.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    plan: Option<&str>,
    features: Option<&[String]>,
    status: Option<&str>,
    hidden_apps: Option<&[String]>,
) -> Result<Org, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE orgs AS o SET name = COALESCE($2, name), plan = COALESCE($3, plan), \
         features = COALESCE($4, features), status = COALESCE($5, status), \
         hidden_apps = COALESCE($6, hidden_apps) \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(plan)
    .bind(features)
    .bind(status)
    .bind(hidden_apps)
    .fetch_one(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM orgs WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}
