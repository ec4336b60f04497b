//! The Postgres side of the sync: what Keycloak should hold (the desired state) and
//! the member rows with the accounts they are linked to.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

use super::SyncError;
use super::accounts;
use super::plan::{Desired, DesiredClaims, DesiredOrg, Scope};
use crate::db::sync_state;
use crate::domain::{Email, OrgSlug, Role};

/// Postgres's view, limited to the scope.
pub(super) async fn load_desired(pool: &PgPool, scope: &Scope) -> Result<Desired, SyncError> {
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
pub(super) async fn load_members(
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

/// A digest of the desired state: equal digests, equal states. (`Desired` holds only
/// ordered collections, so its debug text is canonical; were the format to change, the
/// next run would read Keycloak in full once.)
pub(super) fn desired_digest(desired: &Desired, members: &[accounts::Member]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{desired:?}{members:?}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
