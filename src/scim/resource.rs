//! Request bodies checked against the published schemas, and resources shaped for the
//! answer (`attributes`, `excludedAttributes`). Plain functions over JSON.

use serde_json::{Map, Value};

use super::ScimError;
use super::filter::{AttrPath, as_bool};
use super::schema::{self, Attr, EXTERNAL_ID, Kind, Mutability, ResourceSchema};
use crate::domain::Email;

/// Checks one attribute's value and writes it in its canonical form: names as the schema
/// spells them, booleans as booleans (`"True"` accepted), one value of a multi-valued
/// attribute wrapped in an array. `None`: unassigned (null, or an empty array).
pub fn normalise_value(attr: &Attr, value: &Value, at: &str) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = normalise_single(attr, item, at)? {
                out.push(v);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    normalise_single(attr, value, at)
}

fn normalise_single(attr: &Attr, value: &Value, at: &str) -> Result<Option<Value>, ScimError> {
    let wrong = |what: &str| {
        ScimError::invalid_value(format!("`{at}` must be {what}, not {}", kind_of(value)))
    };
    Ok(Some(match attr.kind {
        Kind::String | Kind::Reference | Kind::DateTime => match value {
            Value::Null => return Ok(None),
            Value::String(s) => {
                if s.len() > 4096 {
                    return Err(ScimError::invalid_value(format!(
                        "`{at}` is longer than 4096 bytes"
                    )));
                }
                if attr.kind == Kind::DateTime && chrono::DateTime::parse_from_rfc3339(s).is_err() {
                    return Err(wrong("a date-time (RFC 3339)"));
                }
                Value::String(s.clone())
            }
            _ => return Err(wrong("a string")),
        },
        Kind::Boolean => match as_bool(value) {
            Some(b) => Value::Bool(b),
            None => return Err(wrong("a boolean")),
        },
        Kind::Integer => match value {
            Value::Number(n) if n.is_i64() => value.clone(),
            _ => return Err(wrong("an integer")),
        },
        Kind::Complex => {
            let Value::Object(fields) = value else {
                return Err(wrong("an object"));
            };
            let mut out = Map::new();
            for (key, v) in fields {
                let Some(sub) = attr.sub.iter().find(|s| s.name.eq_ignore_ascii_case(key)) else {
                    return Err(ScimError::invalid_syntax(format!(
                        "`{at}` has no sub-attribute `{key}`"
                    )));
                };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(v) = normalise_single(sub, v, &format!("{at}.{}", sub.name))? {
                    out.insert(sub.name.to_owned(), v);
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
    }))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `schemas` a body lists: it must name the resource's own, and only ones it knows.
fn check_schemas(body: &Map<String, Value>, rs: &ResourceSchema) -> Result<(), ScimError> {
    let Some(listed) = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
    else {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` is missing: list \"{}\"",
            rs.urn
        )));
    };
    let Some(listed) = listed.as_array() else {
        return Err(ScimError::invalid_syntax(
            "`schemas` must be an array of URIs",
        ));
    };
    let mut own = false;
    for urn in listed {
        let Some(urn) = urn.as_str() else {
            return Err(ScimError::invalid_syntax(
                "`schemas` must be an array of URIs",
            ));
        };
        if urn.eq_ignore_ascii_case(rs.urn) {
            own = true;
        } else if rs.extension(urn).is_none() {
            return Err(ScimError::invalid_syntax(format!(
                "`schemas` names `{urn}`, which this resource type does not have"
            )));
        }
    }
    if !own {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must list \"{}\"",
            rs.urn
        )));
    }
    Ok(())
}

/// A POST or PUT body as stored: every attribute checked and in canonical form;
/// read-only ones (`id`, `meta`, `groups`) ignored as RFC 7644 §3.5.1 says; an attribute
/// the schema lacks is an error naming it.
pub fn normalise_body(body: &Value, rs: &ResourceSchema) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(fields) = body else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    check_schemas(fields, rs)?;
    let mut out = Map::new();
    for (key, value) in fields {
        if key.eq_ignore_ascii_case("schemas")
            || key.eq_ignore_ascii_case("id")
            || key.eq_ignore_ascii_case("meta")
        {
            continue;
        }
        if let Some((urn, attrs)) = rs.extension(key) {
            let Value::Object(ext) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(ScimError::invalid_value(format!(
                    "`{key}` must be an object"
                )));
            };
            let mut stored = Map::new();
            for (k, v) in ext
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
            {
                let Some(attr) = attrs.iter().find(|a| a.name.eq_ignore_ascii_case(k)) else {
                    return Err(ScimError::invalid_syntax(format!(
                        "`{urn}` has no attribute `{k}`"
                    )));
                };
                if let Some(v) = normalise_value(attr, v, &format!("{urn}:{}", attr.name))? {
                    stored.insert(attr.name.to_owned(), v);
                }
            }
            if !stored.is_empty() {
                out.insert(urn.to_owned(), Value::Object(stored));
            }
            continue;
        }
        let attr = if key.eq_ignore_ascii_case("externalId") {
            &EXTERNAL_ID
        } else {
            match rs.attrs.iter().find(|a| a.name.eq_ignore_ascii_case(key)) {
                Some(attr) => attr,
                None => return Err(unknown_attribute(key, rs)),
            }
        };
        if attr.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(v) = normalise_value(attr, value, attr.name)? {
            out.insert(attr.name.to_owned(), v);
        }
    }
    for attr in rs.attrs.iter().filter(|a| a.required) {
        if !out.contains_key(attr.name) {
            return Err(ScimError::invalid_value(format!(
                "`{}` is required",
                attr.name
            )));
        }
    }
    Ok(out)
}

pub fn unknown_attribute(key: &str, rs: &ResourceSchema) -> ScimError {
    let hint = match key.to_ascii_lowercase().as_str() {
        "password" => {
            ": wizbrand takes no passwords (people sign in through Keycloak); turn password sync off"
        }
        "roles" if rs.urn == schema::USER => ": a user's roles are the role groups (/Groups)",
        _ => "",
    };
    ScimError::invalid_syntax(format!("`{key}` is not an attribute of {}{hint}", rs.urn))
}

/// The member address of a User: its primary email, else its first of type `work`,
/// else its first email, else its userName when that is an email address.
pub fn member_email(user: &Map<String, Value>) -> Result<Option<Email>, ScimError> {
    let emails: Vec<&Value> = user
        .get("emails")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let chosen = emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| {
            emails.iter().find(|e| {
                e.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("work"))
            })
        })
        .or_else(|| emails.first())
        .and_then(|e| e.get("value").and_then(Value::as_str));
    if let Some(raw) = chosen {
        return Email::parse_new(raw).map(Some).map_err(|e| {
            ScimError::invalid_value(format!(
                "emails: {e}; the member's address must be one Keycloak accepts (ASCII, RFC 5322)"
            ))
        });
    }
    let user_name = user
        .get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(Email::parse_new(user_name).ok())
}

/// Parses `attributes` / `excludedAttributes` (comma-separated paths).
pub fn attribute_list(raw: Option<&str>) -> Result<Vec<AttrPath>, ScimError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|p| AttrPath::parse(p.trim()).map_err(|e| ScimError::invalid_path(e.to_string())))
        .collect()
}

/// Applies `attributes` (keep only these, plus `id` and `schemas`) or
/// `excludedAttributes` (drop these) to a resource as answered.
pub fn project(
    mut resource: Value,
    rs: &ResourceSchema,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Value {
    let Value::Object(map) = &mut resource else {
        return resource;
    };
    let key_of =
        |p: &AttrPath| -> Option<(Option<&'static str>, &'static str, Option<&'static str>)> {
            let r = rs.resolve(p)?;
            Some((r.extension, r.attr.name, r.sub.map(|s| s.name)))
        };
    if !attributes.is_empty() {
        let wanted: Vec<_> = attributes.iter().filter_map(key_of).collect();
        let mut kept = Map::new();
        for (k, v) in map.iter() {
            if k == "id" || k == "schemas" {
                kept.insert(k.clone(), v.clone());
                continue;
            }
            if let Some((urn, _)) = rs.extension(k) {
                let Value::Object(ext) = v else { continue };
                let mut part = Map::new();
                for (ek, ev) in ext {
                    if wanted
                        .iter()
                        .any(|(u, n, _)| *u == Some(urn) && n.eq_ignore_ascii_case(ek))
                    {
                        part.insert(ek.clone(), ev.clone());
                    }
                }
                if !part.is_empty() {
                    kept.insert(k.clone(), Value::Object(part));
                }
                continue;
            }
            let subs: Vec<&str> = wanted
                .iter()
                .filter(|(u, n, _)| u.is_none() && n.eq_ignore_ascii_case(k))
                .filter_map(|(_, _, s)| *s)
                .collect();
            let whole = wanted
                .iter()
                .any(|(u, n, s)| u.is_none() && s.is_none() && n.eq_ignore_ascii_case(k));
            if whole {
                kept.insert(k.clone(), v.clone());
            } else if !subs.is_empty() {
                kept.insert(k.clone(), keep_subs(v, &subs));
            }
        }
        *map = kept;
    }
    for p in excluded {
        let Some((urn, name, sub)) = key_of(p) else {
            continue;
        };
        if name == "id" {
            continue;
        }
        let holder = match urn {
            Some(urn) => match map.get_mut(urn) {
                Some(Value::Object(ext)) => ext,
                _ => continue,
            },
            None => &mut *map,
        };
        match sub {
            None => {
                holder.remove(name);
            }
            Some(sub) => {
                if let Some(v) = holder.get_mut(name) {
                    drop_sub(v, sub);
                }
            }
        }
    }
    resource
}

fn keep_subs(v: &Value, subs: &[&str]) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| keep_subs(i, subs)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn drop_sub(v: &mut Value, sub: &str) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| drop_sub(i, sub)),
        Value::Object(o) => o.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
        _ => {}
    }
}

/// A string attribute of a stored resource.
pub fn text<'a>(resource: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    resource.get(name).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER_SCHEMA;
    use serde_json::json;

    #[test]
    fn bodies_are_stored_canonically_with_entra_booleans() {
        let body = json!({
            "schemas": [schema::USER, schema::ENTERPRISE],
            "USERNAME": "Alice@Example.com",
            "Active": "True",
            "id": "ignored", "meta": {"x": 1}, "groups": [{"value": "ORG_ADMIN"}],
            "emails": {"Value": "alice@example.com", "type": "work", "primary": "true"},
            "name": {"givenName": "Alice"},
            schema::ENTERPRISE: {"department": "R&D", "manager": {"value": "x", "displayName": "ro"}},
            "externalId": "e-1",
        });
        let out = normalise_body(&body, &USER_SCHEMA).unwrap();
        assert_eq!(out["userName"], "Alice@Example.com");
        assert_eq!(out["active"], true);
        assert_eq!(
            out["emails"],
            json!([{"value": "alice@example.com", "type": "work", "primary": true}])
        );
        assert!(
            !out.contains_key("id") && !out.contains_key("groups") && !out.contains_key("meta")
        );
        assert_eq!(
            out[schema::ENTERPRISE],
            json!({"department": "R&D", "manager": {"value": "x"}})
        );
        assert_eq!(out["externalId"], "e-1");
        assert_eq!(
            member_email(&out).unwrap().unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn wrong_bodies_name_what_is_wrong() {
        let err = |body: Value| normalise_body(&body, &USER_SCHEMA).unwrap_err().to_string();
        assert!(err(json!({"userName": "a"})).contains("schemas"));
        assert!(err(json!({"schemas": [schema::USER]})).contains("userName"));
        assert!(
            err(json!({"schemas": [schema::USER], "userName": 5})).contains("must be a string")
        );
        assert!(
            err(json!({"schemas": [schema::USER], "userName": "a", "active": "yes"}))
                .contains("boolean")
        );
        assert!(
            err(json!({"schemas": [schema::USER], "userName": "a", "shoeSize": 9}))
                .contains("shoeSize")
        );
        assert!(
            err(json!({"schemas": [schema::USER], "userName": "a", "password": "x"}))
                .contains("no passwords")
        );
        assert!(
            err(json!({"schemas": [schema::USER], "userName": "a", "name": {"nick": "x"}}))
                .contains("nick")
        );
        assert!(err(json!({"schemas": ["urn:x"], "userName": "a"})).contains("urn:x"));
        assert!(err(json!([1])).contains("object"));
    }

    #[test]
    fn the_member_address_is_the_primary_email_else_the_user_name() {
        let user = |v: Value| normalise_body(&v, &USER_SCHEMA).unwrap();
        let u = user(json!({"schemas": [schema::USER], "userName": "bob@example.com"}));
        assert_eq!(
            member_email(&u).unwrap().unwrap().as_str(),
            "bob@example.com"
        );
        let u = user(json!({"schemas": [schema::USER], "userName": "bob"}));
        assert_eq!(member_email(&u).unwrap(), None);
        let u = user(
            json!({"schemas": [schema::USER], "userName": "upn@corp.onmicrosoft.com",
            "emails": [{"value": "home@example.org", "type": "home"}, {"value": "Bob@Example.com", "type": "work"}]}),
        );
        assert_eq!(
            member_email(&u).unwrap().unwrap().as_str(),
            "bob@example.com"
        );
        let u = user(
            json!({"schemas": [schema::USER], "userName": "x", "emails": [{"value": "not an address"}]}),
        );
        assert!(member_email(&u).is_err());
    }

    #[test]
    fn projection_keeps_or_drops_what_was_asked() {
        let r = json!({"id": "1", "schemas": [schema::USER], "userName": "a", "displayName": "A",
            "name": {"givenName": "G", "familyName": "F"},
            schema::ENTERPRISE: {"department": "d", "division": "v"}});
        let attrs = attribute_list(Some("displayName, name.givenName")).unwrap();
        let out = project(r.clone(), &USER_SCHEMA, &attrs, &[]);
        assert_eq!(
            out,
            json!({"id": "1", "schemas": [schema::USER], "displayName": "A", "name": {"givenName": "G"}})
        );
        let ex =
            attribute_list(Some(&format!("userName,{}:department", schema::ENTERPRISE))).unwrap();
        let out = project(r, &USER_SCHEMA, &[], &ex);
        assert!(out.get("userName").is_none());
        assert_eq!(out[schema::ENTERPRISE], json!({"division": "v"}));
    }
}
