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
}
