//! Org pages: the list, create, the org's own page, edit plan and features, suspend and
//! resume, delete with confirmation, and which apps its members can open.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use super::form::Fields;
use super::org_page::{AddForm, org_page};
use super::{PAGE_SIZE, PageResult, Pager, Posted, Viewer, done, error_page, page_number, render};
use crate::config::Config;
use crate::db;
use crate::db::orgs::Org;
use crate::domain::{OrgSlug, Plan};
use crate::error::AppError;
use crate::manage::authorized_org;
use crate::manage::orgs::{OrgCreate, OrgPatch, check_name, normalise_features};
use crate::policy::OrgAction;
use crate::web::html::Frame;
use crate::web::page::html_err;

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "orgs.html")]
struct OrgsPage {
    frame: Frame,
    query: String,
    orgs: Vec<Org>,
    platform_admin: bool,
    pager: Pager,
}

#[get("/admin")]
async fn admin_root() -> HttpResponse {
    crate::web::html::redirect(StatusCode::FOUND, "/admin/orgs")
}

/// Platform admins see and search every org; others the orgs they belong to.
#[get("/admin/orgs")]
async fn list(viewer: Viewer, pool: web::Data<PgPool>, q: web::Query<ListQuery>) -> PageResult {
    let query =
        q.q.as_deref()
            .unwrap_or_default()
            .trim()
            .chars()
            .take(100)
            .collect::<String>();
    let page = page_number(q.page.as_deref());
    let offset = (page - 1) * PAGE_SIZE;
    let (orgs, total) = if viewer.user.admin {
        db::orgs::search(&pool, &query, PAGE_SIZE, offset).await
    } else {
        db::orgs::list_for(&pool, &viewer.user.sub, PAGE_SIZE, offset).await
    }
    .map_err(html_err)?;
    let base = format!(
        "/admin/orgs?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &query)
            .finish()
            + "&"
    );
    render(
        StatusCode::OK,
        &OrgsPage {
            frame: viewer.frame("Organizations"),
            query,
            orgs,
            platform_admin: viewer.user.admin,
            pager: Pager::new(&base, page, total),
        },
    )
}

/// What the org form holds, and what is wrong with it, field by field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrgForm {
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub features: Vec<String>,
    pub errors: OrgFormErrors,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrgFormErrors {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub plan: Option<String>,
    pub features: Option<String>,
    pub form: Option<String>,
}

impl OrgFormErrors {
    fn any(&self) -> bool {
        self.slug.is_some() || self.name.is_some() || self.plan.is_some() || self.features.is_some()
    }

    /// Every error with the field it is about (its element id), for the summary at the
    /// top of the form.
    pub fn summary(&self) -> Vec<(&'static str, &str)> {
        [
            ("slug", &self.slug),
            ("name", &self.name),
            ("plan", &self.plan),
            ("feature-list", &self.features),
            ("org-form", &self.form),
        ]
        .into_iter()
        .filter_map(|(id, e)| e.as_deref().map(|e| (id, e)))
        .collect()
    }
}

impl OrgForm {
    fn from_fields(fields: &Fields) -> OrgForm {
        let mut features = fields.all("features");
        features.sort();
        features.dedup();
        OrgForm {
            // As typed: a wrong slug is shown back the way the person wrote it.
            slug: fields.text("slug"),
            name: fields.text("name"),
            plan: fields.text("plan"),
            features,
            errors: OrgFormErrors::default(),
        }
    }

    fn from_org(org: &Org) -> OrgForm {
        OrgForm {
            slug: org.slug.clone(),
            name: org.name.clone(),
            plan: org.plan.clone(),
            features: org.features.clone(),
            errors: OrgFormErrors::default(),
        }
    }

    /// Checks every field (not only the first wrong one), so the page can say what is
    /// wrong next to each. `creating` also checks the slug.
    pub fn validate(&mut self, creating: bool) -> bool {
        if creating && let Err(e) = OrgSlug::parse(&self.slug) {
            self.errors.slug = Some(e.to_string());
        }
        if check_name(&self.name).is_err() {
            self.errors.name = Some("Give a name of 1 to 200 characters.".to_owned());
        }
        if let Err(e) = self.plan.parse::<Plan>() {
            self.errors.plan = Some(if self.plan.is_empty() {
                "Choose a plan: free, pro or enterprise.".to_owned()
            } else {
                e.to_string()
            });
        }
        if let Err(e) = normalise_features(&self.features) {
            self.errors.features = Some(e.to_string());
        }
        !self.errors.any()
    }

