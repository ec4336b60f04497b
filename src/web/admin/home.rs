//! `GET /`: who is signed in, their orgs with their roles in each, and the switcher.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;
use sqlx::PgPool;

use super::{Layout, render};
use crate::db::sessions::UserOrgRow;
use crate::error::SurfacedError;
use crate::web::page::html_err;
use crate::web::session;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    orgs: Vec<UserOrgRow>,
}

#[get("/")]
async fn home(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, SurfacedError> {
    let user = session::current(&req);
    let orgs = match &user {
        Some(user) => crate::db::sessions::user_orgs(&pool, &user.sub)
            .await
            .map_err(html_err)?,
        None => Vec::new(),
    };
    let flash = user.as_ref().and_then(|_| super::take_flash(&req));
    render(
        StatusCode::OK,
        &HomePage {
            layout: Layout {
                title: "Home".to_owned(),
                user,
                flash,
            },
            orgs,
        },
    )
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(home);
}
