//! Typed JSON calls to a named service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use emporium_http::{context, names};
use emporium_telemetry::meters::Meters;
use emporium_telemetry::trace::{self, Kind, Span};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::transport::{Deadline, Transport};

/// Calls one service through a transport.
///
/// Every call has a deadline: the smaller of the client's timeout and what is left of
/// the current request's budget. The request id, the remaining budget and the trace
/// context (`traceparent` of a client span, a child of the current one) travel with
/// the call, and every call is counted and timed per target service and outcome
/// (`http_client_requests_total`, `http_client_request_duration_seconds`).
#[derive(Clone)]
pub struct ServiceClient {
    service: String,
    transport: Arc<dyn Transport>,
    timeout: Duration,
    /// Sent with every call of this client (identity, an idempotency key).
    headers: Option<Arc<HeaderMap>>,
    /// Its calls and their durations, by target, method and outcome.
    meters: Arc<Meters<3>>,
}

impl ServiceClient {
    pub fn new(service: &str, transport: Arc<dyn Transport>, timeout: Duration) -> Self {
        Self {
            service: service.to_string(),
            transport,
            timeout,
            headers: None,
            meters: Arc::new(Meters::new(
                "http_client_requests_total",
                "http_client_request_duration_seconds",
                ["target", "method", "outcome"],
            )),
        }
    }

