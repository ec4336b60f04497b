//! When the sync runs: the cron schedule (safety net), changes in Postgres (within
//! seconds, close changes coalesced), and explicit requests (API, start-up). One task
//! runs them one after another, so runs never overlap in a process. The three parts
//! (runner, change listener, cron) are tasks that `startup` supervises.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::directory::{CountsCalls, Directory};
use super::plan::Scope;
use super::{RunOptions, RunStatus, Trigger};
use crate::db::changes::{Change, follow};
use crate::domain::OrgSlug;
use crate::metrics::{Metrics, SyncRunFigures};

/// Changes that arrive within this window are handled by one run.
const COALESCE: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
struct Request {
    scope: Scope,
    trigger: Trigger,
}

/// Asks the runner for a sync; cheap to clone.
#[derive(Clone)]
pub struct SyncHandle {
    tx: mpsc::UnboundedSender<Request>,
}

impl SyncHandle {
    pub fn request(&self, scope: Scope, trigger: Trigger) {
        let _ = self.tx.send(Request { scope, trigger });
    }
}

pub struct SyncSettings {
    pub cron: String,
    pub root: String,
    pub full_read_every: Option<std::time::Duration>,
}

/// The sync's tasks, before they are started; each `…_task` starts one afresh.
pub struct Scheduler<D> {
    pool: PgPool,
    database_url: String,
    directory: Arc<D>,
    metrics: Metrics,
    root: String,
    full_read_every: Option<Duration>,
    schedule: Cron,
    handle: SyncHandle,
    /// The requests; a runner started again takes them over.
    requests: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>,
}

impl<D: Directory + CountsCalls + 'static> Scheduler<D> {
    /// The handle the web and the API ask through, and the tasks; a run at start-up is
    /// already asked for.
    pub fn new(
        pool: PgPool,
        database_url: String,
        directory: Arc<D>,
        metrics: Metrics,
        settings: SyncSettings,
    ) -> anyhow::Result<(SyncHandle, Scheduler<D>)> {
        let schedule = crate::config::sync_schedule(&settings.cron)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = SyncHandle { tx };
        handle.request(Scope::All, Trigger::Startup);
        let scheduler = Scheduler {
            pool,
            database_url,
            directory,
            metrics,
            root: settings.root,
            full_read_every: settings.full_read_every,
            schedule,
            handle: handle.clone(),
            requests: Arc::new(Mutex::new(rx)),
        };
        Ok((handle, scheduler))
    }

    /// Runs the requested syncs one after another until `stop`; a run under way stops
    /// at its next safe point (between two operations) and says so in its journal row.
    pub fn runner_task(
        &self,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + use<D> {
        runner(
            self.pool.clone(),
            Arc::clone(&self.directory),
            self.metrics.clone(),
            self.root.clone(),
            self.full_read_every,
            Arc::clone(&self.requests),
            stop,
        )
    }

    /// Turns Postgres changes into scoped requests until `stop`.
    pub fn listener_task(
        &self,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + use<D> {
        listen(
            self.pool.clone(),
            self.database_url.clone(),
            self.handle.clone(),
            stop,
        )
    }

    /// Asks for a full run at every time of the cron schedule until `stop`.
    pub fn cron_task(
        &self,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + use<D> {
        cron(self.schedule.clone(), self.handle.clone(), stop)
    }
}

/// The schedule's times, in UTC, each asking for a full run.
async fn cron(schedule: Cron, handle: SyncHandle, stop: CancellationToken) {
    let mut after = chrono::Utc::now();
    loop {
        let next = match schedule.find_next_occurrence(&after, false) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "the sync's cron schedule has no next time; no scheduled runs");
                stop.cancelled().await;
                return;
            }
        };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        handle.request(Scope::All, Trigger::Cron);
        // From the time just served (never before it, or a timer that fires a little
        // early would serve it twice), or from now after a long pause.
        after = next.max(chrono::Utc::now());
    }
}

fn merge(into: &mut Scope, next: Scope) {
    match (into, next) {
        (Scope::All, _) => {}
        (slot @ Scope::Orgs(_), Scope::All) => *slot = Scope::All,
        (Scope::Orgs(a), Scope::Orgs(b)) => a.extend(b),
    }
}

async fn runner<D: Directory + CountsCalls>(
    pool: PgPool,
    directory: Arc<D>,
    metrics: Metrics,
    root: String,
    full_read_every: Option<std::time::Duration>,
    requests: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>,
    stop: CancellationToken,
) {
    let mut rx = requests.lock().await;
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            first = rx.recv() => match first {
                Some(first) => first,
                None => return,
            },
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(COALESCE) => {}
        }
        let mut scope = first.scope;
        while let Ok(more) = rx.try_recv() {
            merge(&mut scope, more.scope);
        }
        let options = RunOptions {
            scope,
            trigger: first.trigger,
            dry_run: false,
            root: root.clone(),
            full_read_every,
        };
        let span = tracing::info_span!("sync", trigger = first.trigger.as_str());
        let outcome = super::run_until(&pool, directory.as_ref(), &options, &|_, _| {}, &stop)
            .instrument(span.clone())
            .await;
        let _enter = span.enter();
        match outcome {
            Ok(report) => {
                metrics.record_sync(&SyncRunFigures {
                    status: report.status.as_str(),
                    succeeded: report.status == RunStatus::Succeeded,
                    seconds: report.seconds,
                    ops: &report.ops,
                    failed: u64::try_from(report.counts.failed).unwrap_or(0),
                });
                tracing::info!(
                    status = report.status.as_str(),
                    created = report.counts.created,
                    updated = report.counts.updated,
                    deleted = report.counts.deleted,
                    unchanged = report.counts.unchanged,
                    failed = report.counts.failed,
                    seconds = report.seconds,
                    "sync run finished"
                );
            }
            Err(e) => {
                metrics.sync_runs.with_label_values(&["error"]).inc();
                tracing::error!(error = %e, "sync run could not be recorded");
            }
        }
    }
}

