//! `/api/v1/orgs/{slug}/members…`: who belongs to an org, with which roles.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::auth::Caller;
use super::orgs::{authorized_org, parse_roles};
use super::{ApiResult, PageQuery, enforce, page, problem};
use crate::db;
use crate::db::audit::Entry;
use crate::domain::{Email, Role};
use crate::error::AppError;
use crate::policy::{self, OrgAction};

pub async fn list(
    caller: Caller,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
    q: web::Query<PageQuery>,
) -> ApiResult {
    let paging = q.checked().map_err(problem)?;
    let (org, _) = authorized_org(&pool, &caller, &slug, OrgAction::ReadMembers)
        .await
        .map_err(problem)?;
    let (items, total) = db::members::list(&pool, org.id, paging.0, paging.1)
        .await
        .map_err(problem)?;
    Ok(page(items, total, paging))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPut {
    pub roles: Vec<Role>,
}

/// Roles as stored: most privileged first, no repeats.
pub fn canonical_roles(roles: &[Role]) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| roles.contains(r))
        .collect()
}

fn strings(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}

const LAST_ADMIN: &str = "an org keeps at least one ORG_ADMIN: make someone else ORG_ADMIN first";

pub async fn put(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    body: web::Json<MemberPut>,
) -> ApiResult {
    let (slug, raw_email) = path.into_inner();
    let (org, access) = authorized_org(&pool, &caller, &slug, OrgAction::ReadMembers)
        .await
        .map_err(problem)?;
    let email = Email::parse_new(&raw_email)
        .map_err(|e| problem(AppError::Unprocessable(e.to_string())))?;
    let after = canonical_roles(&body.roles);
    if after.is_empty() {
        return Err(problem(AppError::Unprocessable(
            "roles must hold at least one of ORG_ADMIN, ORG_MANAGER, ORG_USER; DELETE removes a member"
                .to_owned(),
        )));
    }
    let mut tx = pool.begin().await.map_err(problem)?;
    // Lock the org: concurrent changes cannot both take away "the last" admin.
    db::orgs::lock_by_slug(&mut tx, &org.slug)
        .await
        .map_err(problem)?
        .ok_or_else(|| problem(AppError::NotFound))?;
    let existing = db::members::user_id(&mut tx, email.as_str())
        .await
        .map_err(problem)?;
    let before = match existing {
        Some(user) => db::members::roles_of(&mut tx, org.id, user)
            .await
            .map_err(problem)?
            .map(|r| canonical_roles(&parse_roles(&r))),
        None => None,
    };
    let before_roles = before.clone().unwrap_or_default();
    enforce(policy::may_change_member(&access, &before_roles, &after)).map_err(problem)?;
    let member = json!({"email": email, "roles": strings(&after)});
    if before.as_deref() == Some(after.as_slice()) {
        // Idempotent: the same roles again change nothing and write nothing.
        return Ok(HttpResponse::Ok().json(member));
    }
    let admins = db::members::count_admins(&mut tx, org.id)
        .await
        .map_err(problem)?;
    if !policy::keeps_an_admin(admins, &before_roles, &after) {
        return Err(problem(AppError::Conflict(LAST_ADMIN.to_owned())));
    }
    let (user, _) = db::members::ensure_user(&mut tx, email.as_str())
        .await
        .map_err(problem)?;
    db::members::upsert(&mut tx, org.id, user, &strings(&after))
        .await
        .map_err(problem)?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: caller.actor(),
            action: "member.put",
            target: &format!("{}/{}", org.slug, email),
            org_id: Some(org.id),
            before: before
                .as_ref()
                .map(|r| json!({"email": email, "roles": strings(r)})),
            after: Some(member.clone()),
        },
    )
    .await
    .map_err(problem)?;
    tx.commit().await.map_err(problem)?;
    Ok(if before.is_none() {
        HttpResponse::Created().json(member)
    } else {
        HttpResponse::Ok().json(member)
    })
}

pub async fn delete(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, raw_email) = path.into_inner();
    let (org, access) = authorized_org(&pool, &caller, &slug, OrgAction::ReadMembers)
        .await
        .map_err(problem)?;
    let email = Email::parse(&raw_email).map_err(|_| problem(AppError::NotFound))?;
    let mut tx = pool.begin().await.map_err(problem)?;
    db::orgs::lock_by_slug(&mut tx, &org.slug)
        .await
        .map_err(problem)?
        .ok_or_else(|| problem(AppError::NotFound))?;
    let user = db::members::user_id(&mut tx, email.as_str())
        .await
        .map_err(problem)?
        .ok_or_else(|| problem(AppError::NotFound))?;
    let before = db::members::roles_of(&mut tx, org.id, user)
        .await
        .map_err(problem)?
        .map(|r| canonical_roles(&parse_roles(&r)))
        .ok_or_else(|| problem(AppError::NotFound))?;
    enforce(policy::may_change_member(&access, &before, &[])).map_err(problem)?;
    let admins = db::members::count_admins(&mut tx, org.id)
        .await
        .map_err(problem)?;
    if !policy::keeps_an_admin(admins, &before, &[]) {
        return Err(problem(AppError::Conflict(LAST_ADMIN.to_owned())));
    }
    db::members::remove(&mut tx, org.id, user)
        .await
        .map_err(problem)?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: caller.actor(),
            action: "member.delete",
            target: &format!("{}/{}", org.slug, email),
            org_id: Some(org.id),
            before: Some(json!({"email": email, "roles": strings(&before)})),
            after: None,
        },
    )
    .await
    .map_err(problem)?;
    tx.commit().await.map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
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
        assert!(serde_json::from_str::<MemberPut>(r#"{"roles":["OWNER"]}"#).is_err());
        assert!(serde_json::from_str::<MemberPut>(r#"{"roles":[],"x":1}"#).is_err());
    }
}
