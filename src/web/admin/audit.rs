//! The audit log: every change by a person or client, filterable by org, actor and
//! action. Platform admins see all of it; others the entries of orgs they administer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use super::{Layout, PAGE_SIZE, Pager, Viewer, page_number, render};
use crate::db::audit::{AuditFilter, AuditRow};
use crate::error::SurfacedError;
use crate::web::page::html_err;

#[derive(Deserialize)]
struct AuditQuery {
    org: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    filter: AuditFilter,
    rows: Vec<AuditRow>,
    pager: Pager,
}

fn bounded(raw: Option<&str>) -> String {
    raw.unwrap_or_default().trim().chars().take(200).collect()
}

#[get("/admin/audit")]
async fn log(
    viewer: Viewer,
    pool: web::Data<PgPool>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, SurfacedError> {
    let filter = AuditFilter {
        org: bounded(q.org.as_deref()),
        actor: bounded(q.actor.as_deref()),
        action: bounded(q.action.as_deref()),
        admin_of: (!viewer.user.admin).then(|| viewer.user.sub.clone()),
    };
    let page = page_number(q.page.as_deref());
    let (rows, total) = crate::db::audit::search(&pool, &filter, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        .await
        .map_err(html_err)?;
    let base = format!(
        "/admin/audit?{}&",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("org", &filter.org)
            .append_pair("actor", &filter.actor)
            .append_pair("action", &filter.action)
            .finish()
    );
    render(
        StatusCode::OK,
        &AuditPage {
            layout: viewer.layout("Audit log"),
            pager: Pager::new(&base, page, total),
            filter,
            rows,
        },
    )
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(log);
}
