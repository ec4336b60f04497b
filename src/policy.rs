//! Who may do what, decided by plain functions over plain data. The gate, the API and
//! the admin UI ask the same questions here.

use crate::domain::Role;

/// The highest role held, if any.
pub fn highest(roles: &[Role]) -> Option<Role> {
    roles.iter().copied().max()
}

/// Roles are ranked: holding ORG_ADMIN satisfies a minimum of ORG_USER.
pub fn satisfies(roles: &[Role], minimum: Role) -> bool {
    highest(roles).is_some_and(|r| r >= minimum)
}

/// Who may change which roles of an org's members.
pub fn may_grant(actor_is_platform_admin: bool, actor_roles: &[Role], granted: &[Role]) -> bool {
    if actor_is_platform_admin || actor_roles.contains(&Role::Admin) {
        return true;
    }
    // ORG_MANAGER may add and remove plain ORG_USERs, nothing more.
    actor_roles.contains(&Role::Manager) && granted.iter().all(|r| *r == Role::User)
}

/// What the caller is to one org, read from Postgres for this request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrgAccess {
    pub platform_admin: bool,
    /// The caller's roles in the org; empty when not a member.
    pub roles: Vec<Role>,
}

/// How a request about an org is answered when it is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// A member asking for more than their roles give.
    Forbidden,
    /// Not a member: answer as if the org did not exist.
    Hidden,
}

/// Things one may do to an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgAction {
    /// Read the org and its entitlements.
    Read,
    /// List members and their roles.
    ReadMembers,
    /// Change the display name.
    Rename,
    /// Change plan, features or status.
    ChangePlan,
    /// Delete the org.
    Delete,
    /// Create and revoke the org's SCIM tokens, change its SCIM settings.
    ManageScim,
    /// Claim and remove the org's email domains, choose what each offers.
    ManageDomains,
    /// Connect the org's own identity provider (single sign-on).
    ManageSso,
}

impl OrgAction {
    /// The least role that allows the action; `None` for platform admins only.
    fn minimum(self) -> Option<Role> {
        match self {
            OrgAction::Read => Some(Role::User),
            OrgAction::ReadMembers => Some(Role::Manager),
            OrgAction::Rename
            | OrgAction::ManageScim
            | OrgAction::ManageDomains
            | OrgAction::ManageSso => Some(Role::Admin),
            OrgAction::ChangePlan | OrgAction::Delete => None,
        }
    }
}

/// Why a member is refused `action`, in a sentence that names who can do it. Only the
/// platform's actions are refused to an ORG_ADMIN, so nobody is told to ask a role
/// they hold.
pub fn refusal(action: OrgAction) -> &'static str {
    match action {
        OrgAction::Read => "Only members of this organization can see it.",
        OrgAction::ReadMembers => {
            "Only the organization's ORG_MANAGERs and ORG_ADMINs can see and change its \
             members; ask one of its ORG_ADMINs if you need to."
        }
        OrgAction::Rename => {
            "Only the organization's ORG_ADMINs can change this; ask one of them if you \
             need to."
        }
        OrgAction::ManageScim => {
            "Only the organization's ORG_ADMINs can manage its SCIM provisioning; ask one \
             of them if you need to."
        }
        OrgAction::ManageDomains => {
            "Only the organization's ORG_ADMINs can claim its email domains and choose who \
             may join through them; ask one of them if you need to."
        }
        OrgAction::ManageSso => {
            "Only the organization's ORG_ADMINs can connect its single sign-on; ask one of \
             them if you need to."
        }
        OrgAction::ChangePlan => {
            "Only platform administrators can change an organization's plan, features or \
             status."
        }
        OrgAction::Delete => "Only platform administrators can delete an organization.",
    }
}

/// Why [`platform_only`] refuses.
pub const PLATFORM_ONLY: &str = "Only platform administrators can do this.";

