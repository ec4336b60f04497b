//! Member changes from the org page: add by email with roles, change roles, remove.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use super::org_page::{AddForm, org_page, parse_role_fields};
use super::{PageResult, Posted, Viewer, done, error_page, render};
use crate::config::Config;
use crate::db::orgs::Org;
use crate::domain::Role;
use crate::error::AppError;
use crate::manage::authorized_org;
use crate::policy::OrgAction;
use crate::web::html::Frame;
use crate::web::page::html_err;

fn org_url(slug: &str) -> String {
    format!("/admin/orgs/{slug}")
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[post("/admin/orgs/{slug}/members")]
async fn add(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    slug: web::Path<String>,
) -> PageResult {
    let mut form = AddForm::from_fields(&fields);
    let Some((email, roles)) = form.validate() else {
        return org_page(
            &viewer,
            &pool,
            &config,
            &slug,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
        )
        .await;
    };
    match crate::manage::members::put(
        &pool,
        &viewer.user.principal(),
        &slug,
        email.as_str(),
        &roles,
    )
    .await
    {
        Ok(change) => {
            let text = if change.added {
                format!(
                    "Added {} as {}. The sync creates their Keycloak account if they have none; \
                     Keycloak then asks them to set a password and verify their email.",
                    change.email,
                    role_list(&change.roles)
                )
            } else if change.changed {
                format!(
                    "{} was a member already; their roles are now {}.",
                    change.email,
                    role_list(&change.roles)
                )
            } else {
                format!("{} is a member with these roles already.", change.email)
            };
            Ok(done(&req, "ok", text, &org_url(&slug)))
        }
        Err(e @ (AppError::Conflict(_) | AppError::Unprocessable(_))) => {
            form.errors.email = Some(e.to_string());
            org_page(
                &viewer,
                &pool,
                &config,
                &slug,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
            )
            .await
        }
        Err(e) => error_page(&viewer, e),
    }
}

#[post("/admin/orgs/{slug}/members/roles")]
async fn set_roles(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    let email = fields.text("email");
    let roles = match parse_role_fields(&fields.all("roles")) {
        Ok(roles) => roles,
        Err(e) => {
            return Ok(done(
                &req,
                "error",
                format!("{email}: {e} To take every role away, remove the member."),
                &org_url(&slug),
            ));
        }
    };
    match crate::manage::members::put(&pool, &viewer.user.principal(), &slug, &email, &roles).await
    {
        Ok(change) => Ok(done(
            &req,
            "ok",
            format!(
                "{}: roles are now {}.",
                change.email,
                role_list(&change.roles)
            ),
            &org_url(&slug),
        )),
        Err(e @ (AppError::Conflict(_) | AppError::Unprocessable(_))) => Ok(done(
            &req,
            "error",
            format!("{email}: {e}"),
            &org_url(&slug),
        )),
        Err(e) => error_page(&viewer, e),
    }
}

#[derive(Template)]
#[template(path = "member_remove.html")]
struct RemovePage {
    frame: Frame,
    org: Org,
    email: String,
    roles: String,
    csrf: String,
}

#[derive(Deserialize)]
struct RemoveQuery {
    email: Option<String>,
}

/// `GET …/members/remove?email=`: asks before removing (the page's Remove is a link
/// here; the form on this page does it). Who may remove whom is checked again on the post.
#[get("/admin/orgs/{slug}/members/remove")]
async fn confirm_remove(
    viewer: Viewer,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
    q: web::Query<RemoveQuery>,
) -> PageResult {
    let (org, _) = match authorized_org(
        &pool,
        &viewer.user.principal(),
        &slug,
        OrgAction::ReadMembers,
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return error_page(&viewer, e),
    };
    let wanted = q.email.as_deref().unwrap_or_default().trim().to_lowercase();
    let (members, _) = crate::db::members::list(&pool, org.id, 1000, 0)
        .await
        .map_err(html_err)?;
    let Some(member) = members.into_iter().find(|m| m.email == wanted) else {
        return error_page(
            &viewer,
            AppError::Unprocessable(format!("\"{wanted}\" is not a member of {}.", org.slug)),
        );
    };
    render(
        StatusCode::OK,
        &RemovePage {
            frame: viewer.frame(format!("Remove {}", member.email)),
            roles: member.roles.join(", "),
            email: member.email,
            csrf: viewer.user.csrf.clone(),
            org,
        },
    )
}

#[post("/admin/orgs/{slug}/members/remove")]
async fn remove(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    let email = fields.text("email");
    match crate::manage::members::remove(&pool, &viewer.user.principal(), &slug, &email).await {
        Ok(()) => Ok(done(
            &req,
            "ok",
            format!("Removed {email}. The sync takes them out of the org's Keycloak groups."),
            &org_url(&slug),
        )),
        Err(e @ AppError::Conflict(_)) => Ok(done(
            &req,
            "error",
            format!("{email}: {e}"),
            &org_url(&slug),
        )),
        Err(e) => error_page(&viewer, e),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(add)
        .service(set_roles)
        .service(confirm_remove)
        .service(remove);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_add_form_names_each_wrong_field() {
        let mut form = AddForm {
            email: "not-an-email".into(),
            roles: vec![],
            ..AddForm::default()
        };
        assert!(form.validate().is_none());
        assert!(form.errors.email.is_some() && form.errors.roles.is_some());
        let mut owner = AddForm {
            email: "a@example.com".into(),
            roles: vec!["OWNER".into()],
            ..AddForm::default()
        };
        assert!(owner.validate().is_none());
        assert!(
            owner
                .errors
                .roles
                .as_deref()
                .unwrap_or_default()
                .contains("OWNER")
        );
        let mut good = AddForm {
            email: "New.Person@Example.com".into(),
            roles: vec!["ORG_USER".into()],
            ..AddForm::default()
        };
        let (email, roles) = good.validate().unwrap();
        assert_eq!(email.as_str(), "new.person@example.com");
        assert_eq!(roles, vec![Role::User]);
    }
}
