//! `/scim/v2/Users`: the org's people as SCIM Users.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, web};
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::patch::{apply_to_user, operations};
use super::resource::{member_email, normalise_body, project, text};
use super::schema::{ENTERPRISE, USER, USER_SCHEMA};
use super::{
    ListParams, ScimClient, ScimError, ScimResult, answer, base_url, etag, if_match, read_json,
};
use crate::config::Config;
use crate::db;
use crate::db::scim_users::{Lookup, ScimUser};
use crate::manage::scim::{ScimActor, ScimFault, UserWrite};

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A stored user as answered: its attributes, `id`, the role groups it is in, `meta`.
pub fn render(row: &ScimUser, base: &str) -> Value {
    let mut out = Map::new();
    let stored = row.resource.as_object().cloned().unwrap_or_default();
    let mut schemas = vec![json!(USER)];
    if stored.contains_key(ENTERPRISE) {
        schemas.push(json!(ENTERPRISE));
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(row.id.to_string()));
    for (k, v) in stored {
        out.insert(k, v);
    }
    if !row.roles.is_empty() {
        let groups: Vec<Value> = row
            .roles
            .iter()
            .map(|r| {
                json!({"value": r, "display": r, "$ref": format!("{base}/Groups/{r}"), "type": "direct"})
            })
            .collect();
        out.insert("groups".into(), Value::Array(groups));
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": time(&row.created_at),
            "lastModified": time(&row.updated_at),
            "location": format!("{base}/Users/{}", row.id),
            "version": etag(row.version),
        }),
    );
    Value::Object(out)
}

