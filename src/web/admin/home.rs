//! `GET /`: for a person signed in, each of their orgs with their roles and the apps
//! they can open there (links), the current org and the switch; for anyone else, what
//! wizbrand is and the way in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;
use sqlx::PgPool;

use super::apps::{AppRow, app_row};
use super::render;
use crate::config::Config;
use crate::db::sessions::UserOrgRow;
use crate::domain::Role;
use crate::error::SurfacedError;
use crate::policy::OrgAccess;
use crate::web::html::Frame;
use crate::web::page::html_err;
use crate::web::session::{self, SignedIn};

/// One of the person's orgs, with the apps of the registry as they stand there.
struct HomeOrg {
    org: UserOrgRow,
    current: bool,
    apps: Vec<AppRow>,
    /// How many of the apps this person can open there.
    open: usize,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    frame: Frame,
    user: Option<SignedIn>,
    /// How the person is named.
    who: String,
    orgs: Vec<HomeOrg>,
    /// Some app's address names no org: those open in the current org.
    some_app_without_org: bool,
    /// An org the person's verified address offers to join ("suggest").
    offer: Option<crate::db::domains::Offer>,
    /// The session's CSRF token ("" signed out), for the join form.
    csrf: String,
}

#[get("/")]
async fn home(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
) -> Result<HttpResponse, SurfacedError> {
    let user = session::current(&req);
    let mut orgs = Vec::new();
    let mut some_app_without_org = false;
    let mut offer = None;
    if let Some(user) = &user {
        offer = crate::manage::domains::offer_for(&pool, &user.principal())
            .await
            .map_err(crate::error::AppError::html)?;
        let rows = crate::db::sessions::user_orgs(&pool, &user.sub)
            .await
            .map_err(html_err)?;
        let (details, _) = crate::db::orgs::list_for(&pool, &user.sub, 1000, 0)
            .await
            .map_err(html_err)?;
        let (registry, _) = crate::db::apps::list(&pool, 1000, 0)
            .await
            .map_err(html_err)?;
        some_app_without_org = registry.iter().any(|a| !a.host_pattern.contains("{org}"));
        for row in rows {
            let access = OrgAccess {
                platform_admin: user.admin,
                roles: row
                    .roles
                    .iter()
                    .filter_map(|r| r.parse::<Role>().ok())
                    .collect(),
            };
            let apps = details
                .iter()
                .find(|o| o.id == row.id)
                .map(|org| {
                    registry
                        .iter()
                        .map(|app| app_row(app, org, &access, &config.public_url))
                        .collect()
                })
                .unwrap_or_default();
            let apps: Vec<AppRow> = apps;
            orgs.push(HomeOrg {
                open: apps.iter().filter(|a| a.url.is_some()).count(),
                current: user.org.as_deref() == Some(row.slug.as_str()),
                org: row,
                apps,
            });
        }
    }
    let flash = user.as_ref().and_then(|_| super::take_flash(&req));
    render(
        StatusCode::OK,
        &HomePage {
            frame: Frame {
                flash,
                ..crate::web::page::frame("Home", user.as_ref())
            },
            who: user.as_ref().map(crate::web::page::who).unwrap_or_default(),
            csrf: user.as_ref().map(|u| u.csrf.clone()).unwrap_or_default(),
            user,
            orgs,
            some_app_without_org,
            offer,
        },
    )
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(home);
}
