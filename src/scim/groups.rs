//! `/scim/v2/Groups`: the org's three roles as Groups (id = displayName = the role),
//! holding the users SCIM provisioned. They always exist: creating another is refused,
//! and deleting one empties it (the directory unassigned it).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::patch::{GroupEdit, group_edits, member_ids, operations};
use super::resource::{normalise_body, project, text};
use super::schema::{self, GROUP, GROUP_SCHEMA};
use super::users::member_of;
use super::{ListParams, ScimClient, ScimError, ScimResult, answer, base_url, read_json};
use crate::config::Config;
use crate::db;
use crate::db::scim_users::{Lookup, ScimUser};
use crate::domain::Role;
use crate::manage::scim::{RoleEdit, ScimActor};

fn role_of(id: &str) -> Result<Role, ScimError> {
    id.parse::<Role>()
        .map_err(|_| ScimError::not_found("Group"))
}

/// A version of the member list: changes when anyone joins or leaves.
fn version(role: Role, members: &[&ScimUser]) -> String {
    let mut h = Sha256::new();
    h.update(role.as_str());
    for m in members {
        h.update(m.id.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

pub fn render(role: Role, users: &[ScimUser], base: &str) -> Value {
    let members: Vec<&ScimUser> = users
        .iter()
        .filter(|u| u.roles.iter().any(|r| r == role.as_str()))
        .collect();
    let last = members.iter().map(|m| m.updated_at).max();
    let mut meta = json!({
        "resourceType": "Group",
        "location": format!("{base}/Groups/{}", role.as_str()),
        "version": version(role, &members),
    });
    if let Some(t) = last {
        meta["lastModified"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    let mut out = json!({
        "schemas": [GROUP],
        "id": role.as_str(),
        "displayName": role.as_str(),
        "meta": meta,
    });
    if !members.is_empty() {
        out["members"] = Value::Array(members.iter().map(|m| member_of(m, base)).collect());
    }
    out
}

async fn users(pool: &PgPool, actor: &ScimActor) -> Result<Vec<ScimUser>, ScimError> {
    Ok(db::scim_users::list(pool, actor.org_id, Lookup::All).await?)
}

fn one(req: &HttpRequest, group: Value, status: StatusCode) -> ScimResult {
    let params = ListParams::from_query(req.query_string(), &GROUP_SCHEMA)?;
    let tag = group["meta"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut response = answer(
        status,
        &project(group, &GROUP_SCHEMA, &params.attributes, &params.excluded),
    );
    if let Ok(v) = header::HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

async fn page(pool: &PgPool, actor: &ScimActor, base: &str, params: &ListParams) -> ScimResult {
    let all = users(pool, actor).await?;
    let rendered = Role::ALL.into_iter().map(|r| render(r, &all, base));
    Ok(answer(
        StatusCode::OK,
        &params.page(rendered, &GROUP_SCHEMA),
    ))
}

pub async fn list(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
) -> ScimResult {
    let params = ListParams::from_query(req.query_string(), &GROUP_SCHEMA)?;
    page(&pool, &actor, &base_url(&config), &params).await
}

pub async fn search(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    payload: web::Payload,
) -> ScimResult {
    let body = read_json(&req, payload).await?;
    let params = ListParams::from_search(&body, &GROUP_SCHEMA)?;
    page(&pool, &actor, &base_url(&config), &params).await
}

pub async fn get(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    id: web::Path<String>,
) -> ScimResult {
    let role = role_of(&id)?;
    let all = users(&pool, &actor).await?;
    one(&req, render(role, &all, &base_url(&config)), StatusCode::OK)
}

/// The roles are fixed: a Group named after one exists already (409), any other name
/// is not a role (400).
pub async fn create(req: HttpRequest, _: ScimClient, payload: web::Payload) -> ScimResult {
    let body = read_json(&req, payload).await?;
    let group = normalise_body(&body, &GROUP_SCHEMA)?;
    let name = text(&group, "displayName").unwrap_or_default();
    match Role::ALL
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(name))
    {
        Some(role) => Err(ScimError::uniqueness(format!(
            "the group {} exists (id {}); add members to it with PATCH",
            role.as_str(),
            role.as_str()
        ))),
        None => Err(ScimError::invalid_value(format!(
            "`{name}` is not a role: wizbrand's groups are the org's roles ORG_ADMIN, ORG_MANAGER \
             and ORG_USER, which always exist; map your directory's groups to these names"
        ))),
    }
}

/// `If-Match` against the group's current version (`*` and none match anything).
fn check_version(req: &HttpRequest, current: &Value) -> Result<(), ScimError> {
    let Some(raw) = req
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let raw = raw.trim();
    if raw == "*" || current["meta"]["version"].as_str() == Some(raw) {
        return Ok(());
    }
    Err(ScimError::new(
        StatusCode::PRECONDITION_FAILED,
        None,
        "the group has changed since the version in If-Match",
    ))
}

fn check_name(role: Role, name: &str) -> Result<(), ScimError> {
    if name.eq_ignore_ascii_case(role.as_str()) {
        Ok(())
    } else {
        Err(ScimError::mutability(format!(
            "the group {} is a role and keeps its name (got `{name}`)",
            role.as_str()
        )))
    }
}

/// `PUT`: the members become exactly those given.
pub async fn replace(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ScimResult {
    let role = role_of(&id)?;
    let body = read_json(&req, payload).await?;
    let group = normalise_body(&body, &GROUP_SCHEMA)?;
    check_name(role, text(&group, "displayName").unwrap_or_default())?;
    let ids = member_ids(group.get("members").unwrap_or(&Value::Null))?;
    if ids.len() > schema::MAX_MEMBERS_PER_REQUEST {
        return Err(ScimError::invalid_value(format!(
            "at most {} member values in one request; use PATCH to add the rest",
            schema::MAX_MEMBERS_PER_REQUEST
        )));
    }
    let base = base_url(&config);
    check_version(&req, &render(role, &users(&pool, &actor).await?, &base))?;
    crate::manage::scim::edit_role(&pool, &actor, role, &[RoleEdit::Replace(ids)]).await?;
    let all = users(&pool, &actor).await?;
    one(&req, render(role, &all, &base), StatusCode::OK)
}

/// `PATCH`: members added, removed or replaced, all of it or none; `204`.
pub async fn patch(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ScimResult {
    let role = role_of(&id)?;
    let body = read_json(&req, payload).await?;
    let ops = operations(&body)?;
    let base = base_url(&config);
    let current = render(role, &users(&pool, &actor).await?, &base);
    check_version(&req, &current)?;
    let members = current["members"].as_array().cloned().unwrap_or_default();
    let mut edits = Vec::new();
    for edit in group_edits(&ops, &members)? {
        match edit {
            GroupEdit::Rename(name) => check_name(role, &name)?,
            GroupEdit::Add(ids) => edits.push(RoleEdit::Add(ids)),
            GroupEdit::Remove(ids) => edits.push(RoleEdit::Remove(ids)),
            GroupEdit::RemoveAll => edits.push(RoleEdit::RemoveAll),
            GroupEdit::Replace(ids) => edits.push(RoleEdit::Replace(ids)),
        }
    }
    crate::manage::scim::edit_role(&pool, &actor, role, &edits).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE`: the directory no longer assigns the role through this group, so the users
/// SCIM provisioned lose it (the role itself stays).
pub async fn delete(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    id: web::Path<String>,
) -> ScimResult {
    let role = role_of(&id)?;
    check_version(
        &req,
        &render(role, &users(&pool, &actor).await?, &base_url(&config)),
    )?;
    crate::manage::scim::edit_role(&pool, &actor, role, &[RoleEdit::RemoveAll]).await?;
    Ok(HttpResponse::NoContent().finish())
}
