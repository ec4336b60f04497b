//! An org's invitations and seats (`/admin/orgs/{slug}/invitations`): invite by email
//! with roles, send again, revoke. ORG_ADMIN; ORG_MANAGER for ORG_USER invitations.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use askama::Template;
use sqlx::PgPool;

use super::org_page::parse_role_fields;
use super::{PageResult, Posted, Viewer, done, error_page, render};
use crate::config::Config;
use crate::domain::Role;
use crate::error::AppError;
use crate::mail::Mailer;
use crate::manage::invitations::{self as invitations, MAX_BATCH};
use crate::manage::parse_roles;
use crate::policy::{self, Verdict};

/// One row of the list, as shown.
struct Row {
    id: String,
    email: String,
    roles: Vec<String>,
    /// pending, expired, accepted or revoked.
    state: String,
    invited_by: String,
    until: String,
    pending: bool,
    /// The viewer may send it again or revoke it.
    manageable: bool,
}

#[derive(Template)]
#[template(path = "invitations.html")]
struct InvitationsPage {
    frame: crate::web::html::Frame,
    org: crate::db::orgs::Org,
    csrf: String,
    taken: i64,
    quota: Option<u32>,
    members: i64,
    pending: i64,
    full: bool,
    grantable: Vec<String>,
    invitations: Vec<Row>,
    emails: String,
    roles: Vec<String>,
    form_error: Option<String>,
    max_batch: usize,
    ttl_days: i64,
}

/// The typed form, kept when it comes back with an error.
#[derive(Default)]
struct Typed {
    emails: String,
    roles: Vec<String>,
    error: Option<String>,
}

fn url_of(slug: &str) -> String {
    format!("/admin/orgs/{slug}/invitations")
}

/// Addresses as typed: one a line, or separated by commas, semicolons or spaces.
pub fn split_addresses(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn page(
    viewer: &Viewer,
    pool: &PgPool,
    config: &Config,
    slug: &str,
    status: StatusCode,
    typed: Typed,
) -> PageResult {
    let who = viewer.user.principal();
    let overview = match invitations::overview(pool, &who, slug).await {
        Ok(found) => found,
        Err(e) => return error_page(viewer, e),
    };
    let now = chrono::Utc::now();
    let access = &overview.access;
    let rows = overview
        .invitations
        .into_iter()
        .map(|i| {
            let expired = i.status == "pending" && i.expires_at <= now;
            Row {
                id: i.id.to_string(),
                manageable: policy::may_change_member(access, &[], &parse_roles(&i.roles))
                    == Verdict::Allow,
                pending: i.status == "pending",
                state: if expired {
                    "expired".to_owned()
                } else {
                    i.status.clone()
                },
                invited_by: i.invited_by_email.clone().unwrap_or(i.invited_by.clone()),
                until: format!("{} UTC", i.expires_at.format("%Y-%m-%d %H:%M")),
                email: i.email,
                roles: i.roles,
            }
        })
        .collect();
    let grantable = Role::ALL
        .into_iter()
        .filter(|r| policy::may_grant(access.platform_admin, &access.roles, &[*r]))
        .map(|r| r.as_str().to_owned())
        .collect();
    render(
        status,
        &InvitationsPage {
            frame: viewer.frame(format!("Invitations · {}", overview.org.name)),
            csrf: viewer.user.csrf.clone(),
            full: overview
                .quota
                .is_some_and(|q| overview.taken >= i64::from(q)),
            taken: overview.taken,
            quota: overview.quota,
            members: overview.members,
            pending: overview.pending,
            grantable,
            invitations: rows,
            emails: typed.emails,
            roles: typed.roles,
            form_error: typed.error,
            max_batch: MAX_BATCH,
            ttl_days: config.lifecycle.invitation_ttl.num_days(),
            org: overview.org,
        },
    )
}

#[get("/admin/orgs/{slug}/invitations")]
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
        Typed::default(),
    )
    .await
}

#[post("/admin/orgs/{slug}/invitations")]
async fn invite(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    mailer: web::Data<Mailer>,
    slug: web::Path<String>,
) -> PageResult {
    let mut typed = Typed {
        emails: fields.get("emails").unwrap_or_default().to_owned(),
        roles: fields.all("roles"),
        error: None,
    };
    let roles = match parse_role_fields(&typed.roles) {
        Ok(roles) => roles,
        Err(e) => {
            typed.error = Some(e);
            return page(
                &viewer,
                &pool,
                &config,
                &slug,
                StatusCode::UNPROCESSABLE_ENTITY,
                typed,
            )
            .await;
        }
    };
    let emails = split_addresses(&typed.emails);
    let who = viewer.user.principal();
    match invitations::invite(&pool, &mailer, &config, &who, &slug, &emails, &roles).await {
        Ok(sent) => {
            let names: Vec<&str> = sent.iter().map(|i| i.email.as_str()).collect();
            Ok(done(
                &req,
                "ok",
                format!(
                    "Invited {} as {}; the mail{} on its way.",
                    names.join(", "),
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if names.len() == 1 { " is" } else { "s are" }
                ),
                &url_of(&slug),
            ))
        }
        Err(e @ (AppError::Unprocessable(_) | AppError::Conflict(_))) => {
            typed.error = Some(e.to_string());
            let status = if matches!(e, AppError::Conflict(_)) {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            page(&viewer, &pool, &config, &slug, status, typed).await
        }
        Err(e @ AppError::QuotaExceeded { .. }) => {
            typed.error = Some(format!("Quota exceeded: {e}"));
            page(&viewer, &pool, &config, &slug, StatusCode::FORBIDDEN, typed).await
        }
        Err(e) => error_page(&viewer, e),
    }
}

fn invitation_id(raw: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

#[post("/admin/orgs/{slug}/invitations/{id}/resend")]
async fn resend(
    req: HttpRequest,
    Posted { viewer, .. }: Posted,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    mailer: web::Data<Mailer>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (slug, id) = path.into_inner();
    let id = match invitation_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&viewer, e),
    };
    let who = viewer.user.principal();
    match invitations::resend(&pool, &mailer, &config, &who, &slug, id).await {
        Ok(sent) => Ok(done(
            &req,
            "ok",
            format!(
                "Sent the invitation of {} again; the earlier link no longer works.",
                sent.email
            ),
            &url_of(&slug),
        )),
        Err(e @ (AppError::Conflict(_) | AppError::QuotaExceeded { .. })) => {
            Ok(done(&req, "error", e.to_string(), &url_of(&slug)))
        }
        Err(e) => error_page(&viewer, e),
    }
}

#[post("/admin/orgs/{slug}/invitations/{id}/revoke")]
async fn revoke(
    req: HttpRequest,
    Posted { viewer, .. }: Posted,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (slug, id) = path.into_inner();
    let id = match invitation_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&viewer, e),
    };
    match invitations::revoke(&pool, &viewer.user.principal(), &slug, id).await {
        Ok(()) => Ok(done(
            &req,
            "ok",
            "Revoked the invitation; its link now says so.",
            &url_of(&slug),
        )),
        Err(e @ AppError::Conflict(_)) => Ok(done(&req, "error", e.to_string(), &url_of(&slug))),
        Err(e) => error_page(&viewer, e),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show)
        .service(invite)
        .service(resend)
        .service(revoke);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_on_lines_commas_and_spaces() {
        assert_eq!(
            split_addresses("a@example.com, b@example.com\nc@example.com;  \n"),
            vec!["a@example.com", "b@example.com", "c@example.com"]
        );
        assert!(split_addresses(" \n ").is_empty());
    }
}
