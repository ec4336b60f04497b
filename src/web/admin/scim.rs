//! The org's SCIM page (`/admin/orgs/{slug}/scim`, ORG_ADMIN): the SCIM base URL, the
//! tokens (a new one's secret shown once, on the answer to its creation), revocation,
//! and whether SCIM may adopt members added by hand.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use askama::Template;
use sqlx::PgPool;

use super::{PageResult, Posted, Viewer, done, error_page, render};
use crate::config::Config;
use crate::db::orgs::Org;
use crate::db::scim_tokens::ScimToken;
use crate::error::AppError;

#[derive(Template)]
#[template(path = "scim.html")]
struct ScimPage {
    frame: crate::web::html::Frame,
    org: Org,
    base_url: String,
    provisioned: usize,
    tokens: Vec<ScimToken>,
    adopt_hand_added: bool,
    csrf: String,
    /// A token just created: shown this once.
    secret: Option<String>,
    name: String,
    name_error: Option<String>,
}

fn scim_url(slug: &str) -> String {
    format!("/admin/orgs/{slug}/scim")
}

/// What the page shows beyond the org's state: a new token's secret, or the name
/// form as typed with its error.
#[derive(Default)]
struct Outcome {
    secret: Option<String>,
    name: String,
    name_error: Option<String>,
}

async fn page(
    viewer: &Viewer,
    pool: &PgPool,
    config: &Config,
    slug: &str,
    status: StatusCode,
    Outcome {
        secret,
        name,
        name_error,
    }: Outcome,
) -> PageResult {
    let o = match crate::manage::scim::overview(pool, &viewer.user.principal(), slug).await {
        Ok(o) => o,
        Err(e) => return error_page(viewer, e),
    };
    render(
        status,
        &ScimPage {
            frame: viewer.frame(format!("SCIM · {}", o.org.name)),
            base_url: format!(
                "{}/scim/v2",
                config.public_url.as_str().trim_end_matches('/')
            ),
            provisioned: o.provisioned,
            tokens: o.tokens,
            adopt_hand_added: o.adopt_hand_added,
            csrf: viewer.user.csrf.clone(),
            org: o.org,
            secret,
            name,
            name_error,
        },
    )
}

#[get("/admin/orgs/{slug}/scim")]
async fn show(
    viewer: Viewer,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    slug: web::Path<String>,
) -> PageResult {
    page(
        &viewer,
        &pool,
        &config,
        &slug,
        StatusCode::OK,
        Outcome::default(),
    )
    .await
}

#[post("/admin/orgs/{slug}/scim/tokens")]
async fn create(
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    slug: web::Path<String>,
) -> PageResult {
    let name = fields.text("name");
    match crate::manage::scim::create_token(&pool, &viewer.user.principal(), &slug, &name).await {
        // Answered here, not after a redirect: the secret is never stored, not even in
        // the session's flash.
        Ok(new) => {
            page(
                &viewer,
                &pool,
                &config,
                &slug,
                StatusCode::CREATED,
                Outcome {
                    secret: Some(new.secret),
                    ..Outcome::default()
                },
            )
            .await
        }
        Err(AppError::Unprocessable(e)) => {
            page(
                &viewer,
                &pool,
                &config,
                &slug,
                StatusCode::UNPROCESSABLE_ENTITY,
                Outcome {
                    secret: None,
                    name,
                    name_error: Some(e),
                },
            )
            .await
        }
        Err(e) => error_page(&viewer, e),
    }
}

#[post("/admin/orgs/{slug}/scim/revoke")]
async fn revoke(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    match crate::manage::scim::revoke_token(
        &pool,
        &viewer.user.principal(),
        &slug,
        &fields.text("id"),
    )
    .await
    {
        Ok(token) => Ok(done(
            &req,
            "ok",
            format!(
                "Revoked the token {}: its next request is refused.",
                token.name
            ),
            &scim_url(&slug),
        )),
        Err(e) => error_page(&viewer, e),
    }
}

#[post("/admin/orgs/{slug}/scim/settings")]
async fn settings(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    let adopt = fields.get("adopt_hand_added") == Some("on");
    match crate::manage::scim::set_adopt_hand_added(&pool, &viewer.user.principal(), &slug, adopt)
        .await
    {
        Ok(()) => Ok(done(
            &req,
            "ok",
            if adopt {
                "SCIM may now take over members added by hand."
            } else {
                "SCIM leaves members added by hand alone."
            },
            &scim_url(&slug),
        )),
        Err(e) => error_page(&viewer, e),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show)
        .service(create)
        .service(revoke)
        .service(settings);
}
