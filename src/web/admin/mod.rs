//! The admin pages (`/admin/…`) and the home page, server-rendered with askama
//! (templates in `templates/`, checked at compile time; every value is escaped).
//!
//! Handlers are thin: who may do what is [`crate::policy`], the changes and their audit
//! entries are [`crate::manage`], the SQL is [`crate::db`]. Every form carries the
//! session's CSRF token; every change ends with a flash message and a redirect.

pub mod apps;
pub mod audit;
pub mod domains;
pub mod explain;
pub mod form;
pub mod home;
pub mod invitations;
pub mod members;
pub mod org_page;
pub mod orgs;
pub mod scim;
pub mod sso;
pub mod sync;

use actix_session::SessionExt;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use askama::Template;

use crate::config::Config;
use crate::error::{AppError, SurfacedError};
use crate::oidc::client::public_path;
use crate::web::html::{ErrorPage, Flash, Frame};
use crate::web::refresh::AdminCheck;
use crate::web::session::{self, SignedIn};

/// What an admin page handler answers.
pub type PageResult = Result<HttpResponse, SurfacedError>;

/// A signed-in person on an admin page, with the flash message left for them.
pub struct Viewer {
    pub user: SignedIn,
    pub flash: Option<Flash>,
}

impl Viewer {
    /// The frame of a page for this person, with their flash message.
    pub fn frame(&self, title: impl Into<String>) -> Frame {
        Frame {
            flash: self.flash.clone(),
            ..crate::web::page::frame(title, Some(&self.user))
        }
    }
}

impl FromRequest for Viewer {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    /// Not signed in: to the sign-in, and back to this page afterwards. A platform-admin
    /// flag older than `WIZBRAND_ADMIN_RECHECK_SECONDS` is read from Keycloak again first.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let sign_in = || {
                actix_web::error::InternalError::from_response(
                    "sign-in required",
                    sign_in_first(&req),
                )
                .into()
            };
            let Some(mut user) = session::current(&req) else {
                return Err(sign_in());
            };
            let now = chrono::Utc::now().timestamp_millis();
            let max_age = req
                .app_data::<web::Data<Config>>()
                .map_or(std::time::Duration::from_secs(60), |c| c.admin_recheck);
            if user.admin_check_due(now, max_age) {
                match recheck_admin(&req, &user.handle).await {
                    AdminCheck::Checked { platform_admin } => {
                        if platform_admin != user.admin {
                            tracing::info!(sub = %user.sub, platform_admin, "platform-admin role changed in Keycloak");
                        }
                        user.admin = platform_admin;
                        user.admin_checked = now;
                        session::store(&req.get_session(), &user)
                            .map_err(|e| actix_web::Error::from(e.html()))?;
                    }
                    AdminCheck::Ended => return Err(sign_in()),
                    // Not stored: the next request asks again.
                    AdminCheck::Unknown => user.admin = false,
                }
            }
            Ok(Viewer {
                flash: take_flash(&req),
                user,
            })
        })
    }
}

async fn recheck_admin(req: &HttpRequest, handle: &str) -> AdminCheck {
    let (Some(pool), Some(oidc), Some(verifier), Some(revocations)) = (
        req.app_data::<web::Data<sqlx::PgPool>>(),
        req.app_data::<web::Data<crate::oidc::client::OidcClient>>(),
        req.app_data::<web::Data<crate::oidc::jwks::TokenVerifier>>(),
        req.app_data::<web::Data<crate::web::revocations::Revocations>>(),
    ) else {
        return AdminCheck::Unknown;
    };
    crate::web::refresh::recheck_admin(
        pool,
        oidc,
        verifier,
        revocations,
        handle,
        session::SESSION_TTL,
    )
    .await
}

fn sign_in_first(req: &HttpRequest) -> HttpResponse {
    let config = req.app_data::<web::Data<Config>>();
    let Some(config) = config else {
        return crate::web::html::redirect(StatusCode::FOUND, "/login");
    };
    let mut back = url::Url::parse(&public_path(&config.public_url, req.path()))
        .unwrap_or_else(|_| config.public_url.clone());
    // GET pages only come back with their query; a form post is not replayed.
    if req.method() == actix_web::http::Method::GET && !req.query_string().is_empty() {
        back.set_query(Some(req.query_string()));
    }
    let mut login = url::Url::parse(&public_path(&config.public_url, "/login"))
        .unwrap_or_else(|_| config.public_url.clone());
    login.query_pairs_mut().append_pair("rd", back.as_str());
    crate::web::html::redirect(StatusCode::FOUND, login.as_str())
}

