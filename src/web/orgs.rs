//! `GET/POST /orgs/select`: choosing the org (`preferred_org`) among the user's orgs.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use sqlx::PgPool;

use crate::config::Config;
use crate::db::sessions::UserOrgRow;
use crate::error::{AppError, SurfacedError};
use crate::oidc::client::public_path;
use crate::web::html::{html, logout_form, redirect};
use crate::web::page::escape;
use crate::web::page::html_err;
use crate::web::rd::safe_redirect;
use crate::web::session::{self, SignedIn};

/// The org a fresh session starts with: the token's `preferred_org` if the user still
/// belongs to it, else the one stored in Postgres, else the only one.
pub fn initial_org<'a>(orgs: &'a [UserOrgRow], claim: Option<&str>) -> Option<&'a UserOrgRow> {
    claim
        .and_then(|slug| orgs.iter().find(|o| o.slug == slug))
        .or_else(|| orgs.iter().find(|o| o.preferred))
        .or(match orgs {
            [only] => Some(only),
            _ => None,
        })
}

/// What `GET /orgs/select` does with the user's orgs.
#[derive(Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    /// A member of no org: say so and whom to ask.
    NoOrgs,
    /// Exactly one: chosen at once.
    Only(&'a UserOrgRow),
    /// Several: the user picks.
    Choose(&'a [UserOrgRow]),
}

pub fn selection(orgs: &[UserOrgRow]) -> Selection<'_> {
    match orgs {
        [] => Selection::NoOrgs,
        [only] => Selection::Only(only),
        several => Selection::Choose(several),
    }
}

/// The org a posted slug names, only if the user belongs to it.
pub fn pick<'a>(orgs: &'a [UserOrgRow], slug: &str) -> Option<&'a UserOrgRow> {
    orgs.iter().find(|o| o.slug == slug)
}

#[derive(Deserialize)]
struct SelectQuery {
    rd: Option<String>,
}

#[derive(Deserialize)]
struct SelectForm {
    csrf: Option<String>,
    org: Option<String>,
    rd: Option<String>,
}

/// Not signed in: sign in first, then come back here.
fn sign_in_first(config: &Config, rd: Option<&str>) -> HttpResponse {
    let mut back = url::Url::parse(&public_path(&config.public_url, "/orgs/select"))
        .unwrap_or_else(|_| config.public_url.clone());
    if let Some(rd) = rd {
        back.query_pairs_mut().append_pair("rd", rd);
    }
    let mut login = url::Url::parse(&public_path(&config.public_url, "/login"))
        .unwrap_or_else(|_| config.public_url.clone());
    login.query_pairs_mut().append_pair("rd", back.as_str());
    redirect(StatusCode::FOUND, login.as_str())
}

async fn choose(
    session: &Session,
    pool: &PgPool,
    mut user: SignedIn,
    org: &UserOrgRow,
    rd: &str,
) -> Result<HttpResponse, SurfacedError> {
    crate::db::sessions::set_preferred_org(pool, &user.sub, org.id)
        .await
        .map_err(html_err)?;
    user.org = Some(org.slug.clone());
    session::store(session, &user).map_err(AppError::html)?;
    Ok(redirect(StatusCode::SEE_OTHER, rd))
}

