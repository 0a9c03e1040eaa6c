//! A JSON Schema (2020-12) per published event type, generated from its data type,
//! and the rule that keeps `v1` consumers working.
//!
//! The schemas are checked in under `crates/contracts/schemas/events/<type>.json`: a
//! consumer in another language, or a service deployed from an older revision, reads
//! them as the contract. The test below regenerates them and compares: a change a
//! consumer of the checked-in version would not survive — a field removed or renamed,
//! a field's type changed, a field that was always there made optional, a new value
//! in an enumeration — fails, and needs a new type (`...v2`) published beside the old
//! one. A compatible change (a new optional field) fails too until the files are
//! written again (`EMPORIUM_BLESS=1 cargo test -p emporium-contracts`), so the files
//! always say what the code sends.

use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::events::{
    EmailVerificationRequested, EventData, OrderCancelled, OrderConfirmed, OrderPlaced,
    PasswordResetRequested, PriceChanged, ProductCreated, ProductUpdated, RatingSummary,
    ReviewAdded, ReviewChanged, ReviewHidden, StockChanged, UserRegistered,
};

/// Every published event type with its schema, in a stable order.
pub fn event_schemas() -> Vec<(&'static str, Value)> {
    vec![
        schema_of::<UserRegistered>(),
        schema_of::<EmailVerificationRequested>(),
        schema_of::<PasswordResetRequested>(),
        schema_of::<ProductCreated>(),
        schema_of::<ProductUpdated>(),
        schema_of::<PriceChanged>(),
        schema_of::<StockChanged>(),
        schema_of::<RatingSummary>(),
        schema_of::<ReviewAdded>(),
        schema_of::<ReviewChanged>(),
        schema_of::<ReviewHidden>(),
        schema_of::<OrderPlaced>(),
        schema_of::<OrderConfirmed>(),
        schema_of::<OrderCancelled>(),
    ]
}

/// One event's schema, self-contained: the types it nests under `$defs`.
fn schema_of<T: ToSchema + EventData>() -> (&'static str, Value) {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    let mut root = to_json(T::schema());
    if let Value::Object(map) = &mut root {
        let mut head = Map::new();
        head.insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
        head.insert("$id".into(), T::TYPE.into());
        head.insert("title".into(), T::name().into_owned().into());
        head.append(map);
        if !nested.is_empty() {
            let defs: Map<String, Value> = nested
                .into_iter()
                .map(|(name, schema)| (name, to_json(schema)))
                .collect();
            head.insert("$defs".into(), Value::Object(defs));
        }
        *map = head;
    }
    local_refs(&mut root);
    (T::TYPE, root)
}

fn to_json(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> Value {
    // A schema is plain data: serializing it cannot fail.
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// utoipa points at OpenAPI components; a standalone schema keeps them in `$defs`.
fn local_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                *r = format!("#/$defs/{name}");
            }
            map.values_mut().for_each(local_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(local_refs),
        _ => {}
    }
}

/// What in `new` would break a consumer written against `old`, or a consumer built
/// from `new` reading events published under `old` (retained, replayed, or from a
/// producer not yet redeployed). Empty: compatible.
pub fn breaking_changes(old: &Value, new: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    compare(&Roots { old, new }, old, new, "", &mut seen, &mut found);
    found
}

/// The two documents `$ref`s resolve in.
struct Roots<'a> {
    old: &'a Value,
    new: &'a Value,
}

/// `schema` itself, or the definition its `$ref` names in `root`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) => &root["$defs"][name],
        None => schema,
    }
}

/// The parts of a schema a consumer's parser depends on, besides its properties.
fn shape(schema: &Value) -> Value {
    let mut shape = Map::new();
    for key in [
        "type",
        "format",
        "minimum",
        "maximum",
        "items",
        "additionalProperties",
    ] {
        if let Some(v) = schema.get(key) {
            let v = if key == "items" || key == "additionalProperties" {
                // Compared on their own, below.
                Value::Bool(v.is_object() || v.as_bool() == Some(true))
            } else {
                v.clone()
            };
            shape.insert(key.into(), v);
        }
    }
    Value::Object(shape)
}

