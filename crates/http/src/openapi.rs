//! Serving a service's OpenAPI document.
//!
//! Each service generates its document from its handlers (utoipa) and serves it at
//! [`SPEC_PATH`]; the gateway collects them into one document for `/api/openapi.json`.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::guard::Callers;
use utoipa::openapi::OpenApi;

/// Where every service serves its own OpenAPI document.
pub const SPEC_PATH: &str = "/internal/openapi.json";

/// A router serving `spec` at [`SPEC_PATH`], to the gateway (which publishes
/// the combined document).
pub fn spec_router(spec: OpenApi) -> Router {
    let spec = Arc::new(spec);
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
