//! The HTTP chassis every Emporium service is served with.
//!
//! - [`server::serve`] runs a service's `Router` behind the one default middleware
//!   stack ([`middleware`]): request id → deadline (bounding streamed answers too,
//!   [`bounded`]) → access log → problem mapping → load shedding over an adaptive
//!   concurrency limit ([`limit`]) → body limit; adds `/livez`, `/readyz`
//!   and `/metrics` (Prometheus); and shuts down gracefully within a bounded grace
//!   period. The first layer also starts each request's server span and counts it
//!   per route and status.
//! - [`ApiError`] is the only error type handlers return; it renders RFC 9457
//!   `application/problem+json`, with field-level details for validation errors and
//!   an opaque body for 5xx (the cause is logged once, with the request id).
//! - [`extract`] parses JSON bodies, query strings and paths into typed values with
//!   problem+json rejections; [`Caller`] is the identity the gateway verified.
//! - [`guard`] decides who may call what: the peer of every request (its mTLS
//!   client certificate, or the co-hosted caller), identity headers from the
//!   gateway and storefront only, and [`Callers`] declared per route.
//! - [`context`] (from the telemetry crate) carries the request id, deadline and
//!   trace of the work being done, so outbound calls propagate them without
//!   threading them through every function.

pub use emporium_telemetry::context;
pub mod bounded;
pub mod cookies;
pub mod extract;
pub mod guard;
pub mod identity;
pub mod limit;
pub mod middleware;
pub mod names;
mod objects;
pub mod openapi;
pub mod problem;
pub mod server;

pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use guard::{Callers, Guard};
pub use identity::{Caller, ClientIp};
pub use problem::{ApiError, FieldError, Problem};
pub use server::{Readiness, serve, shutdown_signal};