fn compare<'a>(
    roots: &Roots<'a>,
    old: &'a Value,
    new: &'a Value,
    at: &str,
    seen: &mut std::collections::HashSet<(String, String)>,
    found: &mut Vec<String>,
) {
    // A recursive type is compared once per pair of definitions.
    if let (Some(a), Some(b)) = (old["$ref"].as_str(), new["$ref"].as_str())
        && !seen.insert((a.to_string(), b.to_string()))
    {
        return;
    }
    let (old, new) = (resolve(roots.old, old), resolve(roots.new, new));
    let here = if at.is_empty() { "the event" } else { at };
    if shape(old) != shape(new) {
        found.push(format!(
            "{here}: type changed from {} to {}",
            shape(old),
            shape(new)
        ));
        return;
    }
    if let Some(values) = old["enum"].as_array() {
        match new["enum"].as_array() {
            Some(new_values) => {
                for v in new_values {
                    if !values.contains(v) {
                        found.push(format!(
                            "{here}: new value {v} (old consumers cannot read it)"
                        ));
                    }
                }
            }
            None => found.push(format!("{here}: no longer limited to {}", old["enum"])),
        }
    }
    for key in ["items", "additionalProperties"] {
        if old[key].is_object() {
            compare(roots, &old[key], &new[key], &format!("{at}[]"), seen, found);
        }
    }
    // Optional values and enumerations with data: alternative by alternative.
    for key in ["oneOf", "anyOf", "allOf"] {
        let (a, b) = (old[key].as_array(), new[key].as_array());
        if a.map(Vec::len) != b.map(Vec::len) {
            found.push(format!("{here}: {key} changed"));
            continue;
        }
        for (i, (x, y)) in a
            .into_iter()
            .flatten()
            .zip(b.into_iter().flatten())
            .enumerate()
        {
            compare(roots, x, y, &format!("{at}<{key} {i}>"), seen, found);
        }
    }
    let required = |s: &Value, name: &str| {
        s["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|v| v == name))
    };
    let path = |name: &str| {
        if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        }
    };
    for (name, old_field) in old["properties"].as_object().into_iter().flatten() {
        let Some(new_field) = new["properties"].get(name) else {
            found.push(format!("{}: removed or renamed", path(name)));
            continue;
        };
        if required(old, name) && !required(new, name) {
            found.push(format!("{}: may now be missing", path(name)));
        }
        compare(roots, old_field, new_field, &path(name), seen, found);
    }
    for name in new["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(n, _)| n)
    {
        if required(new, name) && old["properties"].get(name).is_none() {
            found.push(format!(
                "{}: new and required, but events published before lack it (give it #[serde(default)])",
                path(name)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/events")
    }

    #[test]
    fn the_checked_in_schemas_are_the_types_and_no_v1_consumer_breaks() {
        let bless = std::env::var_os("EMPORIUM_BLESS").is_some();
        let schemas = event_schemas();
        let mut problems = Vec::new();
        for (ty, schema) in &schemas {
            let file = dir().join(format!("{ty}.json"));
            let text = serde_json::to_string_pretty(schema).expect("json") + "\n";
            let Ok(old) = std::fs::read_to_string(&file) else {
                if bless {
                    std::fs::create_dir_all(dir()).expect("dir");
                    std::fs::write(&file, &text).expect("write");
                } else {
                    problems.push(format!(
                        "{ty}: no {} (EMPORIUM_BLESS=1 writes it)",
                        file.display()
                    ));
                }
                continue;
            };
            let old: Value = serde_json::from_str(&old).expect("a checked-in schema");
            let breaking = breaking_changes(&old, schema);
            if !breaking.is_empty() {
                problems.push(format!(
                    "{ty} would break its consumers: {}; publish a new type (v2) instead",
                    breaking.join("; ")
                ));
            } else if &old != schema {
                if bless {
                    std::fs::write(&file, &text).expect("write");
                } else {
                    problems.push(format!(
                        "{ty}: changed compatibly; EMPORIUM_BLESS=1 writes the new schema"
                    ));
                }
            }
        }
        // A type no longer published leaves its consumers waiting: keep the file (and
        // the type) until no consumer reads it.
        for entry in std::fs::read_dir(dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ty = name.trim_end_matches(".json");
            if !schemas.iter().any(|(t, _)| *t == ty) {
                problems.push(format!("{ty}: has a schema but is no longer published"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn schemas_are_self_contained_and_name_their_type() {
        for (ty, schema) in event_schemas() {
            assert_eq!(schema["$id"], ty);
            assert_eq!(schema["type"], "object", "{ty}");
            let text = schema.to_string();
            assert!(!text.contains("#/components/"), "{ty}: {text}");
        }
        let (_, confirmed) = schema_of::<OrderConfirmed>();
        assert_eq!(
            confirmed["properties"]["lines"]["items"]["$ref"],
            "#/$defs/OrderLine"
        );
        assert!(confirmed["$defs"]["OrderLine"]["properties"]["quantity"].is_object());
    }

    fn base() -> Value {
        json!({
            "type": "object",
            "required": ["id", "level", "lines"],
            "properties": {
                "id": {"type": "string"},
                "level": {"type": "string", "enum": ["low", "high"]},
                "note": {"type": "string"},
                "maybe": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
            },
            "$defs": {"Line": {"type": "object", "required": ["qty"],
                               "properties": {"qty": {"type": "integer", "format": "int64"}}}},
        })
    }

    #[test]
    fn a_recursive_type_is_compared_once() {
        let tree = json!({
            "type": "object",
            "properties": {"root": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        });
        assert!(breaking_changes(&tree, &tree).is_empty());
    }

    #[test]
    fn what_breaks_a_consumer_is_found_and_an_added_optional_field_is_not() {
        let old = base();
        let mut added = base();
        added["properties"]["extra"] = json!({"type": "string"});
        assert!(breaking_changes(&old, &added).is_empty());

        type Change = fn(&mut Value);
        let cases: [(&str, Change); 10] = [
            ("removed", |s| {
                s["properties"].as_object_mut().map(|p| p.remove("note"));
            }),
            ("type changed", |s| {
                s["properties"]["id"] = json!({"type": "integer"})
            }),
            ("may now be missing", |s| {
                s["required"] = json!(["id", "lines"])
            }),
            ("new value", |s| {
                s["properties"]["level"]["enum"] = json!(["low", "high", "max"])
            }),
            ("lines[].qty: type changed", |s| {
                s["$defs"]["Line"]["properties"]["qty"] = json!({"type": "string"})
            }),
            ("lines[].qty: removed", |s| {
                s["$defs"]["Line"]["properties"] = json!({"quantity": {"type": "integer"}})
            }),
            ("extra: new and required", |s| {
                s["properties"]["extra"] = json!({"type": "string"});
                s["required"] = json!(["id", "level", "lines", "extra"]);
            }),
            ("no longer limited", |s| {
                s["properties"]["level"] = json!({"type": "string"})
            }),
            ("lines[].qty: type changed", |s| {
                s["$defs"]["Line"]["properties"]["qty"]["minimum"] = json!(0)
            }),
            ("maybe<oneOf 0>: type changed", |s| {
                s["properties"]["maybe"] = json!({"oneOf": [{"type": "integer"}, {"type": "null"}]})
            }),
        ];
        for (expected, change) in cases {
            let mut new = base();
            change(&mut new);
            let found = breaking_changes(&old, &new);
            assert!(
                found.iter().any(|f| f.contains(expected)),
                "{expected}: {found:?}"
            );
        }
    }
}
