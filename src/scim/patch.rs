//! PATCH (RFC 7644 §3.5.2) as plain functions: a User's operations applied to its
//! stored attributes, a Group's turned into edits of the role's members. Also what the
//! directories send beyond the RFC: Entra ID's capitalised ops (`"Replace"`), booleans
//! as strings, a value object without a path whose keys are paths
//! (`"name.givenName"`), `remove` with a value list, a manager given as a plain id.

use serde_json::{Map, Value};

use super::ScimError;
use super::filter::{self, CompareOp, Filter, PatchPath, matches_within};
use super::resource::{normalise_value, unknown_attribute};
use super::schema::{self, Attr, Kind, Mutability, ResourceSchema};

/// More operations than this in one request are refused.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub op: Op,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// Reads a PatchOp body: its `schemas`, and its `Operations` (names ignore case).
pub fn operations(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let Value::Object(fields) = body else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let lists_patch_op = filter::get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(schema::PATCH_OP))
            })
        });
    if !lists_patch_op {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must list \"{}\"",
            schema::PATCH_OP
        )));
    }
    if let Some(other) = fields
        .keys()
        .find(|k| !k.eq_ignore_ascii_case("schemas") && !k.eq_ignore_ascii_case("Operations"))
    {
        return Err(ScimError::invalid_syntax(format!(
            "a PatchOp has `schemas` and `Operations`, not `{other}`"
        )));
    }
    let Some(Value::Array(list)) = filter::get_ci(body, "Operations") else {
        return Err(ScimError::invalid_syntax("`Operations` must be an array"));
    };
    if list.is_empty() {
        return Err(ScimError::invalid_syntax("`Operations` is empty"));
    }
    if list.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "at most {MAX_OPERATIONS} operations in one request"
        )));
    }
    list.iter()
        .map(|item| {
            let Value::Object(o) = item else {
                return Err(ScimError::invalid_syntax(
                    "each operation must be an object",
                ));
            };
            if let Some(other) = o.keys().find(|k| {
                !["op", "path", "value"]
                    .iter()
                    .any(|known| k.eq_ignore_ascii_case(known))
            }) {
                return Err(ScimError::invalid_syntax(format!(
                    "an operation has `op`, `path` and `value`, not `{other}`"
                )));
            }
            let op = match filter::get_ci(item, "op").and_then(Value::as_str) {
                Some(s) if s.eq_ignore_ascii_case("add") => Op::Add,
                Some(s) if s.eq_ignore_ascii_case("replace") => Op::Replace,
                Some(s) if s.eq_ignore_ascii_case("remove") => Op::Remove,
                _ => {
                    return Err(ScimError::invalid_syntax(
                        "`op` must be \"add\", \"replace\" or \"remove\"",
                    ));
                }
            };
            let path = match filter::get_ci(item, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(_) => return Err(ScimError::invalid_path("`path` must be a string")),
            };
            let value = filter::get_ci(item, "value").cloned();
            if op != Op::Remove && value.is_none() {
                return Err(ScimError::invalid_value(
                    "`value` is required for add and replace",
                ));
            }
            if op == Op::Remove && path.is_none() && value.is_none() {
                return Err(ScimError::no_target("`remove` needs a `path`"));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

fn parse_path(raw: &str) -> Result<PatchPath, ScimError> {
    filter::parse_path(raw).map_err(|e| ScimError::invalid_path(format!("path `{raw}`: {e}")))
}

/// Applies the operations to a stored User, in order; the first failure stops and the
/// caller keeps the resource as it was (nothing is half-applied).
pub fn apply_to_user(
    stored: &Map<String, Value>,
    ops: &[Operation],
    rs: &ResourceSchema,
) -> Result<Map<String, Value>, ScimError> {
    let mut out = stored.clone();
    for op in ops {
        match (&op.path, op.op) {
            // The path names an extension as a whole: its attributes, one by one.
            (Some(raw), _) if rs.extension(raw).is_some() => {
                let Some((urn, _)) = rs.extension(raw) else {
                    continue;
                };
                match (op.op, &op.value) {
                    (Op::Remove, _) => {
                        out.remove(urn);
                    }
                    (_, Some(Value::Object(fields))) => {
                        for (k, v) in fields
                            .iter()
                            .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
                        {
                            let path = parse_path(&format!("{urn}:{k}"))?;
                            apply_at(&mut out, op.op, &path, Some(v), rs)?;
                        }
                    }
                    _ => {
                        return Err(ScimError::invalid_value(format!(
                            "`{urn}` takes an object of its attributes"
                        )));
                    }
                }
            }
            (Some(raw), _) => {
                let path = parse_path(raw)?;
                apply_at(&mut out, op.op, &path, op.value.as_ref(), rs)?;
            }
            (None, Op::Remove) => {
                return Err(ScimError::no_target("`remove` needs a `path`"));
            }
            (None, _) => {
                let Some(Value::Object(fields)) = &op.value else {
                    return Err(ScimError::invalid_value(
                        "without a `path`, `value` must be an object of attributes",
                    ));
                };
                for (key, value) in fields {
                    if key.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    if let Some((urn, _)) = rs.extension(key) {
                        let Value::Object(ext) = value else {
                            return Err(ScimError::invalid_value(format!(
                                "`{key}` must be an object"
                            )));
                        };
                        for (k, v) in ext
                            .iter()
                            .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
                        {
                            let path = parse_path(&format!("{urn}:{k}"))?;
                            apply_at(&mut out, op.op, &path, Some(v), rs)?;
                        }
                        continue;
                    }
                    // Entra ID writes paths as keys: "name.givenName", "urn:…:employeeNumber".
                    let path = parse_path(key)?;
                    apply_at(&mut out, op.op, &path, Some(value), rs)?;
                }
            }
        }
    }
    for attr in rs.attrs.iter().filter(|a| a.required) {
        if !out.contains_key(attr.name) {
            return Err(ScimError::invalid_value(format!(
                "`{}` is required and cannot be removed",
                attr.name
            )));
        }
    }
    Ok(out)
}

fn apply_at(
    stored: &mut Map<String, Value>,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
    rs: &ResourceSchema,
) -> Result<(), ScimError> {
    let resolved = rs.resolve(&path.attr).ok_or_else(|| {
        if path.attr.urn.is_none() && path.attr.sub.is_none() {
            ScimError::invalid_path(unknown_attribute(&path.attr.name, rs).detail)
        } else {
            ScimError::invalid_path(format!("`{}` is not an attribute of {}", path.attr, rs.urn))
        }
    })?;
    let attr = resolved.attr;
    if attr.mutability == Mutability::ReadOnly
        || resolved
            .sub
            .is_some_and(|s| s.mutability == Mutability::ReadOnly)
    {
        return Err(ScimError::mutability(format!(
            "`{}` is read-only",
            path.attr
        )));
    }
    let holder: &mut Map<String, Value> = match resolved.extension {
        Some(urn) => {
            let entry = stored
                .entry(urn.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(m) => m,
                _ => return Err(ScimError::invalid_value("extension is not an object")),
            }
        }
        None => stored,
    };
    let name = attr.name;
    let at = path.attr.to_string();
    // The sub-attribute the operation targets: `name.givenName` or `emails[…].value`.
    let sub_name = path.attr.sub.as_deref().or(path.sub.as_deref());
    let sub = match sub_name {
        Some(s) => Some(
            attr.sub
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(s))
                .ok_or_else(|| {
                    ScimError::invalid_path(format!("`{name}` has no sub-attribute `{s}`"))
                })?,
        ),
        None => None,
    };
    if sub.is_some_and(|s| s.mutability == Mutability::ReadOnly) {
        return Err(ScimError::mutability(format!("`{at}` is read-only")));
    }
    if let Some(filter) = &path.filter {
        if !(attr.multi && attr.kind == Kind::Complex) {
            return Err(ScimError::invalid_path(format!(
                "`{name}` is not multi-valued: a value filter does not apply"
            )));
        }
        apply_filtered(holder, op, attr, filter, sub, value, &path.attr, rs)?;
    } else if let Some(sub) = sub {
        apply_sub(holder, op, attr, sub, value)?;
    } else {
        apply_whole(holder, op, attr, value, &at)?;
    }
    if let Some(urn) = resolved.extension
        && stored
            .get(urn)
            .is_some_and(|e| e.as_object().is_some_and(Map::is_empty))
    {
        stored.remove(urn);
    }
    Ok(())
}

/// Entra ID sets the manager to a plain id string.
fn lenient(attr: &Attr, value: &Value) -> Value {
    if attr.kind == Kind::Complex && !attr.multi && value.is_string() && attr.name == "manager" {
        let mut m = Map::new();
        m.insert("value".into(), value.clone());
        return Value::Object(m);
    }
    value.clone()
}

fn apply_whole(
    holder: &mut Map<String, Value>,
    op: Op,
    attr: &Attr,
    value: Option<&Value>,
    at: &str,
) -> Result<(), ScimError> {
    let name = attr.name;
    match op {
        Op::Remove => {
            match value {
                // Entra ID: remove these values from a multi-valued attribute.
                Some(v) if attr.multi && !v.is_null() => {
                    let Some(gone) = normalise_value(attr, v, at)? else {
                        return Ok(());
                    };
                    let gone = gone.as_array().cloned().unwrap_or_default();
                    if let Some(Value::Array(items)) = holder.get_mut(name) {
                        items.retain(|item| !gone.iter().any(|g| same_value(item, g)));
                        if items.is_empty() {
                            holder.remove(name);
                        }
                    }
                }
                _ => {
                    holder.remove(name);
                }
            }
            Ok(())
        }
        Op::Add | Op::Replace => {
            let value = value.map(|v| lenient(attr, v)).unwrap_or(Value::Null);
            let Some(new) = normalise_value(attr, &value, at)? else {
                if op == Op::Replace {
                    holder.remove(name);
                }
                return Ok(());
            };
            match (attr.multi, attr.kind, holder.get_mut(name)) {
                (true, _, Some(Value::Array(items))) if op == Op::Add => {
                    for item in new.as_array().cloned().unwrap_or_default() {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                }
                // RFC 7644 §3.5.2.1/3: sub-attributes given replace theirs, the rest stay.
                (false, Kind::Complex, Some(Value::Object(existing))) => {
                    if let Value::Object(new) = new {
                        existing.extend(new);
                    }
                }
                _ => {
                    holder.insert(name.to_owned(), new);
                }
            }
            Ok(())
        }
    }
}

fn apply_sub(
    holder: &mut Map<String, Value>,
    op: Op,
    attr: &Attr,
    sub: &Attr,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let at = format!("{}.{}", attr.name, sub.name);
    let new = match op {
        Op::Remove => None,
        _ => normalise_value(sub, value.unwrap_or(&Value::Null), &at)?,
    };
    let set = |o: &mut Map<String, Value>| match &new {
        Some(v) => {
            o.insert(sub.name.to_owned(), v.clone());
        }
        None => {
            o.remove(sub.name);
        }
    };
    match holder.get_mut(attr.name) {
        Some(Value::Object(o)) => set(o),
        Some(Value::Array(items)) => {
            for item in items.iter_mut() {
                if let Value::Object(o) = item {
                    set(o);
                }
            }
        }
        _ => {
            if new.is_some() {
                let mut o = Map::new();
                set(&mut o);
                let v = Value::Object(o);
                holder.insert(
                    attr.name.to_owned(),
                    if attr.multi { Value::Array(vec![v]) } else { v },
                );
            }
        }
    }
    tidy(holder, attr.name);
    Ok(())
}

/// The `attr eq "value"` pairs of a filter made of `eq` and `and` only: what a new
/// value must hold to match it (`emails[type eq "work"].value` on a user with no work
/// email adds one, as Entra ID expects).
fn eq_pairs(filter: &Filter) -> Option<Vec<(String, Value)>> {
    match filter {
        Filter::Compare(p, CompareOp::Eq, v) if p.sub.is_none() && p.urn.is_none() => {
            Some(vec![(p.name.clone(), v.clone())])
        }
        Filter::And(a, b) => {
            let mut v = eq_pairs(a)?;
            v.extend(eq_pairs(b)?);
            Some(v)
        }
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_filtered(
    holder: &mut Map<String, Value>,
    op: Op,
    attr: &Attr,
    filter: &Filter,
    sub: Option<&Attr>,
    value: Option<&Value>,
    outer: &filter::AttrPath,
    rs: &ResourceSchema,
) -> Result<(), ScimError> {
    let at = outer.to_string();
    let mut items = match holder.remove(attr.name) {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| matches_within(filter, item, outer, rs))
        .map(|(i, _)| i)
        .collect();
    let result = (|| match op {
        Op::Remove => {
            match sub {
                Some(sub) => {
                    for &i in &hits {
                        if let Value::Object(o) = &mut items[i] {
                            o.remove(sub.name);
                        }
                    }
                }
                None => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !hits.contains(&i);
                        i += 1;
                        keep
                    });
                }
            }
            Ok(())
        }
        Op::Add | Op::Replace => {
            let patch: Map<String, Value> = match sub {
                Some(sub) => {
                    let v = normalise_value(
                        sub,
                        value.unwrap_or(&Value::Null),
                        &format!("{at}.{}", sub.name),
                    )?;
                    let mut m = Map::new();
                    if let Some(v) = v {
                        m.insert(sub.name.to_owned(), v);
                    }
                    m
                }
                None => {
                    let single = Attr {
                        multi: false,
                        ..*attr
                    };
                    match normalise_value(&single, value.unwrap_or(&Value::Null), &at)? {
                        Some(Value::Object(m)) => m,
                        _ => Map::new(),
                    }
                }
            };
            if hits.is_empty() {
                let Some(pairs) = eq_pairs(filter) else {
                    return Err(ScimError::no_target(format!(
                        "no value of `{}` matches the filter",
                        attr.name
                    )));
                };
                let mut element = Map::new();
                for (k, v) in pairs {
                    let Some(s) = attr.sub.iter().find(|s| s.name.eq_ignore_ascii_case(&k)) else {
                        return Err(ScimError::invalid_path(format!(
                            "`{}` has no sub-attribute `{k}`",
                            attr.name
                        )));
                    };
                    if let Some(v) = normalise_value(s, &v, &format!("{at}.{k}"))? {
                        element.insert(s.name.to_owned(), v);
                    }
                }
                element.extend(patch);
                items.push(Value::Object(element));
            } else {
                for &i in &hits {
                    if let Value::Object(o) = &mut items[i] {
                        o.extend(patch.clone());
                    }
                }
            }
            Ok(())
        }
    })();
    items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
    if !items.is_empty() {
        holder.insert(attr.name.to_owned(), Value::Array(items));
    }
    result
}

fn tidy(holder: &mut Map<String, Value>, name: &str) {
    let empty = match holder.get_mut(name) {
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Array(items)) => {
            items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
            items.is_empty()
        }
        _ => false,
    };
    if empty {
        holder.remove(name);
    }
}

/// Two values of a multi-valued attribute are the same value when their `value`s are
/// (ignoring case), or, without one, when they are equal.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.eq_ignore_ascii_case(y),
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// What a Group PATCH does to the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEdit {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<String>),
    /// `displayName` set: only its own name is accepted (the roles are fixed).
    Rename(String),
}

