//! The org's single sign-on page (`/admin/orgs/{slug}/sso`, ORG_ADMIN and platform
//! admins): connect, replace or disconnect its OpenID Connect provider. The client
//! secret is sealed before it is stored and never shown back.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use askama::Template;
use secrecy::SecretString;
use sqlx::PgPool;

use super::{PageResult, Posted, Viewer, done, error_page, render};
use crate::config::Config;
use crate::db::orgs::Org;
use crate::db::sso::OrgSso;
use crate::error::AppError;
use crate::keycloak::providers::IdentityProviders;
use crate::manage::sso;

#[derive(Template)]
#[template(path = "sso.html")]
struct SsoPage {
    frame: crate::web::html::Frame,
    org: Org,
    sso: Option<OrgSso>,
    csrf: String,
    redirect_uri: String,
    roles: [&'static str; 3],
    issuer: String,
    client_id: String,
    join_role: String,
    error: Option<String>,
}

fn url(slug: &str) -> String {
    format!("/admin/orgs/{slug}/sso")
}

async fn page(
    viewer: &Viewer,
    pool: &PgPool,
    config: &Config,
    slug: &str,
    status: StatusCode,
    typed: (String, String, String, Option<String>),
) -> PageResult {
    let (org, current) = match sso::overview(pool, &viewer.user.principal(), slug).await {
        Ok(o) => o,
        Err(e) => return error_page(viewer, e),
    };
    let (issuer, client_id, join_role, error) = typed;
    render(
        status,
        &SsoPage {
            frame: viewer.frame(format!("Single sign-on · {}", org.name)),
            redirect_uri: sso::redirect_uri(&config.keycloak, &org.slug),
            org,
            sso: current,
            csrf: viewer.user.csrf.clone(),
            roles: ["ORG_USER", "ORG_MANAGER", "ORG_ADMIN"],
            issuer,
            client_id,
            join_role,
            error,
        },
    )
}

#[get("/admin/orgs/{slug}/sso")]
async fn show(
    viewer: Viewer,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    slug: web::Path<String>,
) -> PageResult {
    let typed = (String::new(), String::new(), "ORG_USER".to_owned(), None);
    page(&viewer, &pool, &config, &slug, StatusCode::OK, typed).await
}

#[post("/admin/orgs/{slug}/sso")]
async fn configure(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    providers: web::Data<IdentityProviders>,
    sealer: web::Data<sso::SecretSealer>,
    slug: web::Path<String>,
) -> PageResult {
    let (issuer, client_id, join_role) = (
        fields.text("issuer"),
        fields.text("client_id"),
        fields.text("join_role"),
    );
    let secret = SecretString::from(fields.text("client_secret"));
    let seal = |org: &Org| sealer.seal(org, &secret);
    let settings = sso::Settings {
        issuer: &issuer,
        client_id: &client_id,
        client_secret: &secret,
        join_role: &join_role,
    };
    match sso::configure(
        &pool,
        &providers,
        &viewer.user.principal(),
        &slug,
        &settings,
        seal,
    )
    .await
    {
        Ok(_) => Ok(done(
            &req,
            "ok",
            "Single sign-on is connected: people at the verified domains are sent to it.",
            &url(&slug),
        )),
        Err(AppError::Unprocessable(e)) => {
            let typed = (issuer, client_id, join_role, Some(e));
            page(
                &viewer,
                &pool,
                &config,
                &slug,
                StatusCode::UNPROCESSABLE_ENTITY,
                typed,
            )
            .await
        }
        Err(e) => error_page(&viewer, e),
    }
}

#[post("/admin/orgs/{slug}/sso/remove")]
async fn remove(
    req: HttpRequest,
    Posted { viewer, .. }: Posted,
    pool: web::Data<PgPool>,
    providers: web::Data<IdentityProviders>,
    slug: web::Path<String>,
) -> PageResult {
    match sso::remove(&pool, &providers, &viewer.user.principal(), &slug).await {
        Ok(()) => Ok(done(
            &req,
            "ok",
            "Single sign-on is disconnected; members who came through it stay.",
            &url(&slug),
        )),
        Err(e) => error_page(&viewer, e),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show).service(configure).service(remove);
}
