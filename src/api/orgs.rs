//! `/api/v1/me`, `/api/v1/orgs…`: thin handlers; decisions live in `crate::policy`.

use actix_web::{HttpResponse, web};
use schemars::JsonSchema;
use serde::Serialize;
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, PageQuery, page, problem};
use crate::db;
use crate::domain::OrgSlug;
use crate::error::AppError;
use crate::manage::orgs::{OrgCreate, OrgPatch};
use crate::manage::{access, authorized_org, enforce};
use crate::policy::{self, OrgAction, Quotas};

/// The caller: identity and memberships from Postgres.
#[derive(Serialize, JsonSchema)]
pub struct Me {
    sub: String,
    email: Option<String>,
    platform_admin: bool,
    memberships: Vec<db::members::MyMembership>,
}

pub async fn me(caller: Caller, pool: web::Data<PgPool>) -> ApiResult {
    let memberships = db::members::of_user(&pool, caller.sub())
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(Me {
        sub: caller.principal.sub.clone(),
        email: caller.principal.email.clone(),
        platform_admin: caller.platform_admin(),
        memberships,
    }))
}

pub async fn list(caller: Caller, pool: web::Data<PgPool>, q: web::Query<PageQuery>) -> ApiResult {
    let paging = q.checked().map_err(problem)?;
    let (items, total) = if caller.platform_admin() {
        db::orgs::list_all(&pool, paging.0, paging.1).await
    } else {
        db::orgs::list_for(&pool, caller.sub(), paging.0, paging.1).await
    }
    .map_err(problem)?;
    Ok(page(items, total, paging))
}

pub async fn create(
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<OrgCreate>,
) -> ApiResult {
    let org = crate::manage::orgs::create(&pool, &caller.principal, &body)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Created().json(org))
}

pub async fn get(caller: Caller, pool: web::Data<PgPool>, slug: web::Path<String>) -> ApiResult {
    let (org, _) = authorized_org(&pool, &caller.principal, &slug, OrgAction::Read)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(org))
}

pub async fn update(
    caller: Caller,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
    body: web::Json<OrgPatch>,
) -> ApiResult {
    let org = crate::manage::orgs::update(&pool, &caller.principal, &slug, &body)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(org))
}

pub async fn delete(caller: Caller, pool: web::Data<PgPool>, slug: web::Path<String>) -> ApiResult {
    crate::manage::orgs::delete(&pool, &caller.principal, &slug)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, JsonSchema)]
pub struct Entitlements {
    slug: String,
    plan: String,
    #[schemars(extend("enum" = ["active", "suspended"]))]
    status: String,
    features: Vec<String>,
    quotas: Quotas,
}

pub async fn entitlements(
    caller: Caller,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> ApiResult {
    let slug = OrgSlug::parse(&slug).map_err(|_| problem(AppError::NotFound))?;
    let org = db::orgs::by_slug(&pool, slug.as_str())
        .await
        .map_err(problem)?
        .ok_or_else(|| problem(AppError::NotFound))?;
    let access = access(&pool, &caller.principal, &org)
        .await
        .map_err(problem)?;
    let reader = caller.has_api_role(policy::ENTITLEMENTS_READER);
    enforce(policy::entitlements_verdict(&access, reader)).map_err(problem)?;
    Ok(HttpResponse::Ok().json(Entitlements {
        quotas: policy::quotas(&org.plan),
        slug: org.slug,
        plan: org.plan,
        status: org.status,
        features: org.features,
    }))
}
