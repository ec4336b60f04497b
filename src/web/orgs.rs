//! `GET/POST /orgs/select`: choosing the org (`preferred_org`) among the user's orgs.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use crate::config::Config;
use crate::db::sessions::UserOrgRow;
use crate::error::{AppError, SurfacedError};
use crate::oidc::client::public_path;
use crate::web::html::{Frame, redirect, render};
use crate::web::page::{flash_in, frame, html_err};
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

/// Makes `org` the user's org and goes on to `rd`. `confirm`: a choice the person made
/// (not the only org taken for them), confirmed on the next page when that is one of
/// wizbrand's (an app host shows no flash).
async fn choose(
    session: &Session,
    pool: &PgPool,
    mut user: SignedIn,
    org: &UserOrgRow,
    rd: &str,
    confirm: Option<&Config>,
) -> Result<HttpResponse, SurfacedError> {
    crate::db::sessions::set_preferred_org(pool, &user.sub, org.id)
        .await
        .map_err(html_err)?;
    let changed = user.org.as_deref() != Some(org.slug.as_str());
    user.org = Some(org.slug.clone());
    session::store(session, &user).map_err(AppError::html)?;
    if let Some(config) = confirm
        && lands_here(config, rd)
    {
        let text = if changed {
            format!(
                "Switched to {} ({}). Apps whose address names no organization now open in it.",
                org.name, org.slug
            )
        } else {
            format!("{} ({}) is your organization already.", org.name, org.slug)
        };
        flash_in(session, "ok", text);
    }
    Ok(redirect(StatusCode::SEE_OTHER, rd))
}

/// Whether `rd` (already made safe) is a page of the auth host.
pub fn lands_here(config: &Config, rd: &str) -> bool {
    rd.starts_with('/') && !rd.starts_with("//")
        || url::Url::parse(rd).is_ok_and(|u| u.origin() == config.public_url.origin())
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
    let offer = crate::manage::domains::offer_for(&pool, &user.principal())
        .await
        .map_err(AppError::html)?;
    let page = |orgs: &[UserOrgRow], title: &str| {
        render(
            StatusCode::OK,
            &SelectPage {
                frame: frame(title, Some(&user)),
                who: user.email.clone().unwrap_or_else(|| user.sub.clone()),
                platform_admin: user.admin,
                csrf: user.csrf.clone(),
                rd: rd.clone(),
                current: user.org.clone(),
                orgs: orgs.to_vec(),
                offer: offer.clone(),
            },
        )
    };
    match selection(&orgs) {
        Selection::NoOrgs => Ok(page(&[], "No organization")),
        Selection::Only(org) => choose(&session, &pool, user.clone(), org, &rd, None).await,
        Selection::Choose(orgs) => Ok(page(orgs, "Choose an organization")),
    }
}

/// The org chooser, or (no orgs) the page that says whom to ask.
#[derive(Template)]
#[template(path = "org_select.html")]
struct SelectPage {
    frame: Frame,
    who: String,
    platform_admin: bool,
    csrf: String,
    rd: String,
    current: Option<String>,
    orgs: Vec<UserOrgRow>,
    /// An org the person's verified address offers to join ("suggest").
    offer: Option<crate::db::domains::Offer>,
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
    choose(&session, &pool, user, org, &rd, Some(&config)).await
}

#[derive(Deserialize)]
struct JoinForm {
    csrf: Option<String>,
    org: Option<String>,
}

/// `POST /orgs/join`: joins, as ORG_USER, the org one of whose verified domains holds
/// the person's verified address and suggests (or auto-joins) it; takes a seat. The
/// org becomes the current one.
#[post("/orgs/join")]
async fn join(
    req: HttpRequest,
    form: web::Form<JoinForm>,
    session: Session,
    config: web::Data<Config>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, SurfacedError> {
    let Some(mut user) = session::current(&req) else {
        return Ok(sign_in_first(&config, None));
    };
    if !form.csrf.as_deref().is_some_and(|c| user.csrf_matches(c)) {
        return Err(AppError::BadRequest(
            "The form is stale or was not sent by wizbrand (CSRF check failed). Reload the page \
             and try again."
                .into(),
        )
        .html());
    }
    let slug = form.org.as_deref().unwrap_or_default();
    let way = crate::manage::domains::Way::Asked;
    let joined = crate::manage::domains::join(&pool, &user.principal(), slug, way)
        .await
        .map_err(AppError::html)?;
    let (offer, text) = match joined {
        crate::manage::domains::Joined::Joined(offer) => {
            let text = format!("Welcome to {}: you joined as ORG_USER.", offer.name);
            (offer, text)
        }
        crate::manage::domains::Joined::Already(offer) => {
            let text = format!("You are a member of {} already.", offer.name);
            (offer, text)
        }
    };
    crate::db::sessions::set_preferred_org(&pool, &user.sub, offer.org_id)
        .await
        .map_err(html_err)?;
    user.org = Some(offer.slug.clone());
    session::store(&session, &user).map_err(AppError::html)?;
    flash_in(&session, "ok", text);
    Ok(redirect(StatusCode::SEE_OTHER, "/#flash"))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(select_page)
        .service(select_submit)
        .service(join);
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
    fn the_switch_is_confirmed_only_on_a_page_of_the_auth_host() {
        let env: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/wizbrand"),
            ("WIZBRAND_PUBLIC_URL", "http://auth.wizbrand.localhost:8000"),
            ("WIZBRAND_COOKIE_DOMAIN", "wizbrand.localhost"),
            ("KEYCLOAK_URL", "http://localhost:8180"),
            ("WIZBRAND_OIDC_CLIENT_SECRET", "s"),
            ("WIZBRAND_SYNC_CLIENT_SECRET", "s"),
            ("WIZBRAND_SESSION_KEY", &"k".repeat(64)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = Config::from_source(&env).unwrap();
        assert!(lands_here(&config, "/"));
        assert!(lands_here(
            &config,
            "http://auth.wizbrand.localhost:8000/admin/orgs"
        ));
        assert!(!lands_here(
            &config,
            "http://acme.seo.wizbrand.localhost:8000/"
        ));
        assert!(!lands_here(&config, "//evil.example/"));
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
