//! The `wizbrand_changes` feed (Postgres `LISTEN/NOTIFY`) as a stream of events, shared
//! by everything that keeps in-memory state in step with Postgres: reconnects with
//! backoff, coalesces bursts, and ticks when nothing happens so callers reload anyway.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

pub const CHANNEL: &str = "wizbrand_changes";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Listening (again): notifications may have been missed, so reload everything.
    Connected,
    /// Notifications that arrived within the settle window (their JSON payloads).
    Notified(Vec<String>),
    /// Nothing arrived for the safety-net interval.
    Quiet,
}

/// Follows the feed for the life of the process. `settle`: how long to wait after a
/// notification for more; `quiet`: how long without one before a `Quiet`.
pub fn follow(
    database_url: String,
    name: &'static str,
    settle: Duration,
    quiet: Duration,
) -> mpsc::Receiver<Change> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match PgListener::connect(&database_url).await {
                Ok(mut listener) => {
                    if listener.listen(CHANNEL).await.is_ok() {
                        backoff = Duration::from_millis(200);
                        if tx.send(Change::Connected).await.is_err() {
                            return;
                        }
                        loop {
                            let event = match tokio::time::timeout(quiet, listener.recv()).await {
                                Ok(Ok(first)) => {
                                    let mut payloads = vec![first.payload().to_owned()];
                                    tokio::time::sleep(settle).await;
                                    while let Some(more) = listener.next_buffered() {
                                        payloads.push(more.payload().to_owned());
                                    }
                                    payloads.sort();
                                    payloads.dedup();
                                    Change::Notified(payloads)
                                }
                                Ok(Err(e)) => {
                                    tracing::warn!(follower = name, error = %e, "change feed lost");
                                    break;
                                }
                                Err(_) => Change::Quiet,
                            };
                            if tx.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(follower = name, error = %e, "cannot listen for changes; retrying")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
    rx
}

/// The table a notification names (`""` for one that is not ours).
pub fn table_of(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v["table"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Change {
    /// Whether this event may concern any of `tables` (always, after a reconnect or a
    /// quiet spell).
    pub fn touches(&self, tables: &[&str]) -> bool {
        match self {
            Change::Notified(payloads) => payloads
                .iter()
                .any(|p| tables.contains(&table_of(p).as_str())),
            Change::Connected | Change::Quiet => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_name_their_table() {
        assert_eq!(
            table_of(r#"{"table":"orgs","op":"INSERT","org_id":null}"#),
            "orgs"
        );
        assert_eq!(table_of("not json"), "");
    }
}
