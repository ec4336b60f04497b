//! The changes people make to orgs and members, with their checks and audit entries.
//! The JSON API and the admin pages both call these, so a rule holds the same on both.
//! Who may do what is decided in [`crate::policy`]; the SQL lives in [`crate::db`].

pub(crate) mod domains;
pub(crate) mod invitations;
pub(crate) mod members;
pub(crate) mod orgs;
pub(crate) mod scim;
pub(crate) mod seats;
pub mod sso;
pub(crate) mod sync;

use serde_json::json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::db;
use crate::db::audit::Entry;
use crate::db::orgs::Org;
use crate::domain::Principal;
use crate::domain::{OrgSlug, Role};
use crate::error::AppError;
use crate::policy::{self, OrgAccess, OrgAction, Verdict};

/// Who is written to the audit log.
pub fn actor_name(who: &Principal) -> db::audit::Actor<'_> {
    db::audit::Actor {
        sub: &who.sub,
        email: who.email.as_deref(),
    }
}

/// A policy verdict as an error: strangers learn nothing (404), members are told no (403).
pub fn enforce(verdict: Verdict) -> Result<(), AppError> {
    enforce_because(verdict, "Your roles do not allow this.")
}

/// [`enforce`], saying `why` to a member refused.
pub fn enforce_because(verdict: Verdict, why: &str) -> Result<(), AppError> {
    match verdict {
        Verdict::Allow => Ok(()),
        Verdict::Forbidden => Err(AppError::Forbidden(why.to_owned())),
        Verdict::Hidden => Err(AppError::NotFound),
    }
}

/// The platform's own actions (creating orgs, the app registry, the sync).
pub fn platform_only(platform_admin: bool) -> Result<(), AppError> {
    enforce_because(policy::platform_only(platform_admin), policy::PLATFORM_ONLY)
}

pub fn parse_roles(raw: &[String]) -> Vec<Role> {
    raw.iter().filter_map(|r| r.parse().ok()).collect()
}

/// Someone's roles in an org, from Postgres (never from a token's claims).
pub async fn access(pool: &PgPool, who: &Principal, org: &Org) -> Result<OrgAccess, AppError> {
    let roles = db::members::roles_in(pool, org.id, &who.sub).await?;
    Ok(OrgAccess {
        platform_admin: who.platform_admin,
        roles: parse_roles(&roles),
    })
}

/// The org `slug` names, if `who` may do `action` to it. Malformed slugs, unknown orgs
/// and orgs `who` does not belong to are all "not found".
pub async fn authorized_org(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    action: OrgAction,
) -> Result<(Org, OrgAccess), AppError> {
    let slug = OrgSlug::parse(slug).map_err(|_| AppError::NotFound)?;
    let org = db::orgs::by_slug(pool, slug.as_str())
        .await?
        .ok_or(AppError::NotFound)?;
    let access = access(pool, who, &org).await?;
    enforce_because(
        policy::org_verdict(&access, action),
        policy::refusal(action),
    )?;
    Ok((org, access))
}

/// Records the change's audit entry in its transaction and commits both.
pub async fn commit_audited(
    mut tx: Transaction<'_, Postgres>,
    entry: Entry<'_>,
) -> Result<(), AppError> {
    db::audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(())
}

/// The user row of `who` for a change that makes them a member: the row linked to
/// their account (a person is their Keycloak `sub`), else the row of their verified
/// `email` (made if missing), linked to the account now with an `account.link` audit
/// entry naming `proof`. That address's row linked to another account is a conflict.
pub async fn own_user_row(
    conn: &mut PgConnection,
    who: &Principal,
    email: &str,
    proof: &str,
) -> Result<Uuid, AppError> {
    if let Some(user) = db::invitations::user_of_account(&mut *conn, &who.sub).await? {
        return Ok(user);
    }
    let user = match db::invitations::user_of_email_for_update(&mut *conn, email).await? {
        Some((_, Some(_))) => {
            return Err(AppError::Conflict(format!(
                "{email} belongs to another account here; ask a platform admin"
            )));
        }
        Some((user, None)) => user,
        None => db::members::ensure_user(&mut *conn, email).await?.0,
    };
    db::invitations::link_account(&mut *conn, user, &who.sub).await?;
    db::audit::record(
        conn,
        Entry {
            actor: actor_name(who),
            action: "account.link",
            target: email,
            org_id: None,
            before: None,
            after: Some(json!({"keycloak_id": who.sub, "proof": proof})),
        },
    )
    .await?;
    Ok(user)
}
