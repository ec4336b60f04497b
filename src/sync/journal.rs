//! The run journal: one `sync_runs` row per real run (opened, then finished with its
//! report), the lock that lets one runner at a time write Keycloak, the run report,
//! and what a verified run vouches for. Dry runs never come here.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;
use sqlx::PgPool;
use sqlx::pool::PoolConnection;

use super::directory::{CallStats, Directory};
use super::plan::Scope;
use super::{RunOptions, SyncError};
use crate::db::sync_state::{self, RunCounts};
use crate::domain::OrgSlug;

/// A value of a journal column that is none of the known ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    what: &'static str,
    value: String,
}

/// Enums stored as text in `sync_runs`: the names there (and in its CHECK constraints,
/// the API's JSON and the pages) are [`as_str`](RunStatus::as_str).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(value: &str) -> Result<Self, UnknownValue> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: value.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What started a run; `sync_runs.trigger`.
    Trigger, "trigger" {
        Cron => "cron",
        Change => "change",
        Api => "api",
        /// "Sync now" on the admin sync page.
        Web => "web",
        Cli => "cli",
        Startup => "startup",
    }
);

text_enum!(
    /// Where a run is; `sync_runs.status`. A row stays `running` when its process died.
    RunStatus, "run status" {
        Running => "running",
        Succeeded => "succeeded",
        Partial => "partial",
        Failed => "failed",
        Skipped => "skipped",
    }
);

text_enum!(
    /// How a full run knew Keycloak matched Postgres; `sync_runs.checked_by`.
    CheckedBy, "checked_by" {
        /// It read every group and found nothing to do.
        Read => "read",
        /// Postgres was unchanged and Keycloak's admin event log showed no change by
        /// anyone else since the last verified run.
        Events => "events",
    }
);

