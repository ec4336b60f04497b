//! Ended sessions, in memory, following `session_revocations` in Postgres: reloaded at
//! start, on every `wizbrand_changes` notification about that table (so a logout on one
//! replica ends the session on every replica within a second) and every few seconds as
//! a safety net. Readers never wait on I/O.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::db::changes::{Change, follow};
use crate::db::sessions::RevocationRow;

const SAFETY_NET: Duration = Duration::from_secs(10);
const PURGE_EVERY: u32 = 360;
const SETTLE: Duration = Duration::from_millis(20);

#[derive(Debug, Default, Clone)]
struct Set {
    /// Keycloak session ids that are over.
    sids: HashSet<String>,
    /// Users whose every session issued up to this time is over (a logout without `sid`).
    subs: HashMap<String, DateTime<Utc>>,
}

#[derive(Default)]
pub struct Revocations {
    current: RwLock<Arc<Set>>,
    /// `false` until the first load from Postgres: no session is trusted before.
    loaded: AtomicBool,
}

impl Revocations {
    /// Loaded and empty: nobody revoked (tests of session decoding).
    #[cfg(test)]
    pub fn none_revoked() -> Self {
        let revocations = Revocations::default();
        revocations.loaded.store(true, Ordering::Release);
        revocations
    }

    fn snapshot(&self) -> Arc<Set> {
        self.current
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_default()
    }

    /// `true` when the session (`sid`, `sub`, issued at `issued_at`) has been ended.
    pub fn is_revoked(&self, sid: Option<&str>, sub: &str, issued_at: DateTime<Utc>) -> bool {
        if !self.loaded.load(Ordering::Acquire) {
            return true;
        }
        let set = self.snapshot();
        sid.is_some_and(|sid| set.sids.contains(sid))
            || set.subs.get(sub).is_some_and(|at| issued_at <= *at)
    }

    /// Applies a revocation this replica just recorded, without waiting for the feed.
    pub fn add(&self, row: RevocationRow) {
        if let Ok(mut slot) = self.current.write() {
            let mut next = Set::clone(&slot);
            apply(&mut next, row);
            *slot = Arc::new(next);
        }
    }

    pub async fn reload(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let rows = crate::db::sessions::live_revocations(pool).await?;
        let mut next = Set::default();
        for row in rows {
            apply(&mut next, row);
        }
        if let Ok(mut slot) = self.current.write() {
            *slot = Arc::new(next);
            self.loaded.store(true, Ordering::Release);
        }
        Ok(())
    }
}

fn apply(set: &mut Set, row: RevocationRow) {
    match (row.sid, row.sub) {
        (Some(sid), _) => {
            set.sids.insert(sid);
        }
        (None, Some(sub)) => {
            let at = set.subs.entry(sub).or_insert(row.revoked_at);
            *at = (*at).max(row.revoked_at);
        }
        (None, None) => {}
    }
}

/// Keeps `state` in step with Postgres until `stop` (a task of `startup`'s); purges
/// expired sessions now and then.
pub async fn refresh(
    state: Arc<Revocations>,
    pool: PgPool,
    database_url: String,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut changes = follow(database_url, "revocations", SETTLE, SAFETY_NET, stop);
    let mut ticks: u32 = 0;
    while let Some(change) = changes.next().await {
        match change {
            Change::Notified(_) => {
                if change.touches(&["session_revocations"]) {
                    reload_logged(&state, &pool).await;
                }
            }
            Change::Connected => reload_logged(&state, &pool).await,
            Change::Quiet => {
                reload_logged(&state, &pool).await;
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(PURGE_EVERY)
                    && let Err(e) = crate::db::sessions::purge_expired(&pool).await
                {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
            }
        }
    }
}

async fn reload_logged(state: &Revocations, pool: &PgPool) {
    if let Err(e) = state.reload(pool).await {
        tracing::warn!(error = %e, "revocations reload failed; keeping the last set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sid: Option<&str>, sub: Option<&str>, at: DateTime<Utc>) -> RevocationRow {
        RevocationRow {
            sid: sid.map(str::to_owned),
            sub: sub.map(str::to_owned),
            revoked_at: at,
        }
    }

    #[test]
    fn sid_revocations_end_one_session_and_sub_revocations_end_older_ones() {
        let now = Utc::now();
        let r = Revocations::default();
        assert!(
            r.is_revoked(None, "u0", now),
            "nothing is trusted before the first load"
        );
        r.loaded.store(true, Ordering::Release);
        r.add(row(Some("s1"), Some("u1"), now));
        assert!(r.is_revoked(Some("s1"), "u1", now));
        assert!(!r.is_revoked(Some("s2"), "u1", now));
        r.add(row(None, Some("u2"), now));
        assert!(r.is_revoked(Some("s3"), "u2", now - chrono::Duration::seconds(5)));
        assert!(!r.is_revoked(Some("s4"), "u2", now + chrono::Duration::seconds(5)));
    }
}
