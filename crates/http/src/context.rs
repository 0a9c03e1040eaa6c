//! The context of the request being served: its id and its deadline.
//!
//! The middleware sets it as a task-local for the handler's future; the service
//! client reads it to propagate the request id and the remaining time budget on every
//! outbound call. Work spawned onto other tasks does not inherit it, by design.

use std::time::{Duration, Instant};

use http::HeaderValue;

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// What an inbound request carries to every outbound call it makes.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    /// When the caller stops waiting.
    pub deadline: Instant,
    /// The W3C trace context, passed through unchanged.
    pub traceparent: Option<HeaderValue>,
}

impl RequestContext {
    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The context of the current request, if running inside one.
pub fn current() -> Option<RequestContext> {
    CONTEXT.try_with(Clone::clone).ok()
}

/// Runs `f` with `ctx` as the current request context.
pub async fn scope<F: Future>(ctx: RequestContext, f: F) -> F::Output {
    CONTEXT.scope(ctx, f).await
}
