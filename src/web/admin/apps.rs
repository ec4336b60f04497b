//! The app registry page, and how one app looks to the members of one org.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use sqlx::PgPool;
use url::Url;

use super::{Viewer, render};
use crate::db::apps::App;
use crate::db::orgs::Org;
use crate::domain::Role;
use crate::error::SurfacedError;
use crate::policy::{self, OrgAccess};
use crate::web::html::Frame;
use crate::web::page::html_err;

/// One app of one org: its status (the same words for every viewer) and whether this
/// viewer can open it.
pub struct AppRow {
    pub key: String,
    pub name: String,
    /// Whether the org's members can open it, and who: the same for everyone.
    pub status: String,
    /// The org's plan has the app's feature (else an ORG_ADMIN has nothing to open).
    pub in_plan: bool,
    /// The app's address for this org, when the viewer can open it.
    pub url: Option<String>,
    /// Why the viewer cannot open an app that is open to others.
    pub not_for_you: Option<String>,
    pub hidden: bool,
}

/// The app's address for an org: its host pattern with the org's slug, on the public
/// URL's scheme and port (Traefik serves every host on one entry point).
pub fn app_url(host_pattern: &str, slug: &str, public: &Url) -> Option<String> {
    let host = host_pattern.replace("{org}", slug);
    let mut url = public.clone();
    url.set_host(Some(&host)).ok()?;
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Some(url.to_string())
}

/// Whether the org's members can open `app` (as the gate decides), and whether the
/// viewer with `access` can.
pub fn app_row(app: &App, org: &Org, access: &OrgAccess, public: &Url) -> AppRow {
    let min_role = app.min_role.parse::<Role>().unwrap_or(Role::Admin);
    let hidden = org.hidden_apps.contains(&app.key);
    let in_plan = org.features.contains(&app.required_feature);
    let open = in_plan && !hidden && org.status == "active";
    let status = if !in_plan {
        format!(
            "Not in the plan (needs the {} feature)",
            app.required_feature
        )
    } else if hidden {
        "Closed by an ORG_ADMIN".to_owned()
    } else if org.status != "active" {
        "Closed while the organization is suspended".to_owned()
    } else if min_role == Role::User {
        "Open to every member".to_owned()
    } else {
        format!("Open to {} and above", min_role.as_str())
    };
    let not_for_you = if !open {
        None
    } else if access.roles.is_empty() {
        Some("Not to you: you are not a member".to_owned())
    } else if !policy::satisfies(&access.roles, min_role) {
        Some(format!("Not to you: it needs {}", min_role.as_str()))
    } else {
        None
    };
    AppRow {
        url: (open && not_for_you.is_none())
            .then(|| app_url(&app.host_pattern, &org.slug, public))
            .flatten(),
        key: app.key.clone(),
        name: app.name.clone(),
        status,
        in_plan,
        not_for_you,
        hidden,
    }
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    frame: Frame,
    apps: Vec<App>,
}

#[get("/admin/apps")]
async fn registry(viewer: Viewer, pool: web::Data<PgPool>) -> Result<HttpResponse, SurfacedError> {
    let (apps, _) = crate::db::apps::list(&pool, 1000, 0)
        .await
        .map_err(html_err)?;
    render(
        StatusCode::OK,
        &AppsPage {
            frame: viewer.frame("Apps"),
            apps,
        },
    )
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(registry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(features: &[&str], hidden: &[&str], status: &str) -> Org {
        Org {
            id: uuid::Uuid::nil(),
            slug: "gamma".into(),
            name: "Gamma".into(),
            plan: "free".into(),
            features: features.iter().map(|s| s.to_string()).collect(),
            status: status.into(),
            hidden_apps: hidden.iter().map(|s| s.to_string()).collect(),
            created_at: chrono::DateTime::default(),
            updated_at: chrono::DateTime::default(),
        }
    }

    fn files() -> App {
        App {
            key: "files".into(),
            name: "FileBrowser".into(),
            host_pattern: "{org}.files.wizbrand.localhost".into(),
            required_feature: "files".into(),
            min_role: "ORG_USER".into(),
            pass_authorization: false,
            created_at: chrono::DateTime::default(),
            updated_at: chrono::DateTime::default(),
        }
    }

    fn user() -> OrgAccess {
        OrgAccess {
            platform_admin: false,
            roles: vec![Role::User],
        }
    }

    #[test]
    fn an_app_opens_only_with_feature_visibility_status_and_role() {
        let public = Url::parse("http://auth.wizbrand.localhost:8000/").unwrap();
        let open = app_row(&files(), &org(&["files"], &[], "active"), &user(), &public);
        assert_eq!(open.status, "Open to every member");
        assert_eq!(
            open.url.as_deref(),
            Some("http://gamma.files.wizbrand.localhost:8000/")
        );
        for (o, why) in [
            (org(&[], &[], "active"), "Not in the plan"),
            (
                org(&["files"], &["files"], "active"),
                "Closed by an ORG_ADMIN",
            ),
            (org(&["files"], &[], "suspended"), "suspended"),
        ] {
            let row = app_row(&files(), &o, &user(), &public);
            assert!(row.status.contains(why), "{}", row.status);
            assert_eq!(row.url, None);
            assert_eq!(row.not_for_you, None);
        }
        assert!(!app_row(&files(), &org(&[], &[], "active"), &user(), &public).in_plan);
    }

    #[test]
    fn the_status_reads_the_same_for_every_viewer() {
        let public = Url::parse("http://auth.wizbrand.localhost:8000/").unwrap();
        let mut managers_only = files();
        managers_only.min_role = "ORG_MANAGER".into();
        let gamma = org(&["files"], &[], "active");
        let admin = OrgAccess {
            platform_admin: false,
            roles: vec![Role::Admin],
        };
        let platform = OrgAccess {
            platform_admin: true,
            roles: vec![],
        };
        let rows: Vec<AppRow> = [user(), admin, platform]
            .iter()
            .map(|a| app_row(&managers_only, &gamma, a, &public))
            .collect();
        for row in &rows {
            assert_eq!(row.status, "Open to ORG_MANAGER and above");
        }
        assert_eq!(
            rows[0].not_for_you.as_deref(),
            Some("Not to you: it needs ORG_MANAGER")
        );
        assert_eq!(rows[0].url, None);
        assert!(rows[1].url.is_some() && rows[1].not_for_you.is_none());
        assert_eq!(
            rows[2].not_for_you.as_deref(),
            Some("Not to you: you are not a member")
        );
    }
}