impl RunStatus {
    /// How a run that tried `attempted` things (operations and members) ended, with
    /// `failed` of them failed and these errors.
    pub(super) fn of(errors: &[String], failed: usize, attempted: usize) -> RunStatus {
        if errors.is_empty() {
            RunStatus::Succeeded
        } else if failed == attempted {
            RunStatus::Failed
        } else {
            RunStatus::Partial
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// The `sync_runs` row; `None` for a dry run, which writes none.
    pub run_id: Option<i64>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub errors: Vec<String>,
    /// The plan, as text, one line per operation.
    pub plan: Vec<String>,
    /// Keycloak calls made, by name (`read:…`, `write:…`).
    pub calls: BTreeMap<&'static str, u64>,
    /// Seconds waited on Keycloak by call name, summed over concurrent calls.
    pub call_seconds: BTreeMap<&'static str, f64>,
    /// Operations applied, by kind (`add_member`, `set_claims`, …).
    pub ops: BTreeMap<&'static str, u64>,
    pub seconds: f64,
    #[serde(skip)]
    pub(super) check: Option<Check>,
}

/// What a successful full run vouches for (see `sync_state::last_verified`).
#[derive(Debug, Clone)]
pub(super) struct Check {
    pub(super) desired_digest: String,
    pub(super) by: CheckedBy,
    pub(super) from: chrono::DateTime<chrono::Utc>,
}

impl RunReport {
    /// The one constructor: what the run found; [`RunReport::finished`] adds where,
    /// how long and which calls.
    pub(super) fn new(status: RunStatus, counts: RunCounts, errors: Vec<String>) -> RunReport {
        RunReport {
            run_id: None,
            status,
            counts,
            errors,
            plan: vec![],
            calls: BTreeMap::new(),
            call_seconds: BTreeMap::new(),
            ops: BTreeMap::new(),
            seconds: 0.0,
            check: None,
        }
    }

    pub(super) fn skipped() -> RunReport {
        RunReport::new(
            RunStatus::Skipped,
            RunCounts::default(),
            vec!["another runner holds the sync lock".into()],
        )
    }

    pub(super) fn failed(error: &SyncError) -> RunReport {
        let counts = RunCounts {
            failed: 1,
            ..RunCounts::default()
        };
        RunReport::new(RunStatus::Failed, counts, vec![error.to_string()])
    }

    pub(super) fn finished(
        mut self,
        run_id: Option<i64>,
        stats: CallStats,
        started: Instant,
    ) -> Self {
        self.run_id = run_id;
        self.calls = stats.calls;
        self.call_seconds = stats.seconds;
        self.seconds = started.elapsed().as_secs_f64();
        self
    }

    /// How a full run knew Keycloak matched Postgres; `None` when it does not vouch
    /// for that.
    pub fn checked_by(&self) -> Option<CheckedBy> {
        self.check.as_ref().map(|c| c.by)
    }

    pub fn writes(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(name, _)| name.starts_with("write:"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Opens the run's row (`running`), before waiting for the lock: a run queued
/// behind another is visible.
pub(super) async fn open(pool: &PgPool, options: &RunOptions) -> Result<i64, SyncError> {
    let scope = match &options.scope {
        Scope::All => None,
        Scope::Orgs(slugs) => Some(
            slugs
                .iter()
                .map(OrgSlug::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    Ok(sync_state::start_run(pool, options.trigger, scope.as_deref(), options.dry_run).await?)
}

/// Serialises runs in this process; the advisory lock does it across replicas.
static IN_PROCESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The right to write Keycloak: held from [`lock`] until [`Lock::release`].
pub(super) struct Lock {
    _local: tokio::sync::MutexGuard<'static, ()>,
    conn: PoolConnection<sqlx::Postgres>,
}

/// Waits for the other runs of this process, then tries the lock across replicas:
/// `None` when another replica's runner holds it (the run is skipped, not queued).
pub(super) async fn lock(pool: &PgPool) -> Result<Option<Lock>, SyncError> {
    let local = IN_PROCESS.lock().await;
    let mut conn = pool.acquire().await?;
    if !sync_state::try_lock(&mut conn).await? {
        return Ok(None);
    }
    Ok(Some(Lock {
        _local: local,
        conn,
    }))
}

impl Lock {
    pub(super) async fn release(mut self) {
        // A session that failed to unlock goes back to the pool still holding the lock,
        // and later runs are skipped until it closes: worth a warning.
        if let Err(e) = sync_state::unlock(&mut self.conn).await {
            tracing::warn!(error = %e, "could not release the sync lock");
        }
    }
}

/// Closes the run's row with its report, and records what it vouches for.
pub(super) async fn finish(pool: &PgPool, report: &RunReport) -> Result<(), SyncError> {
    if let Some(id) = report.run_id {
        sync_state::finish_run(
            pool,
            id,
            report.status,
            &report.counts,
            &json!(report.errors),
        )
        .await?;
        if let Some(check) = &report.check {
            sync_state::record_check(pool, id, &check.desired_digest, check.by, check.from).await?;
        }
    }
    Ok(())
}

/// Keycloak's clock and ours may differ: the event log is asked from this much
/// earlier. (So a change by someone else just before a full read also makes the run
/// after it read in full.)
const CLOCK_MARGIN_SECONDS: i64 = 5;

/// The shortcut of a full run: when Postgres wants what the previous verified run saw
/// and Keycloak's admin event log shows nobody else has changed anything since, the
/// run is done without reading a group. Any doubt (log off, a change, an error, the
/// last full read too old) means a full read.
pub(super) async fn checked_by_events<D: Directory>(
    pool: &PgPool,
    directory: &D,
    options: &RunOptions,
    run_id: i64,
    digest: &str,
) -> Option<RunReport> {
    let max_age = options.full_read_every?;
    if !options.may_verify() {
        return None;
    }
    let previous = match sync_state::last_verified(pool, run_id).await {
        Ok(found) => found?,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the last verified run; reading Keycloak");
            return None;
        }
    };
    let now = chrono::Utc::now();
    let read_recently = previous
        .last_read_from
        .is_some_and(|at| (now - at).to_std().is_ok_and(|age| age < max_age));
    if previous.desired_digest != digest || !read_recently {
        return None;
    }
    let since = previous.checked_from - chrono::Duration::seconds(CLOCK_MARGIN_SECONDS);
    match directory.changed_by_others_since(since).await {
        Ok(Some(false)) => {
            let counts = RunCounts {
                unchanged: previous.in_step,
                ..RunCounts::default()
            };
            let mut report = RunReport::new(RunStatus::Succeeded, counts, vec![]);
            report.check = Some(Check {
                desired_digest: digest.to_owned(),
                by: CheckedBy::Events,
                from: now,
            });
            Some(report)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not read Keycloak's admin event log; reading Keycloak");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_names_parse_back() {
        for status in [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Partial,
            RunStatus::Failed,
            RunStatus::Skipped,
        ] {
            assert_eq!(status.as_str().parse::<RunStatus>().ok(), Some(status));
        }
        for by in [CheckedBy::Read, CheckedBy::Events] {
            assert_eq!(by.to_string().parse::<CheckedBy>().ok(), Some(by));
        }
        assert!("done".parse::<RunStatus>().is_err());
        assert_eq!(
            serde_json::to_value(RunStatus::Partial).ok(),
            Some(json!("partial"))
        );
    }

    #[test]
    fn a_run_fails_when_everything_it_tried_failed() {
        let errors = vec!["x".to_owned()];
        assert_eq!(RunStatus::of(&[], 0, 3), RunStatus::Succeeded);
        assert_eq!(RunStatus::of(&errors, 1, 3), RunStatus::Partial);
        assert_eq!(RunStatus::of(&errors, 3, 3), RunStatus::Failed);
    }
}