/// Turns `wizbrand_changes` notifications into scoped sync requests; after a
/// reconnect it asks for a full run (notifications may have been lost). The cron job
/// is the safety net, so quiet spells ask for nothing.
async fn listen(pool: PgPool, database_url: String, handle: SyncHandle, stop: CancellationToken) {
    let mut changes = follow(
        database_url,
        "sync",
        Duration::from_millis(20),
        Duration::from_secs(3600),
        stop,
    );
    while let Some(change) = changes.next().await {
        match change {
            Change::Connected => handle.request(Scope::All, Trigger::Change),
            Change::Quiet => {}
            Change::Notified(payloads) => {
                for payload in payloads {
                    if let Some(scope) = scope_of(&pool, &payload).await {
                        handle.request(scope, Trigger::Change);
                    }
                }
            }
        }
    }
}

/// What a change notification asks the sync for, before the org's slug is looked up.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// A run scoped to this org (by id).
    Org(uuid::Uuid),
    All,
}

/// A membership removed takes the person out of the org's groups, which a run scoped to
/// the org does, but it also changes their claims, and a scoped run only writes the
/// claims of the org's present members: the removed one would keep the org in
/// `org_memberships` until a full run. So a removal asks for a full run.
fn need_of(payload: &str) -> Option<Need> {
    let note: serde_json::Value = serde_json::from_str(payload).ok()?;
    match note["table"].as_str()? {
        "memberships" if note["op"].as_str() == Some("DELETE") => Some(Need::All),
        "orgs" | "memberships" => Some(match note["org_id"].as_str()?.parse() {
            Ok(id) => Need::Org(id),
            Err(_) => Need::All,
        }),
        // A user's preferred org changes their claims; a full run finds them.
        "users" => Some(Need::All),
        _ => None,
    }
}

async fn scope_of(pool: &PgPool, payload: &str) -> Option<Scope> {
    match need_of(payload)? {
        Need::All => Some(Scope::All),
        Need::Org(org_id) => match crate::db::sync_state::org_slug(pool, org_id).await {
            Ok(Some(slug)) => Some(match OrgSlug::parse(&slug) {
                Ok(slug) => Scope::Orgs(BTreeSet::from([slug])),
                Err(_) => Scope::All,
            }),
            // The org is gone: only a full run removes its group.
            _ => Some(Scope::All),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orgs(slugs: &[&str]) -> Scope {
        Scope::Orgs(
            slugs
                .iter()
                .filter_map(|s| OrgSlug::parse(s).ok())
                .collect(),
        )
    }

    #[tokio::test]
    async fn the_cron_task_asks_for_a_full_run_at_each_time_and_ends_when_told() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let every_second = crate::config::sync_schedule("* * * * * *").unwrap();
        let task = tokio::spawn(cron(every_second, SyncHandle { tx }, stop.clone()));
        for _ in 0..2 {
            let asked = tokio::time::timeout(Duration::from_secs(3), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(asked.scope, Scope::All);
            assert_eq!(asked.trigger, Trigger::Cron);
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_removed_membership_asks_for_a_full_run() {
        let id = "6f1c2a1e-0000-4000-8000-000000000001";
        let note = |table: &str, op: &str| {
            serde_json::json!({"table": table, "op": op, "org_id": id}).to_string()
        };
        let org = Some(Need::Org(id.parse().unwrap()));
        assert_eq!(need_of(&note("memberships", "INSERT")), org);
        assert_eq!(need_of(&note("memberships", "UPDATE")), org);
        assert_eq!(need_of(&note("memberships", "DELETE")), Some(Need::All));
        assert_eq!(need_of(&note("orgs", "UPDATE")), org);
        assert_eq!(need_of(&note("users", "UPDATE")), Some(Need::All));
        assert_eq!(need_of(&note("apps", "UPDATE")), None);
    }

    #[test]
    fn close_requests_merge_into_one_scope() {
        let mut scope = orgs(&["acme"]);
        merge(&mut scope, orgs(&["beta"]));
        assert_eq!(scope, orgs(&["acme", "beta"]));
        merge(&mut scope, Scope::All);
        assert_eq!(scope, Scope::All);
        merge(&mut scope, orgs(&["gamma"]));
        assert_eq!(scope, Scope::All);
    }
}
