//! The default middleware stack, declared once.
//!
//! Outermost first, as a request meets them:
//! 0. the service that owns the request (see `emporium_telemetry::identity`), when
//!    several share a process, so its access log, metrics and spans are that
//!    service's;
//! 1. [`request_context`]: take or mint the request id, fix the deadline (the
//!    caller's remaining budget, capped by our own timeout), start the server span
//!    (a child of the caller's `traceparent`), enforce the deadline (504), write the
//!    access log line, count the request and its duration per route and status, and
//!    make sure every error response is problem+json;
//! 2. who may call what ([`crate::guard`]);
//! 3. load shedding over an adaptive concurrency limit per route ([`crate::limit`]):
//!    past the limit, 503 at once rather than a queue that turns overload into
//!    timeouts;
//! 4. the service's own admission rule, if it has one ([`Chassis::admit`]: the
//!    gateway's rate limits);
//! 5. the request body limit (413), enforced by the body extractors.
//!
//! Health probes and `/metrics` pass 0 to 2 but are never shed nor put to the
//! admission rule, so an overloaded service still answers its liveness probe.
//! Requests no route matches (a service's 404s) are limited together, as one route.
//!
//! Steps 0 to 4 are plain functions run by one middleware ([`stack`]), added with
//! the body limit in a single `Router::layer`, not a layer each: axum wraps every
//! route once per layer, and each wrapper costs a request a clone of the boxed
//! inner service and a boxed future (about ten allocations per layer;
//! `docs/benchmarks.md`, "The chassis stack as one layer"). The admission rule
//! therefore runs before a service's own route layers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_config::HttpSettings;
use emporium_telemetry::Identity;
use emporium_telemetry::meters::Meters;
use emporium_telemetry::metrics;
use emporium_telemetry::trace::{self, Kind, Span};
use http::{HeaderValue, StatusCode, header};
use tracing::Instrument;

use crate::bounded::Bounded;
use crate::context::{self, RequestContext, RequestId};
use crate::guard::Guard;
use crate::limit::{Bounds, Limits};
use crate::names;
use crate::problem::{ApiError, PROBLEM_JSON};

/// Longest request id accepted from a caller; longer or odd ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 64;

/// A service's own admission rule (step 4): an answer refuses the request with it.
pub type Admit = Arc<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

/// What the stack adds to a service's routes besides its settings.
#[derive(Clone, Default)]
pub struct Chassis {
    /// Who may call what (step 2).
    pub guard: Guard,
    /// The service that owns the requests, when several share a process (step 0).
    pub owner: Option<Arc<Identity>>,
    /// The service's own admission rule (step 4).
    pub admit: Option<Admit>,
}

/// What the stack needs for every request.
struct Stack {
    deadlines: Deadlines,
    chassis: Chassis,
    limits: Arc<Limits>,
}

/// Applies the whole stack (see the module docs) to every route of `router`,
/// health probes included, as one layer.
pub fn stack(router: Router, settings: &HttpSettings, chassis: Chassis) -> Router {
    let bounds = Bounds::new(
        settings.concurrency_min,
        settings.concurrency_floor,
        settings.concurrency_limit,
        Duration::from_millis(settings.concurrency_burst_ms),
    )
    .with_slack(Duration::from_millis(settings.concurrency_slack_ms));
    let stack = Arc::new(Stack {
        deadlines: Deadlines::new(settings),
        chassis,
        limits: Limits::new(bounds, settings.adaptive_concurrency),
    });
    router.layer(
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(stack, run))
            .layer(DefaultBodyLimit::max(settings.body_limit_bytes)),
    )
}

/// Steps 0 to 4 for one request.
async fn run(State(stack): State<Arc<Stack>>, req: Request, next: Next) -> Response {
    let admitted = |req: Request| async {
        let refused = match &stack.chassis.admit {
            Some(admit) if !is_probe(req.uri().path()) => admit(&req),
            _ => None,
        };
        match refused {
            Some(response) => response,
            None => next.run(req).await,
        }
    };
    let steps = |req| {
        request_context(&stack.deadlines, req, |req| {
            crate::guard::check(&stack.chassis.guard, req, |req| {
                shed_load(&stack.limits, req, admitted)
            })
        })
    };
    match stack.chassis.owner.clone() {
        Some(owner) => emporium_telemetry::identity::scope(owner, steps(req)).await,
        None => steps(req).await,
    }
}

