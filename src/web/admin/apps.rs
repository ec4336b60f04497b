//! The app registry page, and how one app looks to the members of one org.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use sqlx::PgPool;
use url::Url;

use super::{Layout, Viewer, render};
use crate::db::apps::App;
use crate::db::orgs::Org;
use crate::domain::Role;
use crate::error::SurfacedError;
use crate::policy::{self, OrgAccess};
use crate::web::page::html_err;

/// One app as a member of this org sees it.
pub struct AppRow {
    pub key: String,
    pub name: String,
    pub status: String,
    pub url: Option<String>,
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

/// Whether the viewer (with `access` to the org) can open `app` there, and why not.
pub fn app_row(app: &App, org: &Org, access: &OrgAccess, public: &Url) -> AppRow {
    let min_role = app.min_role.parse::<Role>().unwrap_or(Role::Admin);
    let hidden = org.hidden_apps.contains(&app.key);
    let status = if !org.features.contains(&app.required_feature) {
        format!(
            "not in the plan (needs the {} feature)",
            app.required_feature
        )
    } else if hidden {
        "closed by an ORG_ADMIN".to_owned()
    } else if org.status != "active" {
        "unavailable while the organization is suspended".to_owned()
    } else if !policy::satisfies(&access.roles, min_role) {
        format!("open to {} and above", min_role.as_str())
    } else {
        "open".to_owned()
    };
    AppRow {
        url: (status == "open")
            .then(|| app_url(&app.host_pattern, &org.slug, public))
            .flatten(),
        key: app.key.clone(),
        name: app.name.clone(),
        status,
        hidden,
    }
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    layout: Layout,
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
            layout: viewer.layout("Apps"),
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
        assert_eq!(open.status, "open");
        assert_eq!(
            open.url.as_deref(),
            Some("http://gamma.files.wizbrand.localhost:8000/")
        );
        for (o, why) in [
            (org(&[], &[], "active"), "not in the plan"),
            (org(&["files"], &["files"], "active"), "closed"),
            (org(&["files"], &[], "suspended"), "suspended"),
        ] {
            let row = app_row(&files(), &o, &user(), &public);
            assert!(row.status.contains(why), "{}", row.status);
            assert_eq!(row.url, None);
        }
        let mut managers_only = files();
        managers_only.min_role = "ORG_MANAGER".into();
        let row = app_row(
            &managers_only,
            &org(&["files"], &[], "active"),
            &user(),
            &public,
        );
        assert_eq!(row.status, "open to ORG_MANAGER and above");
    }
}
