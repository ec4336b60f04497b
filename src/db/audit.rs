//! The SQL for the audit log: written in the same transaction as the change it records.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

pub struct Entry<'a> {
    /// The person or client: the token's email, else its `sub`.
    pub actor: &'a str,
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
        "INSERT INTO audit_log (actor, action, target, org_id, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target)
    .bind(entry.org_id)
    .bind(entry.before)
    .bind(entry.after)
    .execute(conn)
    .await
    .map(|_| ())
}