#[get("/orgs/select")]
async fn select_page(
    req: HttpRequest,
    query: web::Query<SelectQuery>,
    session: Session,
    config: web::Data<Config>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, SurfacedError> {
    let Some(user) = session::current(&req) else {
        return Ok(sign_in_first(&config, query.rd.as_deref()));
    };
    let rd = safe_redirect(
        query.rd.as_deref(),
        &config.public_url,
        &config.cookie_domain,
    );
    let orgs = crate::db::sessions::user_orgs(&pool, &user.sub)
        .await
        .map_err(html_err)?;
    match selection(&orgs) {
        Selection::NoOrgs => Ok(html(
            StatusCode::OK,
            "No organization",
            &format!(
                "<h1>No organization</h1><p id=\"no-orgs\">You ({}) are not a member of any \
                 organization yet. Ask an administrator of your organization (an ORG_ADMIN) to \
                 add you, then sign in again.</p>{}",
                escape(user.email.as_deref().unwrap_or(&user.sub)),
                logout_form(&user.csrf)
            ),
        )),
        Selection::Only(org) => choose(&session, &pool, user, org, &rd).await,
        Selection::Choose(orgs) => {
            let options: String = orgs
                .iter()
                .map(|o| {
                    let current = user.org.as_deref() == Some(o.slug.as_str());
                    format!(
                        "<li><button type=\"submit\" name=\"org\" value=\"{slug}\" id=\"org-{slug}\">{name}</button> \
                         <small>{slug} · {roles}{current}</small></li>",
                        slug = escape(&o.slug),
                        name = escape(&o.name),
                        roles = escape(&o.roles.join(", ")),
                        current = if current { " · current" } else { "" },
                    )
                })
                .collect();
            Ok(html(
                StatusCode::OK,
                "Choose an organization",
                &format!(
                    "<h1>Choose an organization</h1>\
                     <form method=\"post\" action=\"/orgs/select\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <input type=\"hidden\" name=\"rd\" value=\"{rd}\"><ul>{options}</ul></form>{logout}",
                    csrf = escape(&user.csrf),
                    rd = escape(&rd),
                    logout = logout_form(&user.csrf),
                ),
            ))
        }
    }
}

#[post("/orgs/select")]
async fn select_submit(
    req: HttpRequest,
    form: web::Form<SelectForm>,
    session: Session,
    config: web::Data<Config>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, SurfacedError> {
    let Some(user) = session::current(&req) else {
        return Ok(sign_in_first(&config, form.rd.as_deref()));
    };
    if !form.csrf.as_deref().is_some_and(|c| user.csrf_matches(c)) {
        return Err(AppError::BadRequest(
            "The form is stale or was not sent by wizbrand (CSRF check failed). Reload the page \
             and try again."
                .into(),
        )
        .html());
    }
    let rd = safe_redirect(
        form.rd.as_deref(),
        &config.public_url,
        &config.cookie_domain,
    );
    let orgs = crate::db::sessions::user_orgs(&pool, &user.sub)
        .await
        .map_err(html_err)?;
    let slug = form.org.as_deref().unwrap_or_default();
    let Some(org) = pick(&orgs, slug) else {
        return Err(AppError::Forbidden(format!(
            "You are not a member of the organization \"{slug}\"; choose one of yours."
        ))
        .html());
    };
    choose(&session, &pool, user, org, &rd).await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(select_page).service(select_submit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn org(slug: &str, preferred: bool) -> UserOrgRow {
        UserOrgRow {
            id: Uuid::new_v4(),
            slug: slug.into(),
            name: slug.to_uppercase(),
            roles: vec!["ORG_USER".into()],
            preferred,
        }
    }

    #[test]
    fn selection_depends_on_the_number_of_orgs() {
        assert_eq!(selection(&[]), Selection::NoOrgs);
        let one = [org("acme", false)];
        assert_eq!(selection(&one), Selection::Only(&one[0]));
        let two = [org("acme", false), org("beta", false)];
        assert_eq!(selection(&two), Selection::Choose(&two));
    }

    #[test]
    fn only_an_own_org_can_be_picked() {
        let two = [org("acme", false), org("beta", false)];
        assert_eq!(pick(&two, "beta").map(|o| o.slug.as_str()), Some("beta"));
        assert!(pick(&two, "gamma").is_none());
        assert!(pick(&two, "").is_none());
    }

    #[test]
    fn the_initial_org_prefers_the_claim_then_the_stored_choice_then_the_only_one() {
        let two = [org("acme", false), org("beta", true)];
        assert_eq!(
            initial_org(&two, Some("acme")).map(|o| o.slug.as_str()),
            Some("acme")
        );
        assert_eq!(
            initial_org(&two, Some("gone")).map(|o| o.slug.as_str()),
            Some("beta")
        );
        let unstored = [org("acme", false), org("beta", false)];
        assert!(initial_org(&unstored, None).is_none());
        let one = [org("acme", false)];
        assert_eq!(
            initial_org(&one, None).map(|o| o.slug.as_str()),
            Some("acme")
        );
        assert!(initial_org(&[], Some("acme")).is_none());
    }
}
