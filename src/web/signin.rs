//! Sign-in, sign-out and back-channel logout handlers. Thin: the decisions live in
//! [`crate::web::rd`], [`crate::oidc::client`] and [`crate::web::orgs`].

use actix_session::Session;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use sqlx::PgPool;

use crate::config::Config;
use crate::db::sessions::RevocationRow;
use crate::domain::{Email, Principal};
use crate::error::{AppError, SurfacedError};
use crate::keycloak::providers::IdentityProviders;
use crate::manage::domains::AutoJoin;
use crate::manage::sso::SsoJoin;
use crate::oidc::client::{OidcClient, PendingLogin, SignInError, public_path};
use crate::oidc::jwks::TokenVerifier;
use crate::web::cookie_guard::DuplicateCookies;
use crate::web::html::{ErrorPage, Frame, Link, error_response, redirect, render};
use crate::web::page::{flash_in, frame, html_err};
use crate::web::rd::safe_redirect;
use crate::web::refresh::REFRESH_MARGIN;
use crate::web::revocations::Revocations;
use crate::web::session::{self, LOGIN_KEY, SESSION_TTL, SignedIn};
use crate::web::throttle::{SignInThrottle, client_address};
use crate::web::token_vault::{Tokens as VaultTokens, Vault};

#[derive(Deserialize)]
struct LoginQuery {
    rd: Option<String>,
    /// Identity-first: the address typed on the login page.
    email: Option<String>,
    /// "Sign in with a password": skip the question.
    password: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    frame: Frame,
    rd: String,
    email: String,
}

fn bad_request(detail: &str) -> SurfacedError {
    AppError::BadRequest(detail.to_owned()).html()
}

fn rd_of(config: &Config, rd: Option<&str>) -> String {
    safe_redirect(rd, &config.public_url, &config.cookie_domain)
}

/// `GET /login?rd=`: starts the code flow (PKCE S256, state, nonce).
#[get("/login")]
async fn login(
    req: HttpRequest,
    query: web::Query<LoginQuery>,
    session: Session,
    config: web::Data<Config>,
    oidc: web::Data<OidcClient>,
    pool: web::Data<PgPool>,
    throttle: web::Data<SignInThrottle>,
) -> Result<HttpResponse, SurfacedError> {
    if let Some(refused) = throttled(&req, &config, &throttle) {
        return Ok(refused);
    }
    let rd = rd_of(&config, query.rd.as_deref());
    if session::current(&req).is_some() {
        return Ok(redirect(actix_web::http::StatusCode::FOUND, &rd));
    }
    // Identity-first only when some org signs its people in through its own provider:
    // the address picks the door (docs/lifecycle.md).
    let mut hints = crate::oidc::client::LoginHints::default();
    if query.password.is_none() && crate::db::sso::any(&pool).await.map_err(html_err)? {
        match query
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            None => {
                return Ok(render(
                    actix_web::http::StatusCode::OK,
                    &LoginPage {
                        frame: frame("Sign in", None),
                        rd,
                        email: String::new(),
                    },
                ));
            }
            Some(email) => {
                hints.idp = crate::manage::sso::route_for(&pool, email)
                    .await
                    .map_err(AppError::html)?;
                hints.login = Email::parse(email).ok().map(Email::into_string);
            }
        }
    }
    match oidc.begin_with(rd, &hints).await {
        Ok((url, pending)) => {
            session
                .insert(LOGIN_KEY, &pending)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("session insert: {e}")).html())?;
            Ok(redirect(actix_web::http::StatusCode::FOUND, url.as_str()))
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in cannot start: Keycloak unavailable");
            Ok(idp_down())
        }
    }
}

