//! The sync page (platform admins): the last runs, what would change now (a dry run
//! against Keycloak), and "sync now" with its result.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use askama::Template;
use sqlx::PgPool;

use super::{Layout, PageResult, Posted, Viewer, done, error_page, render};
use crate::config::Config;
use crate::db::sync_state::SyncRunRow;
use crate::error::AppError;
use crate::keycloak::directory::KeycloakDirectory;
use crate::policy;
use crate::sync::plan::Scope;
use crate::sync::scheduler::SyncHandle;
use crate::sync::{RunOptions, Trigger};
use crate::web::page::html_err;

/// How long "sync now" waits for its run before saying it is still going.
const WAIT_FOR_RUN: Duration = Duration::from_secs(20);

#[derive(Template)]
#[template(path = "sync.html")]
struct SyncPage {
    layout: Layout,
    csrf: String,
    schedule: String,
    runs: Vec<SyncRunRow>,
    plan: Option<Vec<String>>,
}

/// The page, without a plan. A GET never runs anything: `?plan=1` (a link from any site
/// reaches a signed-in admin with the Lax cookie) shows the page as it is.
#[get("/admin/sync")]
async fn page(
    viewer: Viewer,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    handle: web::Data<Option<SyncHandle>>,
) -> PageResult {
    if let Err(e) = crate::manage::enforce(policy::platform_only(viewer.user.admin)) {
        return error_page(&viewer, e);
    }
    sync_page(&viewer, &pool, &config, &handle, None).await
}

/// "What would change now": a dry run. It only reads, but it reads all of Keycloak, so it
/// is a POST with the form's CSRF token (no other site can make an admin's browser start
/// one), answered with the page and its plan.
#[post("/admin/sync/plan")]
async fn show_plan(
    Posted { viewer, .. }: Posted,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    handle: web::Data<Option<SyncHandle>>,
) -> PageResult {
    if let Err(e) = crate::manage::enforce(policy::platform_only(viewer.user.admin)) {
        return error_page(&viewer, e);
    }
    match dry_run(&pool, &config).await {
        Ok(plan) => sync_page(&viewer, &pool, &config, &handle, Some(plan)).await,
        Err(e) => error_page(&viewer, e),
    }
}

async fn dry_run(pool: &PgPool, config: &Config) -> Result<Vec<String>, AppError> {
    let directory = KeycloakDirectory::new(
        &config.keycloak,
        config.sync_concurrency,
        Duration::from_secs(10),
    );
    let options = RunOptions {
        scope: Scope::All,
        trigger: Trigger::Api,
        dry_run: true,
        root: config.sync_group_root.clone(),
        full_read_every: None,
    };
    // A dry run only reads: no run row, no lock (it may see a run's writes half-done).
    match crate::sync::run(pool, &directory, &options, &|_, _| {}).await {
        Ok(report) if report.errors.is_empty() => Ok(report.plan),
        Ok(report) => Err(AppError::Conflict(format!(
            "The dry run could not read everything: {}",
            report.errors.join("; ")
        ))),
        Err(e) => Err(AppError::Conflict(format!("The dry run failed: {e}"))),
    }
}

async fn sync_page(
    viewer: &Viewer,
    pool: &PgPool,
    config: &Config,
    handle: &Option<SyncHandle>,
    plan: Option<Vec<String>>,
) -> PageResult {
    let runs = crate::db::sync_state::recent_runs(pool, 20)
        .await
        .map_err(html_err)?;
    let schedule = if handle.is_some() {
        format!("on changes, and on the schedule {}", config.sync_cron)
    } else {
        "off in this process: WIZBRAND_SYNC_ENABLED=false".to_owned()
    };
    render(
        StatusCode::OK,
        &SyncPage {
            layout: viewer.layout("Sync"),
            csrf: viewer.user.csrf.clone(),
            schedule,
            runs,
            plan,
        },
    )
}

/// What a finished run says, in a sentence.
pub fn run_summary(run: &SyncRunRow) -> String {
    let mut text = format!(
        "Sync run #{} {}: {} created, {} updated, {} deleted, {} unchanged, {} failed.",
        run.id, run.status, run.created, run.updated, run.deleted, run.unchanged, run.failed
    );
    if run.checked_by == Some(crate::sync::CheckedBy::Events) {
        text.push_str(
            " Checked by Keycloak's admin event log: nothing changed in Postgres, and nobody \
             else changed anything in Keycloak since the last verified run.",
        );
    }
    if let Some(errors) = run.errors.as_array().filter(|e| !e.is_empty()) {
        text.push_str(&format!(
            " Errors: {}",
            serde_json::Value::from(errors.clone())
        ));
    }
    text
}

#[post("/admin/sync")]
async fn sync_now(
    req: HttpRequest,
    Posted { viewer, .. }: Posted,
    pool: web::Data<PgPool>,
    handle: web::Data<Option<SyncHandle>>,
) -> PageResult {
    let latest = |pool: web::Data<PgPool>| async move {
        crate::db::sync_state::recent_runs(&pool, 1)
            .await
            .map(|runs| runs.into_iter().next())
    };
    let before = latest(pool.clone()).await.map_err(html_err)?;
    let before = before.map(|r| r.id).unwrap_or(0);
    match crate::manage::sync::request(&pool, &viewer.user.principal(), handle.as_ref().as_ref())
        .await
    {
        Ok(()) => {}
        Err(e @ AppError::Unavailable { .. }) => {
            return Ok(done(
                &req,
                "error",
                format!("Not started: {e}."),
                "/admin/sync",
            ));
        }
        Err(e) => return error_page(&viewer, e),
    }
    let deadline = tokio::time::Instant::now() + WAIT_FOR_RUN;
    loop {
        if let Ok(Some(run)) = latest(pool.clone()).await
            && run.id > before
            && run.finished_at.is_some()
        {
            let kind = if run.status == crate::sync::RunStatus::Succeeded {
                "ok"
            } else {
                "error"
            };
            return Ok(done(&req, kind, run_summary(&run), "/admin/sync"));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(done(
                &req,
                "ok",
                "Sync requested; it is still running. Its result appears in the list below.",
                "/admin/sync",
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(page).service(show_plan).service(sync_now);
}
