//! `/api/v1/me`, `/api/v1/orgs…`: thin handlers; decisions live in `crate::policy`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use super::auth::Caller;
use super::{ApiResult, PageQuery, enforce, page, problem};
use crate::db;
use crate::db::audit::Entry;
use crate::db::orgs::Org;
use crate::domain::{OrgSlug, Role};
use crate::error::AppError;
use crate::policy::{self, OrgAccess, OrgAction, Quotas};

/// The caller's roles in an org, from Postgres (never from the token's claims).
pub async fn access(pool: &PgPool, caller: &Caller, org: &Org) -> Result<OrgAccess, AppError> {
    let roles = db::members::roles_in(pool, org.id, caller.sub(), caller.email()).await?;
    Ok(OrgAccess {
        platform_admin: caller.platform_admin(),
        roles: parse_roles(&roles),
    })
}

pub fn parse_roles(raw: &[String]) -> Vec<Role> {
    raw.iter().filter_map(|r| r.parse().ok()).collect()
}

/// The org named in the path, if the caller may do `action` to it. Malformed slugs,
/// unknown orgs and orgs the caller does not belong to all answer 404.
pub async fn authorized_org(
    pool: &PgPool,
    caller: &Caller,
    slug: &str,
    action: OrgAction,
) -> Result<(Org, OrgAccess), AppError> {
    let slug = OrgSlug::parse(slug).map_err(|_| AppError::NotFound)?;
    let org = db::orgs::by_slug(pool, slug.as_str())
        .await?
        .ok_or(AppError::NotFound)?;
    let access = access(pool, caller, &org).await?;
    enforce(policy::org_verdict(&access, action))?;
    Ok((org, access))
}

#[derive(Serialize)]
struct Me {
    sub: String,
    email: Option<String>,
    platform_admin: bool,
    memberships: Vec<db::members::MyMembership>,
}

pub async fn me(caller: Caller, pool: web::Data<PgPool>) -> ApiResult {
    let memberships = db::members::of_user(&pool, caller.sub(), caller.email())
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(Me {
        sub: caller.principal.sub.clone(),
        email: caller.principal.email.clone(),
        platform_admin: caller.platform_admin(),
        memberships,
    }))
}

pub async fn list(caller: Caller, pool: web::Data<PgPool>, q: web::Query<PageQuery>) -> ApiResult {
    let paging = q.checked().map_err(problem)?;
    let (items, total) = if caller.platform_admin() {
        db::orgs::list_all(&pool, paging.0, paging.1).await
    } else {
        db::orgs::list_for(&pool, caller.sub(), caller.email(), paging.0, paging.1).await
    }
    .map_err(problem)?;
    Ok(page(items, total, paging))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgCreate {
    pub slug: OrgSlug,
    pub name: String,
    #[serde(default = "free")]
    pub plan: String,
    #[serde(default)]
    pub features: Vec<String>,
}

fn free() -> String {
    "free".to_owned()
}

pub async fn create(
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<OrgCreate>,
) -> ApiResult {
    enforce(policy::platform_only(caller.platform_admin())).map_err(problem)?;
    let body = body.into_inner();
    let features = normalise_features(&body.features).map_err(problem)?;
    let mut tx = pool.begin().await.map_err(problem)?;
    let org = db::orgs::insert(
        &mut tx,
        body.slug.as_str(),
        body.name.trim(),
        &body.plan,
        &features,
    )
    .await
    .map_err(problem)?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: caller.actor(),
            action: "org.create",
            target: &org.slug,
            org_id: Some(org.id),
            before: None,
            after: Some(json!(org)),
        },
    )
    .await
    .map_err(problem)?;
    tx.commit().await.map_err(problem)?;
    Ok(HttpResponse::Created().json(org))
}

/// Features are short lower-case names (the apps' `required_feature`); sorted, no repeats.
pub fn normalise_features(raw: &[String]) -> Result<Vec<String>, AppError> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for f in raw {
        let ok = !f.is_empty()
            && f.len() <= 40
            && f.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(AppError::Unprocessable(format!(
                "`{f}` is not a feature name: use 1-40 lower-case letters, digits, `-` and `_`"
            )));
        }
        out.push(f.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub async fn get(caller: Caller, pool: web::Data<PgPool>, slug: web::Path<String>) -> ApiResult {
    let (org, _) = authorized_org(&pool, &caller, &slug, OrgAction::Read)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::Ok().json(org))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    pub name: Option<String>,
    pub plan: Option<String>,
    pub features: Option<Vec<String>>,
    pub status: Option<String>,
    /// Apps (by key) closed for this org; ORG_ADMIN's to decide.
    pub hidden_apps: Option<Vec<String>>,
}

