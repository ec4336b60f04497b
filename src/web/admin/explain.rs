//! `/admin/explain`: the gate's decision for a person and a URL, step by step
//! ([`crate::forward_auth::explain`], the same code as `wizbrand explain`), for platform
//! admins and, for the orgs they administer, ORG_ADMINs.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use super::{Viewer, render};
use crate::domain::Role;
use crate::error::SurfacedError;
use crate::forward_auth::assertion::Signer;
use crate::forward_auth::decide::GateSnapshot;
use crate::forward_auth::explain::{ExplainError, Explanation, Question, explain, find_person};
use crate::forward_auth::state::GateState;
use crate::web::html::{ErrorPage, Frame};
use crate::web::page::html_err;

#[derive(Deserialize)]
struct ExplainQuery {
    email: Option<String>,
    url: Option<String>,
    org: Option<String>,
}

#[derive(Template)]
#[template(path = "explain.html")]
struct ExplainPage {
    frame: Frame,
    platform_admin: bool,
    email: String,
    url: String,
    org: String,
    message: Option<String>,
    explanation: Option<Explanation>,
    assertion_claims: Option<String>,
}

fn bounded(raw: Option<&str>) -> String {
    raw.unwrap_or_default().trim().chars().take(2000).collect()
}

/// Whether `sub` is an ORG_ADMIN of `org` (the gate's state: what the gate goes by).
fn administers(snapshot: &GateSnapshot, sub: &str, org: &str) -> bool {
    snapshot
        .members_by_sub
        .get(sub)
        .and_then(|orgs| orgs.get(org))
        .is_some_and(|roles| roles.contains(&Role::Admin))
}

#[get("/admin/explain")]
async fn explain_page(
    viewer: Viewer,
    q: web::Query<ExplainQuery>,
    gate: web::Data<GateState>,
    pool: web::Data<PgPool>,
    signer: Option<web::Data<Signer>>,
) -> Result<HttpResponse, SurfacedError> {
    let snapshot = gate.snapshot();
    let platform_admin = viewer.user.admin;
    let sub = viewer.user.sub.clone();
    let admin_of_some = snapshot
        .members_by_sub
        .get(&sub)
        .is_some_and(|orgs| orgs.values().any(|roles| roles.contains(&Role::Admin)));
    if !platform_admin && !admin_of_some {
        return render(
            StatusCode::FORBIDDEN,
            &ErrorPage::new(
                viewer.frame("Access denied"),
                "Access denied",
                "Explaining the gate's decisions is for platform admins and ORG_ADMINs.",
            ),
        );
    }
    let (email, url, org) = (
        bounded(q.email.as_deref()),
        bounded(q.url.as_deref()),
        bounded(q.org.as_deref()),
    );
    let mut page = ExplainPage {
        frame: viewer.frame("Explain a decision"),
        platform_admin,
        email: email.clone(),
        url: url.clone(),
        org: org.clone(),
        message: None,
        explanation: None,
        assertion_claims: None,
    };
    if email.is_empty() || url.is_empty() {
        return render(StatusCode::OK, &page);
    }
    let chosen = (!org.is_empty()).then_some(org.as_str());
    // An ORG_ADMIN asks about an org of theirs: the host's, or the one named in the
    // form; never about the person's other orgs or their own choice of org.
    if !platform_admin {
        let scope = crate::forward_auth::explain::host_of(&url)
            .ok()
            .and_then(|host| snapshot.org_in_host(&host).map(str::to_owned))
            .or(chosen.map(str::to_owned));
        let Some(scope) = scope.filter(|o| administers(&snapshot, &sub, o)) else {
            page.message = Some(
                "Give a URL of an organization you administer (for a host that names no \
                 organization, its slug under Org)."
                    .into(),
            );
            return render(StatusCode::FORBIDDEN, &page);
        };
        let member = match find_person(&pool, &email).await {
            Ok(person) => person
                .sub
                .as_deref()
                .is_some_and(|s| {
                    snapshot
                        .members_by_sub
                        .get(s)
                        .is_some_and(|m| m.contains_key(&scope))
                })
                .then_some(person),
            Err(ExplainError::Database(e)) => return Err(html_err(e)),
            Err(_) => None,
        };
        let Some(person) = member else {
            page.message = Some(format!(
                "{email} is not a member of \"{scope}\" with an account that has signed in."
            ));
            return render(StatusCode::OK, &page);
        };
        let question = Question {
            person: &person,
            url: &url,
            org: Some(scope.as_str()),
            use_stored_choice: false,
        };
        return show(
            page,
            explain(&snapshot, &question, signer.as_ref().map(|s| s.get_ref())),
        );
    }
    let person = match find_person(&pool, &email).await {
        Ok(person) => person,
        Err(ExplainError::Database(e)) => return Err(html_err(e)),
        Err(e) => {
            page.message = Some(e.to_string());
            return render(StatusCode::OK, &page);
        }
    };
    let question = Question {
        person: &person,
        url: &url,
        org: chosen,
        use_stored_choice: true,
    };
    show(
        page,
        explain(&snapshot, &question, signer.as_ref().map(|s| s.get_ref())),
    )
}

fn show(
    mut page: ExplainPage,
    explained: Result<Explanation, ExplainError>,
) -> Result<HttpResponse, SurfacedError> {
    match explained {
        Ok(explanation) => {
            page.assertion_claims = explanation
                .assertion
                .as_ref()
                .and_then(|c| serde_json::to_string(c).ok());
            page.explanation = Some(explanation);
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            page.message = Some(e.to_string());
            render(StatusCode::OK, &page)
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(explain_page);
}
