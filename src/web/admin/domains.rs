//! The org's email domains page (`/admin/orgs/{slug}/domains`, ORG_ADMIN): claim a
//! domain, choose what it offers (nothing, suggest, auto-join), remove it; platform
//! admins mark a claim verified. The rules are [`crate::manage::domains`].

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use askama::Template;
use sqlx::PgPool;

use super::{PageResult, Posted, Viewer, done, error_page, render};
use crate::db::domains::OrgDomain;
use crate::db::orgs::Org;
use crate::error::AppError;
use crate::manage::domains::{self, JoinMode};

/// The modes as offered in the forms.
const MODES: [(&str, &str); 3] = [
    ("none", "Nothing (reserved only)"),
    ("suggest", "Suggest: offered to join as ORG_USER"),
    ("auto_join", "Auto-join as ORG_USER at sign-in"),
];

#[derive(Template)]
#[template(path = "domains.html")]
struct DomainsPage {
    frame: crate::web::html::Frame,
    org: Org,
    domains: Vec<OrgDomain>,
    platform_admin: bool,
    csrf: String,
    modes: [(&'static str, &'static str); 3],
    /// The claim form as typed, with its error.
    domain: String,
    mode: String,
    error: Option<String>,
}

fn url(slug: &str) -> String {
    format!("/admin/orgs/{slug}/domains")
}

async fn page(
    viewer: &Viewer,
    pool: &PgPool,
    slug: &str,
    status: StatusCode,
    (domain, mode, error): (String, String, Option<String>),
) -> PageResult {
    let o = match domains::overview(pool, &viewer.user.principal(), slug).await {
        Ok(o) => o,
        Err(e) => return error_page(viewer, e),
    };
    render(
        status,
        &DomainsPage {
            frame: viewer.frame(format!("Email domains · {}", o.org.name)),
            platform_admin: o.access.platform_admin,
            org: o.org,
            domains: o.domains,
            csrf: viewer.user.csrf.clone(),
            modes: MODES,
            domain,
            mode,
            error,
        },
    )
}

#[get("/admin/orgs/{slug}/domains")]
async fn show(viewer: Viewer, pool: web::Data<PgPool>, slug: web::Path<String>) -> PageResult {
    page(
        &viewer,
        &pool,
        &slug,
        StatusCode::OK,
        (String::new(), "none".to_owned(), None),
    )
    .await
}

/// Claims a domain, or sets the mode of one the org holds.
#[post("/admin/orgs/{slug}/domains")]
async fn put(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    let raw = fields.text("domain");
    let raw_mode = fields.text("mode");
    let retry = |status, error: String| {
        let typed = (raw.clone(), raw_mode.clone(), Some(error));
        let (viewer, pool, slug) = (&viewer, &pool, &slug);
        async move { page(viewer, pool, slug, status, typed).await }
    };
    let mode = match raw_mode.parse::<JoinMode>() {
        Ok(mode) => mode,
        Err(e) => return retry(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await,
    };
    match domains::put(&pool, &viewer.user.principal(), &slug, &raw, mode).await {
        Ok((held, created)) => Ok(done(
            &req,
            "ok",
            if created {
                format!(
                    "Claimed {}. A platform admin marks it verified; until then it offers nothing.",
                    held.domain
                )
            } else {
                format!("{}: {}.", held.domain, mode_words(mode))
            },
            &url(&slug),
        )),
        Err(AppError::Unprocessable(e)) => retry(StatusCode::UNPROCESSABLE_ENTITY, e).await,
        Err(AppError::Conflict(e)) => retry(StatusCode::CONFLICT, e).await,
        Err(e) => error_page(&viewer, e),
    }
}

fn mode_words(mode: JoinMode) -> &'static str {
    match mode {
        JoinMode::None => "offers nothing now",
        JoinMode::Suggest => "people with a verified address there are offered to join",
        JoinMode::AutoJoin => "people with a verified address there join at sign-in",
    }
}

#[post("/admin/orgs/{slug}/domains/remove")]
async fn remove(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    match domains::remove(
        &pool,
        &viewer.user.principal(),
        &slug,
        &fields.text("domain"),
    )
    .await
    {
        Ok(held) => Ok(done(
            &req,
            "ok",
            format!(
                "Removed {}; members who joined through it stay.",
                held.domain
            ),
            &url(&slug),
        )),
        Err(e) => error_page(&viewer, e),
    }
}

#[post("/admin/orgs/{slug}/domains/verify")]
async fn verify(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    match domains::verify(
        &pool,
        &viewer.user.principal(),
        &slug,
        &fields.text("domain"),
    )
    .await
    {
        Ok(held) => Ok(done(
            &req,
            "ok",
            format!("{} is verified.", held.domain),
            &url(&slug),
        )),
        Err(e) => error_page(&viewer, e),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show)
        .service(put)
        .service(remove)
        .service(verify);
}