pub use crate::web::page::{flash, take_flash};

/// After a change: a message, then back to a page (Post/Redirect/Get), scrolled to the
/// message: a redirect without a fragment would keep the form's own (`#errors`,
/// `#add-heading`), and the message at the top would be out of sight.
pub fn done(req: &HttpRequest, kind: &str, text: impl Into<String>, to: &str) -> HttpResponse {
    flash(req, kind, text);
    let to = if to.contains('#') {
        to.to_owned()
    } else {
        format!("{to}#flash")
    };
    crate::web::html::redirect(StatusCode::SEE_OTHER, &to)
}

pub fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, SurfacedError> {
    Ok(crate::web::html::render(status, page))
}

/// An error from a change, as a page with the navigation around it.
pub fn error_page(viewer: &Viewer, error: AppError) -> Result<HttpResponse, SurfacedError> {
    let (status, heading) = match &error {
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "Access denied"),
        AppError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
        AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
        AppError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
        AppError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid input"),
        AppError::QuotaExceeded { .. } => (StatusCode::FORBIDDEN, "Quota exceeded"),
        // Logged and worded in one place.
        _ => return Err(error.html()),
    };
    // A refusal says who can do it (crate::policy::refusal); nothing to add here.
    let detail = match &error {
        AppError::NotFound => {
            "There is no such page, or it belongs to an organization you are not a member of."
                .to_owned()
        }
        other => other.to_string(),
    };
    render(
        status,
        &ErrorPage::new(viewer.frame(heading), heading, detail),
    )
}

/// The CSRF check of every admin form: refused with a 400 page when it fails.
fn check_csrf(viewer: &Viewer, fields: &form::Fields) -> Result<(), AppError> {
    if fields
        .get("csrf")
        .is_some_and(|c| viewer.user.csrf_matches(c))
    {
        Ok(())
    } else {
        Err(AppError::BadRequest(
            "The form is stale or was not sent by wizbrand (CSRF check failed). Reload the page and try again."
                .to_owned(),
        ))
    }
}

/// A form posted by a signed-in person, its CSRF token checked: a missing or wrong token
/// is a 400 page and the handler never runs.
pub struct Posted {
    pub viewer: Viewer,
    pub fields: form::Fields,
}

impl FromRequest for Posted {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let viewer = Viewer::from_request(req, payload);
        let fields = form::Fields::from_request(req, payload);
        Box::pin(async move {
            let viewer = viewer.await?;
            let fields = fields.await?;
            if let Err(e) = check_csrf(&viewer, &fields) {
                let page = error_page(&viewer, e).unwrap_or_else(|e| e.error_response());
                return Err(actix_web::error::InternalError::from_response(
                    "CSRF check failed",
                    page,
                )
                .into());
            }
            Ok(Posted { viewer, fields })
        })
    }
}

/// Links to the previous and next page of a list.
pub struct Pager {
    pub previous: Option<String>,
    pub next: Option<String>,
    pub summary: String,
}

pub const PAGE_SIZE: i64 = 25;

impl Pager {
    /// `base` is the list's URL with its filters, ending in `?` or `&`.
    pub fn new(base: &str, page: i64, total: i64) -> Pager {
        let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
        Pager {
            previous: (page > 1).then(|| format!("{base}page={}", page - 1)),
            next: (page < pages).then(|| format!("{base}page={}", page + 1)),
            summary: format!("Page {page} of {pages} ({total} in all)"),
        }
    }
}

/// The 1-based page number of a query, within sane bounds.
pub fn page_number(raw: Option<&str>) -> i64 {
    raw.and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(home::routes)
        .configure(orgs::routes)
        .configure(members::routes)
        .configure(invitations::routes)
        .configure(apps::routes)
        .configure(scim::routes)
        .configure(domains::routes)
        .configure(sso::routes)
        .configure(sync::routes)
        .configure(audit::routes)
        .configure(explain::routes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_links_stay_within_the_pages() {
        let first = Pager::new("/admin/orgs?q=a&", 1, 60);
        assert_eq!(first.previous, None);
        assert_eq!(first.next.as_deref(), Some("/admin/orgs?q=a&page=2"));
        assert_eq!(first.summary, "Page 1 of 3 (60 in all)");
        let last = Pager::new("/admin/orgs?", 3, 60);
        assert_eq!(last.next, None);
        assert_eq!(Pager::new("/x?", 1, 0).summary, "Page 1 of 1 (0 in all)");
        assert_eq!(page_number(Some("-4")), 1);
        assert_eq!(page_number(Some("zz")), 1);
    }
}
