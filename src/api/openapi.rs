//! The OpenAPI 3.1 document, built from the same [`super::table`] the router is built
//! from; the body schemas are written out here, next to each other.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::{Map, Value, json};

use super::{RouteDoc, table};

/// The document; built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| build(&table().docs))
}

/// The document as served: `hidden_apps` may only name apps that exist now, so their
/// keys are listed from Postgres (the rest is built once).
pub async fn serve(pool: actix_web::web::Data<sqlx::PgPool>) -> super::ApiResult {
    let keys = crate::db::apps::keys(&pool).await.map_err(super::problem)?;
    Ok(HttpResponse::Ok().json(with_app_keys(document(), &keys)))
}

fn with_app_keys(doc: &Value, keys: &[String]) -> Value {
    let mut doc = doc.clone();
    let items = &mut doc["components"]["schemas"]["OrgPatch"]["properties"]["hidden_apps"];
    if keys.is_empty() {
        items["maxItems"] = json!(0);
    } else {
        items["items"]["enum"] = json!(keys);
    }
    doc
}

fn build(docs: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for doc in docs {
        let entry = paths
            .entry(doc.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ops) = entry {
            ops.insert(doc.method.as_str().to_lowercase(), operation(doc));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wizbrand API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Orgs, members, apps and sync of the wizbrand identity edge. \
                Bearer access tokens from the realm (audience wizbrand-api); authorization \
                follows Postgres. Errors are application/problem+json."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": schemas(),
        }
    })
}

