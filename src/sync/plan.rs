//! The reconcile diff: desired state (Postgres) against actual state (Keycloak) gives a
//! plan of typed operations. Pure: no I/O, so every case is a unit test.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use uuid::Uuid;

use crate::domain::{Email, OrgSlug, Role};

/// Attribute names on org groups and users (docs/design.md's Keycloak layout).
pub const ATTR_ORG_ID: &str = "org_id";
pub const ATTR_PLAN: &str = "plan";
pub const ATTR_FEATURES: &str = "features";
pub const ATTR_ORG_MEMBERSHIPS: &str = "org_memberships";
pub const ATTR_PREFERRED_ORG: &str = "preferred_org";
/// On accounts the sync creates: the Postgres id of the member it was made for
/// (administrators only may see or set it, per the realm's user profile).
pub const ATTR_WIZBRAND_USER: &str = "wizbrand_user";

pub type Attributes = BTreeMap<String, Vec<String>>;

/// What Postgres says an org should look like in Keycloak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredOrg {
    pub id: Uuid,
    pub slug: OrgSlug,
    pub plan: String,
    pub features: BTreeSet<String>,
    pub members: BTreeMap<Email, BTreeSet<Role>>,
}

impl DesiredOrg {
    pub fn attributes(&self) -> Attributes {
        BTreeMap::from([
            (ATTR_ORG_ID.to_owned(), vec![self.id.to_string()]),
            (ATTR_PLAN.to_owned(), vec![self.plan.clone()]),
            (
                ATTR_FEATURES.to_owned(),
                self.features.iter().cloned().collect(),
            ),
        ])
    }
}

/// A user's claim attributes as Postgres says they should be.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DesiredClaims {
    pub org_memberships: BTreeMap<OrgSlug, BTreeSet<Role>>,
    pub preferred_org: Option<OrgSlug>,
}

impl DesiredClaims {
    /// The JSON object Keycloak's JSON-typed mapper turns into the claim, e.g.
    /// `{"acme":["ORG_ADMIN"]}` (roles most privileged first, keys sorted: stable).
    pub fn org_memberships_json(&self) -> String {
        let map: BTreeMap<&str, Vec<&str>> = self
            .org_memberships
            .iter()
            .map(|(slug, roles)| {
                (
                    slug.as_str(),
                    roles.iter().rev().map(|r| r.as_str()).collect(),
                )
            })
            .collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Does a user's current attribute set already say this? Compared by meaning, so
    /// whitespace or key order written by hand does not count as drift.
    fn matches(&self, attributes: &Attributes) -> bool {
        let actual_memberships: Option<BTreeMap<String, BTreeSet<String>>> = attributes
            .get(ATTR_ORG_MEMBERSHIPS)
            .and_then(|v| v.first())
            .and_then(|json| serde_json::from_str(json).ok());
        let desired_memberships: BTreeMap<String, BTreeSet<String>> = self
            .org_memberships
            .iter()
            .map(|(s, roles)| (s.to_string(), roles.iter().map(|r| r.to_string()).collect()))
            .collect();
        let memberships_match = match actual_memberships {
            Some(actual) => actual == desired_memberships,
            // No attribute is the same as "no orgs".
            None => {
                desired_memberships.is_empty() && !attributes.contains_key(ATTR_ORG_MEMBERSHIPS)
            }
        };
        let actual_preferred = attributes
            .get(ATTR_PREFERRED_ORG)
            .and_then(|v| v.first())
            .map(String::as_str);
        memberships_match && actual_preferred == self.preferred_org.as_ref().map(OrgSlug::as_str)
    }

    /// The attribute map after writing these claims over `current`, keeping every
    /// other attribute (PUT replaces the whole user).
    pub fn apply_to(&self, current: &Attributes) -> Attributes {
        let mut next = current.clone();
        if self.org_memberships.is_empty() {
            next.remove(ATTR_ORG_MEMBERSHIPS);
        } else {
            next.insert(
                ATTR_ORG_MEMBERSHIPS.to_owned(),
                vec![self.org_memberships_json()],
            );
        }
        match &self.preferred_org {
            Some(slug) => {
                next.insert(ATTR_PREFERRED_ORG.to_owned(), vec![slug.to_string()]);
            }
            None => {
                next.remove(ATTR_PREFERRED_ORG);
            }
        }
        next
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    pub orgs: Vec<DesiredOrg>,
    /// Every user Postgres knows, members or not: a user who left every org still
    /// needs their claims emptied.
    pub users: BTreeMap<Email, DesiredClaims>,
}

/// A group as read from Keycloak, with its direct members (user ids) and role mappings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActualGroup {
    pub id: String,
    pub name: String,
    pub attributes: Attributes,
    pub members: BTreeSet<String>,
    pub children: Vec<ActualGroup>,
    /// Realm roles mapped to the group, by name.
    pub realm_roles: BTreeSet<String>,
    /// Client roles mapped to the group: client id (`clientId`) → role names.
    pub client_roles: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualUser {
    pub id: String,
    pub email: Option<Email>,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actual {
    /// The org groups under `/orgs` (all of them in a full run, the scoped ones otherwise).
    pub org_groups: Vec<ActualGroup>,
    /// Users by id: every desired user that exists, and every member of an org group.
    pub users: BTreeMap<String, ActualUser>,
}

/// A group named by what it is, so operations can refer to groups created earlier in
/// the same run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRef {
    Org(OrgSlug),
    Role(OrgSlug, Role),
}

impl GroupRef {
    /// The group's path below the group root (`acme`, `acme/ORG_USER`); the plan's lines
    /// put the root in front ([`Op::line`]).
    pub fn path(&self) -> String {
        match self {
            GroupRef::Org(slug) => slug.to_string(),
            GroupRef::Role(slug, role) => format!("{slug}/{role}"),
        }
    }
}

/// A user that exists (by id) or that this run creates (by email).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRef {
    Existing(String),
    New(Email),
}

/// One change to Keycloak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateOrgGroup {
        slug: OrgSlug,
        attributes: Attributes,
    },
    UpdateOrgGroup {
        group_id: String,
        slug: OrgSlug,
        attributes: Attributes,
    },
    CreateRoleGroup {
        slug: OrgSlug,
        role: Role,
    },
    CreateUser {
        email: Email,
    },
    AddMember {
        user: UserRef,
        email: String,
        group: GroupRef,
    },
    RemoveMember {
        user_id: String,
        email: String,
        group_id: String,
        path: String,
    },
    SetClaims {
        user: UserRef,
        email: Email,
        claims: DesiredClaims,
    },
    DeleteGroup {
        group_id: String,
        path: String,
    },
    /// Realm roles a group lacks (a role group's own role).
    MapRealmRoles {
        group: GroupRef,
        roles: BTreeSet<String>,
    },
    /// Realm roles mapped to a group under `/orgs` by hand.
    UnmapRealmRoles {
        group_id: String,
        path: String,
        roles: BTreeSet<String>,
    },
    /// Client roles mapped to a group under `/orgs` by hand (none belong there).
    UnmapClientRoles {
        group_id: String,
        path: String,
        client: String,
        roles: BTreeSet<String>,
    },
}

