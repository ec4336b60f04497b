//! The SQL for the users an org's directory provisioned over SCIM (the resources; the
//! memberships they govern are in `memberships`, written through `db::members`).

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScimUser {
    pub id: Uuid,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub resource: Value,
    pub version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str =
    "id, user_name, external_id, active, email, roles, resource, version, created_at, updated_at";

/// What is written for a user.
pub struct Fields<'a> {
    pub user_name: &'a str,
    pub external_id: Option<&'a str>,
    pub active: bool,
    pub email: Option<&'a str>,
    pub roles: &'a [String],
    pub resource: &'a Value,
}

pub async fn insert(
    conn: &mut PgConnection,
    org_id: Uuid,
    token_id: Uuid,
    f: &Fields<'_>,
) -> Result<ScimUser, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO scim_users (org_id, user_name, external_id, active, email, roles, resource, created_by_token) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(f.user_name)
    .bind(f.external_id)
    .bind(f.active)
    .bind(f.email)
    .bind(f.roles)
    .bind(f.resource)
    .bind(token_id)
    .fetch_one(conn)
    .await
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    f: &Fields<'_>,
) -> Result<ScimUser, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE scim_users SET user_name = $2, external_id = $3, active = $4, email = $5, \
         roles = $6, resource = $7, version = version + 1 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(f.user_name)
    .bind(f.external_id)
    .bind(f.active)
    .bind(f.email)
    .bind(f.roles)
    .bind(f.resource)
    .fetch_one(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM scim_users WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn get(pool: &PgPool, org_id: Uuid, id: Uuid) -> Result<Option<ScimUser>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scim_users WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn lock(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<ScimUser>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scim_users WHERE org_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Every user of the org, locked (a group edit checks and changes many at once).
pub async fn lock_all(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<ScimUser>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scim_users WHERE org_id = $1 ORDER BY created_at, id FOR UPDATE"
    ))
    .bind(org_id)
    .fetch_all(conn)
    .await
}

/// Another user of the org holding this userName (ignoring case) or member address.
pub async fn clash(
    conn: &mut PgConnection,
    org_id: Uuid,
    except: Option<Uuid>,
    user_name: &str,
    email: Option<&str>,
) -> Result<Option<ScimUser>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scim_users WHERE org_id = $1 AND ($2::uuid IS NULL OR id <> $2) \
         AND (lower(user_name) = lower($3) OR ($4::text IS NOT NULL AND email = $4)) LIMIT 1"
    ))
    .bind(org_id)
    .bind(except)
    .bind(user_name)
    .bind(email)
    .fetch_optional(conn)
    .await
}

/// How a list is narrowed before the filter is evaluated.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    All,
    UserName(&'a str),
    ExternalId(&'a str),
    Id(Uuid),
}

/// The org's users (narrowed by `lookup`), oldest first.
pub async fn list(
    pool: &PgPool,
    org_id: Uuid,
    lookup: Lookup<'_>,
) -> Result<Vec<ScimUser>, sqlx::Error> {
    let q = |cond: &str| {
        format!("SELECT {COLUMNS} FROM scim_users WHERE org_id = $1 {cond} ORDER BY created_at, id")
    };
    match lookup {
        Lookup::All => sqlx::query_as(&q("")).bind(org_id).fetch_all(pool).await,
        Lookup::UserName(v) => {
            sqlx::query_as(&q("AND lower(user_name) = lower($2)"))
                .bind(org_id)
                .bind(v)
                .fetch_all(pool)
                .await
        }
        Lookup::ExternalId(v) => {
            sqlx::query_as(&q("AND external_id = $2"))
                .bind(org_id)
                .bind(v)
                .fetch_all(pool)
                .await
        }
        Lookup::Id(id) => {
            sqlx::query_as(&q("AND id = $2"))
                .bind(org_id)
                .bind(id)
                .fetch_all(pool)
                .await
        }
    }
}

/// A member's roles in the org by address (`None`: not a member), locked.
pub async fn membership_by_email(
    conn: &mut PgConnection,
    org_id: Uuid,
    email: &str,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT m.roles FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $1 AND u.email = $2 FOR UPDATE OF m",
    )
    .bind(org_id)
    .bind(email)
    .fetch_optional(conn)
    .await
}