fn operation(doc: &RouteDoc) -> Value {
    let mut parameters: Vec<Value> = path_params(doc.path)
        .map(|name| {
            let schema = match name {
                "slug" => json!({"type": "string", "pattern": SLUG_PATTERN}),
                "email" => json!({"type": "string", "format": "email", "maxLength": 254,
                    "description": "ASCII: RFC 5322 atoms with dots, a domain of DNS labels (IDN as punycode)"}),
                "key" => json!({"type": "string", "pattern": SLUG_PATTERN}),
                "id" => json!({"type": "string", "format": "uuid"}),
                "domain" => json!({"type": "string", "maxLength": 253, "pattern": DOMAIN_PATTERN,
                    "description": "an email domain: lower-case DNS labels, IDN as punycode"}),
                _ => json!({"type": "string"}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    if doc.paged {
        parameters.push(json!({"name": "limit", "in": "query", "required": false,
            "schema": {"type": "integer", "minimum": 1, "maximum": super::MAX_LIMIT, "default": super::DEFAULT_LIMIT}}));
        parameters.push(json!({"name": "offset", "in": "query", "required": false,
            "schema": {"type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0}}));
    }
    let (status, schema) = doc.success;
    let success = match schema {
        Some(name) => {
            json!({"description": "Success", "content": {"application/json": {"schema": reference(name)}}})
        }
        None if doc.path.ends_with("openapi.json") => json!({"description": "This document",
            "content": {"application/json": {"schema": {"type": "object"}}}}),
        None => json!({"description": "Done; no body"}),
    };
    let problem = json!({"description": "Problem", "content": {"application/problem+json": {"schema": reference("Problem")}}});
    let mut responses =
        json!({status.to_string(): success.clone(), "4XX": problem.clone(), "5XX": problem});
    if let (Some(also), Value::Object(map)) = (doc.also, &mut responses) {
        map.insert(also.to_string(), success);
    }
    let mut op = json!({
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "parameters": parameters,
        "responses": responses,
        "security": if doc.auth { json!([{"bearer": []}]) } else { json!([]) },
    });
    if let (Some(body), Value::Object(map)) = (doc.body, &mut op) {
        map.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": reference(body)}}}),
        );
    }
    op
}

/// `{slug}` and `{email}` in `/api/v1/orgs/{slug}/members/{email}`.
pub fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn page_of(item: &str) -> Value {
    json!({"type": "object", "required": ["items", "total", "limit", "offset"], "properties": {
        "items": {"type": "array", "items": reference(item)},
        "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}})
}

/// The rules the code holds, written as the document states them (the database's
/// CHECK constraints and the checks in `manage`): a schema-valid request is accepted.
const SLUG_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
const FEATURE_PATTERN: &str = "^[a-z0-9_-]{1,40}$";
const HOST_PATTERN: &str = "^(\\{org\\}\\.)?[a-z0-9.-]+$";
/// A display name: 1 to 200 characters once trimmed, no control characters.
const NAME_PATTERN: &str =
    "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$";

/// An email domain: two or more DNS labels (lower case), the last starting with a letter.
const DOMAIN_PATTERN: &str =
    "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$";

/// A SCIM token's name: 1 to 100 characters once trimmed, no control characters.
const TOKEN_NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

fn schemas() -> Value {
    let role = json!({"type": "string", "enum": ["ORG_ADMIN", "ORG_MANAGER", "ORG_USER"]});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let features =
        json!({"type": "array", "items": {"type": "string", "pattern": FEATURE_PATTERN}});
    let name = json!({"type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN});
    let plan = json!({"type": "string", "enum": crate::domain::Plan::NAMES});
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        "Problem": {"type": "object", "properties": {
            "type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"},
            "quota": {"type": "string", "description": "quota-exceeded only: which quota, e.g. members"},
            "limit": {"type": "integer", "description": "quota-exceeded only"},
            "used": {"type": "integer", "description": "quota-exceeded only"}}},
        "Role": role,
        "Plan": plan,
        "Me": {"type": "object", "properties": {
            "sub": {"type": "string"}, "email": {"type": ["string", "null"]},
            "platform_admin": {"type": "boolean"},
            "memberships": {"type": "array", "items": {"type": "object", "properties": {
                "org_id": {"type": "string", "format": "uuid"}, "slug": {"type": "string"},
                "name": {"type": "string"}, "roles": {"type": "array", "items": reference("Role")}}}}}},
        "Org": {"type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"}, "slug": {"type": "string"},
            "name": {"type": "string"}, "plan": {"type": "string"}, "features": strings,
            "status": {"type": "string", "enum": ["active", "suspended"]},
            "hidden_apps": strings,
            "created_at": time, "updated_at": time}},
        "OrgPage": page_of("Org"),
        "OrgCreate": {"type": "object", "additionalProperties": false, "required": ["slug", "name"], "properties": {
            "slug": {"type": "string", "pattern": SLUG_PATTERN,
                "description": "A DNS label, not reserved (www, auth, api, admin, …)"},
            "name": name.clone(),
            "plan": {"allOf": [reference("Plan")], "default": "free"}, "features": features.clone()}},
        "OrgPatch": {"type": "object", "additionalProperties": false, "properties": {
            "name": {"allOf": [name], "description": "ORG_ADMIN or platform admin"},
            "plan": {"allOf": [reference("Plan")], "description": "platform admin"},
            "features": {"allOf": [features], "description": "platform admin"},
            "status": {"type": "string", "enum": ["active", "suspended"], "description": "platform admin"},
            "hidden_apps": {"type": "array", "items": {"type": "string", "pattern": SLUG_PATTERN}, "description": "keys of existing apps (listed as served), closed for this org; ORG_ADMIN or platform admin"}}},
        "Member": {"type": "object", "properties": {
            "email": {"type": "string"}, "keycloak_id": {"type": ["string", "null"]},
            "roles": {"type": "array", "items": reference("Role")}}},
        "MemberPage": page_of("Member"),
        "MemberPut": {"type": "object", "additionalProperties": false, "required": ["roles"], "properties": {
            "roles": {"type": "array", "minItems": 1, "items": reference("Role")}}},
        "Invitation": {"type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"}, "org_slug": {"type": "string"},
            "email": {"type": "string"}, "roles": {"type": "array", "items": reference("Role")},
            "invited_by": {"type": "string", "description": "the inviter's Keycloak subject"},
            "invited_by_email": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["pending", "accepted", "revoked"],
                "description": "a pending one whose expires_at has passed is expired"},
            "expires_at": time, "sent_at": time,
            "accepted_at": {"type": ["string", "null"], "format": "date-time"},
            "revoked_at": {"type": ["string", "null"], "format": "date-time"},
            "created_at": time}},
        "InvitationPage": page_of("Invitation"),
        "InvitationList": {"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": reference("Invitation")}}},
        "InvitationCreate": {"type": "object", "additionalProperties": false, "required": ["emails", "roles"], "properties": {
            "emails": {"type": "array", "minItems": 1, "maxItems": crate::manage::invitations::MAX_BATCH,
                "items": {"type": "string", "format": "email", "maxLength": 254,
                    "description": "ASCII: RFC 5322 atoms with dots, a domain of DNS labels (IDN as punycode)"}},
            "roles": {"type": "array", "minItems": 1, "items": reference("Role")}}},
        "InvitationAccept": {"type": "object", "additionalProperties": false, "required": ["token"], "properties": {
            "token": {"type": "string", "description": "the token query parameter of the mailed link"}}},
        "Entitlements": {"type": "object", "properties": {
            "slug": {"type": "string"}, "plan": {"type": "string"}, "status": {"type": "string"},
            "features": strings,
            "quotas": {"type": "object", "description": "null means unlimited", "properties": {
                "members": {"type": ["integer", "null"]}, "apps": {"type": ["integer", "null"]},
                "storage_gb": {"type": ["integer", "null"]}}}}},
        "App": {"type": "object", "properties": {
            "key": {"type": "string"}, "name": {"type": "string"}, "host_pattern": {"type": "string"},
            "required_feature": {"type": "string"}, "min_role": reference("Role"),
            "pass_authorization": {"type": "boolean"},
            "created_at": time, "updated_at": time}},
        "AppPage": page_of("App"),
        "AppCreate": {"type": "object", "additionalProperties": false,
            "required": ["key", "name", "host_pattern", "required_feature"], "properties": {
            "key": {"type": "string", "pattern": SLUG_PATTERN}, "name": {"type": "string", "minLength": 1},
            "host_pattern": {"type": "string", "pattern": HOST_PATTERN, "description": "e.g. {org}.files.wizbrand.localhost"},
            "required_feature": {"type": "string", "pattern": FEATURE_PATTERN}, "min_role": reference("Role"),
            "pass_authorization": {"type": "boolean", "default": false, "description": "hand the app the caller's Authorization header"}}},
        "AppPatch": {"type": "object", "additionalProperties": false, "properties": {
            "name": {"type": "string", "minLength": 1}, "host_pattern": {"type": "string", "pattern": HOST_PATTERN},
            "required_feature": {"type": "string", "pattern": FEATURE_PATTERN}, "min_role": reference("Role"),
            "pass_authorization": {"type": "boolean"}}},
        "SyncRequested": {"type": "object", "properties": {
            "requested": {"type": "boolean"}, "scope": {"type": "string"}}},
        "SyncRun": {"type": "object", "properties": {
            "id": {"type": "integer"}, "trigger": {"type": "string"}, "scope": {"type": ["string", "null"]},
            "dry_run": {"type": "boolean"}, "status": {"type": "string"},
            "started_at": time, "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "created": {"type": "integer"}, "updated": {"type": "integer"}, "deleted": {"type": "integer"},
            "unchanged": {"type": "integer"}, "failed": {"type": "integer"}, "errors": {"type": "array"}}},
        "SyncRunPage": page_of("SyncRun"),
        "ScimToken": {"type": "object", "required": ["id", "name", "prefix", "created_by", "created_at"], "properties": {
            "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
            "prefix": {"type": "string", "description": "the token's first characters"},
            "created_by": {"type": "string", "description": "the creator's Keycloak subject"},
            "created_at": time, "last_used_at": {"type": ["string", "null"], "format": "date-time"},
            "revoked_at": {"type": ["string", "null"], "format": "date-time"}}},
        "ScimSettings": {"type": "object", "required": ["base_url", "adopt_hand_added", "provisioned", "tokens"], "properties": {
            "base_url": {"type": "string", "format": "uri", "description": "the SCIM base URL to give the directory"},
            "adopt_hand_added": {"type": "boolean", "description": "SCIM may take over members added by hand"},
            "provisioned": {"type": "integer", "minimum": 0},
            "tokens": {"type": "array", "items": reference("ScimToken")}}},
        "ScimSettingsPatch": {"type": "object", "additionalProperties": false, "required": ["adopt_hand_added"], "properties": {
            "adopt_hand_added": {"type": "boolean"}}},
        "ScimTokenCreate": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": TOKEN_NAME_PATTERN}}},
        "Domain": {"type": "object", "required": ["domain", "status", "mode", "claimed_by", "created_at", "updated_at"], "properties": {
            "domain": {"type": "string"},
            "status": {"type": "string", "enum": ["claimed", "verified"],
                "description": "only a verified domain offers anything"},
            "mode": {"type": "string", "enum": crate::manage::domains::JoinMode::NAMES},
            "claimed_by": {"type": "string", "description": "the claimer's Keycloak subject"},
            "verified_by": {"type": ["string", "null"], "description": "the verifying platform admin's Keycloak subject"},
            "verified_at": {"type": ["string", "null"], "format": "date-time"},
            "created_at": time, "updated_at": time}},
        "DomainList": {"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": reference("Domain")}}},
        "DomainPut": {"type": "object", "additionalProperties": false, "required": ["mode"], "properties": {
            "mode": {"type": "string", "enum": crate::manage::domains::JoinMode::NAMES,
                "description": "none: reserved only; suggest: a verified address at the domain is offered to join as ORG_USER; auto_join: joins as ORG_USER at sign-in"}}},
        "ScimTokenCreated": {"type": "object", "required": ["token", "secret"], "properties": {
            "token": reference("ScimToken"),
            "secret": {"type": "string", "description": "the bearer token; shown this once, stored hashed"}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_referenced_exists() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "missing schema {name}");
        }
        assert_eq!(
            path_params("/api/v1/orgs/{slug}/members/{email}").collect::<Vec<_>>(),
            vec!["slug", "email"]
        );
    }
}
