//! `/api/v1/orgs/{slug}/sso`: the org's own OpenID Connect provider (ORG_ADMIN and
//! platform admins), as on the single sign-on page. The client secret is write-only:
//! taken by `PUT`, sealed, sent to Keycloak, never answered.

use actix_web::{HttpResponse, web};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, problem};
use crate::config::Config;
use crate::db::sso::OrgSso;
use crate::domain::Role;
use crate::error::AppError;
use crate::keycloak::providers::IdentityProviders;
use crate::manage::sso::{self, SecretSealer};

/// The org's provider as connected (never its secret).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SsoSettings {
    /// The Keycloak identity provider's alias, `org-<slug>`.
    pub alias: String,
    /// The provider's issuer; Keycloak reads its discovery document.
    #[schemars(url)]
    pub issuer: String,
    pub client_id: String,
    /// Always true: a secret is set. It is write-only and never returned.
    pub client_secret_set: bool,
    /// The role of a person who joins through the provider.
    pub join_role: Role,
    /// The redirect URI to register at the provider.
    #[schemars(url)]
    pub redirect_uri: String,
    /// The Keycloak subject of who connected it last.
    pub configured_by: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Connects or replaces the org's provider.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoPut {
    /// An `https` URL (`http` only on a loopback host), without query, fragment or
    /// credentials.
    #[schemars(length(min = 1, max = 2000))]
    pub issuer: String,
    #[schemars(length(min = 1, max = 255))]
    pub client_id: String,
    /// Write-only: sealed here, sent to Keycloak, never returned.
    #[schemars(length(min = 1, max = 1024), extend("writeOnly" = true))]
    pub client_secret: String,
    /// The role of a person who joins through the provider (ORG_USER when left out).
    #[serde(default = "org_user")]
    pub join_role: Role,
}

fn org_user() -> Role {
    Role::User
}

fn settings_of(config: &Config, slug: &str, held: OrgSso) -> Result<SsoSettings, AppError> {
    Ok(SsoSettings {
        redirect_uri: sso::redirect_uri(&config.keycloak, slug),
        join_role: held
            .join_role
            .parse()
            .map_err(|e: crate::domain::DomainError| AppError::Internal(e.into()))?,
        alias: held.alias,
        issuer: held.issuer,
        client_id: held.client_id,
        client_secret_set: true,
        configured_by: held.configured_by,
        updated_at: held.updated_at,
    })
}

pub async fn get(
    caller: Caller,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    slug: web::Path<String>,
) -> ApiResult {
    let (org, held) = sso::overview(&pool, &caller.principal, &slug)
        .await
        .map_err(problem)?;
    let held = held.ok_or_else(|| problem(AppError::NotFound))?;
    Ok(HttpResponse::Ok().json(settings_of(&config, &org.slug, held).map_err(problem)?))
}

pub async fn put(
    caller: Caller,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    providers: web::Data<IdentityProviders>,
    sealer: web::Data<SecretSealer>,
    slug: web::Path<String>,
    body: web::Json<SsoPut>,
) -> ApiResult {
    let body = body.into_inner();
    let secret = SecretString::from(body.client_secret);
    let settings = sso::Settings {
        issuer: &body.issuer,
        client_id: &body.client_id,
        client_secret: &secret,
        join_role: body.join_role.as_str(),
    };
    let (_, before) = sso::overview(&pool, &caller.principal, &slug)
        .await
        .map_err(problem)?;
    let held = sso::configure(
        &pool,
        &providers,
        &caller.principal,
        &slug,
        &settings,
        |org| sealer.seal(org, &secret),
    )
    .await
    .map_err(problem)?;
    let answer = settings_of(&config, &slug, held).map_err(problem)?;
    Ok(if before.is_none() {
        HttpResponse::Created().json(answer)
    } else {
        HttpResponse::Ok().json(answer)
    })
}

pub async fn delete(
    caller: Caller,
    pool: web::Data<PgPool>,
    providers: web::Data<IdentityProviders>,
    slug: web::Path<String>,
) -> ApiResult {
    sso::remove(&pool, &providers, &caller.principal, &slug)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_takes_a_known_role_and_nothing_else_and_hides_the_secret() {
        let ok: SsoPut = serde_json::from_str(
            r#"{"issuer":"https://x.example","client_id":"c","client_secret":"s"}"#,
        )
        .unwrap();
        assert_eq!(ok.join_role, Role::User);
        assert!(
            serde_json::from_str::<SsoPut>(
                r#"{"issuer":"https://x.example","client_id":"c","client_secret":"s","join_role":"OWNER"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<SsoPut>(
                r#"{"issuer":"https://x.example","client_id":"c","client_secret":"s","alias":"org-x"}"#
            )
            .is_err()
        );
        // The answer has no field that could carry it.
        let schema = serde_json::to_value(schemars::schema_for!(SsoSettings)).unwrap();
        assert!(schema["properties"].get("client_secret").is_none());
    }
}
