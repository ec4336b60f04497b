//! `/api/v1/orgs/{slug}/invitations…` (list, invite, send again, revoke) and
//! `/api/v1/invitations/accept` (the invitee, by the token of their link).

use actix_web::{HttpResponse, web};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, PageQuery, page, problem};
use crate::config::Config;
use crate::db::invitations::Invitation;
use crate::domain::{Email, Role};
use crate::error::AppError;
use crate::mail::Mailer;
use crate::manage::invitations::{self as invitations, Which};

pub async fn list(
    caller: Caller,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
    q: web::Query<PageQuery>,
) -> ApiResult {
    let paging = q.checked().map_err(problem)?;
    let (items, total) = invitations::list(&pool, &caller.principal, &slug, paging.0, paging.1)
        .await
        .map_err(problem)?;
    Ok(page(items, total, paging))
}

/// Addresses to invite, all with the same roles: all or none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationCreate {
    #[schemars(with = "Vec<Email>", length(min = 1, max = invitations::MAX_BATCH))]
    pub emails: Vec<String>,
    #[schemars(length(min = 1))]
    pub roles: Vec<Role>,
}

/// The invitations made, one per address.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InvitationList {
    pub items: Vec<Invitation>,
}

pub async fn create(
    caller: Caller,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    mailer: web::Data<Mailer>,
    slug: web::Path<String>,
    body: web::Json<InvitationCreate>,
) -> ApiResult {
    let created = invitations::invite(
        &pool,
        &mailer,
        &config,
        &caller.principal,
        &slug,
        &body.emails,
        &body.roles,
    )
    .await
    .map_err(problem)?;
    Ok(HttpResponse::Created().json(InvitationList { items: created }))
}

fn id_of(raw: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

pub async fn resend(
    caller: Caller,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    mailer: web::Data<Mailer>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let id = id_of(&id).map_err(problem)?;
    let sent = invitations::resend(&pool, &mailer, &config, &caller.principal, &slug, id)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(sent))
}

pub async fn revoke(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let id = id_of(&id).map_err(problem)?;
    invitations::revoke(&pool, &caller.principal, &slug, id)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationAccept {
    /// The `token` query parameter of the mailed link.
    pub token: String,
}

pub async fn accept(
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<InvitationAccept>,
) -> ApiResult {
    let accepted = invitations::accept(&pool, &caller.principal, Which::Token(&body.token))
        .await
        .map_err(|r| problem(r.into_error()))?;
    Ok(HttpResponse::Ok().json(accepted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_refuse_unknown_fields_and_roles() {
        assert!(
            serde_json::from_str::<InvitationCreate>(
                r#"{"emails":["a@example.com"],"roles":["OWNER"]}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<InvitationAccept>(r#"{"token":"x","more":1}"#).is_err());
    }
}
