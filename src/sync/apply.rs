//! Applying a plan to the [`Directory`], phase by phase: groups and users, then role
//! groups, then memberships, claims and role mappings, then removals. Operations of a
//! phase run side by side (the directory bounds how many at once); ids that a phase
//! creates are learnt for the later ones, and an operation whose group or user could
//! not be made fails without a call.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use futures_util::{StreamExt, stream};
use tokio_util::sync::CancellationToken;

use super::accounts;
use super::directory::{Attributes, Directory, DirectoryError};
use super::plan::{Actual, GroupRef, Op, UserRef};
use crate::domain::{Email, OrgSlug, Role};

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
pub(super) struct OpIndex {
    pub(super) index: usize,
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

/// What applying a plan did.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// The operations that failed, in plan order, with their errors.
    pub(super) failures: Vec<(OpIndex, String)>,
    /// Every user's Keycloak id by address: those known before and those created.
    pub(super) user_ids: HashMap<Email, String>,
    /// The operations not started because the run was told to stop.
    pub(super) not_started: BTreeSet<usize>,
}

/// Applies the plan phase by phase. A failure never stops the rest: an org whose
/// group could not be made fails its own later operations, and every other org goes
/// on. Once `stop` is cancelled no operation starts; those under way finish, so each
/// operation is either done or not begun (the next run plans the rest).
pub(super) async fn apply<D: Directory>(
    directory: &D,
    root: &str,
    actual: &Actual,
    members: &[accounts::Member],
    ops: Vec<Op>,
    progress: &(dyn Fn(usize, usize) + Sync),
    stop: &CancellationToken,
) -> Applied {
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
    let mut not_started = BTreeSet::new();
    // Operations are started as earlier ones finish, a few more than the directory
    // serves at once so that it never waits on us: a stop then leaves few under way.
    let width = directory.concurrency().max(1) * 2;
    for current in 0..=3u8 {
        let batch: Vec<(usize, &Op)> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| phase(op) == current)
            .collect();
        let mut applying = Vec::with_capacity(batch.len());
        for (index, op) in batch {
            applying.push(apply_counted(
                directory, root, &ids, op, index, &done, total, progress, stop,
            ));
        }
        let results: Vec<(usize, Option<Result<(), String>>)> = stream::iter(applying)
            .buffer_unordered(width)
            .collect()
            .await;
        for (index, result) in results {
            match result {
                None => {
                    not_started.insert(index);
                }
                Some(Err(e)) => {
                    tracing::warn!(op = %ops[index], error = %e, "sync operation failed");
                    failures.push((OpIndex { index }, e));
                }
                Some(Ok(())) => {}
            }
        }
    }
    failures.sort_by_key(|(i, _)| i.index);
    let user_ids = ids.into_inner().map(|i| i.users).unwrap_or_default();
    Applied {
        failures,
        user_ids,
        not_started,
    }
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
    stop: &CancellationToken,
) -> (usize, Option<Result<(), String>>) {
    // Checked when the operation's turn comes, not when it was queued.
    if stop.is_cancelled() {
        return (index, None);
    }
    let result = apply_one(directory, root, ids, op).await;
    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    progress(n, total);
    (index, Some(result))
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
                .create_child_group(&parent, role.as_str(), &Attributes::new())
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