/// The sign-in rate limit: a 429 page when this client has asked too often.
fn throttled(
    req: &HttpRequest,
    config: &Config,
    throttle: &SignInThrottle,
) -> Option<HttpResponse> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let client = client_address(peer, forwarded, &config.trusted_proxies);
    let wait = throttle.take(client, std::time::Instant::now()).err()?;
    let seconds = wait.as_secs().max(1);
    tracing::warn!(%client, path = req.path(), "sign-in rate limit reached");
    let mut response = error_response(
        actix_web::http::StatusCode::TOO_MANY_REQUESTS,
        Frame::bare("Too many sign-in attempts"),
        "Too many sign-in attempts",
        &format!(
            "Too many sign-in requests came from your address. Please wait {seconds} seconds \
             and try again."
        ),
    );
    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

fn idp_down() -> HttpResponse {
    error_response(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        Frame::bare("Sign-in unavailable"),
        "Sign-in is unavailable",
        "The identity provider (Keycloak) cannot be reached right now, so nobody can sign in. \
         If you are already signed in, you can keep working. Please try again in a minute.",
    )
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: finishes the code flow; a new session on success.
#[get("/auth/callback")]
async fn callback(
    req: HttpRequest,
    session: Session,
    oidc: web::Data<OidcClient>,
    verifier: web::Data<TokenVerifier>,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    throttle: web::Data<SignInThrottle>,
) -> Result<HttpResponse, SurfacedError> {
    if let Some(refused) = throttled(&req, &config, &throttle) {
        return Ok(refused);
    }
    const START_AGAIN: &str = "Please start again from the page you wanted to open.";
    let query = web::Query::<CallbackQuery>::from_query(req.query_string())
        .map_err(|_| bad_request("The sign-in answer is malformed."))?;
    // Taken out at once: a state is good for one callback only.
    let pending: Option<PendingLogin> = session.remove_as(LOGIN_KEY).and_then(Result::ok);
    if req.extensions().get::<DuplicateCookies>().is_some() {
        // Two session cookies: which one holds this browser's sign-in is unknown, so
        // neither counts; the guard has told the browser to drop them.
        return Err(bad_request(&format!(
            "Your browser sent two wizbrand sign-in cookies, so this sign-in cannot be \
             trusted; they have been cleared. {START_AGAIN}"
        )));
    }
    let Some(pending) = pending else {
        return Err(bad_request(&format!(
            "No sign-in is in progress in this browser (the link was already used, or it \
             expired, or cookies are blocked). {START_AGAIN}"
        )));
    };
    let state_ok = query
        .state
        .as_deref()
        .is_some_and(|s| session::constant_time_eq(s.as_bytes(), pending.state.as_bytes()));
    if !state_ok {
        return Err(bad_request(&format!(
            "The sign-in answer does not belong to this browser's sign-in (state mismatch). {START_AGAIN}"
        )));
    }
    if let Some(error) = query.error.as_deref() {
        return Err(bad_request(&format!(
            "The identity provider did not sign you in ({error}). {START_AGAIN}"
        )));
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(bad_request(&format!(
            "The sign-in answer carries no code. {START_AGAIN}"
        )));
    };
    let (tokens, claims) = match oidc.finish(code, &pending, &verifier).await {
        Ok(done) => done,
        Err(SignInError::Keycloak(e)) => {
            tracing::error!(error = %e, "code exchange failed: Keycloak unavailable");
            return Ok(idp_down());
        }
        Err(e @ (SignInError::Refused(_) | SignInError::IdToken(_))) => {
            tracing::info!(error = %e, "sign-in refused");
            return Err(bad_request(&format!(
                "The sign-in could not be completed (the code was refused or already used). {START_AGAIN}"
            )));
        }
    };
    // Only a verified address links a member row to this account: the person may set
    // an unverified one to anything (threat model, docs/threat-model.md).
    let email =
        Email::proven(claims.email.as_deref(), claims.email_verified).map(Email::into_string);
    if let Some(email) = email.as_deref()
        && crate::db::sessions::link_keycloak_id(&pool, &claims.sub, email)
            .await
            .map_err(html_err)?
    {
        tracing::info!(sub = %claims.sub, "member linked to the account by its verified email");
    }
    // A verified address at a verified auto-join domain: a member of that org now, if
    // a seat is free (docs/lifecycle.md). Before the orgs are read, so it can be the org.
    let providers = req.app_data::<web::Data<IdentityProviders>>();
    let by_provider = match providers {
        Some(providers) => sso_join(&pool, providers, &claims.sub, claims.email.as_deref()).await,
        None => SsoJoin::Nothing,
    };
    let auto_join = match by_provider {
        SsoJoin::Nothing => auto_join(&pool, &claims.sub, email.as_deref()).await,
        _ => AutoJoin::Nothing,
    };
    let orgs = crate::db::sessions::user_orgs(&pool, &claims.sub)
        .await
        .map_err(html_err)?;
    let org = crate::web::orgs::initial_org(&orgs, claims.preferred_org.as_deref());
    let admin = verifier
        .verify(&tokens.access_token)
        .await
        .map(|p| p.platform_admin)
        .unwrap_or(false);
    let now = Utc::now();
    let access_expires_at = tokens.access_expires_at(now);
    let user = SignedIn {
        sub: claims.sub.clone(),
        email,
        name: claims.name.clone().or(claims.preferred_username.clone()),
        sid: claims.sid.clone(),
        org: org.map(|o| o.slug.clone()),
        admin,
        admin_checked: now.timestamp_millis(),
        iat: now.timestamp_millis(),
        exp: (now + SESSION_TTL).timestamp_millis(),
        handle: session::random_token(),
        csrf: session::random_token(),
        refresh_at: (access_expires_at - REFRESH_MARGIN).timestamp_millis(),
    };
    if let Some(id_token) = tokens.id_token.clone() {
        // Sealed under a key only this session's cookie holds (the handle's).
        let vault = Vault::for_handle(&user.handle);
        let sealed = vault
            .seal(&VaultTokens {
                id_token,
                access_token: tokens.access_token.clone(),
                refresh_token: tokens.refresh_token.clone(),
            })
            .map_err(|e| AppError::Internal(e.into()).html())?;
        crate::db::sessions::store_tokens(
            &pool,
            &crate::db::sessions::SessionTokens {
                id: vault.row_id(),
                sub: &user.sub,
                sid: user.sid.as_deref(),
                sealed: &sealed,
                refreshable: tokens.refresh_token.is_some(),
                access_expires_at,
                expires_at: user.expires_at(),
            },
        )
        .await
        .map_err(html_err)?;
    }
    // No fixation: whatever the browser had before, the signed-in session is new.
    session.clear();
    session.renew();
    session::store(&session, &user).map_err(AppError::html)?;
    tracing::info!(sub = %user.sub, "signed in");
    match by_provider {
        SsoJoin::Joined { name, role, .. } => flash_in(
            &session,
            "ok",
            format!(
                "Welcome to {name}: signing in through your organization's sign-in service \
                 made you a member ({role})."
            ),
        ),
        SsoJoin::Refused { name, refusal } => {
            // Signed in all the same; the page says why they are not in the org.
            let (status, title) = match refusal {
                AppError::QuotaExceeded { .. } => (
                    actix_web::http::StatusCode::FORBIDDEN,
                    format!("No seat is free in {name}"),
                ),
                _ => (
                    actix_web::http::StatusCode::CONFLICT,
                    format!("You could not join {name}"),
                ),
            };
            let mut page = ErrorPage::new(
                frame(&title, Some(&user)),
                title.clone(),
                format!(
                    "You signed in through the sign-in service of {name}, but wizbrand could \
                     not make you a member: {refusal} You are signed in; ask an ORG_ADMIN of \
                     {name}."
                ),
            );
            page.links = vec![continue_link(&pending.rd)];
            return Ok(render(status, &page));
        }
        SsoJoin::Nothing => {}
    }
    match auto_join {
        AutoJoin::Joined(offer) => flash_in(
            &session,
            "ok",
            format!(
                "Welcome to {}: your verified address at {} made you a member (ORG_USER).",
                offer.name, offer.domain
            ),
        ),
        AutoJoin::Full(offer, refusal) => {
            // Signed in all the same; the page says why they are not in the org.
            let mut page = ErrorPage::new(
                frame("No seat is free", Some(&user)),
                format!("No seat is free in {}", offer.name),
                format!(
                    "Your verified address at {} lets you join {} at sign-in, but {} \
                     You are signed in; sign in again once an ORG_ADMIN of {} has freed a seat.",
                    offer.domain, offer.name, refusal, offer.name
                ),
            );
            page.links = vec![continue_link(&pending.rd)];
            return Ok(render(actix_web::http::StatusCode::FORBIDDEN, &page));
        }
        AutoJoin::Nothing => {}
    }
    Ok(redirect(actix_web::http::StatusCode::FOUND, &pending.rd))
}

fn continue_link(rd: &str) -> Link {
    Link {
        id: "continue",
        href: rd.to_owned(),
        text: "Continue",
    }
}

/// Joins the org whose provider the account is linked to
/// ([`crate::manage::sso::join_at_sign_in`]); `Nothing` when that did nothing (then the
/// domain may). A failure of Keycloak or Postgres is logged and the sign-in goes on.
async fn sso_join(
    pool: &PgPool,
    providers: &IdentityProviders,
    sub: &str,
    raw_email: Option<&str>,
) -> SsoJoin {
    match crate::manage::sso::join_at_sign_in(pool, providers, sub, raw_email).await {
        Ok(done) => {
            match &done {
                SsoJoin::Joined { org, .. } => {
                    tracing::info!(%sub, %org, "joined through the org's identity provider");
                }
                SsoJoin::Refused { name, .. } => {
                    // Not the reason: it may name an address.
                    tracing::info!(%sub, org = %name, "the org's provider could not make a member");
                }
                SsoJoin::Nothing => {}
            }
            done
        }
        Err(e) => {
            tracing::error!(error = %e, %sub, "joining through the org's provider failed");
            SsoJoin::Nothing
        }
    }
}

/// Joins by domain at sign-in ([`crate::manage::domains::at_sign_in`]); a failure is
/// logged and the sign-in goes on without it.
async fn auto_join(pool: &PgPool, sub: &str, email: Option<&str>) -> AutoJoin {
    let who = Principal {
        sub: sub.to_owned(),
        email: email.map(str::to_owned),
        preferred_org: None,
        platform_admin: false,
    };
    match crate::manage::domains::at_sign_in(pool, &who).await {
        Ok(done) => {
            if let AutoJoin::Joined(offer) = &done {
                tracing::info!(%sub, org = %offer.slug, "joined by verified domain at sign-in");
            }
            done
        }
        Err(e) => {
            tracing::error!(error = %e, %sub, "joining by domain at sign-in failed");
            AutoJoin::Nothing
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /logout`: ends the session here and at Keycloak (RP-initiated logout).
#[post("/logout")]
async fn logout(
    req: HttpRequest,
    session: Session,
    form: web::Form<CsrfForm>,
    config: web::Data<Config>,
    oidc: web::Data<OidcClient>,
    pool: web::Data<PgPool>,
    revocations: web::Data<Revocations>,
) -> Result<HttpResponse, SurfacedError> {
    let signed_out = public_path(&config.public_url, "/signed-out");
    let Some(user) = session::current(&req) else {
        session.purge();
        return Ok(redirect(
            actix_web::http::StatusCode::SEE_OTHER,
            &signed_out,
        ));
    };
    if !form.csrf.as_deref().is_some_and(|c| user.csrf_matches(c)) {
        return Err(bad_request(
            "The sign-out form is stale or was not sent by wizbrand (CSRF check failed). \
             Reload the page and try again.",
        ));
    }
    session.purge();
    // The revocation makes a copy of the cookie worthless on every replica.
    let sid = user.sid.as_deref();
    let sub = Some(user.sub.as_str());
    match crate::db::sessions::revoke(pool.get_ref(), sid, sub, user.expires_at()).await {
        Ok(revoked_at) => revocations.add(RevocationRow {
            sid: user.sid.clone(),
            sub: Some(user.sub.clone()),
            revoked_at,
        }),
        Err(e) => tracing::error!(error = %e, "logout could not record the revocation"),
    }
    let vault = Vault::for_handle(&user.handle);
    let id_token = match crate::db::sessions::take_tokens(&pool, vault.row_id()).await {
        Ok(Some(sealed)) => match vault.open(&sealed) {
            Ok(tokens) => Some(tokens.id_token),
            Err(e) => {
                tracing::warn!(error = %e, "logout could not open the session's ID token");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "logout could not read the session's ID token");
            None
        }
    };
    let location = match oidc.discovery().await {
        Ok(discovery) => oidc
            .end_session_url(&discovery, id_token.as_deref(), &signed_out)
            .map(|u| u.to_string())
            .unwrap_or(signed_out),
        Err(e) => {
            tracing::warn!(error = %e, "Keycloak unreachable at logout; local session ended");
            signed_out
        }
    };
    tracing::info!(sub = %user.sub, "signed out");
    Ok(redirect(actix_web::http::StatusCode::SEE_OTHER, &location))
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    frame: Frame,
}

/// `GET /signed-out`: where Keycloak sends the browser after logout.
#[get("/signed-out")]
async fn signed_out_page() -> HttpResponse {
    render(
        actix_web::http::StatusCode::OK,
        &SignedOutPage {
            frame: Frame::signed_out("Signed out"),
        },
    )
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    frame: Frame,
    csrf: String,
}

/// `GET /logout`: asks before signing out, with the form that carries the CSRF token.
/// Pages on app hosts (the gate's refusal) link here: no wizbrand form lives there.
/// Nobody signed in: home.
#[get("/logout")]
async fn logout_page(req: HttpRequest) -> HttpResponse {
    match session::current(&req) {
        Some(user) => render(
            actix_web::http::StatusCode::OK,
            &LogoutPage {
                frame: frame("Sign out", Some(&user)),
                csrf: user.csrf,
            },
        ),
        None => redirect(actix_web::http::StatusCode::FOUND, "/"),
    }
}

/// `POST /auth/backchannel-logout`: Keycloak's logout token ends the matching sessions
/// on every replica (through `session_revocations` and its notification).
#[post("/auth/backchannel-logout")]
async fn backchannel_logout(
    body: web::Bytes,
    oidc: web::Data<OidcClient>,
    verifier: web::Data<TokenVerifier>,
    pool: web::Data<PgPool>,
    revocations: web::Data<Revocations>,
) -> Result<HttpResponse, SurfacedError> {
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| AppError::BadRequest("logout_token is missing".into()).json())?;
    let checked =
        crate::oidc::client::verify_logout_token(&verifier, oidc.client_id(), &token, Utc::now())
            .await
            .map_err(|e| {
                tracing::info!(error = %e, "back-channel logout token refused");
                AppError::BadRequest("the logout token is not valid".into()).json()
            })?;
    let db_error = |e: sqlx::Error| AppError::from(e).json();
    // The jti and the revocation commit together: a failed revocation leaves the token
    // usable for Keycloak's retry.
    let mut tx = pool.begin().await.map_err(db_error)?;
    if !crate::db::logout_jtis::remember(&mut tx, &checked.jti, checked.remember_until)
        .await
        .map_err(db_error)?
    {
        tracing::info!(jti = %checked.jti, "back-channel logout token replayed; refused");
        return Err(AppError::BadRequest("the logout token was already used".into()).json());
    }
    let claims = checked.claims;
    let expires_at = Utc::now() + SESSION_TTL;
    // With a sid, only that Keycloak session ends; without, every session of the user.
    let revoked_at = crate::db::sessions::revoke(
        &mut *tx,
        claims.sid.as_deref(),
        claims.sub.as_deref(),
        expires_at,
    )
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    revocations.add(RevocationRow {
        sid: claims.sid.clone(),
        sub: claims.sub.clone(),
        revoked_at,
    });
    tracing::info!(sid = ?claims.sid, sub = ?claims.sub, "back-channel logout");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(login)
        .service(callback)
        .service(logout)
        .service(logout_page)
        .service(signed_out_page)
        .service(backchannel_logout);
}
