//! Adding members, changing their roles, removing them.

use serde_json::json;
use sqlx::PgPool;

use super::{actor_name, authorized_org, commit_audited, enforce_because, parse_roles};
use crate::db;
use crate::db::audit::Entry;
use crate::domain::Principal;
use crate::domain::{Email, Role};
use crate::error::AppError;
use crate::policy::{self, OrgAction};

pub const LAST_ADMIN: &str =
    "an org keeps at least one ORG_ADMIN: make someone else ORG_ADMIN first";

/// Roles as stored: most privileged first, no repeats.
pub fn canonical_roles(roles: &[Role]) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| roles.contains(r))
        .collect()
}

pub fn strings(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}

/// What [`put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub email: Email,
    pub roles: Vec<Role>,
    /// The person was not a member before.
    pub added: bool,
    /// Anything was written (the same roles again write nothing).
    pub changed: bool,
}

/// Sets a member's roles in the org `slug`, adding them (and their user row) if needed.
pub async fn put(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    raw_email: &str,
    roles: &[Role],
) -> Result<MemberChange, AppError> {
    let (org, access) = authorized_org(pool, who, slug, OrgAction::ReadMembers).await?;
    // New members are held to what Keycloak will accept; stored ones are read leniently.
    let email = Email::parse_new(raw_email).map_err(|e| AppError::Unprocessable(e.to_string()))?;
    let after = canonical_roles(roles);
    if after.is_empty() {
        return Err(AppError::Unprocessable(
            "roles must hold at least one of ORG_ADMIN, ORG_MANAGER, ORG_USER; removing a member is its own action"
                .to_owned(),
        ));
    }
    let mut tx = pool.begin().await?;
    // Lock the org: concurrent changes cannot both take away "the last" admin, nor both
    // take the last seat.
    let locked = db::orgs::lock_by_slug(&mut tx, &org.slug)
        .await?
        .ok_or(AppError::NotFound)?;
    let before = match db::members::user_id(&mut tx, email.as_str()).await? {
        Some(user) => db::members::roles_of(&mut tx, org.id, user)
            .await?
            .map(|r| canonical_roles(&parse_roles(&r))),
        None => None,
    };
    let before_roles = before.clone().unwrap_or_default();
    enforce_because(
        policy::may_change_member(&access, &before_roles, &after),
        policy::MANAGERS_CHANGE_USERS_ONLY,
    )?;
    let change = MemberChange {
        email: email.clone(),
        roles: after.clone(),
        added: before.is_none(),
        changed: before.as_deref() != Some(after.as_slice()),
    };
    if !change.changed {
        return Ok(change);
    }
    let admins = db::members::count_admins(&mut tx, org.id).await?;
    if !policy::keeps_an_admin(admins, &before_roles, &after) {
        return Err(AppError::Conflict(LAST_ADMIN.to_owned()));
    }
    if change.added {
        // A new member takes a seat (none if their invitation holds one already).
        super::seats::take(&mut tx, &locked, &[email.as_str()]).await?;
    }
    let (user, _) = db::members::ensure_user(&mut tx, email.as_str()).await?;
    db::members::upsert(&mut tx, org.id, user, &strings(&after)).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "member.put",
            target: &format!("{}/{}", org.slug, email),
            org_id: Some(org.id),
            before: before
                .as_ref()
                .map(|r| json!({"email": email, "roles": strings(r)})),
            after: Some(json!({"email": email, "roles": strings(&after)})),
        },
    )
    .await?;
    Ok(change)
}

/// Removes a member from the org `slug` (never the last ORG_ADMIN).
pub async fn remove(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    raw_email: &str,
) -> Result<(), AppError> {
    let (org, access) = authorized_org(pool, who, slug, OrgAction::ReadMembers).await?;
    let email = Email::parse(raw_email).map_err(|_| AppError::NotFound)?;
    let mut tx = pool.begin().await?;
    db::orgs::lock_by_slug(&mut tx, &org.slug)
        .await?
        .ok_or(AppError::NotFound)?;
    let user = db::members::user_id(&mut tx, email.as_str())
        .await?
        .ok_or(AppError::NotFound)?;
    let before = db::members::roles_of(&mut tx, org.id, user)
        .await?
        .map(|r| canonical_roles(&parse_roles(&r)))
        .ok_or(AppError::NotFound)?;
    enforce_because(
        policy::may_change_member(&access, &before, &[]),
        policy::MANAGERS_CHANGE_USERS_ONLY,
    )?;
    let admins = db::members::count_admins(&mut tx, org.id).await?;
    if !policy::keeps_an_admin(admins, &before, &[]) {
        return Err(AppError::Conflict(LAST_ADMIN.to_owned()));
    }
    db::members::remove(&mut tx, org.id, user).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "member.delete",
            target: &format!("{}/{}", org.slug, email),
            org_id: Some(org.id),
            before: Some(json!({"email": email, "roles": strings(&before)})),
            after: None,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_stored_most_privileged_first_once() {
        assert_eq!(
            canonical_roles(&[Role::User, Role::Admin, Role::User]),
            vec![Role::Admin, Role::User]
        );
    }
}
