//! `/api/v1/orgs/{slug}/scim…`: an org's SCIM settings and tokens (ORG_ADMIN). The SCIM
//! service itself is `/scim/v2` (`crate::scim`).

use actix_web::{HttpResponse, web};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, problem};
use crate::config::Config;
use crate::db::scim_tokens::ScimToken;
use crate::domain::rules::{TOKEN_NAME_MAX, TOKEN_NAME_PATTERN};

/// An org's SCIM settings and tokens.
#[derive(Serialize, JsonSchema)]
pub struct ScimSettings {
    /// The SCIM base URL to give the directory.
    #[schemars(url)]
    base_url: String,
    /// SCIM may take over members added by hand.
    adopt_hand_added: bool,
    /// Users SCIM provisioned in the org.
    provisioned: usize,
    tokens: Vec<ScimToken>,
}

fn scim_base(config: &Config) -> String {
    format!(
        "{}/scim/v2",
        config.public_url.as_str().trim_end_matches('/')
    )
}

async fn settings(pool: &PgPool, caller: &Caller, config: &Config, slug: &str) -> ApiResult {
    let o = crate::manage::scim::overview(pool, &caller.principal, slug)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(ScimSettings {
        base_url: scim_base(config),
        adopt_hand_added: o.adopt_hand_added,
        provisioned: o.provisioned,
        tokens: o.tokens,
    }))
}

pub async fn get(
    caller: Caller,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    slug: web::Path<String>,
) -> ApiResult {
    settings(&pool, &caller, &config, &slug).await
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimSettingsPatch {
    pub adopt_hand_added: bool,
}

pub async fn update(
    caller: Caller,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    slug: web::Path<String>,
    body: web::Json<ScimSettingsPatch>,
) -> ApiResult {
    crate::manage::scim::set_adopt_hand_added(
        &pool,
        &caller.principal,
        &slug,
        body.adopt_hand_added,
    )
    .await
    .map_err(problem)?;
    settings(&pool, &caller, &config, &slug).await
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimTokenCreate {
    #[schemars(length(min = 1, max = TOKEN_NAME_MAX), pattern(TOKEN_NAME_PATTERN))]
    pub name: String,
}

/// A token just made, with its secret.
#[derive(Serialize, JsonSchema)]
pub struct ScimTokenCreated {
    token: ScimToken,
    /// Shown this once; wizbrand keeps only its hash.
    secret: String,
}

pub async fn create_token(
    caller: Caller,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
    body: web::Json<ScimTokenCreate>,
) -> ApiResult {
    let new = crate::manage::scim::create_token(&pool, &caller.principal, &slug, &body.name)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(ScimTokenCreated {
            token: new.token,
            secret: new.secret,
        }))
}

pub async fn revoke_token(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    crate::manage::scim::revoke_token(&pool, &caller.principal, &slug, &id)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}