/// The user ids of a `members` value: `[{"value": "<id>"}, …]` (one object alone too).
pub fn member_ids(value: &Value) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| {
            if let Some(t) = filter::get_ci(item, "type").and_then(Value::as_str)
                && !t.eq_ignore_ascii_case("User")
            {
                return Err(ScimError::invalid_value(format!(
                    "members: a role holds users, not `{t}`"
                )));
            }
            match filter::get_ci(item, "value") {
                Some(Value::String(id)) => Ok(id.clone()),
                _ => Err(ScimError::invalid_value(
                    "each member must be an object with a `value` (a User id)",
                )),
            }
        })
        .collect()
}

/// Turns a Group's operations into edits of the role; `current` are its members as
/// answered (`{"value", "display", "type"}`), for `members[…]` filters.
pub fn group_edits(ops: &[Operation], current: &[Value]) -> Result<Vec<GroupEdit>, ScimError> {
    let rs = &schema::GROUP_SCHEMA;
    let mut edits = Vec::new();
    let mut values = 0usize;
    let mut count = |ids: &Vec<String>| -> Result<(), ScimError> {
        values += ids.len();
        if values > schema::MAX_MEMBERS_PER_REQUEST {
            return Err(ScimError::invalid_value(format!(
                "at most {} member values in one request; send the rest in another",
                schema::MAX_MEMBERS_PER_REQUEST
            )));
        }
        Ok(())
    };
    for op in ops {
        let pairs: Vec<(String, Option<Value>)> = match &op.path {
            Some(p) => vec![(p.clone(), op.value.clone())],
            None => match &op.value {
                Some(Value::Object(fields)) => fields
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect(),
                _ => {
                    return Err(ScimError::invalid_value(
                        "without a `path`, `value` must be an object of attributes",
                    ));
                }
            },
        };
        for (raw, value) in pairs {
            let path = parse_path(&raw)?;
            let Some(resolved) = rs.resolve(&path.attr) else {
                return Err(ScimError::invalid_path(format!(
                    "`{}` is not an attribute of a Group",
                    path.attr
                )));
            };
            match resolved.attr.name {
                "members" => {
                    if path.attr.sub.is_some() || path.sub.is_some() {
                        return Err(ScimError::invalid_path(
                            "members are added or removed whole, not by sub-attribute",
                        ));
                    }
                    match (op.op, &path.filter) {
                        (Op::Remove, Some(f)) => {
                            let outer = filter::AttrPath {
                                urn: None,
                                name: "members".into(),
                                sub: None,
                            };
                            let ids: Vec<String> = current
                                .iter()
                                .filter(|m| matches_within(f, m, &outer, rs))
                                .filter_map(|m| m["value"].as_str().map(str::to_owned))
                                .collect();
                            edits.push(GroupEdit::Remove(ids));
                        }
                        (_, Some(_)) => {
                            return Err(ScimError::invalid_path(
                                "a filter on members is for remove; add members with path \"members\"",
                            ));
                        }
                        (Op::Remove, None) => match value {
                            Some(v) if !v.is_null() => {
                                let ids = member_ids(&v)?;
                                count(&ids)?;
                                edits.push(GroupEdit::Remove(ids));
                            }
                            _ => edits.push(GroupEdit::RemoveAll),
                        },
                        (op, None) => {
                            let ids = member_ids(value.as_ref().unwrap_or(&Value::Null))?;
                            count(&ids)?;
                            edits.push(if op == Op::Add {
                                GroupEdit::Add(ids)
                            } else {
                                GroupEdit::Replace(ids)
                            });
                        }
                    }
                }
                "displayName" => match (op.op, value) {
                    (Op::Remove, _) => {
                        return Err(ScimError::mutability(
                            "a role's displayName cannot be removed",
                        ));
                    }
                    (_, Some(Value::String(name))) => edits.push(GroupEdit::Rename(name)),
                    _ => return Err(ScimError::invalid_value("`displayName` must be a string")),
                },
                // Kept by the directory: wizbrand stores no external ids for its roles.
                "externalId" => {}
                other => {
                    return Err(ScimError::mutability(format!("`{other}` is read-only")));
                }
            }
        }
    }
    Ok(edits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::normalise_body;
    use crate::scim::schema::{ENTERPRISE, USER, USER_SCHEMA};
    use serde_json::json;

    fn base() -> Map<String, Value> {
        normalise_body(
            &json!({"schemas": [USER], "userName": "bob@example.com", "active": true,
                "name": {"givenName": "Bob", "familyName": "B"},
                "emails": [{"value": "bob@example.com", "type": "work", "primary": true}]}),
            &USER_SCHEMA,
        )
        .unwrap()
    }

    fn patch(ops: Value) -> Result<Map<String, Value>, ScimError> {
        let body = json!({"schemas": [schema::PATCH_OP], "Operations": ops});
        apply_to_user(&base(), &operations(&body)?, &USER_SCHEMA)
    }

    #[test]
    fn entra_deactivates_with_a_capitalised_op_and_a_string_boolean() {
        let out = patch(json!([{"op": "Replace", "path": "active", "value": "False"}])).unwrap();
        assert_eq!(out["active"], false);
        let out = patch(json!([{"op": "replace", "value": {"active": false}}])).unwrap();
        assert_eq!(out["active"], false);
    }

    #[test]
    fn entra_writes_paths_as_keys_of_a_value_without_path() {
        let out = patch(json!([{"op": "Replace", "value": {
            "name.givenName": "Robert", "displayName": "Robert B",
            "emails[type eq \"work\"].value": "robert@example.com",
            format!("{ENTERPRISE}:department"): "Ops",
        }}]))
        .unwrap();
        assert_eq!(
            out["name"],
            json!({"givenName": "Robert", "familyName": "B"})
        );
        assert_eq!(out["displayName"], "Robert B");
        assert_eq!(out["emails"][0]["value"], "robert@example.com");
        assert_eq!(out[ENTERPRISE]["department"], "Ops");
    }

    #[test]
    fn value_filters_select_add_and_remove() {
        let out = patch(json!([{"op": "add", "path": "emails[type eq \"home\"].value", "value": "b@home.example"}])).unwrap();
        assert_eq!(
            out["emails"].as_array().unwrap().len(),
            2,
            "no home email: one is added"
        );
        let out = patch(json!([{"op": "remove", "path": "emails[type eq \"work\"]"}])).unwrap();
        assert!(out.get("emails").is_none());
        let out = patch(json!([{"op": "remove", "path": "name.givenName"}])).unwrap();
        assert_eq!(out["name"], json!({"familyName": "B"}));
        let out =
            patch(json!([{"op": "add", "path": "emails", "value": [{"value": "x@example.com"}]}]))
                .unwrap();
        assert_eq!(out["emails"].as_array().unwrap().len(), 2, "add appends");
        let out = patch(json!([{"op": "add", "path": ENTERPRISE, "value": {"schemas": [ENTERPRISE], "division": "D", "employeeNumber": "7"}}])).unwrap();
        assert_eq!(
            out[ENTERPRISE],
            json!({"division": "D", "employeeNumber": "7"}),
            "an extension as a whole"
        );
        let out = patch(
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": "m-1"}]),
        )
        .unwrap();
        assert_eq!(
            out[ENTERPRISE]["manager"],
            json!({"value": "m-1"}),
            "Entra's manager id"
        );
        let err = patch(json!([{"op": "replace", "path": "emails[type eq \"home\" or type eq \"other\"].value", "value": "z@example.com"}]))
            .unwrap_err();
        assert!(err.to_string().contains("matches"), "{err}");
    }

    #[test]
    fn bad_operations_are_refused_whole() {
        for (ops, wanted) in [
            (
                json!([{"op": "frobnicate", "path": "active", "value": true}]),
                "`op`",
            ),
            (
                json!([{"op": "replace", "path": "active", "value": "maybe"}]),
                "boolean",
            ),
            (
                json!([{"op": "replace", "path": "shoeSize", "value": 9}]),
                "shoeSize",
            ),
            (
                json!([{"op": "replace", "path": "groups", "value": []}]),
                "read-only",
            ),
            (json!([{"op": "remove", "path": "userName"}]), "required"),
            (json!([{"op": "remove"}]), "path"),
            (
                json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]),
                "path",
            ),
            (
                json!([{"op": "add", "path": "roles", "value": [{"value": "ORG_ADMIN"}]}]),
                "role groups",
            ),
            (json!([]), "empty"),
        ] {
            let err = patch(ops.clone()).unwrap_err().to_string();
            assert!(err.contains(wanted), "{ops}: {err}");
        }
        // A later bad operation: nothing of the earlier one is kept (the caller's copy
        // is untouched; `apply_to_user` works on its own).
        let stored = base();
        let ops = operations(&json!({"schemas": [schema::PATCH_OP], "Operations": [
            {"op": "replace", "path": "displayName", "value": "X"},
            {"op": "replace", "path": "active", "value": 3}]}))
        .unwrap();
        assert!(apply_to_user(&stored, &ops, &USER_SCHEMA).is_err());
        assert!(stored.get("displayName").is_none());
    }

    #[test]
    fn group_operations_become_member_edits() {
        let ops = |v: Value| {
            operations(&json!({"schemas": [schema::PATCH_OP], "Operations": v})).unwrap()
        };
        let current = vec![
            json!({"value": "u1", "display": "A", "type": "User"}),
            json!({"value": "u2"}),
        ];
        let edits = group_edits(
            &ops(json!([
                {"op": "Add", "path": "members", "value": [{"value": "u3"}]},
                {"op": "Remove", "path": "members[value eq \"u1\"]"},
                {"op": "Remove", "path": "members", "value": [{"value": "u2"}]},
                {"op": "replace", "value": {"displayName": "ORG_USER", "members": [{"value": "u4"}]}},
                {"op": "remove", "path": "members"}])),
            &current,
        )
        .unwrap();
        assert_eq!(
            edits,
            vec![
                GroupEdit::Add(vec!["u3".into()]),
                GroupEdit::Remove(vec!["u1".into()]),
                GroupEdit::Remove(vec!["u2".into()]),
                GroupEdit::Rename("ORG_USER".into()),
                GroupEdit::Replace(vec!["u4".into()]),
                GroupEdit::RemoveAll,
            ]
        );
        let many: Vec<Value> = (0..10_000)
            .map(|i| json!({"value": format!("u{i}")}))
            .collect();
        let err = group_edits(
            &ops(json!([{"op": "add", "path": "members", "value": many}])),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("at most 1000"), "{err}");
        assert!(group_edits(&ops(json!([{"op": "add", "path": "members", "value": [{"value": "g", "type": "Group"}]}])), &[]).is_err());
    }
}
