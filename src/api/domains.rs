//! `/api/v1/orgs/{slug}/domains…`: an org's email domains (ORG_ADMIN claims, removes and
//! sets the join mode; platform admins verify).

use actix_web::{HttpResponse, web};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, problem};
use crate::manage::domains::{self, JoinMode};

pub async fn list(caller: Caller, pool: web::Data<PgPool>, slug: web::Path<String>) -> ApiResult {
    let o = domains::overview(&pool, &caller.principal, &slug)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(DomainList { items: o.domains }))
}

/// An org's domains, by name.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DomainList {
    pub items: Vec<crate::db::domains::OrgDomain>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainPut {
    /// none: reserved only; suggest: a verified address at the domain is offered to join
    /// as ORG_USER; auto_join: joins as ORG_USER at sign-in.
    pub mode: JoinMode,
}

pub async fn put(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    body: web::Json<DomainPut>,
) -> ApiResult {
    let (slug, domain) = path.into_inner();
    let (held, created) = domains::put(&pool, &caller.principal, &slug, &domain, body.mode)
        .await
        .map_err(problem)?;
    Ok(if created {
        HttpResponse::Created().json(held)
    } else {
        HttpResponse::Ok().json(held)
    })
}

pub async fn delete(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, domain) = path.into_inner();
    domains::remove(&pool, &caller.principal, &slug, &domain)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn verify(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, domain) = path.into_inner();
    let held = domains::verify(&pool, &caller.principal, &slug, &domain)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_a_known_mode_and_nothing_else() {
        assert!(serde_json::from_str::<DomainPut>(r#"{"mode":"suggest"}"#).is_ok());
        assert!(serde_json::from_str::<DomainPut>(r#"{"mode":"always"}"#).is_err());
        assert!(serde_json::from_str::<DomainPut>(r#"{"mode":"none","org":"x"}"#).is_err());
    }
}
