//! Consumer-driven contracts between services (after Pact), without a broker:
//! the pacts are JSON files checked in under `crates/contracts/pacts/`.
//!
//! - **Consumer side** ([`Pact::declare`], [`Pact::client`], [`Pact::finish`]): a
//!   consumer's API tests call the provider through its real typed client, over a
//!   [`Transport`] that answers from the interactions the test declares: each one a
//!   request the consumer sends and the answer it relies on (the status, the shape
//!   of the body, and the values it branches on). A request no interaction expects
//!   fails the test. `finish` then compares the pact with the checked-in file (or
//!   writes it with `EMPORIUM_BLESS=1`), so a change of what a consumer relies on
//!   shows up in review as a change of that file. [`Pacts`] does the same for a
//!   consumer that runs in the test itself ([`crate::TestEnv::spawn_calling`]),
//!   answering each of its providers from its own pact.
//! - **Provider side** ([`Pact::load`], [`verify`]): the provider's API tests send
//!   every interaction of every pact naming it to a real instance, after putting it
//!   in the state the interaction is `given` (a function of the provider's tests,
//!   which may say what the consumer's example values stand for there, such as the
//!   id a user got), and check the answer: the same status, and a body with every
//!   field of the consumer's example, of the same JSON type, and equal where the
//!   interaction says it must be (`exact`, JSON pointers).
//!
//! `EMPORIUM_PACTS_DIR` points the provider side at other pacts — those of the
//! revision a consumer runs in production — so a provider can ask whether it may
//! ship alone.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode};
use emporium_client::{ClientError, ServiceClient, Transport};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a consumer relies on from one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pact {
    pub consumer: String,
    pub provider: String,
    pub interactions: Vec<Interaction>,
}

/// One request and the answer the consumer relies on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub description: String,
    /// The provider state this needs, set up by the provider's tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
    /// Example values by name (`sku`, `user_id`): the provider state says what
    /// each stands for at the provider, and the request and answer are read with
    /// its values in their place.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    pub request: PactRequest,
    pub response: PactResponse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PactRequest {
    pub method: String,
    /// Path and query; an example value in a segment or a query value is
    /// replaced by the provider's.
    pub path: String,
    /// Headers the provider needs (the shopper a call acts for); the consumer
    /// must send each, with this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Of `headers`, those whose value is an example: the consumer must send
    /// them with some value (an idempotency key it mints).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub any_value: std::collections::BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PactResponse {
    pub status: u16,
    /// An example: the provider's body must have each of its fields, of the same
    /// JSON type (arrays: each item like the first example item).
    pub body: Value,
    /// JSON pointers into `body` whose values must also be equal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact: Vec<String>,
}

impl Interaction {
    pub fn new(description: &str) -> Self {
        Self {
            description: description.to_string(),
            given: None,
            params: BTreeMap::new(),
            request: PactRequest {
                method: "GET".into(),
                path: String::new(),
                headers: BTreeMap::new(),
                any_value: Default::default(),
                body: None,
            },
            response: PactResponse {
                status: 200,
                body: Value::Null,
                exact: Vec::new(),
            },
        }
    }

    #[must_use]
    pub fn given(mut self, state: &str) -> Self {
        self.given = Some(state.to_string());
        self
    }