/// Why [`may_change_member`] refuses a member who may see the members (an ORG_MANAGER).
pub const MANAGERS_CHANGE_USERS_ONLY: &str = "An ORG_MANAGER can add and remove ORG_USERs \
     only; changing ORG_MANAGER or ORG_ADMIN roles needs one of the organization's ORG_ADMINs.";

/// May the caller do `action` to the org? Non-members are told nothing (`Hidden`).
pub fn org_verdict(access: &OrgAccess, action: OrgAction) -> Verdict {
    if access.platform_admin {
        return Verdict::Allow;
    }
    if access.roles.is_empty() {
        return Verdict::Hidden;
    }
    match action.minimum() {
        Some(minimum) if satisfies(&access.roles, minimum) => Verdict::Allow,
        _ => Verdict::Forbidden,
    }
}

/// May the caller change a member's roles from `before` to `after` (empty = not a
/// member)? ORG_MANAGERs may only add or take away ORG_USER.
pub fn may_change_member(access: &OrgAccess, before: &[Role], after: &[Role]) -> Verdict {
    match org_verdict(access, OrgAction::ReadMembers) {
        Verdict::Allow => {}
        other => return other,
    }
    let changed: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| before.contains(r) != after.contains(r))
        .collect();
    if may_grant(access.platform_admin, &access.roles, &changed) {
        Verdict::Allow
    } else {
        Verdict::Forbidden
    }
}

/// An org always keeps at least one ORG_ADMIN: may a member holding `before` now hold
/// `after`, given how many admins the org has?
pub fn keeps_an_admin(admins_now: i64, before: &[Role], after: &[Role]) -> bool {
    let losing = before.contains(&Role::Admin) && !after.contains(&Role::Admin);
    !losing || admins_now > 1
}

/// Creating and listing all orgs, apps changes, sync control: platform admins only.
pub fn platform_only(platform_admin: bool) -> Verdict {
    if platform_admin {
        Verdict::Allow
    } else {
        Verdict::Forbidden
    }
}

/// The API client role that lets a service client (another proxy) read any org's
/// entitlements.
pub const ENTITLEMENTS_READER: &str = "entitlements-reader";

/// Entitlements: the org's members, platform admins, and service clients holding
/// [`ENTITLEMENTS_READER`].
pub fn entitlements_verdict(access: &OrgAccess, entitlements_reader: bool) -> Verdict {
    if entitlements_reader {
        Verdict::Allow
    } else {
        org_verdict(access, OrgAction::Read)
    }
}

/// Usage limits of a plan; `null` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Quotas {
    pub members: Option<u32>,
    pub apps: Option<u32>,
    pub storage_gb: Option<u32>,
}

