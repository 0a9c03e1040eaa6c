//! The context of the work being done: its request id, deadline and trace.
//!
//! The middleware sets it as a task-local for the handler's future, an event
//! consumer for each handler, the orders saga for each order; the service client
//! reads it to propagate the request id, the remaining time budget and the trace on
//! every outbound call, the database opens transaction spans under it, and the
//! outbox stamps events with its trace. Work spawned onto other tasks does not
//! inherit it, by design.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::HeaderValue;

use crate::trace::TraceContext;

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// A request id, kept as the header value it travels in: every outbound call and
/// the response carry it without a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// `id` if it can travel in a header as text (visible ASCII), else a new one.
    pub fn new(id: String) -> Self {
        HeaderValue::try_from(id)
            .ok()
            .filter(|v| v.to_str().is_ok())
            .map_or_else(Self::generate, Self)
    }

    /// A new id (a UUIDv7: time-ordered).
    pub fn generate() -> Self {
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::now_v7().hyphenated().encode_lower(&mut id);
        // Owned by the `Bytes` from the start, so clones only count references.
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(id))
            .map_or_else(|_| Self(HeaderValue::from_static("unknown")), Self)
    }

    /// A value a caller sent, already checked by the caller (see
    /// `emporium_http::middleware`): kept without a copy (it shares the bytes of
    /// the request head it came in).
    pub fn from_header(value: HeaderValue) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value (a reference count, not a copy).
    pub fn header(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for RequestId {
    fn from(id: &str) -> Self {
        Self::new(id.to_owned())
    }
}

/// What an inbound request carries to every outbound call it makes.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: RequestId,
    /// When the caller stops waiting.
    pub deadline: Instant,
    /// The span this work runs in: the parent of the spans it starts.
    pub trace: Option<TraceContext>,
    /// Whether the service already admitted this work: a call on an internal
    /// route (a step of work a caller admitted), a saga, an event handler. A
    /// request on a public route is new work. Admitted work's writes go first
    /// (`emporium_store`), as internal calls are never shed (`emporium_http`).
    pub admitted: bool,
    /// The route the request is counted under, when its handler names one rather
    /// than the router's template (the gateway's one `/api/{*rest}` route becomes
    /// `/api/orders`); read by the HTTP middleware when the handler is done.
    pub route: OnceLock<Arc<str>>,
}

impl RequestContext {
    /// Work no caller waits for (a saga, an event handler): each call it makes keeps
    /// its own timeout. It was admitted when it was started.
    pub fn unbounded(request_id: String, trace: Option<TraceContext>) -> Self {
        Self {
            request_id: RequestId::new(request_id),
            deadline: Instant::now() + Duration::from_secs(24 * 3600),
            trace,
            admitted: true,
            route: OnceLock::new(),
        }
    }

    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The context of the current request, if running inside one.
pub fn current() -> Option<RequestContext> {
    CONTEXT.try_with(Clone::clone).ok()
}

/// `f` of the context of the current request, if running inside one, without
/// cloning it.
pub fn with<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CONTEXT.try_with(f).ok()
}

/// Time left before the current request's deadline, if running inside one.
pub fn remaining() -> Option<Duration> {
    with(RequestContext::remaining)
}

/// Whether the current work was already admitted (see [`RequestContext::admitted`]);
/// work outside any request (a background loop) is.
pub fn is_admitted() -> bool {
    CONTEXT.try_with(|c| c.admitted).unwrap_or(true)
}

/// The trace of the current work, if any (cheaper than cloning the whole context).
pub fn current_trace() -> Option<TraceContext> {
    CONTEXT.try_with(|c| c.trace.clone()).ok().flatten()
}

/// The current trace as a `traceparent` value, for an event being published.
pub fn current_traceparent() -> Option<String> {
    CONTEXT
        .try_with(|c| c.trace.as_ref().map(crate::trace::traceparent))
        .ok()
        .flatten()
}

/// Runs `f` as the work of `span`: same request as now (if any), new trace parent.
pub fn in_span<F: Future>(
    span: &crate::trace::Span,
    f: F,
) -> impl Future<Output = F::Output> + use<F> {
    let ctx = match current() {
        Some(mut ctx) => {
            ctx.trace = Some(span.context().clone());
            ctx
        }
        None => RequestContext::unbounded(span.trace_id(), Some(span.context().clone())),
    };
    scope(ctx, f)
}

/// Runs `f` with `ctx` as the current request context (not an `async fn`, for
/// the size of the future: see [`crate::identity::scope`]).
pub fn scope<F: Future>(ctx: RequestContext, f: F) -> impl Future<Output = F::Output> {
    CONTEXT.scope(ctx, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_keep_text_and_replace_what_cannot_travel_as_text() {
        assert_eq!(RequestId::new("saga-42".into()).as_str(), "saga-42");
        // Bytes a header may carry but that are not text: a new id, not a blank one.
        let odd = RequestId::new("caf\u{e9}".into());
        assert_eq!(odd.as_str().len(), 36, "{odd}");
        assert!(uuid::Uuid::parse_str(odd.as_str()).is_ok());
        assert_eq!(RequestId::new("line\nbreak".into()).as_str().len(), 36);
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.header().to_str().ok(), Some(a.as_str()));
        assert_eq!(
            uuid::Uuid::parse_str(a.as_str()).map(|u| u.get_version_num()),
            Ok(7)
        );
    }
}