impl OrgPatch {
    /// What the change needs: the name and app visibility are ORG_ADMIN's, the rest is
    /// the platform's.
    fn action(&self) -> OrgAction {
        if self.plan.is_some() || self.features.is_some() || self.status.is_some() {
            OrgAction::ChangePlan
        } else {
            OrgAction::Rename
        }
    }
}

pub async fn update(
    caller: Caller,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
    body: web::Json<OrgPatch>,
) -> ApiResult {
    let body = body.into_inner();
    let (org, _) = authorized_org(&pool, &caller, &slug, body.action())
        .await
        .map_err(problem)?;
    let features = match &body.features {
        Some(f) => Some(normalise_features(f).map_err(problem)?),
        None => None,
    };
    if let Some(keys) = &body.hidden_apps {
        let known = db::apps::keys(&pool).await.map_err(problem)?;
        if let Some(unknown) = keys.iter().find(|k| !known.contains(k)) {
            return Err(problem(AppError::Unprocessable(format!(
                "hidden_apps: `{unknown}` is not an app"
            ))));
        }
    }
    let hidden_apps = body.hidden_apps.as_ref().map(|keys| {
        let mut keys = keys.clone();
        keys.sort();
        keys.dedup();
        keys
    });
    let mut tx = pool.begin().await.map_err(problem)?;
    let after = db::orgs::update(
        &mut tx,
        org.id,
        body.name.as_deref().map(str::trim),
        body.plan.as_deref(),
        features.as_deref(),
        body.status.as_deref(),
        hidden_apps.as_deref(),
    )
    .await
    .map_err(problem)?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: caller.actor(),
            action: "org.update",
            target: &org.slug,
            org_id: Some(org.id),
            before: Some(json!(org)),
            after: Some(json!(after)),
        },
    )
    .await
    .map_err(problem)?;
    tx.commit().await.map_err(problem)?;
    Ok(HttpResponse::Ok().json(after))
}

pub async fn delete(caller: Caller, pool: web::Data<PgPool>, slug: web::Path<String>) -> ApiResult {
    let (org, _) = authorized_org(&pool, &caller, &slug, OrgAction::Delete)
        .await
        .map_err(problem)?;
    let mut tx = pool.begin().await.map_err(problem)?;
    db::orgs::delete(&mut tx, org.id).await.map_err(problem)?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: caller.actor(),
            action: "org.delete",
            target: &org.slug,
            // The org is gone; the slug in `target` and `before` says which it was.
            org_id: None,
            before: Some(json!(org)),
            after: None,
        },
    )
    .await
    .map_err(problem)?;
    tx.commit().await.map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct Entitlements {
    slug: String,
    plan: String,
    status: String,
    features: Vec<String>,
    quotas: Quotas,
}

pub async fn entitlements(
    caller: Caller,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> ApiResult {
    let slug = OrgSlug::parse(&slug).map_err(|_| problem(AppError::NotFound))?;
    let org = db::orgs::by_slug(&pool, slug.as_str())
        .await
        .map_err(problem)?
        .ok_or_else(|| problem(AppError::NotFound))?;
    let access = access(&pool, &caller, &org).await.map_err(problem)?;
    let reader = caller.has_api_role(policy::ENTITLEMENTS_READER);
    enforce(policy::entitlements_verdict(&access, reader)).map_err(problem)?;
    Ok(HttpResponse::Ok().json(Entitlements {
        quotas: policy::quotas(&org.plan),
        slug: org.slug,
        plan: org.plan,
        status: org.status,
        features: org.features,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_need_the_platform_for_anything_but_the_name() {
        let patch: OrgPatch = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(patch.action(), OrgAction::Rename);
        let patch: OrgPatch = serde_json::from_str(r#"{"name":"x","plan":"pro"}"#).unwrap();
        assert_eq!(patch.action(), OrgAction::ChangePlan);
        let err = serde_json::from_str::<OrgPatch>(r#"{"nmae":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `nmae`"), "{err}");
    }

    #[test]
    fn features_are_names_sorted_once() {
        let f =
            |v: &[&str]| normalise_features(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(f(&["seo", "files", "seo"]).unwrap(), vec!["files", "seo"]);
        assert!(f(&["Bad Name"]).is_err());
        assert!(f(&[""]).is_err());
    }
}
