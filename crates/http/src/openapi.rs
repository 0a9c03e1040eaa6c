//! Serving a service's OpenAPI document.
//!
//! Each service generates its document from its handlers (utoipa) and serves it at
//! [`SPEC_PATH`]; the gateway collects them into one document for `/api/openapi.json`.
//!
//! A handler documents what it answers itself. What the chassis answers for it —
//! the extractors' rejections of a body, a query or a token, and the load shedder's
//! 503 — [`complete`] adds to every operation it applies to, so that the document
//! lists every status a client can get, each error as `application/problem+json`.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;
use utoipa::{PartialSchema, ToSchema};

use crate::guard::Callers;
use crate::problem::Problem;

/// Where every service serves its own OpenAPI document.
pub const SPEC_PATH: &str = "/internal/openapi.json";

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A router serving `spec`, [`complete`]d, at [`SPEC_PATH`], to the gateway (which
/// publishes the combined document).
pub fn spec_router(spec: OpenApi) -> Router {
    let spec = Arc::new(complete(spec));
    Router::new()
        .route(
            SPEC_PATH,
            get(move || {
                let spec = spec.clone();
                async move { axum::Json(spec.as_ref().clone()) }
            }),
        )
        .callers(&["gateway"])
}

/// What the chassis answers on an operation's behalf, by what the operation takes.
const BODY: &[(&str, &str)] = &[
    ("400", "Malformed JSON"),
    ("413", "The body is larger than the limit"),
    (
        "415",
        "The body is not JSON (`Content-Type: application/json`)",
    ),
    (
        "422",
        "A field is missing, unknown or of the wrong type (each named in `errors`)",
    ),
];
const QUERY: (&str, &str) = (
    "400",
    "A query parameter is invalid (each named in `errors`)",
);
/// Answered by HTTP itself, without a body.
const URI_TOO_LONG: (&str, &str) = ("414", "The URI is longer than the server reads");
const SIGNED_IN: (&str, &str) = ("401", "Not signed in, or the token is invalid or expired");
const SHED: (&str, &str) = (
    "503",
    "Overloaded or a dependency is unavailable; try again after `Retry-After`",
);

/// `spec` with what the chassis answers added to each operation (see the module's
/// header), and every error answer's media type `application/problem+json`.
pub fn complete(spec: OpenApi) -> Value {
    complete_json(serde_json::to_value(spec).unwrap_or_else(|_| json!({})))
}

fn complete_json(mut doc: Value) -> Value {
    for_each_operation(&mut doc, |op| {
        let mut add: Vec<(&str, &str)> = vec![SHED];
        if op.get("requestBody").is_some() {
            add.extend_from_slice(BODY);
        }
        if takes(op, "query") {
            add.push(QUERY);
            if let Some(Value::Object(responses)) = op.get_mut("responses") {
                let (status, description) = URI_TOO_LONG;
                responses
                    .entry(status)
                    .or_insert_with(|| json!({ "description": description }));
            }
        }
        if op.get("security").is_some_and(is_protected) {
            add.push(SIGNED_IN);
        }
        add_problems(op, &add);
    });
    // The problems added refer to the Problem schema: make sure it is there.
    let problem = serde_json::to_value(Problem::schema()).unwrap_or_default();
    let schemas = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
        .map(|c| c.entry("schemas").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut);
    if let Some(schemas) = schemas {
        schemas.entry(Problem::name()).or_insert(problem);
    }
    doc
}

/// Calls `f` with every operation of `doc`.
pub fn for_each_operation(doc: &mut Value, mut f: impl FnMut(&mut Map<String, Value>)) {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(Value::Object(op)) = item.get_mut(method) {
                f(op);
            }
        }
    }
}

/// Whether the operation has a parameter `in` that place (`path`, `query`, ...).
pub fn takes(op: &Map<String, Value>, place: &str) -> bool {
    op.get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
}

/// Adds each `(status, description)` the operation does not list yet as a problem,
/// and turns the JSON of the error answers it lists into problem+json.
pub fn add_problems(op: &mut Map<String, Value>, add: &[(&str, &str)]) {
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else { return };
    for (status, description) in add {
        responses.entry(*status).or_insert_with(|| {
            json!({
                "description": description,
                "content": { PROBLEM_JSON: { "schema": { "$ref": "#/components/schemas/Problem" } } },
            })
        });
    }
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5') || status == "default";
        let content = response.get_mut("content").and_then(Value::as_object_mut);
        if let (true, Some(content)) = (is_error, content)
            && let Some(json) = content.remove("application/json")
        {
            content.entry(PROBLEM_JSON).or_insert(json);
        }
    }
}

/// Whether a `security` list requires a credential: an empty requirement (`{}`) in
/// it means the operation may also be called anonymously.
fn is_protected(security: &Value) -> bool {
    security
        .as_array()
        .is_some_and(|reqs| !reqs.is_empty() && reqs.iter().all(|r| r != &json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "1" },
            "paths": {
                "/api/things": {
                    "get": {
                        "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer" } }],
                        "responses": { "200": { "description": "ok" } }
                    },
                    "post": {
                        "security": [{ "bearer": [] }],
                        "requestBody": { "content": { "application/json": { "schema": { "type": "object" } } } },
                        "responses": {
                            "201": { "description": "made", "content": { "application/json": { "schema": { "type": "object" } } } },
                            "422": { "description": "mine", "content": { "application/json": { "schema": { "type": "object" } } } }
                        }
                    }
                }
            }
        })
    }

    fn statuses(doc: &Value, path: &str) -> Vec<String> {
        doc.pointer(path)
            .and_then(Value::as_object)
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_chassis_answers_are_listed_by_what_an_operation_takes() {
        let doc = complete_json(doc());
        assert_eq!(
            statuses(&doc, "/paths/~1api~1things/get/responses"),
            ["200", "400", "414", "503"]
        );
        assert_eq!(
            statuses(&doc, "/paths/~1api~1things/post/responses"),
            ["201", "400", "401", "413", "415", "422", "503"]
        );
        // The handler's own description stays; errors become problem+json, the
        // success answer stays JSON.
        let post = "/paths/~1api~1things/post/responses";
        let mine = doc.pointer(&format!("{post}/422")).expect("422");
        assert_eq!(mine["description"], "mine");
        assert!(mine["content"].get(PROBLEM_JSON).is_some());
        assert!(mine["content"].get("application/json").is_none());
        let made = doc.pointer(&format!("{post}/201/content")).expect("201");
        assert!(made.get("application/json").is_some());
        assert!(doc.pointer("/components/schemas/Problem").is_some());
    }

    #[test]
    fn an_optional_credential_is_not_a_401() {
        assert!(is_protected(&json!([{ "bearer": [] }])));
        assert!(!is_protected(&json!([{ "bearer": [] }, {}])));
        assert!(!is_protected(&json!([])));
    }
}