/// Step 3: a place under its route's limit per request in flight (calls from
/// other services: under the ceiling); none left means 503 at once. A queue
/// would only turn overload into timeouts. Long polls wait on purpose, and probes
/// and `/metrics` must answer however loaded the service is: they stay outside.
async fn shed_load<F, Fut>(limits: &Limits, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if crate::limit::is_long_poll(req.uri()) || is_probe(req.uri().path()) {
        return next(req).await;
    }
    let permit = if req.uri().path().starts_with("/internal/") {
        limits.try_acquire_internal()
    } else {
        with_route_key(&req, |key| limits.try_acquire(key))
    };
    match permit {
        Some(permit) => {
            let response = next(req).await;
            drop(permit);
            response
        }
        None => {
            metrics::counter!("http_server_shed_total").increment(1);
            // Counted, with no warning of its own (the access log still has its
            // line): a warning per refusal would add to the load it refuses.
            ApiError::unavailable("the service is overloaded; retry shortly")
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                .with_header(names::SHED, HeaderValue::from_static("1"))
                .quiet()
                .into_response()
        }
    }
}

/// `f` of the route a request is limited as: its method (one of a fixed few) and
/// its path template, put together on the stack (this runs for every request).
fn with_route_key<R>(req: &Request, f: impl FnOnce(&str) -> R) -> R {
    let method = method_label(req.method());
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unrouted)", MatchedPath::as_str);
    let mut buf = [0u8; 160];
    let len = method.len() + 1 + template.len();
    if let Some(key) = buf.get_mut(..len) {
        key[..method.len()].copy_from_slice(method.as_bytes());
        key[method.len()] = b' ';
        key[method.len() + 1..].copy_from_slice(template.as_bytes());
        if let Ok(key) = std::str::from_utf8(key) {
            return f(key);
        }
    }
    f(&format!("{method} {template}"))
}

/// What step 1 takes from callers (a shorter deadline, and the trace to
/// continue), and where it counts requests.
#[derive(Debug, Clone)]
pub struct Deadlines {
    /// Our own cap on every request.
    pub timeout: Duration,
    /// Whether a caller may ask for less.
    pub honour_caller: bool,
    /// Whether the caller's trace is continued (else it is only linked).
    pub honour_caller_trace: bool,
    /// Requests and their durations, by method, route and status.
    pub meters: Arc<Meters<3>>,
}

impl Deadlines {
    fn new(settings: &HttpSettings) -> Self {
        Self {
            timeout: Duration::from_millis(settings.request_timeout_ms.max(1)),
            honour_caller: settings.honour_caller_timeout,
            honour_caller_trace: settings.honour_caller_trace,
            meters: Arc::new(Meters::new(
                "http_server_requests_total",
                "http_server_request_duration_seconds",
                ["method", "route", "status"],
            )),
        }
    }
}

/// Step 1; see the module docs.
async fn request_context<F, Fut>(deadlines: &Deadlines, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    // The caller's id kept as the header value it came in (no copy), or a new one.
    let request_id = req
        .headers()
        .get(names::REQUEST_ID)
        .filter(|v| v.to_str().is_ok_and(is_valid_request_id))
        .map_or_else(RequestId::generate, |v| RequestId::from_header(v.clone()));
    let budget = req
        .headers()
        .get(names::TIMEOUT_MS)
        .filter(|_| deadlines.honour_caller)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .map_or(deadlines.timeout, |b| b.min(deadlines.timeout));
    let method = req.method().clone();
    // The URI shares the request's buffer: cloned, not copied.
    let uri = req.uri().clone();
    let path = uri.path();
    // The route template (`/api/orders/{id}`), never the path: bounded label values.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    // Probes, scrapes and registry traffic would drown the access log; they log at
    // debug, and start no trace unless the caller sent one.
    let quiet = is_quiet(path);
    let caller = trace::extract(req.headers());
    let (parent, link) = if deadlines.honour_caller_trace {
        (caller, None)
    } else {
        (None, caller)
    };
    let mut span = (!quiet || parent.is_some()).then(|| {
        // Named once the route is known, and only if the span is kept.
        let mut span = Span::start("request", Kind::Server, parent.as_ref());
        if let Some(link) = &link {
            span.add_link(link);
        }
        if span.is_recording() {
            span.set_attribute("http.request.method", method.to_string());
            span.set_attribute("http.route", route.to_owned());
            span.set_attribute("url.path", path.to_owned());
            span.set_attribute("emporium.request_id", request_id.to_string());
        }
        span
    });
    let log_span = match &span {
        Some(s) => tracing::info_span!(
            "request",
            request_id = %request_id,
            trace_id = %s.context().trace_id(),
            span_id = %s.context().span_id()
        ),
        None => tracing::info_span!("request", request_id = %request_id),
    };
    let ctx = RequestContext {
        request_id: request_id.clone(),
        deadline: started + budget,
        trace: span.as_ref().map(|s| s.context().clone()),
        admitted: path.starts_with("/internal/"),
        route: std::sync::OnceLock::new(),
    };
    let deadline = tokio::time::Instant::from_std(started + budget);
    let (mut response, label) = context::scope(ctx, async move {
        match tokio::time::timeout_at(deadline, next(req)).await {
            Ok(response) => {
                // The body may still be streaming: the deadline bounds it too.
                let response = response.map(|body| Body::new(Bounded::new(body, deadline)));
                // The handler's own name for its route, if it gave one (a 504 is
                // counted under the router's template, as the handler did not end).
                let label = context::with(|c| c.route.get().cloned()).flatten();
                (ensure_problem(response), label)
            }
            Err(_) => (
                ApiError::timeout("the request did not finish before its deadline").into_response(),
                None,
            ),
        }
    })
    .instrument(log_span.clone())
    .await;
    let route = label.as_deref().unwrap_or(route);
    response
        .headers_mut()
        .insert(names::REQUEST_ID, request_id.header());
    let status_code = response.status();
    let status = status_code.as_u16();
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    log_span.in_scope(|| {
        // A probe's 503 is "not ready yet", as ordinary as a 200.
        if quiet && (status < 500 || (status == 503 && path == "/readyz")) {
            tracing::debug!(%method, %path, status, latency_ms, "request");
        } else {
            tracing::info!(%method, %path, status, latency_ms, "request");
        }
    });
    if let Some(span) = &mut span {
        span.set_attribute("http.response.status_code", i64::from(status));
        if span.is_recording() {
            span.set_name(format!("{method} {route}"));
        }
        if status >= 500 {
            span.set_error(format!("HTTP {status}"));
        }
    }
    deadlines.meters.record(
        [method_label(&method), route, status_code.as_str()],
        elapsed.as_secs_f64(),
    );
    response
}