/// How an operation counts in `sync_runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Created,
    Updated,
    Deleted,
}

impl Op {
    pub fn kind(&self) -> OpKind {
        match self {
            Op::CreateOrgGroup { .. }
            | Op::CreateRoleGroup { .. }
            | Op::CreateUser { .. }
            | Op::AddMember { .. }
            | Op::MapRealmRoles { .. } => OpKind::Created,
            Op::UpdateOrgGroup { .. } | Op::SetClaims { .. } => OpKind::Updated,
            Op::RemoveMember { .. }
            | Op::DeleteGroup { .. }
            | Op::UnmapRealmRoles { .. }
            | Op::UnmapClientRoles { .. } => OpKind::Deleted,
        }
    }

    /// The metric label for this kind of operation.
    pub fn name(&self) -> &'static str {
        match self {
            Op::CreateOrgGroup { .. } => "create_org_group",
            Op::UpdateOrgGroup { .. } => "update_org_group",
            Op::CreateRoleGroup { .. } => "create_role_group",
            Op::CreateUser { .. } => "create_user",
            Op::AddMember { .. } => "add_member",
            Op::RemoveMember { .. } => "remove_member",
            Op::SetClaims { .. } => "set_claims",
            Op::DeleteGroup { .. } => "delete_group",
            Op::MapRealmRoles { .. } => "map_realm_roles",
            Op::UnmapRealmRoles { .. } => "unmap_realm_roles",
            Op::UnmapClientRoles { .. } => "unmap_client_roles",
        }
    }

    /// The org this operation belongs to, so one org's failure skips only its own rest.
    pub fn org(&self) -> Option<&OrgSlug> {
        match self {
            Op::CreateOrgGroup { slug, .. }
            | Op::UpdateOrgGroup { slug, .. }
            | Op::CreateRoleGroup { slug, .. } => Some(slug),
            Op::AddMember { group, .. } | Op::MapRealmRoles { group, .. } => match group {
                GroupRef::Org(slug) | GroupRef::Role(slug, _) => Some(slug),
            },
            _ => None,
        }
    }
}

/// An operation as a line of the plan, with its group paths under the group root.
pub struct Line<'a> {
    op: &'a Op,
    root: &'a str,
}

impl Op {
    pub fn line<'a>(&'a self, root: &'a str) -> Line<'a> {
        Line { op: self, root }
    }
}

impl std::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let root = self.root;
        match self.op {
            Op::CreateOrgGroup { slug, .. } => write!(f, "create group /{root}/{slug}"),
            Op::UpdateOrgGroup { slug, .. } => {
                write!(f, "update attributes of /{root}/{slug}")
            }
            Op::CreateRoleGroup { slug, role } => {
                write!(f, "create group /{root}/{slug}/{role}")
            }
            Op::CreateUser { email } => write!(f, "create user {email}"),
            Op::AddMember { email, group, .. } => {
                write!(f, "add {email} to /{root}/{}", group.path())
            }
            Op::RemoveMember { email, path, .. } => {
                write!(f, "remove {email} from /{root}/{path}")
            }
            Op::SetClaims { email, claims, .. } => write!(
                f,
                "set claims of {email}: org_memberships={} preferred_org={}",
                claims.org_memberships_json(),
                claims.preferred_org.as_ref().map_or("-", OrgSlug::as_str)
            ),
            Op::DeleteGroup { path, .. } => write!(f, "delete group /{root}/{path}"),
            Op::MapRealmRoles { group, roles } => {
                write!(
                    f,
                    "map realm roles {} to /{root}/{}",
                    names(roles),
                    group.path()
                )
            }
            Op::UnmapRealmRoles { path, roles, .. } => {
                write!(f, "unmap realm roles {} from /{root}/{path}", names(roles))
            }
            Op::UnmapClientRoles {
                path,
                client,
                roles,
                ..
            } => write!(
                f,
                "unmap client roles {} of {client} from /{root}/{path}",
                names(roles)
            ),
        }
    }
}

