//! The SQL for the audit log: written in the same transaction as the change it records.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// Who made a change: their Keycloak subject, and the proven email they had then.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub sub: &'a str,
    pub email: Option<&'a str>,
}

impl Actor<'_> {
    /// The sync and sign-in, when they link a member to an account.
    pub const SYSTEM: Actor<'static> = Actor {
        sub: "wizbrand",
        email: None,
    };
}

pub struct Entry<'a> {
    pub actor: Actor<'a>,
    /// e.g. `org.create`, `member.put`.
    pub action: &'a str,
    /// What was changed, e.g. the org's slug or `acme/alice@example.com`.
    pub target: &'a str,
    pub org_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

pub async fn record(conn: &mut PgConnection, entry: Entry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor, actor_email, action, target, org_id, before, after) \
         VALUES ($1, $7, $2, $3, $4, $5, $6)",
    )
    .bind(entry.actor.sub)
    .bind(entry.action)
    .bind(entry.target)
    .bind(entry.org_id)
    .bind(entry.before)
    .bind(entry.after)
    .bind(entry.actor.email)
    .execute(conn)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The actor's subject (or, in entries older than that rule, their email).
    pub actor: String,
    pub actor_email: Option<String>,
    pub action: String,
    pub target: String,
    /// The org's current slug, when the entry names an org that still exists.
    pub org_slug: Option<String>,
    /// What the target was before and after the change (absent when created or deleted).
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Filters of the audit log; empty strings filter nothing.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Part of an org's slug, any case: entries about it (its own and its members').
    pub org: String,
    /// Part of the actor's email or subject.
    pub actor: String,
    /// An action prefix: `org.` or `member.put`.
    pub action: String,
    /// Not a platform admin: only entries of orgs where this user (`sub`) is ORG_ADMIN.
    pub admin_of: Option<String>,
}

/// A page of audit entries, newest first.
pub async fn search(
    pool: &sqlx::PgPool,
    filter: &AuditFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditRow>, i64), sqlx::Error> {
    let sub = filter.admin_of.clone().unwrap_or_default();
    // `target` starts with the slug for org and member entries, which also finds
    // entries of deleted orgs by their old slug.
    let from = "FROM audit_log a LEFT JOIN orgs o ON o.id = a.org_id \
         WHERE ($1 = '' OR o.slug LIKE '%' || lower($1) || '%' \
                OR (a.action LIKE 'org.%' OR a.action LIKE 'member.%') \
                   AND split_part(a.target, '/', 1) LIKE '%' || lower($1) || '%') \
           AND ($2 = '' OR a.actor ILIKE '%' || $2 || '%' OR a.actor_email ILIKE '%' || $2 || '%') \
           AND ($3 = '' OR a.action ILIKE $3 || '%') \
           AND ($4::boolean = false OR a.org_id IN ( \
                SELECT m.org_id FROM memberships m JOIN users u ON u.id = m.user_id \
                WHERE 'ORG_ADMIN' = ANY(m.roles) \
                  AND u.keycloak_id = $5))";
    let rows = sqlx::query_as(&format!(
        "SELECT a.id, a.at, a.actor, a.actor_email, a.action, a.target, o.slug AS org_slug, \
             a.before, a.after {from} \
         ORDER BY a.id DESC LIMIT $6 OFFSET $7"
    ))
    .bind(&filter.org)
    .bind(&filter.actor)
    .bind(&filter.action)
    .bind(filter.admin_of.is_some())
    .bind(&sub)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) {from}"))
        .bind(&filter.org)
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(filter.admin_of.is_some())
        .bind(&sub)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}
