//! The `jti`s of back-channel logout tokens already used, so a replay is refused by
//! every replica.

use chrono::{DateTime, Utc};

/// Remembers `jti` until `until`; `false` when it is already remembered (a replay).
/// Rows whose tokens would be refused as too old anyway are pruned first (an index range
/// scan; logout tokens are rare). A concurrent insert of the same `jti` waits for the
/// first and then finds it.
pub async fn remember(
    conn: &mut sqlx::PgConnection,
    jti: &str,
    until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query("DELETE FROM logout_token_jtis WHERE expires_at < now()")
        .execute(&mut *conn)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO logout_token_jtis (jti, expires_at) VALUES ($1, $2) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(until)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
