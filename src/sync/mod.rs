//! The provisioning sync: Postgres (desired) reconciled into Keycloak (actual).
//!
//! [`run`] reads both sides, computes a [`plan::Plan`] (a pure diff), and applies it.
//! The parts:
//! - `journal`: the `sync_runs` row of each run, the lock (one runner at a time: an
//!   in-process mutex and a Postgres advisory lock across replicas), the report, and
//!   what a verified run vouches for;
//! - `desired`: Postgres's side; `actual`: Keycloak's side, read through the
//!   [`directory::Directory`] port that `keycloak::directory` implements;
//! - [`accounts`]: which account is which member; [`plan`]: the diff;
//! - `apply`: the plan applied phase by phase (groups and users, role groups,
//!   memberships and claims, removals), each phase with bounded concurrency;
//! - [`scheduler`]: when runs happen.
//!
//! A dry run reads both sides and returns the plan: no row, no lock, no write.

pub(crate) mod accounts;
mod actual;
mod apply;
mod desired;
pub(crate) mod directory;
mod journal;
#[cfg(test)]
mod memory;
pub mod plan;
pub(crate) mod scheduler;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::sync_state::{self, RunCounts};
use directory::{CountsCalls, Directory, DirectoryError};
pub use journal::{CheckedBy, RunReport, RunStatus, Trigger, UnknownValue};
use plan::{Desired, OpKind, Plan, Scope};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("reading Postgres failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("reading Keycloak failed: {0}")]
    Keycloak(#[from] DirectoryError),
    #[error("Postgres holds a value the sync cannot use: {0}")]
    BadData(String),
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scope: Scope,
    pub trigger: Trigger,
    /// Read both sides and plan only: no `sync_runs` row, no lock, no write.
    pub dry_run: bool,
    /// The top-level group holding the org groups (`orgs` unless configured).
    pub root: String,
    /// A full run may trust Keycloak's admin event log instead of reading every group
    /// while the last full read is younger than this (`None`: always read).
    pub full_read_every: Option<std::time::Duration>,
}

impl RunOptions {
    /// Only a full run that applies its plan can vouch for all of Keycloak.
    fn may_verify(&self) -> bool {
        self.scope == Scope::All && !self.dry_run
    }
}

/// One reconcile pass, journalled in `sync_runs`. Skips (and says so) when another
/// runner holds the lock. A dry run only reads: it writes no row and takes no lock,
/// so it neither waits for a real run nor holds one up.
pub async fn run<D: Directory + CountsCalls>(
    pool: &PgPool,
    directory: &D,
    options: &RunOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RunReport, SyncError> {
    run_until(
        pool,
        directory,
        options,
        progress,
        &CancellationToken::new(),
    )
    .await
}

/// [`run`], stopping at the next safe point once `stop` is cancelled: reads are left
/// (they change nothing), operations under way finish, no other starts. The run is
/// journalled `interrupted`, with what it did and how much it left; the next run
/// reads Keycloak afresh and does the rest.
pub async fn run_until<D: Directory + CountsCalls>(
    pool: &PgPool,
    directory: &D,
    options: &RunOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    stop: &CancellationToken,
) -> Result<RunReport, SyncError> {
    let started = Instant::now();
    if options.dry_run {
        directory.take_call_stats();
        let report = dry_run(pool, directory, options, stop)
            .await
            .unwrap_or_else(|e| RunReport::failed(&e));
        return Ok(report.finished(None, directory.take_call_stats(), started));
    }
    let run_id = journal::open(pool, options).await?;
    let lock = journal::lock(pool).await?;
    directory.take_call_stats();
    let report = match lock {
        None => RunReport::skipped(),
        Some(lock) => {
            let result = reconcile(pool, directory, options, run_id, progress, stop).await;
            lock.release().await;
            result.unwrap_or_else(|e| RunReport::failed(&e))
        }
    };
    let report = report.finished(Some(run_id), directory.take_call_stats(), started);
    journal::finish(pool, &report).await?;
    Ok(report)
}

async fn dry_run<D: Directory>(
    pool: &PgPool,
    directory: &D,
    options: &RunOptions,
    stop: &CancellationToken,
) -> Result<RunReport, SyncError> {
    let desired = desired::load_desired(pool, &options.scope).await?;
    let members = desired::load_members(pool, &desired).await?;
    let digest = desired::desired_digest(&desired, &members);
    let reconciled = reconcile_with(
        directory,
        options,
        desired,
        &members,
        digest,
        &|_, _| {},
        stop,
    );
    Ok(reconciled.await?.report)
}

async fn reconcile<D: Directory>(
    pool: &PgPool,
    directory: &D,
    options: &RunOptions,
    run_id: i64,
    progress: &(dyn Fn(usize, usize) + Sync),
    stop: &CancellationToken,
) -> Result<RunReport, SyncError> {
    if stop.is_cancelled() {
        return Ok(RunReport::interrupted_before_start());
    }
    let desired = desired::load_desired(pool, &options.scope).await?;
    let members = desired::load_members(pool, &desired).await?;
    let digest = desired::desired_digest(&desired, &members);
    if let Some(report) =
        journal::checked_by_events(pool, directory, options, run_id, &digest).await
    {
        return Ok(report);
    }
    let reconciled = reconcile_with(
        directory, options, desired, &members, digest, progress, stop,
    )
    .await?;
    // The gate and the API find members by Keycloak id (`sub`) only: record the
    // links this run proved (verified address) or made (accounts it created).
    let links: Vec<sync_state::AccountLink<'_>> = reconciled
        .links
        .iter()
        .map(|link| sync_state::AccountLink {
            email: link.email.as_str(),
            keycloak_id: &link.keycloak_id,
            previous: link.previous.as_deref(),
            proof: link.proof.as_str(),
        })
        .collect();
    sync_state::link_accounts(pool, &links).await?;
    Ok(reconciled.report)
}

/// A run's outcome before Postgres hears of it.
#[derive(Debug)]
struct Reconciled {
    report: RunReport,
    /// Member rows to link to their accounts (none in a dry run).
    links: Vec<accounts::Link>,
}

/// Everything of a run between Postgres's two visits: reads Keycloak, resolves the
/// accounts, plans, and (unless a dry run) applies the plan, until `stop`.
async fn reconcile_with<D: Directory>(
    directory: &D,
    options: &RunOptions,
    mut desired: Desired,
    members: &[accounts::Member],
    digest: String,
    progress: &(dyn Fn(usize, usize) + Sync),
    stop: &CancellationToken,
) -> Result<Reconciled, SyncError> {
    let interrupted = || Reconciled {
        report: RunReport::interrupted_before_start(),
        links: vec![],
    };
    if stop.is_cancelled() {
        return Ok(interrupted());
    }
    let read_from = chrono::Utc::now();
    let root = match directory
        .group_by_path(&format!("/{}", options.root))
        .await?
    {
        Some(root) => root.id,
        None if options.dry_run => String::new(),
        None => directory.create_top_group(&options.root).await?,
    };
    // Reading changes nothing, so a stop may cut it short anywhere.
    let read = actual::read_actual(directory, &root, &options.root, members, &options.scope);
    let (mut actual, found) = tokio::select! {
        biased;
        () = stop.cancelled() => return Ok(interrupted()),
        read = read => read?,
    };
    let resolution = accounts::resolve(members, &found);
    // The plan matches members to accounts by the member's address: only the accounts
    // resolved to a member carry one; everybody else is a stranger to the plan.
    for user in actual.users.values_mut() {
        user.email = resolution.linked.get(&user.id).cloned();
    }
    // A conflicted member is left out of this run: nothing is created over the account
    // that claims the address, and that account gets no membership.
    let conflicted = resolution.conflicted();
    for org in &mut desired.orgs {
        org.members.retain(|email, _| !conflicted.contains(email));
    }
    desired.users.retain(|email, _| !conflicted.contains(email));
    let Plan { ops, unchanged } = plan::plan(&desired, &actual, &options.scope);
    let plan_text: Vec<String> = ops
        .iter()
        .map(|op| op.line(&options.root).to_string())
        .collect();
    let mut counts = RunCounts {
        unchanged: i32::try_from(unchanged).unwrap_or(i32::MAX),
        failed: i32::try_from(resolution.conflicts.len()).unwrap_or(i32::MAX),
        ..RunCounts::default()
    };
    let mut errors: Vec<String> = resolution.conflicts.iter().map(|c| c.to_string()).collect();
    for conflict in &resolution.conflicts {
        tracing::warn!(%conflict, "member not provisioned");
    }
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut links = Vec::new();
    let mut not_started = 0;
    if !options.dry_run {
        let applied = apply::apply(
            directory,
            &root,
            &actual,
            members,
            ops.clone(),
            progress,
            stop,
        )
        .await;
        not_started = applied.not_started.len();
        links = resolution.new_links.clone();
        for (email, id) in applied.user_ids {
            if !resolution.linked.contains_key(&id) && desired.users.contains_key(&email) {
                links.push(accounts::Link {
                    previous: resolution.gone.get(&email).cloned(),
                    email,
                    keycloak_id: id,
                    proof: accounts::Proof::CreatedBySync,
                });
            }
        }
        for (op, error) in &applied.failures {
            errors.push(format!("{op}: {error}"));
        }
        let failed_ops: BTreeSet<usize> = applied.failures.iter().map(|(i, _)| i.index).collect();
        for (i, op) in ops.iter().enumerate() {
            if failed_ops.contains(&i) {
                counts.failed += 1;
                continue;
            }
            if applied.not_started.contains(&i) {
                continue;
            }
            *by_kind.entry(op.name()).or_default() += 1;
            match op.kind() {
                OpKind::Created => counts.created += 1,
                OpKind::Updated => counts.updated += 1,
                OpKind::Deleted => counts.deleted += 1,
            }
        }
    }
    let attempted = ops.len() + resolution.conflicts.len();
    let status = if not_started > 0 {
        errors.push(journal::interruption(not_started, ops.len()));
        RunStatus::Interrupted
    } else {
        RunStatus::of(&errors, counts.failed as usize, attempted)
    };
    // A full read that found nothing to do saw Keycloak as Postgres wants it, give or
    // take what others changed since it began reading (the next check asks the event
    // log from then). A run that wrote vouches for nothing: the next full run reads
    // again and sees whether the writes landed.
    let verified = options.may_verify() && ops.is_empty() && resolution.conflicts.is_empty();
    let mut report = RunReport::new(status, counts, errors);
    report.plan = plan_text;
    report.ops = by_kind;
    report.check = verified.then_some(journal::Check {
        desired_digest: digest,
        by: CheckedBy::Read,
        from: read_from,
    });
    Ok(Reconciled { report, links })
}

#[cfg(test)]
mod tests {
    //! A run's Keycloak part against the in-memory directory: what is written, in
    //! which order, and what a failure takes with it.

    use super::memory::MemoryDirectory;
    use super::plan::{DesiredClaims, DesiredOrg};
    use super::*;
    use crate::domain::{Email, OrgSlug, Role};

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    fn options(dry_run: bool) -> RunOptions {
        RunOptions {
            scope: Scope::All,
            trigger: Trigger::Cli,
            dry_run,
            root: "orgs".into(),
            full_read_every: None,
        }
    }

    /// Orgs with their members (`(address, role)`), and each member's claims.
    fn desired(orgs: &[(&str, &[(&str, Role)])]) -> Desired {
        let mut users: BTreeMap<Email, DesiredClaims> = BTreeMap::new();
        let orgs = orgs
            .iter()
            .map(|(slug, members)| {
                let slug = OrgSlug::parse(slug).unwrap();
                let members: BTreeMap<Email, BTreeSet<Role>> = members
                    .iter()
                    .map(|(e, role)| (email(e), BTreeSet::from([*role])))
                    .collect();
                for (e, roles) in &members {
                    let claims = users.entry(e.clone()).or_default();
                    claims.org_memberships.insert(slug.clone(), roles.clone());
                }
                DesiredOrg {
                    id: uuid::Uuid::nil(),
                    slug,
                    plan: "pro".into(),
                    features: BTreeSet::from(["seo".to_owned()]),
                    members,
                }
            })
            .collect();
        Desired { orgs, users }
    }

    /// The member rows of `desired`, linked to these Keycloak ids.
    fn members(desired: &Desired, linked: &[(&str, &str)]) -> Vec<accounts::Member> {
        desired
            .users
            .keys()
            .map(|e| accounts::Member {
                id: format!("pg-{e}"),
                email: e.clone(),
                keycloak_id: linked
                    .iter()
                    .find(|(address, _)| *address == e.as_str())
                    .map(|(_, id)| (*id).to_owned()),
            })
            .collect()
    }

    async fn reconcile(
        directory: &MemoryDirectory,
        desired: Desired,
        members: &[accounts::Member],
    ) -> Reconciled {
        reconcile_with(
            directory,
            &options(false),
            desired,
            members,
            String::new(),
            &|_, _| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap()
    }

    /// The phase a write line belongs to: 0 org groups and users, 1 role groups,
    /// 2 memberships, claims and role mappings, 3 removals.
    fn phase_of(line: &str) -> u8 {
        if line.starts_with("create group") {
            if line.matches('/').count() > 2 { 1 } else { 0 }
        } else if line.starts_with("create user") || line.starts_with("update group") {
            0
        } else if line.starts_with("add ")
            || line.starts_with("set attributes")
            || line.starts_with("map roles")
        {
            2
        } else {
            3
        }
    }

    #[tokio::test]
    async fn groups_and_users_come_before_role_groups_before_memberships_before_removals() {
        let kc = MemoryDirectory::default();
        kc.given_group(None, "orgs");
        kc.given_group(Some("/orgs"), "ghost");
        kc.given_group(Some("/orgs"), "beta");
        let bob = kc.given_user("bob@example.com", true);
        kc.given_member(&bob, "/orgs/beta");
        let want = desired(&[("acme", &[("ann@example.com", Role::Admin)]), ("beta", &[])]);
        let rows = members(&want, &[]);

        let done = reconcile(&kc, want, &rows).await;

        assert_eq!(
            done.report.status,
            RunStatus::Succeeded,
            "{:?}",
            done.report
        );
        let writes = kc.writes();
        let phases: Vec<u8> = writes.iter().map(|w| phase_of(w)).collect();
        let mut sorted = phases.clone();
        sorted.sort();
        assert_eq!(phases, sorted, "{writes:#?}");
        assert_eq!(
            phases.iter().copied().collect::<BTreeSet<u8>>(),
            BTreeSet::from([0, 1, 2, 3]),
            "{writes:#?}"
        );
        assert!(writes.contains(&"delete group /orgs/ghost".to_owned()));
        assert!(writes.contains(&"remove bob@example.com from /orgs/beta".to_owned()));
        assert_eq!(
            done.report.counts.created + done.report.counts.updated + done.report.counts.deleted,
            i32::try_from(writes.len()).unwrap()
        );
    }

    #[tokio::test]
    async fn an_org_group_that_cannot_be_made_fails_its_own_dependants_and_no_other_org() {
        let kc = MemoryDirectory::default();
        kc.given_group(None, "orgs");
        kc.fail("create group /orgs/acme");
        let want = desired(&[
            ("acme", &[("ann@example.com", Role::Admin)]),
            ("beta", &[("bob@example.com", Role::User)]),
        ]);
        let rows = members(&want, &[]);

        let done = reconcile(&kc, want, &rows).await;

        let report = &done.report;
        assert_eq!(report.status, RunStatus::Partial);
        // acme: its group, three role groups, three role mappings and ann's two
        // memberships; none but the first reached the directory.
        assert_eq!(report.counts.failed, 9, "{:#?}", report.errors);
        let writes = kc.writes();
        assert!(writes.contains(&"create group /orgs/acme (failed)".to_owned()));
        assert!(
            !writes.iter().any(|w| w.contains("/orgs/acme/")),
            "{writes:#?}"
        );
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("group acme/ORG_ADMIN does not exist (an earlier step failed)")),
            "{:#?}",
            report.errors
        );
        // beta goes on, and ann's account and claims do not depend on acme's group.
        assert_eq!(
            kc.members_of("/orgs/beta/ORG_USER"),
            ["bob@example.com".to_owned()].into()
        );
        assert!(writes.contains(&"create user ann@example.com".to_owned()));
        assert!(writes.contains(&"set attributes of ann@example.com".to_owned()));
    }

    #[tokio::test]
    async fn a_created_users_id_reaches_its_memberships_and_the_recorded_links() {
        let kc = MemoryDirectory::default();
        let want = desired(&[("acme", &[("ann@example.com", Role::Manager)])]);
        let rows = members(&want, &[]);

        let done = reconcile(&kc, want, &rows).await;

        assert_eq!(
            done.report.status,
            RunStatus::Succeeded,
            "{:?}",
            done.report
        );
        assert_eq!(
            kc.writes().first().map(String::as_str),
            Some("create group /orgs")
        );
        let ann = kc.user_id("ann@example.com").unwrap();
        for group in ["/orgs/acme", "/orgs/acme/ORG_MANAGER"] {
            assert_eq!(
                kc.members_of(group),
                ["ann@example.com".to_owned()].into(),
                "{group}"
            );
        }
        assert_eq!(
            done.links,
            [accounts::Link {
                email: email("ann@example.com"),
                keycloak_id: ann,
                previous: None,
                proof: accounts::Proof::CreatedBySync,
            }]
        );
    }

    #[tokio::test]
    async fn a_member_whose_address_another_account_claims_is_left_out() {
        let kc = MemoryDirectory::default();
        kc.given_group(None, "orgs");
        // Someone registered the address, unverified: not proof that it is the member.
        let squatter = kc.given_user("cat@example.com", false);
        let bob = kc.given_user("bob@example.com", true);
        let want = desired(&[(
            "acme",
            &[
                ("cat@example.com", Role::Admin),
                ("bob@example.com", Role::User),
            ],
        )]);
        let rows = members(&want, &[("bob@example.com", bob.as_str())]);

        let done = reconcile(&kc, want, &rows).await;

        assert_eq!(done.report.status, RunStatus::Partial);
        assert_eq!(done.report.counts.failed, 1);
        assert!(
            done.report.errors[0].contains(&squatter),
            "{:?}",
            done.report.errors
        );
        let writes = kc.writes();
        assert!(
            !writes.iter().any(|w| w.contains("cat@example.com")),
            "{writes:#?}"
        );
        assert!(kc.members_of("/orgs/acme/ORG_ADMIN").is_empty());
        assert_eq!(
            kc.members_of("/orgs/acme/ORG_USER"),
            ["bob@example.com".to_owned()].into()
        );
        assert!(done.links.is_empty(), "{:?}", done.links);
    }

    #[tokio::test]
    async fn a_stopped_run_finishes_what_it_began_starts_nothing_more_and_the_next_run_does_the_rest()
     {
        let kc = MemoryDirectory::default();
        kc.given_group(None, "orgs");
        let want = desired(&[
            ("acme", &[("ann@example.com", Role::Admin)]),
            ("beta", &[("bob@example.com", Role::User)]),
        ]);
        let rows = members(&want, &[]);
        let stop = CancellationToken::new();
        // Told to stop as soon as the first operation is done.
        let stop_after_one = |done: usize, _: usize| {
            if done == 1 {
                stop.cancel();
            }
        };

        let done = reconcile_with(
            &kc,
            &options(false),
            want.clone(),
            &rows,
            String::new(),
            &stop_after_one,
            &stop,
        )
        .await
        .unwrap();

        let report = &done.report;
        assert_eq!(report.status, RunStatus::Interrupted, "{report:?}");
        assert_eq!(kc.writes().len(), 1, "{:?}", kc.writes());
        assert_eq!(report.counts.created, 1);
        assert_eq!(report.counts.failed, 0, "not started is not failed");
        let planned = report.plan.len();
        assert!(
            report.errors.last().is_some_and(|e| e.contains(&format!(
                "{} of {planned} operations not started",
                planned - 1
            ))),
            "{:?}",
            report.errors
        );
        assert!(
            report.checked_by().is_none(),
            "an interrupted run vouches for nothing"
        );

        let next = reconcile(&kc, want.clone(), &rows).await;
        assert_eq!(
            next.report.status,
            RunStatus::Succeeded,
            "{:?}",
            next.report
        );
        assert_eq!(
            usize::try_from(next.report.counts.created + next.report.counts.updated).unwrap(),
            planned - 1,
            "the next run does exactly what was left"
        );
        let writes = kc.writes().len();
        let again = reconcile(&kc, want, &rows).await;
        assert_eq!(kc.writes().len(), writes, "converged: {:?}", again.report);
        assert_eq!(kc.members_of("/orgs/acme/ORG_ADMIN").len(), 1);
        assert_eq!(kc.members_of("/orgs/beta/ORG_USER").len(), 1);
    }

    #[tokio::test]
    async fn a_run_stopped_before_it_began_neither_reads_nor_writes() {
        let kc = MemoryDirectory::default();
        let want = desired(&[("acme", &[("ann@example.com", Role::User)])]);
        let rows = members(&want, &[]);
        let stop = CancellationToken::new();
        stop.cancel();

        let done = reconcile_with(
            &kc,
            &options(false),
            want,
            &rows,
            String::new(),
            &|_, _| {},
            &stop,
        )
        .await
        .unwrap();

        assert_eq!(done.report.status, RunStatus::Interrupted);
        assert!(kc.writes().is_empty(), "{:?}", kc.writes());
        assert!(done.links.is_empty());
    }

    #[tokio::test]
    async fn a_dry_run_plans_and_writes_nothing() {
        let kc = MemoryDirectory::default();
        kc.given_group(None, "orgs");
        let want = desired(&[("acme", &[("ann@example.com", Role::User)])]);
        let rows = members(&want, &[]);

        let done = reconcile_with(
            &kc,
            &options(true),
            want,
            &rows,
            String::new(),
            &|_, _| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();

        assert!(kc.writes().is_empty(), "{:?}", kc.writes());
        assert!(done.links.is_empty());
        assert!(
            done.report
                .plan
                .contains(&"create group /orgs/acme".to_owned())
        );
        assert!(
            done.report
                .plan
                .contains(&"create user ann@example.com".to_owned())
        );
        assert!(done.report.checked_by().is_none());
    }
}
