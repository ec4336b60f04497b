//! The provisioning sync: Postgres (desired) reconciled into Keycloak (actual).
//!
//! `run` reads both sides, computes a [`plan::Plan`] (a pure diff), and applies it in
//! phases (groups and users, role groups, memberships and claims, removals), each
//! phase with bounded concurrency. One runner at a time: an in-process mutex and a
//! Postgres advisory lock across replicas. Each run is a row in `sync_runs`.

pub mod accounts;
pub mod plan;
pub mod scheduler;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use futures_util::future::join_all;
use serde_json::json;
use sqlx::PgPool;

use crate::db::sync_state::{self, RunCounts};
use crate::domain::{Email, OrgSlug, Role};
use crate::keycloak::directory::{Directory, DirectoryError, GroupInfo, UserInfo};
use plan::{
    Actual, ActualGroup, ActualUser, Desired, DesiredClaims, DesiredOrg, GroupRef, Op, OpKind,
    Plan, Scope, UserRef,
};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("reading Postgres failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("reading Keycloak failed: {0}")]
    Keycloak(#[from] DirectoryError),
    #[error("Postgres holds a value the sync cannot use: {0}")]
    BadData(String),
}

/// What started a run; stored in `sync_runs.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Cron,
    Change,
    Api,
    Cli,
    Startup,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::Change => "change",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
            Trigger::Startup => "startup",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub run_id: Option<i64>,
    pub status: &'static str,
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
    check: Option<Check>,
}

/// What a successful full run vouches for (see `sync_state::last_verified`).
#[derive(Debug, Clone)]
struct Check {
    desired_digest: String,
    by: &'static str,
    from: chrono::DateTime<chrono::Utc>,
}

/// Keycloak's clock and ours may differ: the event log is asked from this much
/// earlier. (So a change by someone else just before a full read also makes the run
/// after it read in full.)
const CLOCK_MARGIN_SECONDS: i64 = 5;

