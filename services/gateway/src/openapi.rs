//! One OpenAPI 3.1 document for the whole public API, and Swagger UI to browse it.
//!
//! Each service generates its own document from its handlers and serves it at
//! `/internal/openapi.json`; the gateway fetches those of the services that are up,
//! merges them and caches the result briefly, so the document follows deployments.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use emporium_http::ApiError;
use emporium_http::openapi::{self, SPEC_PATH};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::Shared;

/// What the gateway answers for every operation it routes.
const RATE_LIMITED: (&str, &str) = (
    "429",
    "Too many requests from this client or account; try again after `Retry-After`",
);

/// What the gateway answers for a path parameter that could change the path.
const MALFORMED_PATH: (&str, &str) = (
    "400",
    "A path segment is `.` or `..`, or hides a `/` or `\\` (refused before routing)",
);

/// How long a combined document is served before it is built again.
const CACHE_FOR: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Combined {
    cached: Mutex<Option<(Instant, serde_json::Value)>>,
}

/// `GET /api/openapi.json`.
pub async fn serve(State(gw): State<Shared>) -> Result<impl IntoResponse, ApiError> {
    if let Some((at, doc)) = gw.docs.cached.lock().ok().and_then(|c| c.clone())
        && at.elapsed() < CACHE_FOR
    {
        return Ok(Json(doc));
    }
    let services = gw.table.services();
    let fetches = services.iter().map(|service| {
        let client = gw.host.client(service, Duration::from_secs(2));
        async move {
            (
                service.to_string(),
                client.get_json::<OpenApi>(SPEC_PATH).await,
            )
        }
    });
    let mut doc = base();
    let mut missing = Vec::new();
    for (service, result) in futures::future::join_all(fetches).await {
        match result {
            Ok(part) => doc.merge(part),
            Err(_) => missing.push(service),
        }
    }
    if !missing.is_empty() {
        tracing::debug!(?missing, "services left out of the API document");
    }
    let mut value = serde_json::to_value(&doc).map_err(ApiError::internal)?;
    openapi::for_each_operation(&mut value, |op| {
        openapi::add_problems(op, &[RATE_LIMITED]);
        if openapi::takes(op, "path") {
            openapi::add_problems(op, &[MALFORMED_PATH]);
        }
    });
    if let Ok(mut cached) = gw.docs.cached.lock() {
        *cached = Some((Instant::now(), value.clone()));
    }
    Ok(Json(value))
}

fn base() -> OpenApi {
    let mut doc = OpenApi::builder()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Emporium API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The public API of the Emporium shop, through the gateway. Errors are \
                     RFC 9457 application/problem+json. Protected operations take \
                     `Authorization: Bearer <access_token>` from `POST /api/users/login`.",
                ))
                .build(),
        )
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    doc
}

/// Swagger UI at `/docs`, reading the combined document.
pub fn swagger_ui<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    SwaggerUi::new("/docs")
        .config(Config::from("/api/openapi.json"))
        .into()
}