    /// A refusal from the change itself, placed next to the field it is about.
    fn place(&mut self, error: &AppError) {
        match error {
            AppError::Conflict(_) => {
                self.errors.slug = Some("An organization with this slug exists already.".into())
            }
            other => self.errors.form = Some(other.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "org_form.html")]
struct OrgFormPage {
    frame: Frame,
    creating: bool,
    action: String,
    cancel: String,
    csrf: String,
    form: OrgForm,
    features: Vec<String>,
    /// The plans offered, and whether the form holds one of them.
    plans: Vec<(&'static str, bool)>,
    known_plan: bool,
}

/// The features offered: every app's feature, and any the org has already.
async fn feature_choices(pool: &PgPool, have: &[String]) -> Result<Vec<String>, AppError> {
    let (apps, _) = db::apps::list(pool, 1000, 0).await?;
    let mut features: Vec<String> = apps.into_iter().map(|a| a.required_feature).collect();
    features.extend(have.iter().cloned());
    features.sort();
    features.dedup();
    Ok(features)
}

async fn org_form_page(
    viewer: &Viewer,
    pool: &PgPool,
    status: StatusCode,
    creating: bool,
    form: OrgForm,
) -> PageResult {
    let features = feature_choices(pool, &form.features)
        .await
        .map_err(html_err)?;
    let (title, action, cancel) = if creating {
        (
            "New organization".to_owned(),
            "/admin/orgs".to_owned(),
            "/admin/orgs".to_owned(),
        )
    } else {
        (
            format!("Edit {}", form.slug),
            format!("/admin/orgs/{}/edit", form.slug),
            format!("/admin/orgs/{}", form.slug),
        )
    };
    render(
        status,
        &OrgFormPage {
            frame: viewer.frame(title),
            creating,
            action,
            cancel,
            csrf: viewer.user.csrf.clone(),
            plans: Plan::NAMES
                .into_iter()
                .map(|p| (p, p == form.plan))
                .collect(),
            known_plan: Plan::NAMES.contains(&form.plan.as_str()),
            form,
            features,
        },
    )
}

#[get("/admin/orgs/new")]
async fn new_form(viewer: Viewer, pool: web::Data<PgPool>) -> PageResult {
    if let Err(e) = crate::manage::platform_only(viewer.user.admin) {
        return error_page(&viewer, e);
    }
    let form = OrgForm {
        plan: "free".into(),
        ..OrgForm::default()
    };
    org_form_page(&viewer, &pool, StatusCode::OK, true, form).await
}

#[post("/admin/orgs")]
async fn create(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
) -> PageResult {
    if let Err(e) = crate::manage::platform_only(viewer.user.admin) {
        return error_page(&viewer, e);
    }
    let mut form = OrgForm::from_fields(&fields);
    if !form.validate(true) {
        return org_form_page(&viewer, &pool, StatusCode::UNPROCESSABLE_ENTITY, true, form).await;
    }
    let (Ok(slug), Ok(plan)) = (OrgSlug::parse(&form.slug), form.plan.parse::<Plan>()) else {
        return org_form_page(&viewer, &pool, StatusCode::UNPROCESSABLE_ENTITY, true, form).await;
    };
    let new = OrgCreate {
        slug,
        name: form.name.clone(),
        plan,
        features: form.features.clone(),
    };
    match crate::manage::orgs::create(&pool, &viewer.user.principal(), &new).await {
        Ok(org) => Ok(done(
            &req,
            "ok",
            format!("Created {} ({}).", org.name, org.slug),
            &format!("/admin/orgs/{}", org.slug),
        )),
        Err(e @ (AppError::Conflict(_) | AppError::Unprocessable(_))) => {
            form.place(&e);
            org_form_page(&viewer, &pool, StatusCode::UNPROCESSABLE_ENTITY, true, form).await
        }
        Err(e) => error_page(&viewer, e),
    }
}

#[get("/admin/orgs/{slug}")]
async fn show(
    viewer: Viewer,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    slug: web::Path<String>,
) -> PageResult {
    org_page(
        &viewer,
        &pool,
        &config,
        &slug,
        StatusCode::OK,
        AddForm::default(),
    )
    .await
}

#[get("/admin/orgs/{slug}/edit")]
async fn edit_form(viewer: Viewer, pool: web::Data<PgPool>, slug: web::Path<String>) -> PageResult {
    match authorized_org(
        &pool,
        &viewer.user.principal(),
        &slug,
        OrgAction::ChangePlan,
    )
    .await
    {
        Ok((org, _)) => {
            org_form_page(
                &viewer,
                &pool,
                StatusCode::OK,
                false,
                OrgForm::from_org(&org),
            )
            .await
        }
        Err(e) => error_page(&viewer, e),
    }
}

#[post("/admin/orgs/{slug}/edit")]
async fn update(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    let who = viewer.user.principal();
    // Refused before the form is even read: the edit is the platform's.
    if let Err(e) = authorized_org(&pool, &who, &slug, OrgAction::ChangePlan).await {
        return error_page(&viewer, e);
    }
    let mut form = OrgForm::from_fields(&fields);
    form.slug = slug.to_string();
    if !form.validate(false) {
        return org_form_page(
            &viewer,
            &pool,
            StatusCode::UNPROCESSABLE_ENTITY,
            false,
            form,
        )
        .await;
    }
    let patch = OrgPatch {
        name: Some(form.name.clone()),
        plan: form.plan.parse::<Plan>().ok(),
        features: Some(form.features.clone()),
        ..OrgPatch::default()
    };
    match crate::manage::orgs::update(&pool, &who, &slug, &patch).await {
        Ok(org) => Ok(done(
            &req,
            "ok",
            format!(
                "Saved {}: plan {}, features {}.",
                org.slug,
                org.plan,
                shown(&org.features)
            ),
            &format!("/admin/orgs/{}", org.slug),
        )),
        Err(e @ AppError::Unprocessable(_)) => {
            form.place(&e);
            org_form_page(
                &viewer,
                &pool,
                StatusCode::UNPROCESSABLE_ENTITY,
                false,
                form,
            )
            .await
        }
        Err(e) => error_page(&viewer, e),
    }
}

fn shown(features: &[String]) -> String {
    if features.is_empty() {
        "none".to_owned()
    } else {
        features.join(", ")
    }
}

#[post("/admin/orgs/{slug}/status")]
async fn set_status(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    let status = match fields.get("status") {
        Some(s @ ("active" | "suspended")) => s.to_owned(),
        _ => {
            return error_page(
                &viewer,
                AppError::BadRequest("status: active or suspended".into()),
            );
        }
    };
    let patch = OrgPatch {
        status: Some(status),
        ..OrgPatch::default()
    };
    match crate::manage::orgs::update(&pool, &viewer.user.principal(), &slug, &patch).await {
        Ok(org) => {
            let text = if org.status == "suspended" {
                format!(
                    "Suspended {}: its members cannot open its apps until it is resumed.",
                    org.slug
                )
            } else {
                format!("Resumed {}.", org.slug)
            };
            Ok(done(&req, "ok", text, &format!("/admin/orgs/{}", org.slug)))
        }
        Err(e) => error_page(&viewer, e),
    }
}

#[derive(Template)]
#[template(path = "org_delete.html")]
struct DeletePage {
    frame: Frame,
    org: Org,
    csrf: String,
    typed: String,
    error: Option<String>,
}

async fn delete_page(
    viewer: &Viewer,
    pool: &PgPool,
    slug: &str,
    status: StatusCode,
    typed: String,
    error: Option<String>,
) -> PageResult {
    match authorized_org(pool, &viewer.user.principal(), slug, OrgAction::Delete).await {
        Ok((org, _)) => render(
            status,
            &DeletePage {
                frame: viewer.frame(format!("Delete {}", org.slug)),
                csrf: viewer.user.csrf.clone(),
                org,
                typed,
                error,
            },
        ),
        Err(e) => error_page(viewer, e),
    }
}

#[get("/admin/orgs/{slug}/delete")]
async fn delete_confirm(
    viewer: Viewer,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    delete_page(&viewer, &pool, &slug, StatusCode::OK, String::new(), None).await
}

#[post("/admin/orgs/{slug}/delete")]
async fn delete(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    let typed = fields.text("confirm");
    if typed != slug.as_str() {
        let error = Some(format!("Type the slug `{slug}` exactly to confirm."));
        return delete_page(
            &viewer,
            &pool,
            &slug,
            StatusCode::UNPROCESSABLE_ENTITY,
            typed,
            error,
        )
        .await;
    }
    match crate::manage::orgs::delete(&pool, &viewer.user.principal(), &slug).await {
        Ok(org) => Ok(done(
            &req,
            "ok",
            format!("Deleted {} ({}).", org.name, org.slug),
            "/admin/orgs",
        )),
        Err(e) => error_page(&viewer, e),
    }
}

/// ORG_ADMIN: which of the org's apps its members can open.
#[post("/admin/orgs/{slug}/apps")]
async fn set_visibility(
    req: HttpRequest,
    Posted { viewer, fields }: Posted,
    pool: web::Data<PgPool>,
    slug: web::Path<String>,
) -> PageResult {
    let open = fields.all("open");
    let keys = db::apps::keys(&pool).await.map_err(html_err)?;
    let patch = OrgPatch {
        hidden_apps: Some(keys.into_iter().filter(|k| !open.contains(k)).collect()),
        ..OrgPatch::default()
    };
    match crate::manage::orgs::update(&pool, &viewer.user.principal(), &slug, &patch).await {
        Ok(org) => Ok(done(
            &req,
            "ok",
            format!("Saved which apps the members of {} can open.", org.slug),
            &format!("/admin/orgs/{}", org.slug),
        )),
        Err(e) => error_page(&viewer, e),
    }
}

/// The addresses the org page's forms post to, asked for with GET (a reload or a
/// bookmark after a form came back with an error): the org page, not a dead end.
#[get("/admin/orgs/{slug}/{form:(members|members/roles|apps|status)}")]
async fn form_target(path: web::Path<(String, String)>) -> HttpResponse {
    let (slug, _) = path.into_inner();
    let slug = OrgSlug::parse(&slug)
        .map(|s| s.to_string())
        .unwrap_or_default();
    crate::web::html::redirect(StatusCode::SEE_OTHER, &format!("/admin/orgs/{slug}"))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // `new` before `{slug}`: a literal segment wins only if registered first.
    cfg.service(admin_root)
        .service(list)
        .service(new_form)
        .service(create)
        .service(show)
        .service(edit_form)
        .service(update)
        .service(set_status)
        .service(delete_confirm)
        .service(delete)
        .service(set_visibility)
        .service(form_target);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(slug: &str, name: &str, plan: &str, features: &[&str]) -> OrgForm {
        OrgForm {
            slug: slug.into(),
            name: name.into(),
            plan: plan.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            errors: OrgFormErrors::default(),
        }
    }

    #[test]
    fn every_wrong_field_is_named_and_the_typed_values_stay() {
        let mut bad = form("Not A Slug", "  ", "Gold!", &["Bad Feature"]);
        assert!(!bad.validate(true));
        assert!(bad.errors.slug.is_some());
        assert!(bad.errors.name.is_some());
        assert!(bad.errors.plan.is_some());
        assert!(bad.errors.features.is_some());
        assert_eq!(bad.slug, "Not A Slug");
        let mut reserved = form("admin", "Admin", "free", &[]);
        assert!(!reserved.validate(true));
        assert!(
            reserved
                .errors
                .slug
                .as_deref()
                .unwrap_or_default()
                .contains("reserved")
        );
        let mut good = form("gamma", "Gamma", "pro", &["files"]);
        assert!(good.validate(true));
        // Editing does not look at the slug.
        let mut edit = form("", "Gamma", "pro", &[]);
        assert!(edit.validate(false));
    }

    #[test]
    fn plans_are_the_known_set_and_the_slug_stays_as_typed() {
        for plan in ["free", "pro", "enterprise"] {
            let mut ok = form("gamma", "Gamma", plan, &[]);
            assert!(ok.validate(true), "{plan}");
        }
        for plan in ["platinum", "Pro", ""] {
            let mut bad = form("gamma", "Gamma", plan, &[]);
            assert!(!bad.validate(true), "{plan}");
            let why = bad.errors.plan.unwrap_or_default();
            assert!(why.contains("free") && why.contains("enterprise"), "{why}");
        }
        let mut typed = form("Bad Slug!", "Gamma", "free", &[]);
        assert!(!typed.validate(true));
        assert_eq!(typed.slug, "Bad Slug!");
        let why = typed.errors.slug.unwrap_or_default();
        assert!(why.contains("\"Bad Slug!\"") && !why.contains('`'), "{why}");
    }
}