impl RunReport {
    /// How a full run knew Keycloak matched Postgres: `read` or `events`; `None` when
    /// it does not vouch for that.
    pub fn checked_by(&self) -> Option<&'static str> {
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

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scope: Scope,
    pub trigger: Trigger,
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

/// Serialises runs in this process; the advisory lock does it across replicas.
static IN_PROCESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One reconcile pass, journalled in `sync_runs`. Skips (and says so) when another
/// runner holds the lock.
pub async fn run<D: Directory>(
    pool: &PgPool,
    directory: &D,
    options: &RunOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RunReport, SyncError> {
    let started = Instant::now();
    let scope_text = match &options.scope {
        Scope::All => None,
        Scope::Orgs(slugs) => Some(
            slugs
                .iter()
                .map(OrgSlug::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    let run_id = sync_state::start_run(
        pool,
        options.trigger.as_str(),
        scope_text.as_deref(),
        options.dry_run,
    )
    .await?;

    let _local = IN_PROCESS.lock().await;
    directory.take_calls();
    directory.take_call_seconds();
    let mut lock_conn = pool.acquire().await?;
    if !sync_state::try_lock(&mut lock_conn).await? {
        let report = RunReport {
            run_id: Some(run_id),
            status: "skipped",
            counts: RunCounts::default(),
            errors: vec!["another runner holds the sync lock".into()],
            plan: vec![],
            ops: BTreeMap::new(),
            calls: directory.take_calls(),
            call_seconds: directory.take_call_seconds(),
            seconds: started.elapsed().as_secs_f64(),
            check: None,
        };
        finish(pool, &report).await?;
        return Ok(report);
    }

    let result = reconcile(pool, directory, options, run_id, progress).await;
    let _ = sync_state::unlock(&mut lock_conn).await;
    let mut report = match result {
        Ok(report) => report,
        Err(e) => RunReport {
            run_id: None,
            status: "failed",
            counts: RunCounts {
                failed: 1,
                ..RunCounts::default()
            },
            errors: vec![e.to_string()],
            plan: vec![],
            ops: BTreeMap::new(),
            calls: BTreeMap::new(),
            call_seconds: BTreeMap::new(),
            seconds: 0.0,
            check: None,
        },
    };
    report.run_id = Some(run_id);
    report.calls = directory.take_calls();
    report.call_seconds = directory.take_call_seconds();
    report.seconds = started.elapsed().as_secs_f64();
    finish(pool, &report).await?;
    Ok(report)
}

async fn finish(pool: &PgPool, report: &RunReport) -> Result<(), SyncError> {
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

/// A digest of the desired state: equal digests, equal states. (`Desired` holds only
/// ordered collections, so its debug text is canonical; were the format to change, the
/// next run would read Keycloak in full once.)
fn desired_digest(desired: &Desired, members: &[accounts::Member]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{desired:?}{members:?}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shortcut of a full run: when Postgres wants what the previous verified run saw
/// and Keycloak's admin event log shows nobody else has changed anything since, the
/// run is done without reading a group. Any doubt (log off, a change, an error, the
/// last full read too old) means a full read.
async fn checked_by_events<D: Directory>(
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
        Ok(Some(false)) => Some(RunReport {
            run_id: None,
            status: "succeeded",
            counts: RunCounts {
                unchanged: previous.in_step,
                ..RunCounts::default()
            },
            errors: vec![],
            plan: vec![],
            ops: BTreeMap::new(),
            calls: BTreeMap::new(),
            call_seconds: BTreeMap::new(),
            seconds: 0.0,
            check: Some(Check {
                desired_digest: digest.to_owned(),
                by: "events",
                from: now,
            }),
        }),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not read Keycloak's admin event log; reading Keycloak");
            None
        }
    }
}

async fn reconcile<D: Directory>(
    pool: &PgPool,
    directory: &D,
    options: &RunOptions,
    run_id: i64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RunReport, SyncError> {
    let mut desired = load_desired(pool, &options.scope).await?;
    let members = load_members(pool, &desired).await?;
    let digest = desired_digest(&desired, &members);
    if let Some(report) = checked_by_events(pool, directory, options, run_id, &digest).await {
        return Ok(report);
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
    let (mut actual, found) =
        read_actual(directory, &root, &options.root, &members, &options.scope).await?;
    let resolution = accounts::resolve(&members, &found);
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
    if !options.dry_run {
        let (failures, user_ids) =
            apply(directory, &root, &actual, &members, ops.clone(), progress).await;
        // The gate and the API find members by Keycloak id (`sub`) only: record the
        // links this run proved (verified address) or made (accounts it created).
        let mut links = resolution.new_links.clone();
        for (email, id) in user_ids {
            if !resolution.linked.contains_key(&id) && desired.users.contains_key(&email) {
                links.push(accounts::Link {
                    previous: resolution.gone.get(&email).cloned(),
                    email,
                    keycloak_id: id,
                    proof: accounts::Proof::CreatedBySync,
                });
            }
        }
        sync_state::link_accounts(pool, &links).await?;
        for (op, error) in &failures {
            errors.push(format!("{op}: {error}"));
        }
        let failed_ops: BTreeSet<usize> = failures.iter().map(|(i, _)| i.index).collect();
        for (i, op) in ops.iter().enumerate() {
            if failed_ops.contains(&i) {
                counts.failed += 1;
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
    let status = if errors.is_empty() {
        "succeeded"
    } else if counts.failed as usize == ops.len() + resolution.conflicts.len() {
        "failed"
    } else {
        "partial"
    };
    // A full read that found nothing to do saw Keycloak as Postgres wants it, give or
    // take what others changed since it began reading (the next check asks the event
    // log from then). A run that wrote vouches for nothing: the next full run reads
    // again and sees whether the writes landed.
    let verified = options.may_verify() && ops.is_empty() && resolution.conflicts.is_empty();
    Ok(RunReport {
        run_id: None,
        status,
        counts,
        errors,
        plan: plan_text,
        ops: by_kind,
        calls: BTreeMap::new(),
        call_seconds: BTreeMap::new(),
        seconds: 0.0,
        check: verified.then_some(Check {
            desired_digest: digest,
            by: "read",
            from: read_from,
        }),
    })
}

/// Postgres's view, limited to the scope.
pub async fn load_desired(pool: &PgPool, scope: &Scope) -> Result<Desired, SyncError> {
    let bad = |e: crate::domain::DomainError| SyncError::BadData(e.to_string());
    let in_scope = |slug: &OrgSlug| match scope {
        Scope::All => true,
        Scope::Orgs(slugs) => slugs.contains(slug),
    };
    let mut orgs: BTreeMap<OrgSlug, DesiredOrg> = BTreeMap::new();
    for row in sync_state::orgs(pool).await? {
        let slug = OrgSlug::parse(&row.slug).map_err(bad)?;
        orgs.insert(
            slug.clone(),
            DesiredOrg {
                id: row.id,
                slug,
                plan: row.plan,
                features: row.features.into_iter().collect(),
                members: BTreeMap::new(),
            },
        );
    }
    let mut claims: BTreeMap<Email, DesiredClaims> = BTreeMap::new();
    for row in sync_state::users(pool).await? {
        let email = Email::parse(&row.email).map_err(bad)?;
        let entry = claims.entry(email).or_default();
        entry.preferred_org = row.preferred_org.and_then(|s| OrgSlug::parse(&s).ok());
    }
    for row in sync_state::memberships(pool).await? {
        let slug = OrgSlug::parse(&row.slug).map_err(bad)?;
        let email = Email::parse(&row.email).map_err(bad)?;
        let roles: BTreeSet<Role> = row
            .roles
            .iter()
            .map(|r| r.parse())
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        if let Some(org) = orgs.get_mut(&slug) {
            org.members.insert(email.clone(), roles.clone());
        }
        claims
            .entry(email)
            .or_default()
            .org_memberships
            .insert(slug, roles);
    }
    // preferred_org only names an org the user belongs to.
    for c in claims.values_mut() {
        if c.preferred_org
            .as_ref()
            .is_some_and(|p| !c.org_memberships.contains_key(p))
        {
            c.preferred_org = None;
        }
    }
    let orgs: Vec<DesiredOrg> = orgs.into_values().filter(|o| in_scope(&o.slug)).collect();
    if let Scope::Orgs(_) = scope {
        // Only the members of the scoped orgs (present or, once read, past).
        let members: BTreeSet<&Email> = orgs.iter().flat_map(|o| o.members.keys()).collect();
        claims.retain(|email, _| members.contains(email));
    }
    Ok(Desired {
        orgs,
        users: claims,
    })
}

/// The user rows in scope with the account each is linked to, for [`accounts::resolve`].
async fn load_members(
    pool: &PgPool,
    desired: &Desired,
) -> Result<Vec<accounts::Member>, SyncError> {
    let mut members = Vec::new();
    for row in sync_state::users(pool).await? {
        let Ok(email) = Email::parse(&row.email) else {
            continue;
        };
        if desired.users.contains_key(&email) {
            members.push(accounts::Member {
                id: row.id.to_string(),
                email,
                keycloak_id: row.keycloak_id,
            });
        }
    }
    Ok(members)
}

/// Keycloak's view of the org groups in scope and of the users that matter, and every
/// account read (for [`accounts::resolve`]).
async fn read_actual<D: Directory>(
    directory: &D,
    root: &str,
    root_name: &str,
    members: &[accounts::Member],
    scope: &Scope,
) -> Result<(Actual, BTreeMap<String, accounts::Account>), SyncError> {
    let groups = if root.is_empty() {
        vec![]
    } else {
        match scope {
            Scope::All => directory.child_groups(root).await?,
            Scope::Orgs(slugs) => {
                let mut found = Vec::new();
                for slug in slugs {
                    if let Some(g) = directory
                        .group_by_path(&format!("/{root_name}/{slug}"))
                        .await?
                    {
                        found.push(g);
                    }
                }
                found
            }
        }
    };

    let mut member_users: HashMap<String, UserInfo> = HashMap::new();
    let mut reads = Vec::with_capacity(groups.len());
    for g in groups {
        reads.push(read_org_group(directory, g));
    }
    // In a full run the realm's users are read alongside the groups.
    let everyone = async {
        match scope {
            Scope::All => directory.all_users().await.map(Some),
            Scope::Orgs(_) => Ok(None),
        }
    };
    let (group_reads, everyone) = tokio::join!(join_all(reads), everyone);
    let everyone = everyone?;
    let mut org_groups = Vec::new();
    for result in group_reads {
        let (group, seen) = result?;
        for u in seen {
            member_users.entry(u.id.clone()).or_insert(u);
        }
        org_groups.push(group);
    }

    let mut users: BTreeMap<String, UserInfo> = BTreeMap::new();
    match scope {
        Scope::All => {
            for u in everyone.unwrap_or_default() {
                users.insert(u.id.clone(), u);
            }
        }
        Scope::Orgs(_) => {
            // Member listings are brief (no attributes): read each member's own account
            // by its id, and whatever claims the address of a member without one.
            let mut by_id = Vec::new();
            let mut by_address = Vec::new();
            for m in members {
                match &m.keycloak_id {
                    Some(id) => by_id.push(directory.user_by_id(id)),
                    None => by_address.push(directory.users_claiming(&m.email)),
                }
            }
            let (by_id, by_address) = tokio::join!(join_all(by_id), join_all(by_address));
            for u in by_id {
                if let Some(u) = u? {
                    users.insert(u.id.clone(), u);
                }
            }
            for found in by_address {
                for u in found? {
                    users.insert(u.id.clone(), u);
                }
            }
            // A stored id that is gone: whatever claims the address now.
            let gone: Vec<&accounts::Member> = members
                .iter()
                .filter(|m| {
                    m.keycloak_id
                        .as_ref()
                        .is_some_and(|id| !users.contains_key(id))
                })
                .collect();
            for m in gone {
                for u in directory.users_claiming(&m.email).await? {
                    users.insert(u.id.clone(), u);
                }
            }
        }
    }
    // Members of the groups (e.g. added by hand) still need to be known by id.
    for (id, u) in member_users {
        users.entry(id).or_insert(u);
    }
    let found = users
        .values()
        .map(|u| {
            (
                u.id.clone(),
                accounts::Account {
                    id: u.id.clone(),
                    username: u.username.clone(),
                    email: u.email.clone(),
                    email_verified: u.email_verified,
                    created_for: u
                        .attributes
                        .get(plan::ATTR_WIZBRAND_USER)
                        .and_then(|v| v.first())
                        .cloned(),
                },
            )
        })
        .collect();
    let users = users
        .into_iter()
        .map(|(id, u)| (id, ActualUser::from(u)))
        .collect();
    Ok((Actual { org_groups, users }, found))
}

/// One org group with its role groups and all their members (the directory bounds
/// how many of these calls run at once).
async fn read_org_group<D: Directory>(
    directory: &D,
    g: GroupInfo,
) -> Result<(ActualGroup, Vec<UserInfo>), DirectoryError> {
    let mut seen = Vec::new();
    let members = directory.group_members(&g.id).await?;
    seen.extend(members.iter().cloned());
    let mut children = Vec::new();
    for child in directory.child_groups(&g.id).await? {
        let child_members = directory.group_members(&child.id).await?;
        seen.extend(child_members.iter().cloned());
        children.push(ActualGroup {
            id: child.id,
            name: child.name,
            attributes: child.attributes,
            members: child_members.into_iter().map(|u| u.id).collect(),
            children: vec![],
            realm_roles: child.realm_roles,
            client_roles: child.client_roles,
        });
    }
    Ok((
        ActualGroup {
            id: g.id,
            name: g.name,
            attributes: g.attributes,
            members: members.into_iter().map(|u| u.id).collect(),
            children,
            realm_roles: g.realm_roles,
            client_roles: g.client_roles,
        },
        seen,
    ))
}

impl From<UserInfo> for ActualUser {
    fn from(u: UserInfo) -> Self {
        ActualUser {
            id: u.id,
            email: u.email,
            attributes: u.attributes,
        }
    }
}

/// Ids learnt during a run: existing ones, plus what earlier phases created.
#[derive(Default)]
struct Ids {
    org_groups: HashMap<OrgSlug, String>,
    role_groups: HashMap<(OrgSlug, Role), String>,
    users: HashMap<Email, String>,
    /// Postgres user ids, written on the accounts this run creates.
    members: HashMap<Email, String>,
}

/// An operation's position in the plan, for counting failures.
#[derive(Debug, Clone, Copy)]
pub struct OpIndex {
    pub index: usize,
}

impl std::fmt::Display for OpIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "operation {}", self.index + 1)
    }
}

fn phase(op: &Op) -> u8 {
    match op {
        Op::CreateOrgGroup { .. } | Op::UpdateOrgGroup { .. } | Op::CreateUser { .. } => 0,
        Op::CreateRoleGroup { .. } => 1,
        Op::AddMember { .. } | Op::SetClaims { .. } | Op::MapRealmRoles { .. } => 2,
        Op::RemoveMember { .. }
        | Op::DeleteGroup { .. }
        | Op::UnmapRealmRoles { .. }
        | Op::UnmapClientRoles { .. } => 3,
    }
}

/// Applies the plan phase by phase; returns the failed operations with their errors.
/// A failure never stops the rest: an org whose group could not be made fails its own
/// later operations, and every other org goes on.
async fn apply<D: Directory>(
    directory: &D,
    root: &str,
    actual: &Actual,
    members: &[accounts::Member],
    ops: Vec<Op>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> (Vec<(OpIndex, String)>, HashMap<Email, String>) {
    let mut ids = Ids {
        members: members
            .iter()
            .map(|m| (m.email.clone(), m.id.clone()))
            .collect(),
        ..Ids::default()
    };
    for g in &actual.org_groups {
        if let Ok(slug) = OrgSlug::parse(&g.name) {
            ids.org_groups.insert(slug.clone(), g.id.clone());
            for c in &g.children {
                if let Ok(role) = c.name.parse::<Role>() {
                    ids.role_groups.insert((slug.clone(), role), c.id.clone());
                }
            }
        }
    }
    for u in actual.users.values() {
        if let Some(e) = &u.email {
            ids.users.insert(e.clone(), u.id.clone());
        }
    }
    let ids = Mutex::new(ids);
    let total = ops.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut failures = Vec::new();
    for current in 0..=3u8 {
        let batch: Vec<(usize, &Op)> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| phase(op) == current)
            .collect();
        let mut applying = Vec::with_capacity(batch.len());
        for (index, op) in batch {
            applying.push(apply_counted(
                directory, root, &ids, op, index, &done, total, progress,
            ));
        }
        let results = join_all(applying).await;
        for (index, result) in results {
            if let Err(e) = result {
                tracing::warn!(op = %ops[index], error = %e, "sync operation failed");
                failures.push((OpIndex { index }, e));
            }
        }
    }
    failures.sort_by_key(|(i, _)| i.index);
    let users = ids.into_inner().map(|i| i.users).unwrap_or_default();
    (failures, users)
}

#[allow(clippy::too_many_arguments)]
async fn apply_counted<D: Directory>(
    directory: &D,
    root: &str,
    ids: &Mutex<Ids>,
    op: &Op,
    index: usize,
    done: &std::sync::atomic::AtomicUsize,
    total: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> (usize, Result<(), String>) {
    let result = apply_one(directory, root, ids, op).await;
    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    progress(n, total);
    (index, result)
}

fn lookup(
    ids: &Mutex<Ids>,
    get: impl Fn(&Ids) -> Option<&String>,
    what: impl Fn() -> String,
) -> Result<String, String> {
    let ids = ids
        .lock()
        .map_err(|_| "internal lock poisoned".to_owned())?;
    get(&ids)
        .cloned()
        .ok_or_else(|| format!("{} does not exist (an earlier step failed)", what()))
}

fn group_id(ids: &Mutex<Ids>, group: &GroupRef) -> Result<String, String> {
    match group {
        GroupRef::Org(slug) => lookup(
            ids,
            |i| i.org_groups.get(slug),
            || format!("group {}", group.path()),
        ),
        GroupRef::Role(slug, role) => lookup(
            ids,
            |i| i.role_groups.get(&(slug.clone(), *role)),
            || format!("group {}", group.path()),
        ),
    }
}

fn user_id(ids: &Mutex<Ids>, user: &UserRef) -> Result<String, String> {
    match user {
        UserRef::Existing(id) => Ok(id.clone()),
        UserRef::New(email) => lookup(ids, |i| i.users.get(email), || format!("user {email}")),
    }
}

fn remember(ids: &Mutex<Ids>, f: impl FnOnce(&mut Ids)) {
    if let Ok(mut ids) = ids.lock() {
        f(&mut ids);
    }
}

async fn apply_one<D: Directory>(
    directory: &D,
    root: &str,
    ids: &Mutex<Ids>,
    op: &Op,
) -> Result<(), String> {
    let text = |e: DirectoryError| e.to_string();
    match op {
        Op::CreateOrgGroup { slug, attributes } => {
            let id = directory
                .create_child_group(root, slug.as_str(), attributes)
                .await
                .map_err(text)?;
            remember(ids, |i| {
                i.org_groups.insert(slug.clone(), id);
            });
        }
        Op::UpdateOrgGroup {
            group_id,
            slug,
            attributes,
        } => directory
            .update_group(group_id, slug.as_str(), attributes)
            .await
            .map_err(text)?,
        Op::CreateRoleGroup { slug, role } => {
            let parent = group_id(ids, &GroupRef::Org(slug.clone()))?;
            let id = directory
                .create_child_group(&parent, role.as_str(), &plan::Attributes::new())
                .await
                .map_err(text)?;
            remember(ids, |i| {
                i.role_groups.insert((slug.clone(), *role), id);
            });
        }
        Op::CreateUser { email } => {
            let member = ids
                .lock()
                .ok()
                .and_then(|i| i.members.get(email).cloned())
                .ok_or_else(|| format!("{email} is no member of this run"))?;
            let id = directory.create_user(email, &member).await.map_err(text)?;
            remember(ids, |i| {
                i.users.insert(email.clone(), id);
            });
        }
        Op::AddMember { user, group, .. } => {
            let user = user_id(ids, user)?;
            let group = group_id(ids, group)?;
            directory.add_member(&user, &group).await.map_err(text)?;
        }
        Op::RemoveMember {
            user_id, group_id, ..
        } => directory
            .remove_member(user_id, group_id)
            .await
            .map_err(text)?,
        Op::SetClaims { user, claims, .. } => {
            let user = user_id(ids, user)?;
            directory
                .update_user_attributes(&user, &|current| claims.apply_to(current))
                .await
                .map_err(text)?;
        }
        Op::DeleteGroup { group_id, .. } => directory.delete_group(group_id).await.map_err(text)?,
        Op::MapRealmRoles { group, roles } => {
            let group = group_id(ids, group)?;
            directory
                .map_realm_roles(&group, roles)
                .await
                .map_err(text)?;
        }
        Op::UnmapRealmRoles {
            group_id, roles, ..
        } => directory
            .unmap_realm_roles(group_id, roles)
            .await
            .map_err(text)?,
        Op::UnmapClientRoles {
            group_id,
            client,
            roles,
            ..
        } => directory
            .unmap_client_roles(group_id, client, roles)
            .await
            .map_err(text)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::plan::{DesiredClaims, DesiredOrg};

    fn desired(plan: &str, roles: &[Role]) -> Desired {
        let slug = OrgSlug::parse("acme").unwrap();
        let ann = Email::parse("ann@example.com").unwrap();
        Desired {
            orgs: vec![DesiredOrg {
                id: uuid::Uuid::nil(),
                slug: slug.clone(),
                plan: plan.into(),
                features: ["seo".to_owned()].into(),
                members: [(ann.clone(), roles.iter().copied().collect())].into(),
            }],
            users: [(
                ann,
                DesiredClaims {
                    org_memberships: [(slug, roles.iter().copied().collect())].into(),
                    preferred_org: None,
                },
            )]
            .into(),
        }
    }

    #[test]
    fn the_desired_digest_changes_with_the_state_and_only_with_it() {
        let base = desired_digest(&desired("pro", &[Role::Admin]), &[]);
        assert_eq!(base, desired_digest(&desired("pro", &[Role::Admin]), &[]));
        assert_eq!(base.len(), 64);
        assert_ne!(base, desired_digest(&desired("free", &[Role::Admin]), &[]));
        assert_ne!(base, desired_digest(&desired("pro", &[Role::User]), &[]));
        assert_ne!(
            base,
            desired_digest(&desired("pro", &[Role::Admin, Role::User]), &[])
        );
    }
}