/// Names the route the current request is counted under (metrics, access log,
/// span), for routers whose templates say little (the gateway's one `/api/{*rest}`
/// becomes `/api/orders`). It must come from a small fixed set, like a template.
/// The first name given counts; outside a request, nothing happens.
pub fn label_route(label: Arc<str>) {
    context::with(|c| c.route.set(label));
}

/// Health probes and `/metrics`: answered whatever the load, to anyone.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/metrics")
}

/// Paths that are not the service's business: health, metrics, internal traffic.
pub fn is_quiet(path: &str) -> bool {
    is_probe(path) || path.starts_with("/internal/")
}

/// The method as a label: the standard ones, else `_OTHER` (any string could be a
/// method, and label values must stay few).
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
}

fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Turns an error response that is neither problem+json nor an HTML page (axum's
/// own 404 and 405, a plain-text rejection) into problem+json, keeping its status and headers such as `Allow`.
fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // An error page a service rendered on purpose (the storefront's HTML) stays.
    let is_problem_or_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
                || v.as_bytes().starts_with(b"text/html")
        });
    if is_problem_or_page {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::not_found("no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this method is not allowed on this resource",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "payload_too_large", "the request body is too large")
        }
        s if s.is_server_error() => ApiError::new(s, "internal", "an internal error occurred"),
        s => ApiError::new(
            s,
            "bad_request",
            s.canonical_reason().unwrap_or("bad request"),
        ),
    };
    let mut fresh = error.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    for (name, value) in parts.headers.iter() {
        fresh.headers_mut().insert(name.clone(), value.clone());
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_callers_are_checked() {
        assert!(is_valid_request_id("0190c7a2-6f0e-7c3e-9a8b-1234567890ab"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("has space"));
        assert!(!is_valid_request_id(&"a".repeat(65)));
        assert!(!is_valid_request_id("new\nline"));
    }

    #[tokio::test]
    async fn requests_are_limited_by_method_and_route_template() {
        let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = keys.clone();
        let long = format!("/{}/{{id}}", "x".repeat(200));
        let app = Router::new()
            .route("/items/{id}", axum::routing::get(|| async { "" }))
            .route(&long, axum::routing::post(|| async { "" }))
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let seen = seen.clone();
                    async move {
                        with_route_key(&req, |key| seen.lock().expect("lock").push(key.to_owned()));
                        next.run(req).await
                    }
                },
            ));
        let call = |method: &str, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .expect("request")
        };
        use tower::ServiceExt;
        for req in [
            call("GET", "/items/7"),
            call("POST", &format!("/{}/9", "x".repeat(200))),
            call("BREW", "/items/7"),
        ] {
            app.clone().oneshot(req).await.expect("answered");
        }
        assert_eq!(
            *keys.lock().expect("lock"),
            [
                "GET /items/{id}".to_owned(),
                format!("POST {long}"),
                "_OTHER /items/{id}".to_owned(),
            ]
        );
    }
}
