//! The SQL for the apps wizbrand guards.

use sqlx::{PgConnection, PgPool};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct App {
    pub key: String,
    pub name: String,
    pub host_pattern: String,
    pub required_feature: String,
    #[schemars(with = "crate::domain::Role")]
    pub min_role: String,
    /// The gate hands the app the caller's `Authorization` header (else it is dropped).
    pub pass_authorization: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "key, name, host_pattern, required_feature, min_role, pass_authorization, created_at, updated_at";

pub async fn list(pool: &PgPool, limit: i64, offset: i64) -> Result<(Vec<App>, i64), sqlx::Error> {
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM apps ORDER BY key LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM apps")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

pub async fn get(pool: &PgPool, key: &str) -> Result<Option<App>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM apps WHERE key = $1"))
        .bind(key)
        .fetch_optional(pool)
        .await
}

pub async fn lock(conn: &mut PgConnection, key: &str) -> Result<Option<App>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM apps WHERE key = $1 FOR UPDATE"
    ))
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    key: &str,
    name: &str,
    host_pattern: &str,
    required_feature: &str,
    min_role: &str,
    pass_authorization: bool,
) -> Result<App, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO apps (key, name, host_pattern, required_feature, min_role, pass_authorization) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(key)
    .bind(name)
    .bind(host_pattern)
    .bind(required_feature)
    .bind(min_role)
    .bind(pass_authorization)
    .fetch_one(conn)
    .await
}

/// Writes the given fields; `None` keeps the current value.
pub async fn update(
    conn: &mut PgConnection,
    key: &str,
    name: Option<&str>,
    host_pattern: Option<&str>,
    required_feature: Option<&str>,
    min_role: Option<&str>,
    pass_authorization: Option<bool>,
) -> Result<App, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE apps SET name = COALESCE($2, name), host_pattern = COALESCE($3, host_pattern), \
         required_feature = COALESCE($4, required_feature), min_role = COALESCE($5, min_role), \
         pass_authorization = COALESCE($6, pass_authorization), updated_at = now() \
         WHERE key = $1 RETURNING {COLUMNS}"
    ))
    .bind(key)
    .bind(name)
    .bind(host_pattern)
    .bind(required_feature)
    .bind(min_role)
    .bind(pass_authorization)
    .fetch_one(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM apps WHERE key = $1")
        .bind(key)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Every app's key.
pub async fn keys(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT key FROM apps ORDER BY key")
        .fetch_all(pool)
        .await
}
