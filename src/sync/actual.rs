//! The Keycloak side of the sync: the org groups in scope, their role groups and
//! members, and the accounts that matter, read through the [`Directory`].

use std::collections::{BTreeMap, HashMap};

use futures_util::future::join_all;

use super::SyncError;
use super::accounts;
use super::directory::{Directory, DirectoryError, GroupInfo, UserInfo};
use super::plan::{self, Actual, ActualGroup, ActualUser, Scope};

/// Keycloak's view of the org groups in scope and of the users that matter, and every
/// account read (for [`accounts::resolve`]).
pub(super) async fn read_actual<D: Directory>(
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
