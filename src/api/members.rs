//! `/api/v1/orgs/{slug}/members…`: who belongs to an org, with which roles.

use actix_web::{HttpResponse, web};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, PageQuery, page, problem};
use crate::db;
use crate::domain::{Email, Role};
use crate::manage::authorized_org;
use crate::policy::OrgAction;

pub async fn list(
    caller: Caller,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
    q: web::Query<PageQuery>,
) -> ApiResult {
    let paging = q.checked().map_err(problem)?;
    let (org, _) = authorized_org(&pool, &caller.principal, &slug, OrgAction::ReadMembers)
        .await
        .map_err(problem)?;
    let (items, total) = db::members::list(&pool, org.id, paging.0, paging.1)
        .await
        .map_err(problem)?;
    Ok(page(items, total, paging))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPut {
    #[schemars(length(min = 1))]
    pub roles: Vec<Role>,
}

/// A member's roles in the org, as set.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MemberRoles {
    pub email: Email,
    pub roles: Vec<Role>,
}

pub async fn put(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    body: web::Json<MemberPut>,
) -> ApiResult {
    let (slug, email) = path.into_inner();
    let change = crate::manage::members::put(&pool, &caller.principal, &slug, &email, &body.roles)
        .await
        .map_err(problem)?;
    let member = MemberRoles {
        email: change.email,
        roles: change.roles,
    };
    Ok(if change.added {
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
    let (slug, email) = path.into_inner();
    crate::manage::members::remove(&pool, &caller.principal, &slug, &email)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_bodies_name_known_roles_only() {
        assert!(serde_json::from_str::<MemberPut>(r#"{"roles":["OWNER"]}"#).is_err());
        assert!(serde_json::from_str::<MemberPut>(r#"{"roles":[],"x":1}"#).is_err());
    }
}
