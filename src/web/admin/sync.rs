//! The sync page (platform admins): the last runs, what would change now (a dry run
//! against Keycloak), and "sync now" with its result.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use askama::Template;
use sqlx::PgPool;

use super::{PageResult, Posted, Viewer, done, error_page, render};
use crate::config::Config;
use crate::db::sync_state::SyncRunRow;
use crate::error::AppError;
use crate::keycloak::directory::KeycloakDirectory;
use crate::sync::plan::Scope;
use crate::sync::scheduler::SyncHandle;
use crate::sync::{RunOptions, Trigger};
use crate::web::html::Frame;
use crate::web::page::html_err;

/// How long "sync now" waits for its run before saying it is still going.
const WAIT_FOR_RUN: Duration = Duration::from_secs(20);

#[derive(Template)]
#[template(path = "sync.html")]
struct SyncPage {
    frame: Frame,
    csrf: String,
    /// When runs happen, in words.
    schedule: String,
    /// The cron expression itself, beside the words.
    cron: Option<String>,
    runs: Vec<RunView>,
    plan: Option<Vec<String>>,
}

/// A run as the page shows it: labels in words, errors as a list.
pub struct RunView {
    pub id: i64,
    pub dry_run: bool,
    pub started: String,
    pub trigger: &'static str,
    /// "all organizations", or the orgs a run after a change was limited to.
    pub scope: String,
    pub status: String,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub unchanged: i32,
    pub failed: i32,
    pub errors: Vec<String>,
}

/// What started a run, in words.
pub fn trigger_label(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Cron => "schedule",
        Trigger::Change => "change in Postgres",
        Trigger::Api => "API request",
        Trigger::Web => "Sync now (this page)",
        Trigger::Cli => "command line",
        Trigger::Startup => "start-up",
    }
}

/// A run's `errors` column (a JSON array, of strings since the sync writes them) as
/// lines a person can read.
pub fn error_lines(errors: &serde_json::Value) -> Vec<String> {
    match errors {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|e| match e {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

impl From<SyncRunRow> for RunView {
    fn from(run: SyncRunRow) -> Self {
        RunView {
            id: run.id,
            dry_run: run.dry_run,
            started: run.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            trigger: trigger_label(run.trigger),
            scope: match run.scope.as_deref() {
                None => "all organizations".to_owned(),
                Some(slugs) => slugs.replace(',', ", "),
            },
            status: run.status.to_string(),
            created: run.created,
            updated: run.updated,
            deleted: run.deleted,
            unchanged: run.unchanged,
            failed: run.failed,
            errors: error_lines(&run.errors),
        }
    }
}

/// A six-field cron expression (seconds first, UTC, as the scheduler reads it) in
/// words, for the usual shapes; `None` for others (the page then shows the expression).
pub fn describe_cron(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [sec, min, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    let every = |field: &str| -> Option<u32> {
        match field {
            "*" => Some(1),
            f => f.strip_prefix("*/")?.parse().ok().filter(|n| *n > 0),
        }
    };
    let number = |field: &str| field.parse::<u32>().ok();
    let plural = |n: u32, unit: &str| {
        if n == 1 {
            format!("every {unit}")
        } else {
            format!("every {n} {unit}s")
        }
    };
    let daily = (*dom, *month, *dow) == ("*", "*", "*");
    if !daily {
        return None;
    }
    match (
        number(sec),
        every(sec),
        number(min),
        every(min),
        number(hour),
        every(hour),
    ) {
        // */N * * * * *
        (None, Some(n), None, Some(1), None, Some(1)) => Some(plural(n, "second")),
        // S */N * * * *
        (Some(0), _, None, Some(n), None, Some(1)) => Some(plural(n, "minute")),
        // S M */N * * *
        (Some(0), _, Some(m), _, None, Some(n)) => {
            Some(format!("{} at minute {m}", plural(n, "hour")))
        }
        // S M H * * *
        (Some(0), _, Some(m), _, Some(h), _) if h < 24 && m < 60 => {
            Some(format!("every day at {h:02}:{m:02} UTC"))
        }
        _ => None,
    }
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
    if let Err(e) = crate::manage::platform_only(viewer.user.admin) {
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
    if let Err(e) = crate::manage::platform_only(viewer.user.admin) {
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
        trigger: Trigger::Web,
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
    let (schedule, cron) = if handle.is_some() {
        let when = describe_cron(&config.sync_cron).unwrap_or_else(|| "on a schedule".to_owned());
        (
            format!(
                "Runs within seconds of a change to an organization or its members, and \
                 {when} as a safety net."
            ),
            Some(config.sync_cron.clone()),
        )
    } else {
        (
            "Off in this process (WIZBRAND_SYNC_ENABLED=false): runs happen where the \
             scheduler is on, or from the command line."
                .to_owned(),
            None,
        )
    };
    render(
        StatusCode::OK,
        &SyncPage {
            frame: viewer.frame("Sync"),
            csrf: viewer.user.csrf.clone(),
            schedule,
            cron,
            runs: runs.into_iter().map(RunView::from).collect(),
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
    let errors = error_lines(&run.errors);
    if !errors.is_empty() {
        text.push_str(&format!(" Errors: {}", errors.join("; ")));
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
    match crate::manage::sync::request(
        &pool,
        &viewer.user.principal(),
        handle.as_ref().as_ref(),
        Trigger::Web,
    )
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

/// The dry run's form address asked for with GET (a reload): the page, running nothing.
#[get("/admin/sync/plan")]
async fn plan_by_get() -> actix_web::HttpResponse {
    crate::web::html::redirect(StatusCode::SEE_OTHER, "/admin/sync")
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(page)
        .service(show_plan)
        .service(plan_by_get)
        .service(sync_now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_schedules_read_as_words() {
        assert_eq!(
            describe_cron("0 */5 * * * *").as_deref(),
            Some("every 5 minutes")
        );
        assert_eq!(
            describe_cron("0 * * * * *").as_deref(),
            Some("every minute")
        );
        assert_eq!(
            describe_cron("*/30 * * * * *").as_deref(),
            Some("every 30 seconds")
        );
        assert_eq!(
            describe_cron("0 0 * * * *").as_deref(),
            Some("every hour at minute 0")
        );
        assert_eq!(
            describe_cron("0 15 */2 * * *").as_deref(),
            Some("every 2 hours at minute 15")
        );
        assert_eq!(
            describe_cron("0 30 3 * * *").as_deref(),
            Some("every day at 03:30 UTC")
        );
        // Others are shown as they are written.
        assert_eq!(describe_cron("0 0 0 1 1 *"), None);
        assert_eq!(describe_cron("nonsense"), None);
    }

    #[test]
    fn errors_read_as_lines_and_an_empty_list_as_none() {
        assert!(error_lines(&serde_json::json!([])).is_empty());
        assert_eq!(
            error_lines(&serde_json::json!(["add x to /orgs/a: 500", {"op": 1}])),
            ["add x to /orgs/a: 500", r#"{"op":1}"#]
        );
        assert_eq!(trigger_label(Trigger::Web), "Sync now (this page)");
        assert_eq!(trigger_label(Trigger::Api), "API request");
    }
}
