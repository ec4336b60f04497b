//! `/api/v1/apps…`: the apps wizbrand guards. Anyone signed in reads; platform admins write.

use actix_web::{HttpResponse, web};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, PageQuery, page, problem};
use crate::db;
use crate::db::audit::Entry;
use crate::domain::Role;
use crate::domain::rules::{FEATURE_PATTERN, HOST_PATTERN, SLUG_PATTERN};
use crate::error::AppError;

pub async fn list(_caller: Caller, pool: web::Data<PgPool>, q: web::Query<PageQuery>) -> ApiResult {
    let paging = q.checked().map_err(problem)?;
    let (items, total) = db::apps::list(&pool, paging.0, paging.1)
        .await
        .map_err(problem)?;
    Ok(page(items, total, paging))
}

pub async fn get(_caller: Caller, pool: web::Data<PgPool>, key: web::Path<String>) -> ApiResult {
    let app = db::apps::get(&pool, &key)
        .await
        .map_err(problem)?
        .ok_or_else(|| problem(AppError::NotFound))?;
    Ok(HttpResponse::Ok().json(app))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppCreate {
    #[schemars(pattern(SLUG_PATTERN))]
    pub key: String,
    #[schemars(length(min = 1))]
    pub name: String,
    /// e.g. `{org}.files.wizbrand.localhost`
    #[schemars(pattern(HOST_PATTERN))]
    pub host_pattern: String,
    #[schemars(pattern(FEATURE_PATTERN))]
    pub required_feature: String,
    #[serde(default = "user")]
    pub min_role: Role,
    /// Hand the app the caller's `Authorization` header (default: the gate drops a
    /// Bearer token it consumed).
    #[serde(default)]
    pub pass_authorization: bool,
}

fn user() -> Role {
    Role::User
}

pub async fn create(
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<AppCreate>,
) -> ApiResult {
    crate::manage::platform_only(caller.platform_admin()).map_err(problem)?;
    let mut tx = pool.begin().await.map_err(problem)?;
    let app = db::apps::insert(
        &mut tx,
        &body.key,
        body.name.trim(),
        &body.host_pattern,
        &body.required_feature,
        body.min_role.as_str(),
        body.pass_authorization,
    )
    .await
    .map_err(problem)?;
    crate::manage::commit_audited(
        tx,
        Entry {
            actor: caller.actor(),
            action: "app.create",
            target: &app.key,
            org_id: None,
            before: None,
            after: Some(json!(app)),
        },
    )
    .await
    .map_err(problem)?;
    Ok(HttpResponse::Created().json(app))
}

/// A change to an app; a field left out (or `null`) is left as it is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppPatch {
    #[schemars(length(min = 1))]
    pub name: Option<String>,
    #[schemars(pattern(HOST_PATTERN))]
    pub host_pattern: Option<String>,
    #[schemars(pattern(FEATURE_PATTERN))]
    pub required_feature: Option<String>,
    pub min_role: Option<Role>,
    pub pass_authorization: Option<bool>,
}

pub async fn update(
    caller: Caller,
    pool: web::Data<PgPool>,
    key: web::Path<String>,
    body: web::Json<AppPatch>,
) -> ApiResult {
    crate::manage::platform_only(caller.platform_admin()).map_err(problem)?;
    let mut tx = pool.begin().await.map_err(problem)?;
    let before = db::apps::lock(&mut tx, &key)
        .await
        .map_err(problem)?
        .ok_or_else(|| problem(AppError::NotFound))?;
    let after = db::apps::update(
        &mut tx,
        &key,
        body.name.as_deref().map(str::trim),
        body.host_pattern.as_deref(),
        body.required_feature.as_deref(),
        body.min_role.map(Role::as_str),
        body.pass_authorization,
    )
    .await
    .map_err(problem)?;
    crate::manage::commit_audited(
        tx,
        Entry {
            actor: caller.actor(),
            action: "app.update",
            target: &after.key,
            org_id: None,
            before: Some(json!(before)),
            after: Some(json!(after)),
        },
    )
    .await
    .map_err(problem)?;
    Ok(HttpResponse::Ok().json(after))
}

pub async fn delete(caller: Caller, pool: web::Data<PgPool>, key: web::Path<String>) -> ApiResult {
    crate::manage::platform_only(caller.platform_admin()).map_err(problem)?;
    let mut tx = pool.begin().await.map_err(problem)?;
    let before = db::apps::lock(&mut tx, &key)
        .await
        .map_err(problem)?
        .ok_or_else(|| problem(AppError::NotFound))?;
    db::apps::delete(&mut tx, &key).await.map_err(problem)?;
    crate::manage::commit_audited(
        tx,
        Entry {
            actor: caller.actor(),
            action: "app.delete",
            target: &before.key,
            org_id: None,
            before: Some(json!(before)),
            after: None,
        },
    )
    .await
    .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}
