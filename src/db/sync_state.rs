//! The SQL the sync needs: desired state and the `sync_runs` journal.

use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::{Decode, PgConnection, PgPool, Postgres, Type};
use uuid::Uuid;

use crate::domain::run::{CheckedBy, RunStatus, Trigger};

/// The journal's enums are text columns (with CHECK constraints): read back through
/// their parsers, so a row with an unknown value is an error, not a string.
macro_rules! text_column {
    ($($name:ty),+) => {$(
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <String as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <String as Type<Postgres>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as Decode<'r, Postgres>>::decode(value)?.parse()?)
            }
        }
    )+};
}

text_column!(Trigger, RunStatus, CheckedBy);

#[derive(Debug, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub slug: String,
    pub plan: String,
    pub features: Vec<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct MembershipRow {
    pub slug: String,
    pub email: String,
    pub roles: Vec<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub keycloak_id: Option<String>,
    pub preferred_org: Option<String>,
}

pub async fn orgs(pool: &PgPool) -> Result<Vec<OrgRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, slug, plan, features FROM orgs ORDER BY slug")
        .fetch_all(pool)
        .await
}

pub async fn memberships(pool: &PgPool) -> Result<Vec<MembershipRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.slug, u.email, m.roles FROM memberships m \
         JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id",
    )
    .fetch_all(pool)
    .await
}

pub async fn users(pool: &PgPool) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.email, u.keycloak_id, p.slug AS preferred_org FROM users u \
         LEFT JOIN orgs p ON p.id = u.preferred_org_id",
    )
    .fetch_all(pool)
    .await
}

pub async fn org_slug(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT slug FROM orgs WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The key of the advisory lock that makes one sync runner across replicas.
const SYNC_LOCK_KEY: i64 = 0x7769_7a62_7379_6e63; // "wizbsync"

pub async fn try_lock(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(SYNC_LOCK_KEY)
        .fetch_one(conn)
        .await
}

pub async fn unlock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SYNC_LOCK_KEY)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn start_run(
    pool: &PgPool,
    trigger: Trigger,
    scope: Option<&str>,
    dry_run: bool,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO sync_runs (trigger, scope, dry_run) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(trigger.as_str())
    .bind(scope)
    .bind(dry_run)
    .fetch_one(pool)
    .await
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub unchanged: i32,
    pub failed: i32,
}

pub async fn finish_run(
    pool: &PgPool,
    id: i64,
    status: RunStatus,
    counts: &RunCounts,
    errors: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_runs SET status = $2, finished_at = now(), created = $3, updated = $4, \
         deleted = $5, unchanged = $6, failed = $7, errors = $8 WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(counts.created)
    .bind(counts.updated)
    .bind(counts.deleted)
    .bind(counts.unchanged)
    .bind(counts.failed)
    .bind(errors)
    .execute(pool)
    .await
    .map(|_| ())
}

/// What the newest run before this one verified, when it may vouch for Keycloak now:
/// it was a full run that found (or, by the event log, knew) Keycloak matching, and no
/// other run (a scoped one, or one killed half-way) has started since.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerifiedRun {
    pub desired_digest: String,
    pub checked_from: chrono::DateTime<chrono::Utc>,
    /// How many things in Keycloak matched Postgres after it.
    pub in_step: i32,
    /// When the newest full read began.
    pub last_read_from: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn last_verified(
    pool: &PgPool,
    before_run: i64,
) -> Result<Option<VerifiedRun>, sqlx::Error> {
    sqlx::query_as(
        "WITH latest AS ( \
             SELECT * FROM sync_runs WHERE id < $1 AND NOT dry_run AND status <> 'skipped' \
             ORDER BY id DESC LIMIT 1) \
         SELECT desired_digest, checked_from, unchanged AS in_step, \
             (SELECT max(checked_from) FROM sync_runs WHERE checked_by = 'read' AND id < $1) \
                 AS last_read_from \
         FROM latest WHERE status = 'succeeded' AND scope IS NULL AND failed = 0 \
             AND desired_digest IS NOT NULL AND checked_from IS NOT NULL",
    )
    .bind(before_run)
    .fetch_optional(pool)
    .await
}

pub async fn record_check(
    pool: &PgPool,
    id: i64,
    desired_digest: &str,
    checked_by: CheckedBy,
    checked_from: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_runs SET desired_digest = $2, checked_by = $3, checked_from = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(desired_digest)
    .bind(checked_by.as_str())
    .bind(checked_from)
    .execute(pool)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "SyncRun")]
pub struct SyncRunRow {
    pub id: i64,
    pub trigger: Trigger,
    pub scope: Option<String>,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub unchanged: i32,
    pub failed: i32,
    #[schemars(with = "Vec<String>")]
    pub errors: serde_json::Value,
    pub checked_by: Option<CheckedBy>,
}

pub async fn recent_runs(pool: &PgPool, limit: i64) -> Result<Vec<SyncRunRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, trigger, scope, dry_run, status, started_at, finished_at, created, updated, \
         deleted, unchanged, failed, errors, checked_by FROM sync_runs ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A link a sync run proved or made: the member row with `email` gets `keycloak_id`.
#[derive(Debug, Clone, Copy)]
pub struct AccountLink<'a> {
    pub email: &'a str,
    pub keycloak_id: &'a str,
    /// The id the row held when the run read it (an account gone from Keycloak).
    pub previous: Option<&'a str>,
    /// Why the account is the member's, in words (for the audit log).
    pub proof: &'static str,
}

/// Records the links a run proved or made, each with an audit entry, in one
/// transaction. A row is only written while it still holds the id the run saw
/// (`previous`): a stored id is never replaced behind anyone's back. Returns how many
/// rows were linked.
pub async fn link_accounts(pool: &PgPool, links: &[AccountLink<'_>]) -> Result<usize, sqlx::Error> {
    if links.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let mut linked = 0;
    for link in links {
        let updated = sqlx::query(
            "UPDATE users SET keycloak_id = $1, updated_at = now() \
             WHERE email = $2 AND keycloak_id IS NOT DISTINCT FROM $3 \
               AND NOT EXISTS (SELECT 1 FROM users WHERE keycloak_id = $1)",
        )
        .bind(link.keycloak_id)
        .bind(link.email)
        .bind(link.previous)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            continue;
        }
        linked += 1;
        super::audit::record(
            &mut tx,
            super::audit::Entry {
                actor: super::audit::Actor::SYSTEM,
                action: "account.link",
                target: link.email,
                org_id: None,
                before: link.previous.map(
                    |id| serde_json::json!({"keycloak_id": id, "state": "gone from Keycloak"}),
                ),
                after: Some(serde_json::json!({
                    "keycloak_id": link.keycloak_id,
                    "proof": link.proof,
                })),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(linked)
}

/// A page of runs, newest first, and how many there are.
pub async fn runs_page(
    pool: &PgPool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SyncRunRow>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT id, trigger, scope, dry_run, status, started_at, finished_at, created, updated, \
         deleted, unchanged, failed, errors, checked_by FROM sync_runs ORDER BY id DESC LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}