/// The plan's line under the default group root `orgs`.
impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.line("orgs").fmt(f)
    }
}

fn names(roles: &BTreeSet<String>) -> String {
    roles
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// What a run may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything under `/orgs`; groups with no org are removed.
    All,
    /// Only these orgs (and the claims of their members).
    Orgs(BTreeSet<OrgSlug>),
}

/// The plan and how many objects were already right.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub unchanged: usize,
}

/// Computes the operations that make `actual` look like `desired`. Creations come
/// first (groups, users, memberships, claims), removals last, so a run that fails
/// half-way leaves people with too much rather than too little for a moment.
pub fn plan(desired: &Desired, actual: &Actual, scope: &Scope) -> Plan {
    let mut out = Plan::default();
    let by_email: BTreeMap<&Email, &ActualUser> = actual
        .users
        .values()
        .filter_map(|u| u.email.as_ref().map(|e| (e, u)))
        .collect();
    let user_ref = |email: &Email| match by_email.get(email) {
        Some(user) => UserRef::Existing(user.id.clone()),
        None => UserRef::New(email.clone()),
    };
    let email_of = |user_id: &str| {
        actual
            .users
            .get(user_id)
            .and_then(|u| u.email.as_ref())
            .map_or_else(|| user_id.to_owned(), |e| e.to_string())
    };

    // Users first: members who have no Keycloak account yet.
    let mut new_users = BTreeSet::new();
    for org in &desired.orgs {
        for email in org.members.keys() {
            if !by_email.contains_key(email) && new_users.insert(email.clone()) {
                out.ops.push(Op::CreateUser {
                    email: email.clone(),
                });
            }
        }
    }

    let mut removals = Vec::new();
    let actual_by_name: BTreeMap<&str, &ActualGroup> = actual
        .org_groups
        .iter()
        .map(|g| (g.name.as_str(), g))
        .collect();

    for org in &desired.orgs {
        let group = actual_by_name.get(org.slug.as_str()).copied();
        let attributes = org.attributes();
        match group {
            None => out.ops.push(Op::CreateOrgGroup {
                slug: org.slug.clone(),
                attributes,
            }),
            Some(g) => {
                let attributes_right = same_attributes(&g.attributes, &attributes);
                if !attributes_right {
                    out.ops.push(Op::UpdateOrgGroup {
                        group_id: g.id.clone(),
                        slug: org.slug.clone(),
                        attributes,
                    });
                }
                // The org group maps no role: one there would reach every member.
                let roles_right = reconcile_roles(
                    &mut out,
                    &mut removals,
                    GroupRef::Org(org.slug.clone()),
                    Some(g),
                    None,
                );
                if attributes_right && roles_right {
                    out.unchanged += 1;
                }
            }
        }

        // Membership of the org group itself.
        let empty = BTreeSet::new();
        let org_members = group.map_or(&empty, |g| &g.members);
        reconcile_members(
            &mut out,
            &mut removals,
            org.members.keys(),
            org_members,
            GroupRef::Org(org.slug.clone()),
            group.map(|g| g.id.as_str()),
            &by_email,
            &user_ref,
            &email_of,
        );

        // One child group per role, nothing else under the org group.
        for role in Role::ALL {
            let child = group.and_then(|g| g.children.iter().find(|c| c.name == role.as_str()));
            if child.is_none() {
                out.ops.push(Op::CreateRoleGroup {
                    slug: org.slug.clone(),
                    role,
                });
            }
            let roles_right = reconcile_roles(
                &mut out,
                &mut removals,
                GroupRef::Role(org.slug.clone(), role),
                child,
                Some(role),
            );
            if child.is_some() && roles_right {
                out.unchanged += 1;
            }
            let holders = org
                .members
                .iter()
                .filter(|(_, roles)| roles.contains(&role))
                .map(|(email, _)| email);
            reconcile_members(
                &mut out,
                &mut removals,
                holders,
                child.map_or(&empty, |c| &c.members),
                GroupRef::Role(org.slug.clone(), role),
                child.map(|c| c.id.as_str()),
                &by_email,
                &user_ref,
                &email_of,
            );
        }
        if let Some(g) = group {
            for stray in g
                .children
                .iter()
                .filter(|c| c.name.parse::<Role>().is_err())
            {
                removals.push(Op::DeleteGroup {
                    group_id: stray.id.clone(),
                    path: format!("{}/{}", org.slug, stray.name),
                });
            }
        }
    }

    // Groups under /orgs whose org is gone.
    if *scope == Scope::All {
        let wanted: BTreeSet<&str> = desired.orgs.iter().map(|o| o.slug.as_str()).collect();
        for g in &actual.org_groups {
            if !wanted.contains(g.name.as_str()) {
                removals.push(Op::DeleteGroup {
                    group_id: g.id.clone(),
                    path: g.name.clone(),
                });
            }
        }
    }

    // Claims, for every user in scope.
    for (email, claims) in &desired.users {
        let matches = by_email
            .get(email)
            .is_some_and(|u| claims.matches(&u.attributes));
        let exists = by_email.contains_key(email) || new_users.contains(email);
        if matches {
            out.unchanged += 1;
        } else if exists {
            out.ops.push(Op::SetClaims {
                user: user_ref(email),
                email: email.clone(),
                claims: claims.clone(),
            });
        }
        // A user with no org and no Keycloak account needs nothing.
    }

    out.ops.extend(removals);
    out
}

