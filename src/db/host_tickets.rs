//! One-time tickets handing a session from the auth host to an app host.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A ticket as stored; checked by [`crate::web::app_host::check_ticket`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketRow {
    pub host: String,
    pub bind_hash: String,
    pub session: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

pub struct NewTicket<'a> {
    pub ticket_hash: &'a str,
    pub host: &'a str,
    pub bind_hash: &'a str,
    pub session: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

/// Stores a ticket; rows past their time go first (an index range scan; tickets live
/// seconds, so the table stays small).
pub async fn issue(pool: &PgPool, ticket: NewTicket<'_>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM host_tickets WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO host_tickets (ticket_hash, host, bind_hash, session, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ticket.ticket_hash)
    .bind(ticket.host)
    .bind(ticket.bind_hash)
    .bind(ticket.session)
    .bind(ticket.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Takes the ticket out, whatever comes of its checks: a ticket is good for one try,
/// on any replica (the row lock makes a concurrent second `DELETE` find nothing).
pub async fn take(pool: &PgPool, ticket_hash: &str) -> Result<Option<TicketRow>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM host_tickets WHERE ticket_hash = $1 \
         RETURNING host, bind_hash, session, expires_at",
    )
    .bind(ticket_hash)
    .fetch_optional(pool)
    .await
}
