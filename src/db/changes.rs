//! The `wizbrand_changes` feed (Postgres `LISTEN/NOTIFY`) as a stream of events, shared
//! by everything that keeps in-memory state in step with Postgres: reconnects with
//! backoff, coalesces bursts, and ticks when nothing happens so callers reload anyway.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

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

/// The feed, followed by one consumer: [`Changes::next`] waits for the next event,
/// connecting (again) as needed. No task of its own: the consumer's task is the one
/// that is supervised, and it ends when `stop` is cancelled.
pub struct Changes {
    database_url: String,
    name: &'static str,
    settle: Duration,
    quiet: Duration,
    stop: CancellationToken,
    listener: Option<PgListener>,
    /// Wait this long before the next connection attempt (after a failure).
    backoff: Option<Duration>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Follows the feed until `stop`. `settle`: how long to wait after a notification for
/// more; `quiet`: how long without one before a `Quiet`.
pub fn follow(
    database_url: String,
    name: &'static str,
    settle: Duration,
    quiet: Duration,
    stop: CancellationToken,
) -> Changes {
    Changes {
        database_url,
        name,
        settle,
        quiet,
        stop,
        listener: None,
        backoff: None,
    }
}

impl Changes {
    /// The next event; `None` once `stop` is cancelled.
    pub async fn next(&mut self) -> Option<Change> {
        let stop = self.stop.clone();
        tokio::select! {
            biased;
            () = stop.cancelled() => None,
            change = self.next_change() => Some(change),
        }
    }

    async fn next_change(&mut self) -> Change {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                if let Some(wait) = self.backoff {
                    tokio::time::sleep(wait).await;
                }
                match self.connect().await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        self.backoff = None;
                        return Change::Connected;
                    }
                    Err(e) => {
                        tracing::warn!(follower = self.name, error = %e, "cannot listen for changes; retrying");
                        self.back_off();
                        continue;
                    }
                }
            };
            match tokio::time::timeout(self.quiet, listener.recv()).await {
                Ok(Ok(first)) => {
                    let mut payloads = vec![first.payload().to_owned()];
                    tokio::time::sleep(self.settle).await;
                    while let Some(more) = listener.next_buffered() {
                        payloads.push(more.payload().to_owned());
                    }
                    payloads.sort();
                    payloads.dedup();
                    return Change::Notified(payloads);
                }
                Ok(Err(e)) => {
                    tracing::warn!(follower = self.name, error = %e, "change feed lost");
                    self.listener = None;
                    self.back_off();
                }
                Err(_) => return Change::Quiet,
            }
        }
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect(&self.database_url).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    fn back_off(&mut self) {
        self.backoff = Some(
            self.backoff
                .map_or(FIRST_BACKOFF, |wait| (wait * 2).min(MAX_BACKOFF)),
        );
    }
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
