//! The invitee's side of invitations: the page a mailed link opens
//! (`GET /invitation?token=`), "create my account", accepting, and the signed-in
//! person's own list (`/invitations`, where Keycloak's set-a-password mail leads back
//! to). The token travels in the query string, which wizbrand's request log leaves out.

use actix_session::SessionExt;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use crate::config::Config;
use crate::db::invitations::Invitation;
use crate::error::AppError;
use crate::keycloak::accounts::Accounts;
use crate::manage::invitations::{
    self as invitations, AccountOutcome, LinkProblem, Refusal, Which,
};
use crate::oidc::client::public_path;
use crate::web::admin::form::Fields;
use crate::web::admin::{PageResult, Posted, Viewer, error_page, flash, render};
use crate::web::html::{ErrorPage, Frame};
use crate::web::page::html_err;
use crate::web::session::{self, SignedIn};

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    frame: Frame,
    invitation: Invitation,
    roles: String,
    until: String,
    token: String,
    /// Signed in as the invited address: the accept form's CSRF token.
    csrf: Option<String>,
    login: String,
}

#[derive(Template)]
#[template(path = "my_invitations.html")]
struct MyInvitationsPage {
    frame: Frame,
    email: Option<String>,
    invitations: Vec<Invitation>,
    csrf: String,
}

fn frame(title: &str, user: Option<SignedIn>) -> Frame {
    crate::web::page::frame(title, user.as_ref())
}

/// A page saying why a link cannot be used (nothing was changed).
fn problem_page(user: Option<SignedIn>, problem: &LinkProblem) -> PageResult {
    render(
        StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::BAD_REQUEST),
        &ErrorPage::new(
            frame(problem.heading(), user),
            problem.heading(),
            problem.detail(),
        ),
    )
}

fn message(
    status: StatusCode,
    user: Option<SignedIn>,
    heading: &str,
    detail: String,
) -> PageResult {
    render(
        status,
        &ErrorPage::new(frame(heading, user), heading, detail),
    )
}

/// `/login?rd=<this invitation's page>`.
fn sign_in_url(config: &Config, path_and_query: &str) -> String {
    let back = public_path(&config.public_url, path_and_query);
    let mut login = url::Url::parse(&public_path(&config.public_url, "/login"))
        .unwrap_or_else(|_| config.public_url.clone());
    login.query_pairs_mut().append_pair("rd", &back);
    login.to_string()
}

fn link_of(token: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("token", token);
    format!("{}?{}", invitations::LINK_PATH, query.finish())
}

#[get("/invitation")]
async fn open(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    query: web::Query<TokenQuery>,
) -> PageResult {
    let user = session::current(&req);
    let token = query.token.clone().unwrap_or_default();
    let invitation = match invitations::look_up(&pool, &token).await {
        Ok(found) => found,
        Err(Refusal::Link(problem)) => return problem_page(user, &problem),
        Err(Refusal::Error(e)) => return Err(e.html()),
    };
    let csrf = match &user {
        None => None,
        Some(user) => {
            if let Err(problem) = invitations::may_accept(user.email.as_deref(), &invitation.email)
            {
                return problem_page(Some(user.clone()), &problem);
            }
            Some(user.csrf.clone())
        }
    };
    render(
        StatusCode::OK,
        &InvitationPage {
            frame: frame(&format!("Invitation to {}", invitation.org_name), user),
            roles: invitation.roles.join(", "),
            until: format!("{} UTC", invitation.expires_at.format("%Y-%m-%d %H:%M")),
            login: sign_in_url(&config, &link_of(&token)),
            token,
            csrf,
            invitation,
        },
    )
}

/// "Create my account": no session yet, so no CSRF token; the invitation's token is the
/// proof (only its mailbox got it).
#[post("/invitation/account")]
async fn create_account(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    accounts: web::Data<Accounts>,
    fields: Fields,
) -> PageResult {
    let user = session::current(&req);
    let token = fields.text("token");
    match invitations::create_account(&pool, &accounts, &config, &token).await {
        Ok(AccountOutcome::Created { email }) => message(
            StatusCode::OK,
            user,
            "Check your mail",
            format!(
                "Your account {email} is created. Keycloak, our sign-in service, has mailed you a \
                 link to choose your password; open it, and you come back to your invitations \
                 here to accept."
            ),
        ),
        Ok(AccountOutcome::Exists { email }) => message(
            StatusCode::CONFLICT,
            user,
            "You have an account already",
            format!(
                "An account for {email} exists. Sign in with it to accept: {}",
                sign_in_url(&config, &link_of(&token))
            ),
        ),
        Err(Refusal::Link(problem)) => problem_page(user, &problem),
        Err(Refusal::Error(e)) => Err(e.html()),
    }
}

/// After accepting: the org is the person's current one, and they land on the home
/// page that says so.
async fn joined(
    req: &HttpRequest,
    pool: &PgPool,
    mut user: SignedIn,
    invitation: &Invitation,
) -> PageResult {
    crate::db::sessions::set_preferred_org(pool, &user.sub, invitation.org_id)
        .await
        .map_err(html_err)?;
    user.org = Some(invitation.org_slug.clone());
    session::store(&req.get_session(), &user).map_err(AppError::html)?;
    flash(
        req,
        "ok",
        format!(
            "Welcome to {}: you joined as {}.",
            invitation.org_name,
            invitation.roles.join(", ")
        ),
    );
    Ok(crate::web::html::redirect(StatusCode::SEE_OTHER, "/"))
}

fn refused(viewer: &Viewer, refusal: Refusal) -> PageResult {
    match refusal {
        Refusal::Link(problem) => problem_page(Some(viewer.user.clone()), &problem),
        Refusal::Error(e) => error_page(viewer, e),
    }
}

#[post("/invitation/accept")]
async fn accept_link(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
) -> PageResult {
    let token = fields.text("token");
    match invitations::accept(&pool, &viewer.user.principal(), Which::Token(&token)).await {
        Ok(invitation) => joined(&req, &pool, viewer.user, &invitation).await,
        Err(refusal) => refused(&viewer, refusal),
    }
}

#[get("/invitations")]
async fn mine(viewer: Viewer, pool: web::Data<PgPool>) -> PageResult {
    let who = viewer.user.principal();
    let invitations = invitations::mine(&pool, &who).await.map_err(html_err)?;
    render(
        StatusCode::OK,
        &MyInvitationsPage {
            frame: viewer.frame("Your invitations"),
            email: who.email,
            invitations,
            csrf: viewer.user.csrf.clone(),
        },
    )
}

#[post("/invitations/{id}/accept")]
async fn accept_mine(
    req: HttpRequest,
    Posted { viewer, .. }: Posted,
    pool: web::Data<PgPool>,
    id: web::Path<String>,
) -> PageResult {
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return problem_page(Some(viewer.user), &LinkProblem::Unknown);
    };
    match invitations::accept(&pool, &viewer.user.principal(), Which::Id(id)).await {
        Ok(invitation) => joined(&req, &pool, viewer.user, &invitation).await,
        Err(refusal) => refused(&viewer, refusal),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(open)
        .service(create_account)
        .service(accept_link)
        .service(mine)
        .service(accept_mine);
}