    /// This client with `name: value` on every call it makes: a caller acting for
    /// someone (`x-user-id`), or a retried command's `idempotency-key`.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        let mut headers = self.headers.as_deref().cloned().unwrap_or_default();
        headers.insert(name, value);
        self.headers = Some(Arc::new(headers));
        self
    }

    /// Sends `method path` with no body, decoding a JSON answer (`DELETE`, a
    /// `POST` that takes nothing).
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, ClientError> {
        let request = self.request(method, path, Bytes::new())?;
        self.json(request).await
    }

    /// Whether a call would be refused at once now (no instance, open circuit),
    /// without making one.
    pub async fn check(&self) -> Result<(), ClientError> {
        self.transport.check(&self.service).await
    }

    /// Returns once the service has an instance listed, or after `at_most`
    /// ([`Transport::until_listed`]).
    pub async fn until_listed(&self, at_most: Duration) {
        self.transport.until_listed(&self.service, at_most).await;
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// GET `path`, decoding a JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let request = self.request(Method::GET, path, Bytes::new())?;
        self.json(request).await
    }

    /// Sends `body` as JSON with `method`, decoding a JSON answer.
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| self.decode(e.into()))?;
        let mut request = self.request(method, path, Bytes::from(bytes))?;
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.json(request).await
    }

    /// Sends a prepared request with the deadline and propagation headers applied;
    /// the response streams and its status is not checked.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Body>, ClientError> {
        let deadline = Instant::now() + self.budget();
        self.send_until(request, deadline).await
    }

    /// The time this call may take: the client's timeout, or what is left of the
    /// current request's budget if less.
    fn budget(&self) -> Duration {
        context::remaining().map_or(self.timeout, |left| left.min(self.timeout))
    }

    async fn send_until(
        &self,
        mut request: Request<Bytes>,
        deadline: Instant,
    ) -> Result<Response<Body>, ClientError> {
        let started = Instant::now();
        // What the current request passes on: its id (a header value already) and
        // its trace, read in place rather than cloning the whole context.
        let (request_id, parent) = context::with(|c| (c.request_id.header(), c.trace.clone()))
            .map_or((None, None), |(id, trace)| (Some(id), trace));
        let budget = deadline.saturating_duration_since(started);
        request.extensions_mut().insert(Deadline(deadline));
        if self
            .headers
            .as_ref()
            .is_some_and(|h| h.contains_key(names::IDEMPOTENCY_KEY))
        {
            request
                .extensions_mut()
                .insert(crate::resilience::retry::Keyed);
        }
        // A client span only inside traced work: background polling starts no trace.
        let mut span = parent.as_ref().map(|parent| {
            let mut span = Span::start("call", Kind::Client, Some(parent));
            if span.is_recording() {
                span.set_name(format!("{} {}", request.method(), self.service));
                span.set_attribute("http.request.method", request.method().to_string());
                span.set_attribute("server.address", self.service.clone());
                span.set_attribute("url.path", request.uri().path().to_owned());
            }
            span
        });
        let h = request.headers_mut();
        if let Some(extra) = &self.headers {
            for (name, value) in extra.iter() {
                h.insert(name, value.clone());
            }
        }
        if let Some(id) = request_id {
            h.insert(names::REQUEST_ID, id);
        }
        if let Some(span) = &span {
            trace::inject(span.context(), h);
        }
        h.insert(
            names::TIMEOUT_MS,
            HeaderValue::from(budget.as_millis() as u64),
        );
        let method = emporium_http::middleware::method_label(request.method());
        let result = tokio::time::timeout(budget, self.transport.send(&self.service, request))
            .await
            .map_err(|_| ClientError::Timeout(self.service.clone()))
            .and_then(|r| r);
        let status = result.as_ref().map(|r| r.status()).ok();
        let outcome = match (&result, &status) {
            (_, Some(status)) => status.as_str(),
            (Err(ClientError::Timeout(_)), None) => "timeout",
            _ => "error",
        };
        if let Some(span) = &mut span {
            match &result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    span.set_attribute("http.response.status_code", i64::from(status));
                    if status >= 500 {
                        span.set_error(format!("HTTP {status}"));
                    }
                }
                Err(e) => span.set_error(e.to_string()),
            }
        }
        self.meters.record(
            [&self.service, method, outcome],
            started.elapsed().as_secs_f64(),
        );
        result
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Bytes>, ClientError> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json")
            .body(body)
            .map_err(|e| self.decode(e.into()))
    }

    async fn json<T: DeserializeOwned>(&self, request: Request<Bytes>) -> Result<T, ClientError> {
        // Reading the answer counts against the same deadline as waiting for it.
        let deadline = Instant::now() + self.budget();
        let response = self.send_until(request, deadline).await?;
        let status = response.status();
        let bytes = tokio::time::timeout_at(deadline.into(), response.into_body().collect())
            .await
            .map_err(|_| ClientError::Timeout(self.service.clone()))?
            .map_err(|e| ClientError::Transport {
                service: self.service.clone(),
                source: e.into(),
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(ClientError::Status {
                service: self.service.clone(),
                status,
                problem: serde_json::from_slice(&bytes).ok().map(Box::new),
            });
        }
        // No content (204) reads as JSON `null`: `()` or an `Option` takes it.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| self.decode(e.into()))
    }

    fn decode(&self, source: Box<dyn std::error::Error + Send + Sync>) -> ClientError {
        ClientError::Decode {
            service: self.service.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalTransport;
    use axum::Router;
    use axum::routing::get;
    use emporium_contracts::headers;

    #[tokio::test]
    async fn calls_carry_request_id_and_budget() {
        let echo = Router::new().route(
            "/echo",
            get(|h: http::HeaderMap| async move {
                let get = |n: &str| {
                    h.get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                axum::Json(serde_json::json!({
                    "request_id": get(headers::REQUEST_ID),
                    "budget": get(headers::TIMEOUT_MS),
                }))
            }),
        );
        let client = ServiceClient::new(
            "echo",
            Arc::new(LocalTransport::new().with("echo", echo)),
            Duration::from_secs(5),
        );
        let ctx = context::RequestContext {
            request_id: "req-7".into(),
            deadline: std::time::Instant::now() + Duration::from_millis(800),
            trace: None,
            admitted: false,
            route: Default::default(),
        };
        let v: serde_json::Value = context::scope(ctx, client.get_json("/echo"))
            .await
            .expect("call");
        assert_eq!(v["request_id"], "req-7");
        let budget: u64 = v["budget"]
            .as_str()
            .and_then(|b| b.parse().ok())
            .expect("budget");
        assert!(
            budget <= 800 && budget > 500,
            "remaining budget propagated: {budget}"
        );
    }

    #[tokio::test]
    async fn deadline_applies_to_slow_services() {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let client = ServiceClient::new(
            "slow",
            Arc::new(LocalTransport::new().with("slow", slow)),
            Duration::from_millis(100),
        );
        let err = client
            .get_json::<String>("/slow")
            .await
            .expect_err("timeout");
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    }

    #[tokio::test]
    async fn error_statuses_carry_the_problem() {
        let router = Router::new().route(
            "/missing",
            get(|| async { emporium_http::ApiError::not_found("no such thing") }),
        );
        let client = ServiceClient::new(
            "svc",
            Arc::new(LocalTransport::new().with("svc", router)),
            Duration::from_secs(1),
        );
        match client.get_json::<String>("/missing").await {
            Err(ClientError::Status {
                status, problem, ..
            }) => {
                assert_eq!(status, 404);
                assert_eq!(problem.map(|p| p.code), Some("not_found".into()));
            }
            other => panic!("expected a status error, got {other:?}"),
        }
    }
}