    /// `value`, wherever it is in the request or the answer, is an example of
    /// `name`: the provider state gives its own.
    #[must_use]
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.insert(name.to_string(), value.to_string());
        self
    }

    /// The request: `method path`, with a JSON body or none.
    #[must_use]
    pub fn request(mut self, method: &str, path: &str, body: Option<Value>) -> Self {
        self.request = PactRequest {
            method: method.to_string(),
            path: path.to_string(),
            headers: std::mem::take(&mut self.request.headers),
            any_value: std::mem::take(&mut self.request.any_value),
            body,
        };
        self
    }

    /// The request carries `name: value`, and the provider needs it.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request
            .headers
            .insert(name.to_ascii_lowercase(), value.to_string());
        self
    }

    /// The request carries `name` with some value; the provider is sent
    /// `example`.
    #[must_use]
    pub fn header_any(mut self, name: &str, example: &str) -> Self {
        let name = name.to_ascii_lowercase();
        self.request.any_value.insert(name.clone());
        self.request.headers.insert(name, example.to_string());
        self
    }

    /// The request acts for the signed-in shopper `user_id` (a param of that
    /// name), with the identity headers the gateway or the storefront sends.
    #[must_use]
    pub fn as_shopper(self, user_id: &str) -> Self {
        self.param("user_id", user_id)
            .header(emporium_contracts::headers::USER_ID, user_id)
            .header(emporium_contracts::headers::USER_ROLES, "customer")
    }

    /// The request acts for a signed-in member of staff (any user id: providers
    /// trust the roles the gateway names).
    #[must_use]
    pub fn as_admin(self, user_id: &str) -> Self {
        self.header(emporium_contracts::headers::USER_ID, user_id)
            .header(emporium_contracts::headers::USER_ROLES, STAFF_ROLES)
    }

    /// The answer relied on, with the pointers whose values matter (each must
    /// point into `body`: one that did not could never fail).
    #[must_use]
    pub fn responds(mut self, status: u16, body: Value, exact: &[&str]) -> Self {
        for pointer in exact {
            assert!(
                body.pointer(pointer).is_some(),
                "{}: `{pointer}` is not in the example answer",
                self.description
            );
        }
        self.response = PactResponse {
            status,
            body,
            exact: exact.iter().map(|p| p.to_string()).collect(),
        };
        self
    }
}

/// Where the checked-in pacts are, or `EMPORIUM_PACTS_DIR`.
pub fn pacts_dir() -> PathBuf {
    std::env::var_os("EMPORIUM_PACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("contracts")
                .join("pacts")
        })
}

/// The consumer side: the interactions declared so far and the requests seen.
struct Recorder {
    interactions: Vec<Interaction>,
    used: Vec<bool>,
    unexpected: Vec<String>,
}

impl Pact {
    /// An empty pact of `consumer` with `provider`, to declare interactions on.
    pub fn declare(consumer: &str, provider: &str) -> PactBuilder {
        PactBuilder {
            pact: Pact {
                consumer: consumer.to_string(),
                provider: provider.to_string(),
                interactions: Vec::new(),
            },
            recorder: Arc::new(Mutex::new(Recorder {
                interactions: Vec::new(),
                used: Vec::new(),
                unexpected: Vec::new(),
            })),
        }
    }

    fn file(consumer: &str, provider: &str) -> PathBuf {
        pacts_dir().join(format!("{consumer}-{provider}.json"))
    }

    /// Every pact naming `provider`, from [`pacts_dir`].
    pub fn load(provider: &str) -> Vec<Pact> {
        let dir = pacts_dir();
        let mut pacts: Vec<Pact> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("a pact file");
                serde_json::from_str::<Pact>(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            })
            .filter(|p| p.provider == provider)
            .collect();
        pacts.sort_by(|a, b| a.consumer.cmp(&b.consumer));
        pacts
    }
}

/// A pact being declared by a consumer's test.
pub struct PactBuilder {
    pact: Pact,
    recorder: Arc<Mutex<Recorder>>,
}

impl PactBuilder {
    /// Declares an interaction; the client answers it from now on.
    pub fn interaction(&mut self, interaction: Interaction) {
        assert_params_used(&interaction);
        self.pact.interactions.push(interaction.clone());
        if let Ok(mut r) = self.recorder.lock() {
            r.interactions.push(interaction);
            r.used.push(false);
        }
    }

    /// A client of the provider that answers from the declared interactions.
    pub fn client(&self) -> ServiceClient {
        let transport = Arc::new(Mock(self.recorder.clone()));
        ServiceClient::new(&self.pact.provider, transport, Duration::from_secs(5))
    }

