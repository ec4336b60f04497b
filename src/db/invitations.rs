//! The SQL for invitations and seats (members plus pending invitations).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An invitation with its org's slug and name. Never its token (only the hash is kept).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct Invitation {
    pub id: Uuid,
    #[serde(skip)]
    pub org_id: Uuid,
    pub org_slug: String,
    #[serde(skip)]
    pub org_name: String,
    pub email: String,
    #[schemars(with = "Vec<crate::domain::Role>")]
    pub roles: Vec<String>,
    /// The inviter's Keycloak subject.
    pub invited_by: String,
    pub invited_by_email: Option<String>,
    /// A pending one whose `expires_at` has passed is expired.
    #[schemars(extend("enum" = ["pending", "accepted", "revoked"]))]
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT i.id, i.org_id, o.slug AS org_slug, o.name AS org_name, i.email, \
     i.roles, i.invited_by, i.invited_by_email, i.status, i.expires_at, i.sent_at, \
     i.accepted_at, i.revoked_at, i.created_at \
     FROM invitations i JOIN orgs o ON o.id = i.org_id";

pub struct NewInvitation<'a> {
    pub org_id: Uuid,
    pub email: &'a str,
    pub roles: &'a [String],
    pub invited_by: &'a str,
    pub invited_by_email: Option<&'a str>,
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, new: &NewInvitation<'_>) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO invitations (org_id, email, roles, invited_by, invited_by_email, token_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(new.org_id)
    .bind(new.email)
    .bind(new.roles)
    .bind(new.invited_by)
    .bind(new.invited_by_email)
    .bind(new.token_hash)
    .bind(new.expires_at)
    .fetch_one(conn)
    .await
}

/// One invitation of an org, locked for the change that follows.
pub async fn by_id_for_update(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE i.org_id = $1 AND i.id = $2 FOR UPDATE OF i"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The invitation whose newest mail carries the token of this hash, locked.
pub async fn by_token_for_update(
    conn: &mut PgConnection,
    token_hash: &str,
) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE i.token_hash = $1 FOR UPDATE OF i"))
        .bind(token_hash)
        .fetch_optional(conn)
        .await
}

/// An invitation by id alone (the invitee's own list), locked.
pub async fn by_id_any_org_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE i.id = $1 FOR UPDATE OF i"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn by_token(pool: &PgPool, token_hash: &str) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE i.token_hash = $1"))
        .bind(token_hash)
        .fetch_optional(pool)
        .await
}

/// Whether the hash is of a token an invitation had before a resend.
pub async fn is_retired(pool: &PgPool, token_hash: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invitation_retired_tokens WHERE token_hash = $1)",
    )
    .bind(token_hash)
    .fetch_one(pool)
    .await
}

/// The org name of the invitation a retired token belonged to.
pub async fn org_of_retired(
    pool: &PgPool,
    token_hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT o.name FROM invitation_retired_tokens r JOIN invitations i ON i.id = r.invitation_id \
         JOIN orgs o ON o.id = i.org_id WHERE r.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// An org's invitations, newest first.
pub async fn list(
    pool: &PgPool,
    org_id: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Invitation>, i64), sqlx::Error> {
    let rows = sqlx::query_as(&format!(
        "{SELECT} WHERE i.org_id = $1 ORDER BY i.created_at DESC, i.email LIMIT $2 OFFSET $3"
    ))
    .bind(org_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM invitations WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

/// Open invitations to an address, in every org (the invitee's own list).
pub async fn open_for_email(pool: &PgPool, email: &str) -> Result<Vec<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE i.email = $1 AND i.status = 'pending' AND i.expires_at > now() \
         ORDER BY o.name, o.slug"
    ))
    .bind(email)
    .fetch_all(pool)
    .await
}

/// The pending invitation of `email` in the org (live or expired), locked.
pub async fn pending_for_update(
    conn: &mut PgConnection,
    org_id: Uuid,
    email: &str,
) -> Result<Option<Invitation>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE i.org_id = $1 AND i.email = $2 AND i.status = 'pending' FOR UPDATE OF i"
    ))
    .bind(org_id)
    .bind(email)
    .fetch_optional(conn)
    .await
}

/// A new token (the old one is kept as retired) and a new expiry.
pub async fn renew(
    conn: &mut PgConnection,
    id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invitation_retired_tokens (token_hash, invitation_id) \
         SELECT token_hash, id FROM invitations WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE invitations SET token_hash = $2, expires_at = $3, sent_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(token_hash)
    .bind(expires_at)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn revoke(conn: &mut PgConnection, id: Uuid, by: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE invitations SET status = 'revoked', revoked_by = $2, revoked_at = now() \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(by)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn mark_accepted(conn: &mut PgConnection, id: Uuid, by: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE invitations SET status = 'accepted', accepted_by = $2, accepted_at = now() \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(by)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Seats an org holds: its members and the addresses of its live pending invitations,
/// each person once.
pub async fn seats_taken(conn: &mut PgConnection, org_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM ( \
           SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 \
           UNION \
           SELECT email FROM invitations \
           WHERE org_id = $1 AND status = 'pending' AND expires_at > now()) seats",
    )
    .bind(org_id)
    .fetch_one(conn)
    .await
}

/// Members and live pending invitations of an org, apart (for the pages).
pub async fn seat_usage(pool: &PgPool, org_id: Uuid) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM memberships WHERE org_id = $1), \
                (SELECT count(*) FROM invitations \
                 WHERE org_id = $1 AND status = 'pending' AND expires_at > now())",
    )
    .bind(org_id)
    .fetch_one(pool)
    .await
}

/// Whether `email` holds a seat in the org already (a member or invited).
pub async fn holds_seat(
    conn: &mut PgConnection,
    org_id: Uuid,
    email: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id \
                        WHERE m.org_id = $1 AND u.email = $2) \
             OR EXISTS (SELECT 1 FROM invitations WHERE org_id = $1 AND email = $2 \
                        AND status = 'pending' AND expires_at > now())",
    )
    .bind(org_id)
    .bind(email)
    .fetch_one(conn)
    .await
}

/// The user row of an account (by Keycloak id), if any.
pub async fn user_of_account(
    conn: &mut PgConnection,
    sub: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users WHERE keycloak_id = $1")
        .bind(sub)
        .fetch_optional(conn)
        .await
}

/// The user row of an address with the account it is linked to, locked.
pub async fn user_of_email_for_update(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<(Uuid, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT id, keycloak_id FROM users WHERE email = $1 FOR UPDATE")
        .bind(email)
        .fetch_optional(conn)
        .await
}

pub async fn link_account(
    conn: &mut PgConnection,
    user_id: Uuid,
    sub: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET keycloak_id = $2 WHERE id = $1 AND keycloak_id IS NULL")
        .bind(user_id)
        .bind(sub)
        .execute(conn)
        .await
        .map(|_| ())
}