#[allow(clippy::too_many_arguments)]
fn reconcile_members<'a>(
    out: &mut Plan,
    removals: &mut Vec<Op>,
    wanted: impl Iterator<Item = &'a Email>,
    current: &BTreeSet<String>,
    group: GroupRef,
    group_id: Option<&str>,
    by_email: &BTreeMap<&Email, &ActualUser>,
    user_ref: &impl Fn(&Email) -> UserRef,
    email_of: &impl Fn(&str) -> String,
) {
    let mut wanted_ids = BTreeSet::new();
    for email in wanted {
        match by_email.get(email) {
            Some(user) if current.contains(&user.id) => {
                out.unchanged += 1;
                wanted_ids.insert(user.id.as_str());
            }
            found => {
                if let Some(user) = found {
                    wanted_ids.insert(user.id.as_str());
                }
                out.ops.push(Op::AddMember {
                    user: user_ref(email),
                    email: email.to_string(),
                    group: group.clone(),
                });
            }
        }
    }
    if let Some(group_id) = group_id {
        for user_id in current {
            if !wanted_ids.contains(user_id.as_str()) {
                removals.push(Op::RemoveMember {
                    user_id: user_id.clone(),
                    email: email_of(user_id),
                    group_id: group_id.to_owned(),
                    path: group.path(),
                });
            }
        }
    }
}

/// A group's role mappings against what it should carry: its role's realm role of the
/// same name for a role group, nothing for an org group. Returns whether they were
/// already right. A group about to be created (`actual` is `None`) gets its mapping.
fn reconcile_roles(
    out: &mut Plan,
    removals: &mut Vec<Op>,
    group: GroupRef,
    actual: Option<&ActualGroup>,
    role: Option<Role>,
) -> bool {
    let wanted: BTreeSet<String> = role.iter().map(|r| r.as_str().to_owned()).collect();
    let empty = BTreeSet::new();
    let mapped = actual.map_or(&empty, |g| &g.realm_roles);
    let missing: BTreeSet<String> = wanted.difference(mapped).cloned().collect();
    let mut right = missing.is_empty();
    if !missing.is_empty() {
        out.ops.push(Op::MapRealmRoles {
            group: group.clone(),
            roles: missing,
        });
    }
    let Some(g) = actual else {
        return right;
    };
    let extra: BTreeSet<String> = mapped.difference(&wanted).cloned().collect();
    if !extra.is_empty() {
        right = false;
        removals.push(Op::UnmapRealmRoles {
            group_id: g.id.clone(),
            path: group.path(),
            roles: extra,
        });
    }
    for (client, roles) in g.client_roles.iter().filter(|(_, r)| !r.is_empty()) {
        right = false;
        removals.push(Op::UnmapClientRoles {
            group_id: g.id.clone(),
            path: group.path(),
            client: client.clone(),
            roles: roles.clone(),
        });
    }
    right
}