/// The attributes that single-resource answers may narrow (`?attributes=…`).
fn one(req: &HttpRequest, row: &ScimUser, base: &str, status: StatusCode) -> ScimResult {
    let params = ListParams::from_query(req.query_string(), &USER_SCHEMA)?;
    let body = project(
        render(row, base),
        &USER_SCHEMA,
        &params.attributes,
        &params.excluded,
    );
    let mut response = answer(status, &body);
    if let Ok(v) = header::HeaderValue::from_str(&etag(row.version)) {
        response.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Ok(v) = header::HeaderValue::from_str(&format!("{base}/Users/{}", row.id))
    {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// A checked body as the write manage takes. `active` left out: `keep` when given (a
/// `PUT` without it must not re-activate someone), else unassigned, which counts as
/// active (as on creation).
fn to_write(mut stored: Map<String, Value>, keep: Option<bool>) -> Result<UserWrite, ScimError> {
    let user_name = text(&stored, "userName")
        .unwrap_or_default()
        .trim()
        .to_owned();
    if user_name.is_empty()
        || user_name.chars().count() > 256
        || user_name.chars().any(char::is_control)
    {
        return Err(ScimError::invalid_value(
            "`userName` must be 1 to 256 characters, without control characters",
        ));
    }
    stored.insert("userName".into(), json!(user_name));
    let active = match (stored.get("active").and_then(Value::as_bool), keep) {
        (Some(given), _) => given,
        (None, Some(kept)) => {
            stored.insert("active".into(), json!(kept));
            kept
        }
        (None, None) => true,
    };
    let email = member_email(&stored)?;
    Ok(UserWrite {
        user_name,
        external_id: text(&stored, "externalId").map(str::to_owned),
        active,
        email,
        resource: Value::Object(stored),
    })
}

fn parse_id(raw: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(raw).map_err(|_| ScimError::not_found("User"))
}

async fn find(pool: &PgPool, actor: &ScimActor, raw: &str) -> Result<ScimUser, ScimError> {
    db::scim_users::get(pool, actor.org_id, parse_id(raw)?)
        .await?
        .ok_or_else(|| ScimError::not_found("User"))
}

async fn page(pool: &PgPool, actor: &ScimActor, base: &str, params: &ListParams) -> ScimResult {
    // The lookups directories make before each create go straight to an index.
    let lookup = match params.filter.as_ref().and_then(|f| f.top_level_eq()) {
        Some((name, v)) if name.eq_ignore_ascii_case("userName") => Lookup::UserName(v),
        Some((name, v)) if name.eq_ignore_ascii_case("externalId") => Lookup::ExternalId(v),
        Some((name, v)) if name.eq_ignore_ascii_case("id") => match Uuid::parse_str(v) {
            Ok(id) => Lookup::Id(id),
            Err(_) => {
                return Ok(answer(
                    StatusCode::OK,
                    &params.page(Vec::new(), &USER_SCHEMA),
                ));
            }
        },
        _ => Lookup::All,
    };
    let rows = db::scim_users::list(pool, actor.org_id, lookup).await?;
    let rendered = rows.iter().map(|r| render(r, base));
    Ok(answer(StatusCode::OK, &params.page(rendered, &USER_SCHEMA)))
}

pub async fn list(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
) -> ScimResult {
    let params = ListParams::from_query(req.query_string(), &USER_SCHEMA)?;
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
    let params = ListParams::from_search(&body, &USER_SCHEMA)?;
    page(&pool, &actor, &base_url(&config), &params).await
}

pub async fn create(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    payload: web::Payload,
) -> ScimResult {
    let body = read_json(&req, payload).await?;
    let write = to_write(normalise_body(&body, &USER_SCHEMA)?, None)?;
    let row = crate::manage::scim::create_user(&pool, &actor, &write).await?;
    one(&req, &row, &base_url(&config), StatusCode::CREATED)
}

pub async fn get(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    id: web::Path<String>,
) -> ScimResult {
    let row = find(&pool, &actor, &id).await?;
    one(&req, &row, &base_url(&config), StatusCode::OK)
}

/// `PUT`: every attribute is replaced; `active`, when left out, keeps its value (a PUT
/// without it must not re-activate someone).
pub async fn replace(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ScimResult {
    let current = find(&pool, &actor, &id).await?;
    let body = read_json(&req, payload).await?;
    let write = to_write(normalise_body(&body, &USER_SCHEMA)?, Some(current.active))?;
    let row = crate::manage::scim::replace_user(&pool, &actor, current.id, if_match(&req), &write)
        .await?;
    one(&req, &row, &base_url(&config), StatusCode::OK)
}

/// `PATCH`: the operations are applied to the stored user and the result is written as
/// a whole, only if nobody changed the user in between (else it is read and applied
/// again, up to three times).
pub async fn patch(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ScimResult {
    let body = read_json(&req, payload).await?;
    let ops = operations(&body)?;
    let wanted = if_match(&req);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = find(&pool, &actor, &id).await?;
        let stored = current.resource.as_object().cloned().unwrap_or_default();
        let write = to_write(apply_to_user(&stored, &ops, &USER_SCHEMA)?, None)?;
        let expected = wanted.or(Some(current.version));
        match crate::manage::scim::replace_user(&pool, &actor, current.id, expected, &write).await {
            Ok(row) => return one(&req, &row, &base_url(&config), StatusCode::OK),
            Err(ScimFault::VersionMismatch) if wanted.is_none() && attempts < 3 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn delete(
    req: HttpRequest,
    ScimClient(actor): ScimClient,
    pool: web::Data<PgPool>,
    id: web::Path<String>,
) -> ScimResult {
    let id = parse_id(&id)?;
    crate::manage::scim::delete_user(&pool, &actor, id, if_match(&req)).await?;
    Ok(actix_web::HttpResponse::NoContent().finish())
}

/// The members of a role as a Group answers them.
pub fn member_of(row: &ScimUser, base: &str) -> Value {
    let display = row
        .resource
        .get("displayName")
        .and_then(Value::as_str)
        .unwrap_or(&row.user_name);
    json!({"value": row.id.to_string(), "display": display,
           "$ref": format!("{base}/Users/{}", row.id), "type": "User"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_answered_with_its_groups_and_meta() {
        let row = ScimUser {
            id: Uuid::nil(),
            user_name: "bob@example.com".into(),
            external_id: None,
            active: false,
            email: Some("bob@example.com".into()),
            roles: vec!["ORG_ADMIN".into()],
            resource: json!({"userName": "bob@example.com", "active": false,
                ENTERPRISE: {"department": "R&D"}}),
            version: 3,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let out = render(&row, "https://x/scim/v2");
        assert_eq!(out["schemas"], json!([USER, ENTERPRISE]));
        assert_eq!(out["active"], false);
        assert_eq!(out["groups"][0]["value"], "ORG_ADMIN");
        assert_eq!(out["meta"]["version"], "W/\"3\"");
        assert_eq!(
            out["meta"]["location"],
            format!("https://x/scim/v2/Users/{}", Uuid::nil())
        );
    }

    #[test]
    fn writes_keep_active_unless_given() {
        let stored = |v: Value| v.as_object().cloned().unwrap();
        let w = to_write(stored(json!({"userName": " a@example.com "})), Some(false)).unwrap();
        assert!(!w.active, "a PUT without active keeps it");
        assert_eq!(w.resource["active"], false);
        assert_eq!(w.user_name, "a@example.com");
        assert_eq!(w.email.unwrap().as_str(), "a@example.com");
        let w = to_write(stored(json!({"userName": "b"})), None).unwrap();
        assert!(
            w.active && w.resource.get("active").is_none(),
            "unassigned counts as active"
        );
        assert!(to_write(stored(json!({"userName": "  "})), None).is_err());
    }
}
