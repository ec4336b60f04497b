//! `/api/v1/sync…`: ask for a sync, read the journal (platform admins).

use actix_web::{HttpResponse, web};
use schemars::JsonSchema;
use serde::Serialize;
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, PageQuery, page, problem};
use crate::db;
use crate::sync::scheduler::SyncHandle;

/// A run was asked for; the runner does it when the current one is done.
#[derive(Serialize, JsonSchema)]
pub struct SyncRequested {
    requested: bool,
    #[schemars(extend("enum" = ["all"]))]
    scope: &'static str,
}

pub async fn request(
    caller: Caller,
    pool: web::Data<PgPool>,
    handle: web::Data<Option<SyncHandle>>,
) -> ApiResult {
    crate::manage::sync::request(
        &pool,
        &caller.principal,
        handle.as_ref().as_ref(),
        crate::sync::Trigger::Api,
    )
    .await
    .map_err(problem)?;
    Ok(HttpResponse::Accepted().json(SyncRequested {
        requested: true,
        scope: "all",
    }))
}

pub async fn runs(caller: Caller, pool: web::Data<PgPool>, q: web::Query<PageQuery>) -> ApiResult {
    crate::manage::platform_only(caller.platform_admin()).map_err(problem)?;
    let paging = q.checked().map_err(problem)?;
    let (items, total) = db::sync_state::runs_page(&pool, paging.0, paging.1)
        .await
        .map_err(problem)?;
    Ok(page(items, total, paging))
}
