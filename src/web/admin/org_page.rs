//! The org page (`/admin/orgs/{slug}`): what the org and member handlers render, on
//! its own so that those handlers import it and not each other.

use actix_web::http::StatusCode;
use askama::Template;
use sqlx::PgPool;

use super::apps::{AppRow, app_row};
use super::form::Fields;
use super::{PageResult, Viewer, error_page, render};
use crate::config::Config;
use crate::db;
use crate::db::orgs::Org;
use crate::domain::{Email, Role};
use crate::manage::{authorized_org, parse_roles};
use crate::policy::{self, OrgAction, Verdict};
use crate::web::html::Frame;
use crate::web::page::html_err;

/// The add-member form as typed, with what is wrong next to each field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddForm {
    pub email: String,
    pub roles: Vec<String>,
    pub errors: AddErrors,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddErrors {
    pub email: Option<String>,
    pub roles: Option<String>,
}

/// Roles named in a form; unknown names are an error, not silently dropped.
pub fn parse_role_fields(raw: &[String]) -> Result<Vec<Role>, String> {
    let roles = raw
        .iter()
        .map(|r| r.parse::<Role>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if roles.is_empty() {
        return Err("Choose at least one role.".to_owned());
    }
    Ok(roles)
}

impl AddForm {
    pub fn from_fields(fields: &Fields) -> AddForm {
        AddForm {
            email: fields.text("email"),
            roles: fields.all("roles"),
            errors: AddErrors::default(),
        }
    }

    /// The email and roles, or the form with its errors filled in.
    pub fn validate(&mut self) -> Option<(Email, Vec<Role>)> {
        let email = Email::parse_new(&self.email)
            .map_err(|e| self.errors.email = Some(e.to_string()))
            .ok();
        let roles = parse_role_fields(&self.roles)
            .map_err(|e| self.errors.roles = Some(e))
            .ok();
        email.zip(roles)
    }
}

pub struct MemberRow {
    pub email: String,
    pub roles: Vec<String>,
    /// The only ORG_ADMIN: cannot be demoted or removed.
    pub last_admin: bool,
    /// The viewer may remove this member.
    pub removable: bool,
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    frame: Frame,
    org: Org,
    roles: Vec<String>,
    csrf: String,
    platform_admin: bool,
    apps: Vec<AppRow>,
    may_hide: bool,
    members: Option<Vec<MemberRow>>,
    all_roles: Vec<String>,
    grantable: Vec<String>,
    add: AddForm,
}

/// The org's page; `add` is the add-member form as posted (empty on a plain visit).
pub async fn org_page(
    viewer: &Viewer,
    pool: &PgPool,
    config: &Config,
    slug: &str,
    status: StatusCode,
    add: AddForm,
) -> PageResult {
    let who = viewer.user.principal();
    let (org, access) = match authorized_org(pool, &who, slug, OrgAction::Read).await {
        Ok(found) => found,
        Err(e) => return error_page(viewer, e),
    };
    let (registry, _) = db::apps::list(pool, 1000, 0).await.map_err(html_err)?;
    let apps = registry
        .iter()
        .map(|app| app_row(app, &org, &access, &config.public_url))
        .collect();
    let members = if policy::org_verdict(&access, OrgAction::ReadMembers) == Verdict::Allow {
        let (rows, _) = db::members::list(pool, org.id, 1000, 0)
            .await
            .map_err(html_err)?;
        let admins = rows
            .iter()
            .filter(|m| m.roles.iter().any(|r| r == Role::Admin.as_str()))
            .count();
        Some(
            rows.into_iter()
                .map(|m| {
                    let held = parse_roles(&m.roles);
                    MemberRow {
                        last_admin: admins == 1 && held.contains(&Role::Admin),
                        removable: policy::may_change_member(&access, &held, &[]) == Verdict::Allow,
                        email: m.email,
                        roles: m.roles,
                    }
                })
                .collect(),
        )
    } else {
        None
    };
    let grantable = Role::ALL
        .into_iter()
        .filter(|r| policy::may_grant(access.platform_admin, &access.roles, &[*r]))
        .map(|r| r.as_str().to_owned())
        .collect();
    render(
        status,
        &OrgPage {
            frame: viewer.frame(org.name.clone()),
            roles: access.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            may_hide: policy::org_verdict(&access, OrgAction::Rename) == Verdict::Allow,
            csrf: viewer.user.csrf.clone(),
            platform_admin: viewer.user.admin,
            apps,
            members,
            all_roles: Role::ALL.iter().map(|r| r.as_str().to_owned()).collect(),
            grantable,
            add,
            org,
        },
    )
}