/// Group attributes compared as sets per key (Keycloak may reorder values).
fn same_attributes(actual: &Attributes, desired: &Attributes) -> bool {
    let norm = |a: &Attributes| -> BTreeMap<String, BTreeSet<String>> {
        a.iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect()
    };
    norm(actual) == norm(desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> OrgSlug {
        OrgSlug::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    const ACME_ID: &str = "6f1c1c9e-8c2e-4a8e-9d0e-3a4b5c6d7e8f";

    fn acme(members: &[(&str, &[Role])]) -> DesiredOrg {
        DesiredOrg {
            id: ACME_ID.parse().unwrap_or_default(),
            slug: slug("acme"),
            plan: "pro".into(),
            features: ["files", "seo"].iter().map(|s| s.to_string()).collect(),
            members: members
                .iter()
                .map(|(e, roles)| (email(e), roles.iter().copied().collect()))
                .collect(),
        }
    }

    fn desired(orgs: Vec<DesiredOrg>) -> Desired {
        let mut users: BTreeMap<Email, DesiredClaims> = BTreeMap::new();
        for org in &orgs {
            for (e, roles) in &org.members {
                users
                    .entry(e.clone())
                    .or_default()
                    .org_memberships
                    .insert(org.slug.clone(), roles.clone());
            }
        }
        Desired { orgs, users }
    }

    /// The Keycloak state that `desired` produces, so tests start from "in step".
    fn converged(desired: &Desired) -> Actual {
        let mut users = BTreeMap::new();
        for (e, claims) in &desired.users {
            let id = format!("id-{e}");
            users.insert(
                id.clone(),
                ActualUser {
                    id,
                    email: Some(e.clone()),
                    attributes: claims.apply_to(&Attributes::new()),
                },
            );
        }
        let org_groups = desired
            .orgs
            .iter()
            .map(|org| ActualGroup {
                id: format!("g-{}", org.slug),
                name: org.slug.to_string(),
                attributes: org.attributes(),
                members: org.members.keys().map(|e| format!("id-{e}")).collect(),
                children: Role::ALL
                    .iter()
                    .map(|role| ActualGroup {
                        id: format!("g-{}-{role}", org.slug),
                        name: role.to_string(),
                        attributes: Attributes::new(),
                        members: org
                            .members
                            .iter()
                            .filter(|(_, r)| r.contains(role))
                            .map(|(e, _)| format!("id-{e}"))
                            .collect(),
                        children: vec![],
                        realm_roles: BTreeSet::from([role.to_string()]),
                        client_roles: BTreeMap::new(),
                    })
                    .collect(),
                ..ActualGroup::default()
            })
            .collect();
        Actual { org_groups, users }
    }

    #[test]
    fn a_new_org_with_a_new_member_creates_everything() {
        let want = desired(vec![acme(&[("alice@example.com", &[Role::Admin])])]);
        let plan = plan(&want, &Actual::default(), &Scope::All);
        let names: Vec<&str> = plan.ops.iter().map(Op::name).collect();
        assert_eq!(
            names,
            [
                "create_user",
                "create_org_group",
                "add_member",
                "create_role_group",
                "map_realm_roles",
                "add_member",
                "create_role_group",
                "map_realm_roles",
                "create_role_group",
                "map_realm_roles",
                "set_claims"
            ]
        );
        // Each new role group carries the realm role of its name.
        for role in Role::ALL {
            assert!(plan.ops.contains(&Op::MapRealmRoles {
                group: GroupRef::Role(slug("acme"), role),
                roles: BTreeSet::from([role.to_string()]),
            }));
        }
        assert!(plan.ops.contains(&Op::AddMember {
            user: UserRef::New(email("alice@example.com")),
            email: "alice@example.com".into(),
            group: GroupRef::Role(slug("acme"), Role::Admin),
        }));
        assert!(plan.ops.iter().any(|op| op.to_string()
            == r#"set claims of alice@example.com: org_memberships={"acme":["ORG_ADMIN"]} preferred_org=-"#));
    }

    #[test]
    fn a_converged_state_plans_nothing() {
        let want = desired(vec![acme(&[
            ("alice@example.com", &[Role::Admin]),
            ("bob@example.com", &[Role::User, Role::Manager]),
        ])]);
        let plan = plan(&want, &converged(&want), &Scope::All);
        assert_eq!(plan.ops, vec![]);
        // 1 group + 3 role groups + 2 org memberships + 3 role memberships + 2 users' claims
        assert_eq!(plan.unchanged, 11);
    }

    #[test]
    fn hand_made_drift_is_put_back() {
        let want = desired(vec![acme(&[
            ("alice@example.com", &[Role::Admin]),
            ("bob@example.com", &[Role::User]),
        ])]);
        let mut actual = converged(&want);
        let acme = &mut actual.org_groups[0];
        // bob added to ORG_ADMIN by hand, plan edited, ORG_MANAGER deleted, a stray child.
        acme.children[0].members.insert("id-bob@example.com".into());
        acme.attributes
            .insert(ATTR_PLAN.into(), vec!["enterprise".into()]);
        acme.children.retain(|c| c.name != "ORG_MANAGER");
        acme.children.push(ActualGroup {
            id: "g-junk".into(),
            name: "junk".into(),
            ..ActualGroup::default()
        });
        // A stray org group and a tampered claim.
        actual.org_groups.push(ActualGroup {
            id: "g-ghost".into(),
            name: "ghost".into(),
            ..ActualGroup::default()
        });
        if let Some(bob) = actual.users.get_mut("id-bob@example.com") {
            bob.attributes.insert(
                ATTR_ORG_MEMBERSHIPS.into(),
                vec![r#"{"acme":["ORG_ADMIN"]}"#.into()],
            );
        }

        let ops = plan(&want, &actual, &Scope::All).ops;
        let shown: Vec<String> = ops.iter().map(Op::to_string).collect();
        assert_eq!(
            shown,
            [
                "update attributes of /orgs/acme",
                "create group /orgs/acme/ORG_MANAGER",
                "map realm roles ORG_MANAGER to /orgs/acme/ORG_MANAGER",
                r#"set claims of bob@example.com: org_memberships={"acme":["ORG_USER"]} preferred_org=-"#,
                "remove bob@example.com from /orgs/acme/ORG_ADMIN",
                "delete group /orgs/acme/junk",
                "delete group /orgs/ghost",
            ]
        );
    }

    #[test]
    fn role_mappings_missing_or_extra_are_put_back() {
        let want = desired(vec![acme(&[("alice@example.com", &[Role::Admin])])]);
        let mut actual = converged(&want);
        let acme = &mut actual.org_groups[0];
        // ORG_MANAGER lost its role; ORG_USER gained the platform-admin role and a client
        // role; the org group itself gained a realm role (it would reach every member).
        acme.children[1].realm_roles.clear();
        acme.children[2].realm_roles.insert("wizbrand-admin".into());
        acme.children[2].client_roles.insert(
            "realm-management".into(),
            BTreeSet::from(["view-users".to_owned()]),
        );
        acme.realm_roles.insert("ORG_ADMIN".into());

        let plan = plan(&want, &actual, &Scope::All);
        let shown: Vec<String> = plan.ops.iter().map(Op::to_string).collect();
        assert_eq!(
            shown,
            [
                "map realm roles ORG_MANAGER to /orgs/acme/ORG_MANAGER",
                "unmap realm roles ORG_ADMIN from /orgs/acme",
                "unmap realm roles wizbrand-admin from /orgs/acme/ORG_USER",
                "unmap client roles view-users of realm-management from /orgs/acme/ORG_USER",
            ]
        );
        assert_eq!(
            plan.ops.iter().map(Op::kind).collect::<Vec<_>>(),
            [
                OpKind::Created,
                OpKind::Deleted,
                OpKind::Deleted,
                OpKind::Deleted
            ]
        );
        // The three touched groups are not counted as unchanged: ORG_ADMIN and the two
        // memberships and the claims are (1 + 2 + 1).
        assert_eq!(plan.unchanged, 4);
    }

    #[test]
    fn a_recreated_role_group_gets_its_mapping_again() {
        let want = desired(vec![acme(&[("alice@example.com", &[Role::Admin])])]);
        let mut actual = converged(&want);
        actual.org_groups[0]
            .children
            .retain(|c| c.name != "ORG_ADMIN");
        let shown: Vec<String> = plan(&want, &actual, &Scope::All)
            .ops
            .iter()
            .map(Op::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "create group /orgs/acme/ORG_ADMIN",
                "map realm roles ORG_ADMIN to /orgs/acme/ORG_ADMIN",
                "add alice@example.com to /orgs/acme/ORG_ADMIN",
            ]
        );
    }

    #[test]
    fn a_scoped_run_leaves_other_org_groups_alone() {
        let want = desired(vec![acme(&[("alice@example.com", &[Role::Admin])])]);
        let mut actual = converged(&want);
        actual.org_groups.push(ActualGroup {
            id: "g-beta".into(),
            name: "beta".into(),
            ..ActualGroup::default()
        });
        let scope = Scope::Orgs(BTreeSet::from([slug("acme")]));
        assert_eq!(plan(&want, &actual, &scope).ops, vec![]);
    }

    #[test]
    fn removed_members_lose_groups_and_claims() {
        let before = desired(vec![acme(&[
            ("alice@example.com", &[Role::Admin]),
            ("bob@example.com", &[Role::User]),
        ])]);
        let actual = converged(&before);
        let mut after = desired(vec![acme(&[("alice@example.com", &[Role::Admin])])]);
        // bob is still a Postgres user, in no org.
        after
            .users
            .insert(email("bob@example.com"), DesiredClaims::default());
        let shown: Vec<String> = plan(&after, &actual, &Scope::All)
            .ops
            .iter()
            .map(Op::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "set claims of bob@example.com: org_memberships={} preferred_org=-",
                "remove bob@example.com from /orgs/acme",
                "remove bob@example.com from /orgs/acme/ORG_USER",
            ]
        );
    }

    #[test]
    fn claims_keep_other_attributes_and_compare_by_meaning() {
        let claims = DesiredClaims {
            org_memberships: BTreeMap::from([(
                slug("acme"),
                BTreeSet::from([Role::User, Role::Admin]),
            )]),
            preferred_org: Some(slug("acme")),
        };
        assert_eq!(
            claims.org_memberships_json(),
            r#"{"acme":["ORG_ADMIN","ORG_USER"]}"#
        );
        let current = Attributes::from([
            ("department".into(), vec!["R&D".into()]),
            (
                ATTR_ORG_MEMBERSHIPS.into(),
                vec![r#"{ "acme" : ["ORG_USER", "ORG_ADMIN"] }"#.into()],
            ),
            (ATTR_PREFERRED_ORG.into(), vec!["acme".into()]),
        ]);
        assert!(claims.matches(&current));
        let next = claims.apply_to(&current);
        assert_eq!(next["department"], vec!["R&D".to_owned()]);
        assert!(
            !DesiredClaims::default()
                .apply_to(&current)
                .contains_key(ATTR_PREFERRED_ORG)
        );
    }
}

/// The reconcile diff as a property: from any Keycloak state, applying the plan (to a
/// model of Keycloak) and planning again gives an empty plan.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    const SLUGS: [&str; 4] = ["acme", "beta", "gamma", "delta"];
    const EMAILS: [&str; 4] = ["a@x.io", "b@x.io", "c@x.io", "d@x.io"];

    fn slug(s: &str) -> OrgSlug {
        OrgSlug::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn roles() -> impl Strategy<Value = BTreeSet<Role>> {
        prop::sample::subsequence(Role::ALL.to_vec(), 1..=3).prop_map(|r| r.into_iter().collect())
    }

    fn desired() -> impl Strategy<Value = (Desired, Vec<String>)> {
        let org = (
            prop::collection::btree_map(prop::sample::select(EMAILS.to_vec()), roles(), 0..4),
            prop::sample::select(vec!["free", "pro"]),
            prop::sample::subsequence(vec!["seo", "files"], 0..=2),
            any::<prop::sample::Index>(),
        );
        (
            prop::sample::subsequence(SLUGS.to_vec(), 0..=4),
            prop::collection::vec(org, 4),
            prop::collection::vec(any::<Option<prop::sample::Index>>(), 4),
        )
            .prop_map(|(slugs, orgs, preferred)| {
                let orgs: Vec<DesiredOrg> = slugs
                    .iter()
                    .zip(orgs)
                    .map(|(s, (members, plan, features, id))| DesiredOrg {
                        id: Uuid::from_u128(id.index(1000) as u128),
                        slug: slug(s),
                        plan: plan.to_owned(),
                        features: features.into_iter().map(str::to_owned).collect(),
                        members: members.into_iter().map(|(e, r)| (email(e), r)).collect(),
                    })
                    .collect();
                let mut users: BTreeMap<Email, DesiredClaims> = BTreeMap::new();
                // Every known user, members or not.
                for (e, pick) in EMAILS.iter().zip(preferred) {
                    let claims = users.entry(email(e)).or_default();
                    claims.preferred_org = pick.map(|i| slug(SLUGS[i.index(SLUGS.len())]));
                }
                for org in &orgs {
                    for (e, r) in &org.members {
                        if let Some(claims) = users.get_mut(e) {
                            claims.org_memberships.insert(org.slug.clone(), r.clone());
                        }
                    }
                }
                (
                    Desired { orgs, users },
                    slugs.iter().map(|s| s.to_string()).collect(),
                )
            })
    }

    fn ids() -> impl Strategy<Value = BTreeSet<String>> {
        prop::sample::subsequence(
            vec![
                "id-a@x.io",
                "id-b@x.io",
                "id-c@x.io",
                "id-d@x.io",
                "id-ghost",
            ],
            0..=5,
        )
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
    }

    fn realm_roles() -> impl Strategy<Value = BTreeSet<String>> {
        prop::sample::subsequence(vec!["ORG_ADMIN", "ORG_USER", "wizbrand-admin"], 0..=2)
            .prop_map(|v| v.into_iter().map(str::to_owned).collect())
    }

    fn client_roles() -> impl Strategy<Value = BTreeMap<String, BTreeSet<String>>> {
        prop::collection::btree_map(
            prop::sample::select(vec!["realm-management", "wizbrand-api"]).prop_map(str::to_owned),
            prop::sample::subsequence(vec!["view-users", "ORG_ADMIN"], 0..=2)
                .prop_map(|v| v.into_iter().map(str::to_owned).collect()),
            0..2,
        )
    }

    fn attributes() -> impl Strategy<Value = Attributes> {
        prop::collection::btree_map(
            prop::sample::select(vec![
                ATTR_ORG_ID,
                ATTR_PLAN,
                ATTR_FEATURES,
                ATTR_ORG_MEMBERSHIPS,
                ATTR_PREFERRED_ORG,
                "other",
            ])
            .prop_map(str::to_owned),
            prop::collection::vec(
                prop::sample::select(vec![
                    "pro",
                    "seo",
                    "acme",
                    "{}",
                    r#"{"acme":["ORG_USER"]}"#,
                    "not json",
                    "00000000-0000-0000-0000-000000000001",
                ])
                .prop_map(str::to_owned),
                0..3,
            ),
            0..4,
        )
    }

    /// Whatever Keycloak may hold: some of the groups (and strays), children with and
    /// without role names, members by id (some unknown), users with odd attributes.
    fn actual() -> impl Strategy<Value = Actual> {
        let group = (
            attributes(),
            ids(),
            prop::collection::btree_map(
                prop::sample::select(vec!["ORG_ADMIN", "ORG_MANAGER", "ORG_USER", "EXTRA"]),
                (ids(), realm_roles(), client_roles()),
                0..4,
            ),
            realm_roles(),
            client_roles(),
        );
        let user = (attributes(), any::<bool>());
        (
            prop::collection::btree_map(
                prop::sample::select(vec!["acme", "beta", "gamma", "delta", "old"]),
                group,
                0..5,
            ),
            prop::collection::btree_map(prop::sample::select(EMAILS.to_vec()), user, 0..4),
        )
            .prop_map(|(groups, users)| Actual {
                org_groups: groups
                    .into_iter()
                    .map(
                        |(name, (attributes, members, children, realm_roles, client_roles))| {
                            ActualGroup {
                                id: format!("g-{name}"),
                                name: name.to_owned(),
                                attributes,
                                members,
                                children: children
                                    .into_iter()
                                    .map(|(child, (members, realm_roles, client_roles))| {
                                        ActualGroup {
                                            id: format!("g-{name}-{child}"),
                                            name: child.to_owned(),
                                            members,
                                            realm_roles,
                                            client_roles,
                                            ..ActualGroup::default()
                                        }
                                    })
                                    .collect(),
                                realm_roles,
                                client_roles,
                            }
                        },
                    )
                    .collect(),
                users: users
                    .into_iter()
                    .map(|(e, (attributes, with_email))| {
                        let id = format!("id-{e}");
                        let user = ActualUser {
                            id: id.clone(),
                            email: with_email.then(|| email(e)),
                            attributes,
                        };
                        (id, user)
                    })
                    .collect(),
            })
    }

    fn group_mut<'a>(actual: &'a mut Actual, id: &str) -> Option<&'a mut ActualGroup> {
        actual.org_groups.iter_mut().find_map(|g| {
            if g.id == id {
                Some(g)
            } else {
                g.children.iter_mut().find(|c| c.id == id)
            }
        })
    }

    /// The group an operation names by org and role; the plan only names groups that
    /// exist by then.
    fn group_by_ref<'a>(actual: &'a mut Actual, group: &GroupRef) -> &'a mut ActualGroup {
        let (slug, role) = match group {
            GroupRef::Org(s) => (s, None),
            GroupRef::Role(s, r) => (s, Some(r.as_str())),
        };
        let org = actual
            .org_groups
            .iter_mut()
            .find(|g| g.name == slug.as_str());
        let org = org.unwrap_or_else(|| panic!("no group {slug}"));
        match role {
            None => org,
            Some(role) => org
                .children
                .iter_mut()
                .find(|c| c.name == role)
                .unwrap_or_else(|| panic!("no group {slug}/{role}")),
        }
    }

    /// What Keycloak looks like after the plan's operations, in order.
    fn apply(plan: &Plan, mut actual: Actual) -> Actual {
        let user_id = |actual: &Actual, user: &UserRef| match user {
            UserRef::Existing(id) => id.clone(),
            UserRef::New(e) => actual
                .users
                .values()
                .find(|u| u.email.as_ref() == Some(e))
                .map(|u| u.id.clone())
                .unwrap_or_else(|| panic!("{e} was never created")),
        };
        for op in &plan.ops {
            match op {
                Op::CreateUser { email } => {
                    let id = format!("new-{email}");
                    actual.users.insert(
                        id.clone(),
                        ActualUser {
                            id,
                            email: Some(email.clone()),
                            attributes: Attributes::new(),
                        },
                    );
                }
                Op::CreateOrgGroup { slug, attributes } => actual.org_groups.push(ActualGroup {
                    id: format!("new-{slug}"),
                    name: slug.to_string(),
                    attributes: attributes.clone(),
                    ..ActualGroup::default()
                }),
                Op::UpdateOrgGroup {
                    group_id,
                    attributes,
                    ..
                } => {
                    if let Some(g) = group_mut(&mut actual, group_id) {
                        g.attributes = attributes.clone();
                    }
                }
                Op::CreateRoleGroup { slug, role } => {
                    let org = actual
                        .org_groups
                        .iter_mut()
                        .find(|g| g.name == slug.as_str());
                    let org = org.unwrap_or_else(|| panic!("no group {slug} for {role}"));
                    org.children.push(ActualGroup {
                        id: format!("new-{slug}-{role}"),
                        name: role.to_string(),
                        ..ActualGroup::default()
                    });
                }
                Op::AddMember { user, group, .. } => {
                    let id = user_id(&actual, user);
                    let target = group_by_ref(&mut actual, group);
                    target.members.insert(id);
                }
                Op::RemoveMember {
                    user_id, group_id, ..
                } => {
                    if let Some(g) = group_mut(&mut actual, group_id) {
                        g.members.remove(user_id);
                    }
                }
                Op::SetClaims { user, claims, .. } => {
                    let id = user_id(&actual, user);
                    if let Some(u) = actual.users.get_mut(&id) {
                        u.attributes = claims.apply_to(&u.attributes);
                    }
                }
                Op::DeleteGroup { group_id, .. } => {
                    actual.org_groups.retain(|g| &g.id != group_id);
                    for g in &mut actual.org_groups {
                        g.children.retain(|c| &c.id != group_id);
                    }
                }
                Op::MapRealmRoles { group, roles } => {
                    let target = group_by_ref(&mut actual, group);
                    target.realm_roles.extend(roles.iter().cloned());
                }
                Op::UnmapRealmRoles {
                    group_id, roles, ..
                } => {
                    if let Some(g) = group_mut(&mut actual, group_id) {
                        g.realm_roles.retain(|r| !roles.contains(r));
                    }
                }
                Op::UnmapClientRoles {
                    group_id,
                    client,
                    roles,
                    ..
                } => {
                    if let Some(g) = group_mut(&mut actual, group_id) {
                        if let Some(held) = g.client_roles.get_mut(client) {
                            held.retain(|r| !roles.contains(r));
                        }
                        g.client_roles.retain(|_, held| !held.is_empty());
                    }
                }
            }
        }
        actual
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn applying_a_plan_then_planning_again_plans_nothing(
            (desired, slugs) in desired(),
            actual in actual(),
            scoped in any::<bool>(),
        ) {
            let scope = if scoped {
                Scope::Orgs(slugs.iter().map(|s| slug(s)).collect())
            } else {
                Scope::All
            };
            let first = plan(&desired, &actual, &scope);
            let after = apply(&first, actual);
            let second = plan(&desired, &after, &scope);
            prop_assert_eq!(second.ops, vec![], "first plan: {:?}", first.ops);
        }
    }
}
