//! When the sync runs: the cron schedule (safety net), changes in Postgres (within
//! seconds, close changes coalesced), and explicit requests (API, start-up). One task
//! runs them one after another, so runs never overlap in a process.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
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

/// Starts the runner, the change listener and the cron job.
pub async fn spawn<D: Directory + CountsCalls + 'static>(
    pool: PgPool,
    database_url: String,
    directory: Arc<D>,
    metrics: Metrics,
    settings: SyncSettings,
) -> anyhow::Result<SyncHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = SyncHandle { tx };
    tokio::spawn(runner(
        pool.clone(),
        directory,
        metrics,
        settings.root.clone(),
        settings.full_read_every,
        rx,
    ));
    tokio::spawn(listen(pool, database_url, handle.clone()));

    let scheduler = JobScheduler::new().await?;
    let cron_handle = handle.clone();
    scheduler
        .add(Job::new_async(settings.cron.as_str(), move |_, _| {
            let handle = cron_handle.clone();
            Box::pin(async move { handle.request(Scope::All, Trigger::Cron) })
        })?)
        .await?;
    scheduler.start().await?;
    // The scheduler runs on its own tasks; keep it alive for the process's life.
    std::mem::forget(scheduler);
    handle.request(Scope::All, Trigger::Startup);
    Ok(handle)
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
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(COALESCE).await;
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
        let outcome = super::run(&pool, directory.as_ref(), &options, &|_, _| {})
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
async fn listen(pool: PgPool, database_url: String, handle: SyncHandle) {
    let mut changes = follow(
        database_url,
        "sync",
        Duration::from_millis(20),
        Duration::from_secs(3600),
    );
    while let Some(change) = changes.recv().await {
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