/// The fixed quota table (docs/api.md, "Quotas"). Unknown plans get the `free` quotas.
pub fn quotas(plan: &str) -> Quotas {
    match plan {
        "pro" => Quotas {
            members: Some(50),
            apps: Some(10),
            storage_gb: Some(100),
        },
        "enterprise" => Quotas {
            members: None,
            apps: None,
            storage_gb: None,
        },
        _ => Quotas {
            members: Some(5),
            apps: Some(1),
            storage_gb: Some(5),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_higher_role_satisfies_a_lower_minimum() {
        assert!(satisfies(&[Role::Admin], Role::User));
        assert!(satisfies(&[Role::User, Role::Manager], Role::Manager));
        assert!(!satisfies(&[Role::User], Role::Manager));
        assert!(!satisfies(&[], Role::User));
    }

    #[test]
    fn managers_grant_only_the_user_role() {
        assert!(may_grant(false, &[Role::Manager], &[Role::User]));
        assert!(!may_grant(false, &[Role::Manager], &[Role::Manager]));
        assert!(!may_grant(false, &[Role::User], &[Role::User]));
        assert!(may_grant(false, &[Role::Admin], &[Role::Admin]));
        assert!(may_grant(true, &[], &[Role::Admin]));
    }

    fn access(platform_admin: bool, roles: &[Role]) -> OrgAccess {
        OrgAccess {
            platform_admin,
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn org_actions_follow_roles_and_hide_orgs_from_strangers() {
        use OrgAction::*;
        use Verdict::*;
        let table: [(OrgAccess, [Verdict; 5]); 5] = [
            (access(true, &[]), [Allow, Allow, Allow, Allow, Allow]),
            (
                access(false, &[Role::Admin]),
                [Allow, Allow, Allow, Forbidden, Forbidden],
            ),
            (
                access(false, &[Role::Manager]),
                [Allow, Allow, Forbidden, Forbidden, Forbidden],
            ),
            (
                access(false, &[Role::User]),
                [Allow, Forbidden, Forbidden, Forbidden, Forbidden],
            ),
            (access(false, &[]), [Hidden, Hidden, Hidden, Hidden, Hidden]),
        ];
        for (who, expected) in table {
            for (action, want) in [Read, ReadMembers, Rename, ChangePlan, Delete]
                .into_iter()
                .zip(expected)
            {
                assert_eq!(org_verdict(&who, action), want, "{who:?} {action:?}");
            }
        }
    }

    #[test]
    fn scim_tokens_are_org_admins_business() {
        use Verdict::*;
        for (who, want) in [
            (access(true, &[]), Allow),
            (access(false, &[Role::Admin]), Allow),
            (access(false, &[Role::Manager]), Forbidden),
            (access(false, &[Role::User]), Forbidden),
            (access(false, &[]), Hidden),
        ] {
            assert_eq!(org_verdict(&who, OrgAction::ManageScim), want, "{who:?}");
        }
    }

    #[test]
    fn managers_change_only_the_user_role_of_members() {
        let manager = access(false, &[Role::Manager]);
        assert_eq!(
            may_change_member(&manager, &[], &[Role::User]),
            Verdict::Allow
        );
        assert_eq!(
            may_change_member(&manager, &[Role::User], &[]),
            Verdict::Allow
        );
        assert_eq!(
            may_change_member(&manager, &[Role::User], &[Role::User]),
            Verdict::Allow
        );
        assert_eq!(
            may_change_member(&manager, &[], &[Role::Manager]),
            Verdict::Forbidden
        );
        assert_eq!(
            may_change_member(&manager, &[Role::Admin], &[]),
            Verdict::Forbidden
        );
        assert_eq!(
            may_change_member(&access(false, &[Role::Admin]), &[Role::Admin], &[]),
            Verdict::Allow
        );
        assert_eq!(
            may_change_member(&access(false, &[Role::User]), &[], &[Role::User]),
            Verdict::Forbidden
        );
        assert_eq!(
            may_change_member(&access(false, &[]), &[], &[Role::User]),
            Verdict::Hidden
        );
        assert_eq!(
            may_change_member(&access(true, &[]), &[], &[Role::Admin]),
            Verdict::Allow
        );
    }

    #[test]
    fn the_last_admin_stays() {
        assert!(!keeps_an_admin(1, &[Role::Admin], &[]));
        assert!(!keeps_an_admin(1, &[Role::Admin], &[Role::User]));
        assert!(keeps_an_admin(2, &[Role::Admin], &[]));
        assert!(keeps_an_admin(
            1,
            &[Role::Admin],
            &[Role::Admin, Role::User]
        ));
        assert!(keeps_an_admin(1, &[Role::User], &[]));
    }

    #[test]
    fn unknown_plans_get_free_quotas() {
        assert_eq!(quotas("nonesuch"), quotas("free"));
        assert_eq!(quotas("enterprise").members, None);
        assert_eq!(platform_only(false), Verdict::Forbidden);
        assert_eq!(
            entitlements_verdict(&access(false, &[]), true),
            Verdict::Allow
        );
        assert_eq!(
            entitlements_verdict(&access(false, &[]), false),
            Verdict::Hidden
        );
    }
}