    /// Checks that every interaction was exercised and nothing else was asked,
    /// then that the pact is the checked-in one (`EMPORIUM_BLESS=1` writes it).
    pub fn finish(self) {
        let recorder = self.recorder.lock().expect("recorder");
        assert!(
            recorder.unexpected.is_empty(),
            "requests no interaction of the pact expects:\n{}",
            recorder.unexpected.join("\n")
        );
        for (i, used) in recorder.interactions.iter().zip(&recorder.used) {
            assert!(used, "interaction never exercised: {}", i.description);
        }
        let file = Pact::file(&self.pact.consumer, &self.pact.provider);
        let text = serde_json::to_string_pretty(&self.pact).expect("json") + "\n";
        if std::env::var_os("EMPORIUM_BLESS").is_some() {
            std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            return;
        }
        let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            checked_in == text,
            "{} is not what {} relies on now; if the change is meant, run this test with \
             EMPORIUM_BLESS=1 and commit the file (its provider's tests then check it):\n{text}",
            file.display(),
            self.pact.consumer
        );
    }
}

/// What one consumer relies on from each of several providers, when the
/// consumer itself runs in the test ([`crate::TestEnv::spawn_calling`] with
/// [`Pacts::transport`]): its own code makes the calls, so the pacts say what
/// that code sends and reads, not what a test thinks it does.
pub struct Pacts {
    pacts: BTreeMap<String, PactBuilder>,
    /// Calls to a service with no pact here.
    strays: Arc<Mutex<Vec<String>>>,
}

