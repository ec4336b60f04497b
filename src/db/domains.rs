//! The SQL for the email domains orgs claim (`org_domains`).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Domain")]
pub struct OrgDomain {
    pub domain: String,
    /// Only a verified domain offers anything.
    #[schemars(extend("enum" = ["claimed", "verified"]))]
    pub status: String,
    /// What the domain offers (`manage::domains::JoinMode`, whose test holds the two
    /// lists together).
    #[schemars(extend("enum" = ["none", "suggest", "auto_join"]))]
    pub mode: String,
    /// The claimer's Keycloak subject.
    pub claimed_by: String,
    /// The verifying platform admin's Keycloak subject.
    pub verified_by: Option<String>,
    pub verified_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip)]
    pub org_id: Uuid,
}

const COLUMNS: &str = "d.domain, d.status, d.mode, d.claimed_by, d.verified_by, d.verified_at, \
                       d.created_at, d.updated_at, d.org_id";

/// An org's domains, by name.
pub async fn list(pool: &PgPool, org_id: Uuid) -> Result<Vec<OrgDomain>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM org_domains d WHERE d.org_id = $1 ORDER BY d.domain"
    ))
    .bind(org_id)
    .fetch_all(pool)
    .await
}

/// The claim on `domain`, whichever org holds it, locked until the transaction ends.
pub async fn lock(conn: &mut PgConnection, domain: &str) -> Result<Option<OrgDomain>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM org_domains d WHERE d.domain = $1 FOR UPDATE"
    ))
    .bind(domain)
    .fetch_optional(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    org_id: Uuid,
    domain: &str,
    mode: &str,
    claimed_by: &str,
) -> Result<OrgDomain, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO org_domains AS d (org_id, domain, mode, claimed_by) VALUES ($1, $2, $3, $4) \
         RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(domain)
    .bind(mode)
    .bind(claimed_by)
    .fetch_one(conn)
    .await
}

pub async fn set_mode(
    conn: &mut PgConnection,
    domain: &str,
    mode: &str,
) -> Result<OrgDomain, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE org_domains AS d SET mode = $2 WHERE d.domain = $1 RETURNING {COLUMNS}"
    ))
    .bind(domain)
    .bind(mode)
    .fetch_one(conn)
    .await
}

pub async fn mark_verified(
    conn: &mut PgConnection,
    domain: &str,
    by: &str,
) -> Result<OrgDomain, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE org_domains AS d SET status = 'verified', verified_by = $2, \
         verified_at = COALESCE(verified_at, now()) WHERE d.domain = $1 RETURNING {COLUMNS}"
    ))
    .bind(domain)
    .bind(by)
    .fetch_one(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, domain: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM org_domains WHERE domain = $1")
        .bind(domain)
        .execute(conn)
        .await
        .map(|_| ())
}

/// What a verified domain offers a person whose verified address is there.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Offer {
    pub org_id: Uuid,
    pub slug: String,
    pub name: String,
    pub domain: String,
    /// `suggest` or `auto_join`.
    pub mode: String,
}

/// The offer of `domain`: verified, with a mode that offers something, of an active org.
pub async fn offer(conn: &mut PgConnection, domain: &str) -> Result<Option<Offer>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.id AS org_id, o.slug, o.name, d.domain, d.mode FROM org_domains d \
         JOIN orgs o ON o.id = d.org_id \
         WHERE d.domain = $1 AND d.status = 'verified' AND d.mode IN ('suggest', 'auto_join') \
           AND o.status = 'active'",
    )
    .bind(domain)
    .fetch_optional(conn)
    .await
}
