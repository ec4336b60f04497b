//! The OpenAPI 3.1 document, built from the same [`super::table`] the router is built
//! from; the body schemas are generated from the request and response types.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::{RouteDoc, table};
use crate::domain::Email;
use crate::domain::rules::{DOMAIN_PATTERN, SLUG_PATTERN};
use schemars::{JsonSchema, SchemaGenerator};

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
                "email" => Value::from(Email::json_schema(&mut SchemaGenerator::default())),
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

/// The body schemas, generated from the request and response types (schemars): a
/// field's type, whether it is required, its bounds and patterns (`domain::rules`)
/// and its description come from the Rust type the handler reads or writes. Requests
/// are described as they deserialise (a field with a default is optional, `null` is
/// taken for an `Option`), answers as they serialise; the error body is `error::Problem`.
fn schemas() -> Value {
    let (all, conflicts) = generated();
    for name in conflicts {
        tracing::error!(
            schema = name,
            "a schema differs between requests and answers"
        );
    }
    Value::Object(all)
}

/// The generated schemas by name, and the names a request type and an answer type
/// would give different schemas (none: a unit test says so).
fn generated() -> (Map<String, Value>, Vec<String>) {
    use crate::api::{Page, apps, domains, invitations, members, orgs, scim, sso, sync};
    use crate::db;

    let settings = || {
        SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
    };
    // Each type given here is a schema of its own, with those it names.
    macro_rules! register {
        ($generator:ident: $($ty:ty),+ $(,)?) => {
            $( $generator.subschema_for::<$ty>(); )+
        };
    }
    let mut requests = settings().for_deserialize().into_generator();
    register!(requests:
        crate::manage::orgs::OrgCreate, crate::manage::orgs::OrgPatch, members::MemberPut,
        apps::AppCreate, apps::AppPatch, invitations::InvitationCreate,
        invitations::InvitationAccept, scim::ScimSettingsPatch, scim::ScimTokenCreate,
        domains::DomainPut, sso::SsoPut,
    );
    let mut answers = settings().for_serialize().into_generator();
    register!(answers:
        orgs::Me, orgs::Entitlements, Page<db::orgs::Org>, Page<db::members::Member>,
        members::MemberRoles, Page<db::apps::App>, sync::SyncRequested,
        Page<db::sync_state::SyncRunRow>, Page<db::invitations::Invitation>,
        invitations::InvitationList, scim::ScimSettings, scim::ScimTokenCreated,
        domains::DomainList, sso::SsoSettings, crate::error::Problem,
    );

    let mut all = requests.take_definitions(true);
    let mut conflicts = Vec::new();
    // A type on both sides (`Role`) must read the same either way.
    for (name, schema) in answers.take_definitions(true) {
        if all.get(&name).is_some_and(|existing| *existing != schema) {
            conflicts.push(name.clone());
        }
        all.insert(name, schema);
    }
    (all, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_on_both_sides_reads_the_same_and_requests_take_no_unknown_field() {
        let (schemas, conflicts) = generated();
        assert!(conflicts.is_empty(), "{conflicts:?}");
        for request in [
            "OrgCreate",
            "OrgPatch",
            "MemberPut",
            "AppCreate",
            "AppPatch",
            "InvitationCreate",
            "InvitationAccept",
            "ScimSettingsPatch",
            "ScimTokenCreate",
            "DomainPut",
            "SsoPut",
        ] {
            assert_eq!(
                schemas[request]["additionalProperties"],
                json!(false),
                "{request}"
            );
        }
    }

    fn lists(array: &Value, item: &str) -> bool {
        array.as_array().is_some_and(|a| a.contains(&json!(item)))
    }

    /// The rules the code holds reach the document through the types.
    #[test]
    fn the_schemas_carry_the_rules_of_the_types() {
        let doc = document();
        let s = &doc["components"]["schemas"];
        let name = &s["OrgCreate"]["properties"]["name"];
        assert_eq!(name["minLength"], 1);
        assert_eq!(name["maxLength"], 200);
        assert_eq!(
            name["pattern"],
            crate::domain::rules::NAME_PATTERN,
            "{name}"
        );
        let slug = &s["OrgCreate"]["properties"]["slug"];
        assert_eq!(slug["pattern"], SLUG_PATTERN);
        assert!(lists(&slug["not"]["enum"], "admin"));
        assert_eq!(
            s["OrgCreate"]["required"],
            json!(["slug", "name"]),
            "plan and features have defaults"
        );
        assert_eq!(s["MemberPut"]["properties"]["roles"]["minItems"], 1);
        assert_eq!(
            s["Role"]["enum"],
            json!(["ORG_ADMIN", "ORG_MANAGER", "ORG_USER"])
        );
        assert!(lists(&s["RunStatus"]["enum"], "interrupted"));
        assert_eq!(
            s["OrgPage"]["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/Org"
        );
        // An answer's fields are all there (an `Option` as `null`).
        assert_eq!(
            s["Member"]["required"],
            json!(["email", "keycloak_id", "roles", "created_at", "updated_at"])
        );
        assert_eq!(s["Plan"]["enum"], json!(["free", "pro", "enterprise"]));
        assert_eq!(
            s["OrgCreate"]["properties"]["plan"],
            json!({"$ref": "#/components/schemas/Plan", "default": "free"})
        );
        let emails = &s["InvitationCreate"]["properties"]["emails"];
        assert_eq!(emails["minItems"], 1);
        assert_eq!(emails["maxItems"], crate::manage::invitations::MAX_BATCH);
        assert_eq!(emails["items"]["format"], "email");
        assert_eq!(
            s["Invitation"]["properties"]["roles"]["items"]["$ref"],
            "#/components/schemas/Role"
        );
        let token_name = &s["ScimTokenCreate"]["properties"]["name"];
        assert_eq!(token_name["maxLength"], 100);
        assert_eq!(
            token_name["pattern"],
            crate::domain::rules::TOKEN_NAME_PATTERN
        );
        assert_eq!(
            s["ScimTokenCreated"]["properties"]["token"]["$ref"],
            "#/components/schemas/ScimToken"
        );
        // The error body: the four always, the quota's figures when a quota is used up.
        assert_eq!(
            s["Problem"]["required"],
            json!(["type", "title", "status", "detail"])
        );
        for figure in ["quota", "limit", "used"] {
            assert!(s["Problem"]["properties"][figure].is_object(), "{figure}");
        }
    }

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