impl Pacts {
    /// Empty pacts of `consumer` with each of `providers`.
    pub fn declare(consumer: &str, providers: &[&str]) -> Self {
        Self {
            pacts: providers
                .iter()
                .map(|p| (p.to_string(), Pact::declare(consumer, p)))
                .collect(),
            strays: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Declares an interaction with `provider`; the transport answers it from
    /// now on.
    pub fn interaction(&mut self, provider: &str, interaction: Interaction) {
        self.pacts
            .get_mut(provider)
            .unwrap_or_else(|| panic!("no pact with {provider} was declared"))
            .interaction(interaction);
    }

    /// A transport answering each provider's calls from its pact; a call to any
    /// other service fails, and fails [`Pacts::finish`].
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(Providers {
            mocks: self
                .pacts
                .iter()
                .map(|(name, p)| (name.clone(), Mock(p.recorder.clone())))
                .collect(),
            strays: self.strays.clone(),
        })
    }

    /// [`PactBuilder::finish`] for each provider, after checking that no call
    /// went to a service without a pact.
    pub fn finish(self) {
        let strays = self.strays.lock().expect("strays").clone();
        assert!(
            strays.is_empty(),
            "calls to services no pact here covers:\n{}",
            strays.join("\n")
        );
        for pact in self.pacts.into_values() {
            pact.finish();
        }
    }
}

/// [`Pacts::transport`]: each provider's [`Mock`].
struct Providers {
    mocks: std::collections::HashMap<String, Mock>,
    strays: Arc<Mutex<Vec<String>>>,
}

impl Transport for Providers {
    fn send(
        &self,
        service: &str,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Body>, ClientError>> + Send + 'static>> {
        if let Some(mock) = self.mocks.get(service) {
            return mock.send(service, request);
        }
        if let Ok(mut strays) = self.strays.lock() {
            strays.push(format!("{service}: {} {}", request.method(), request.uri()));
        }
        let service = service.to_string();
        Box::pin(async move { Err(ClientError::NoInstances(service)) })
    }
}

/// The consumer side's transport: answers a request from the interaction it
/// matches (method, path and JSON body equal, and every header the interaction
/// names sent, with its value unless any value goes).
struct Mock(Arc<Mutex<Recorder>>);

impl Transport for Mock {
    fn send(
        &self,
        _service: &str,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Body>, ClientError>> + Send + 'static>> {
        let method = request.method().to_string();
        let path = request.uri().to_string();
        let sent = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // A command without arguments sends `null`: no body, as far as a pact goes.
        let body: Option<Value> = match request.body().as_ref() {
            [] => None,
            bytes => serde_json::from_slice(bytes)
                .ok()
                .filter(|v: &Value| !v.is_null()),
        };
        let answer = {
            let mut r = self.0.lock().expect("recorder");
            // Of the interactions the request matches, the one that names the
            // most headers (a shopper's cart over anyone's).
            let found = r
                .interactions
                .iter()
                .enumerate()
                .filter(|(_, i)| {
                    i.request.method == method
                        && i.request.path == path
                        && i.request.body == body
                        && i.request.headers.iter().all(|(n, v)| match sent(n) {
                            Some(got) => i.request.any_value.contains(n) || got == *v,
                            None => false,
                        })
                })
                .max_by_key(|(at, i)| (i.request.headers.len(), std::cmp::Reverse(*at)))
                .map(|(at, _)| at);
            match found {
                Some(at) => {
                    r.used[at] = true;
                    Ok(r.interactions[at].response.clone())
                }
                None => {
                    let user = sent(emporium_contracts::headers::USER_ID)
                        .map(|u| format!(" (as {u})"))
                        .unwrap_or_default();
                    let seen = format!("{method} {path}{user} {}", body.unwrap_or(Value::Null));
                    r.unexpected.push(seen.clone());
                    Err(seen)
                }
            }
        };
        Box::pin(async move {
            let (status, body) = match answer {
                Ok(r) => (r.status, r.body.to_string()),
                Err(seen) => (
                    500,
                    serde_json::json!({ "detail": format!("no interaction expects {seen}") })
                        .to_string(),
                ),
            };
            let content_type = if status >= 400 {
                "application/problem+json"
            } else {
                "application/json"
            };
            Ok(Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header("content-type", content_type)
                .body(Body::from(body))
                .expect("a response"))
        })
    }
}

/// What a provider state makes of an interaction's [`Interaction::param`]s: by
/// name, the provider's own value (a SKU it has, the id a user got).
pub type Substitutions = Vec<(&'static str, String)>;

/// Sends every interaction of every pact naming `provider` to `base` (the
/// provider's URL), calling with the consumer's identity, after `state` sets up
/// what the interaction is `given` (told the interaction's params); panics listing every interaction the provider
/// does not honour.
pub async fn verify<F, Fut>(provider: &str, base: &str, state: F)
where
    F: Fn(String, BTreeMap<String, String>) -> Fut,
    Fut: Future<Output = Substitutions>,
{
    let pacts = Pact::load(provider);
    assert!(
        !pacts.is_empty(),
        "no pact names {provider} in {}",
        pacts_dir().display()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for pact in &pacts {
        let client = crate::identity::client_as(&pact.consumer);
        for i in &pact.interactions {
            let subs = match &i.given {
                Some(given) => state(given.clone(), i.params.clone()).await,
                None => Substitutions::new(),
            };
            let pairs: BTreeMap<&str, &str> = subs
                .iter()
                .map(|(name, value)| {
                    let example = i
                        .params
                        .get(*name)
                        .unwrap_or_else(|| panic!("`{}` has no param `{name}`", i.description));
                    (example.as_str(), value.as_str())
                })
                .collect();
            assert_params_used(i);
            let method = reqwest::Method::from_bytes(i.request.method.as_bytes()).expect("method");
            let path = substituted_path(&i.request.path, &pairs);
            let mut req = client.request(method.clone(), format!("{base}{path}"));
            for (name, value) in &i.request.headers {
                req = req.header(name, pairs.get(value.as_str()).copied().unwrap_or(value));
            }
            match &i.request.body {
                Some(body) => req = req.json(&substituted(body.clone(), &pairs)),
                // The typed clients send `null` for a command without arguments.
                None if method != reqwest::Method::GET => req = req.json(&Value::Null),
                None => {}
            }
            let who = format!("{} → {}: {}", pact.consumer, provider, i.description);
            let response = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{who}: {e}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let expected = substituted(i.response.body.clone(), &pairs);
            let mut problems = Vec::new();
            if status != i.response.status {
                problems.push(format!("status {status}, relied on {}", i.response.status));
            }
            like(&expected, &body, "", &mut problems);
            for pointer in &i.response.exact {
                if expected.pointer(pointer) != body.pointer(pointer) {
                    problems.push(format!(
                        "{pointer} is {:?}, relied on {:?}",
                        body.pointer(pointer),
                        expected.pointer(pointer)
                    ));
                }
            }
            if !problems.is_empty() {
                failures.push(format!("{who}: {}\n  answered {body}", problems.join("; ")));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{provider} does not honour what its consumers rely on:\n{}",
        failures.join("\n")
    );
    assert!(checked > 0, "no interaction checked");
}

/// Panics if a param's example appears nowhere in the interaction: it would
/// stand for nothing.
fn assert_params_used(i: &Interaction) {
    let declared = serde_json::to_string(i).expect("json");
    for (name, example) in &i.params {
        // Once in `params` itself, so at least once more.
        assert!(
            declared.matches(example.as_str()).count() > 1,
            "{}: the example of param `{name}` is used nowhere",
            i.description
        );
    }
}

/// `path` with every segment and query value equal to an example in `pairs`
/// replaced by the provider's value.
fn substituted_path(path: &str, pairs: &BTreeMap<&str, &str>) -> String {
    let swap = |part: &str| pairs.get(part).copied().unwrap_or(part).to_string();
    let (path, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let path = path.split('/').map(swap).collect::<Vec<_>>().join("/");
    match query {
        // Values compared decoded, and sent encoded.
        Some(query) => {
            let mut out = form_urlencoded::Serializer::new(String::new());
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                out.append_pair(&k, &swap(&v));
            }
            format!("{path}?{}", out.finish())
        }
        None => path,
    }
}

/// `value` with every string equal to an example in `pairs` replaced by the
/// provider's value.
fn substituted(mut value: Value, pairs: &BTreeMap<&str, &str>) -> Value {
    fn walk(value: &mut Value, pairs: &BTreeMap<&str, &str>) {
        match value {
            Value::String(s) => {
                if let Some(to) = pairs.get(s.as_str()) {
                    *s = (*to).to_string();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, pairs)),
            Value::Object(fields) => fields.values_mut().for_each(|v| walk(v, pairs)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    walk(&mut value, pairs);
    value
}

/// The roles header of a member of staff, as the gateway writes it from the
/// token's roles (`ROLE_CUSTOMER` and `ROLE_ADMIN`, in that order).
pub const STAFF_ROLES: &str = "customer,admin";

/// In an example object, the one key meaning "every key": the object (a map, such
/// as facet counts by category) must have entries, each like the value given.
pub const EACH: &str = "*";

/// Whether `actual` has everything `expected` has, of the same JSON types.
fn like(expected: &Value, actual: &Value, at: &str, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) if e.len() == 1 && e.contains_key(EACH) => {
            if a.is_empty() {
                problems.push(format!("{at} is empty"));
            }
            for (key, found) in a {
                like(&e[EACH], found, &format!("{at}/{key}"), problems);
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                match a.get(key) {
                    Some(found) => like(value, found, &format!("{at}/{key}"), problems),
                    // `null` in the example: relied on to be absent or anything.
                    None if value.is_null() => {}
                    None => problems.push(format!("{at}/{key} is missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                if a.is_empty() {
                    problems.push(format!("{at} is empty"));
                }
                for (n, item) in a.iter().enumerate() {
                    like(first, item, &format!("{at}/{n}"), problems);
                }
            }
        }
        // An integer is relied on to be one; a fraction may be any number.
        (Value::Number(e), Value::Number(a)) => {
            if !e.is_f64() && a.is_f64() {
                problems.push(format!("{at} is {a}, relied on an integer like {e}"));
            }
        }
        (Value::Null, _) => {}
        (e, a) if std::mem::discriminant(e) == std::mem::discriminant(a) => {}
        (e, a) => problems.push(format!("{at} is {a}, relied on something like {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn staff_roles_are_the_gateway_s_header_for_a_customer_who_is_admin() {
        use emporium_contracts::auth::{ROLE_ADMIN, ROLE_CUSTOMER};
        assert_eq!(STAFF_ROLES, format!("{ROLE_CUSTOMER},{ROLE_ADMIN}"));
    }

    fn problems(expected: Value, actual: Value) -> Vec<String> {
        let mut p = Vec::new();
        like(&expected, &actual, "", &mut p);
        p
    }

    #[test]
    fn each_value_of_a_map_is_like_the_example_given_for_every_key() {
        let example = json!({ "category": { EACH: 1 } });
        assert!(problems(example.clone(), json!({ "category": { "a": 2, "b": 0 } })).is_empty());
        assert_eq!(
            problems(example.clone(), json!({ "category": { "a": 2, "b": "3" } })).len(),
            1
        );
        assert_eq!(
            problems(example, json!({ "category": {} })).len(),
            1,
            "empty"
        );
    }

    #[test]
    fn examples_in_a_path_and_its_query_are_replaced_decoded_and_sent_encoded() {
        let pairs: BTreeMap<&str, &str> = [("SKU-1", "BEA-00006"), ("earl grey", "tea & cake")]
            .into_iter()
            .collect();
        assert_eq!(
            substituted_path("/api/x/SKU-1?q=earl+grey&limit=5&sku=SKU-1x", &pairs),
            "/api/x/BEA-00006?q=tea+%26+cake&limit=5&sku=SKU-1x"
        );
        assert_eq!(substituted_path("/api/x/SKU-1", &pairs), "/api/x/BEA-00006");
    }

    #[test]
    fn a_request_is_answered_by_the_interaction_naming_the_most_of_its_headers() {
        let mut pact = Pact::declare("c", "p");
        pact.interaction(
            Interaction::new("anyone's")
                .request("GET", "/x", None)
                .responds(200, json!({ "who": "anyone" }), &[]),
        );
        pact.interaction(
            Interaction::new("a shopper's, with a key")
                .param("user_id", "u-1")
                .header("x-user-id", "u-1")
                .header_any("idempotency-key", "k-1")
                .request("GET", "/x", None)
                .responds(200, json!({ "who": "u-1" }), &[]),
        );
        let client = pact.client();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let who = |headers: &[(&'static str, &'static str)]| {
            let client = headers.iter().fold(client.clone(), |c, (n, v)| {
                c.with_header(
                    axum::http::HeaderName::from_static(n),
                    axum::http::HeaderValue::from_static(v),
                )
            });
            rt.block_on(async move { client.get_json::<Value>("/x").await.expect("answered") })
        };
        assert_eq!(who(&[])["who"], "anyone");
        assert_eq!(who(&[("x-user-id", "u-1")])["who"], "anyone", "no key sent");
        assert_eq!(
            who(&[("x-user-id", "u-1"), ("idempotency-key", "another")])["who"],
            "u-1",
            "any key goes"
        );
        assert_eq!(
            who(&[("x-user-id", "u-2"), ("idempotency-key", "k-1")])["who"],
            "anyone",
            "another shopper"
        );
        // Not finished: this pact has no file.
    }

    #[test]
    fn a_body_is_like_the_example_when_it_has_its_fields_and_types() {
        let example = json!({"status": "reserved", "lines": [{"sku": "A", "n": 1}], "note": null});
        assert!(
            problems(
                example.clone(),
                json!({"status": "x", "lines": [{"sku": "B", "n": 2, "more": true}], "extra": 1})
            )
            .is_empty()
        );
        assert_eq!(
            problems(example.clone(), json!({"lines": []})).len(),
            2,
            "status missing, lines empty"
        );
        assert_eq!(
            problems(
                example,
                json!({"status": 1, "lines": [{"sku": "B", "n": "2"}]})
            )
            .len(),
            2
        );
    }
}
