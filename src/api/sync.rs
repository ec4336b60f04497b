//! `/api/v1/sync…`: ask for a sync, read the journal (platform admins).

use actix_web::{HttpResponse, web};
use serde_json::json;
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, PageQuery, enforce, page, problem};
use crate::db;
use crate::db::audit::Entry;
use crate::error::AppError;
use crate::policy;
use crate::sync::Trigger;
use crate::sync::plan::Scope;
use crate::sync::scheduler::SyncHandle;

pub async fn request(
    caller: Caller,
    pool: web::Data<PgPool>,
    handle: web::Data<Option<SyncHandle>>,
) -> ApiResult {
    enforce(policy::platform_only(caller.platform_admin())).map_err(problem)?;
    let Some(handle) = handle.as_ref() else {
        return Err(problem(AppError::Unavailable {
            dependency: "the sync scheduler (off: WIZBRAND_SYNC_ENABLED=false)",
            source: anyhow::anyhow!("the scheduler is not running in this process"),
        }));
    };
    let tx = pool.begin().await.map_err(problem)?;
    crate::manage::commit_audited(
        tx,
        Entry {
            actor: caller.actor(),
            action: "sync.request",
            target: "all",
            org_id: None,
            before: None,
            after: None,
        },
    )
    .await
    .map_err(problem)?;
    handle.request(Scope::All, Trigger::Api);
    Ok(HttpResponse::Accepted().json(json!({"requested": true, "scope": "all"})))
}

pub async fn runs(caller: Caller, pool: web::Data<PgPool>, q: web::Query<PageQuery>) -> ApiResult {
    enforce(policy::platform_only(caller.platform_admin())).map_err(problem)?;
    let paging = q.checked().map_err(problem)?;
    let (items, total) = db::sync_state::runs_page(&pool, paging.0, paging.1)
        .await
        .map_err(problem)?;
    Ok(page(items, total, paging))
}
