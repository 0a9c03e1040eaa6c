//! One OpenAPI 3.1 document for the whole public API, and Swagger UI to browse it.
//!
//! Each service generates its own document from its handlers and serves it at
//! `/internal/openapi.json`; the gateway fetches those of the services that are up,
//! merges them and caches the result briefly, so the document follows deployments.

use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_http::ApiError;
use emporium_http::openapi::{self, SPEC_PATH};
use http::{HeaderValue, header};
use http_body_util::BodyExt as _;
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

/// Swagger UI at `/docs`, reading the combined document. Its files are kept
/// gzipped in the binary (4.3 MB of JavaScript as 1.1 MB), sent as they are to
/// clients that accept gzip and unpacked for the rest.
pub fn swagger_ui<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::from(SwaggerUi::new("/docs").config(Config::from("/api/openapi.json")))
        .layer(axum::middleware::from_fn(gunzip_unless_accepted))
}

/// Unpacks a gzipped answer for a client whose `Accept-Encoding` refuses gzip.
async fn gunzip_unless_accepted(req: Request, next: Next) -> Response {
    let accepts = accepts_gzip(req.headers());
    let mut response = next.run(req).await;
    let gzipped = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !gzipped {
        return response;
    }
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    if accepts {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let unpacked = match body.collect().await {
        // Inflating a megabyte and a half is work for a blocking thread.
        Ok(collected) => tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&collected.to_bytes()[..])
                .read_to_end(&mut out)
                .map(|_| out)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e))),
        Err(e) => Err(std::io::Error::other(e)),
    };
    match unpacked {
        Ok(bytes) => {
            parts.headers.remove(header::CONTENT_ENCODING);
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(error) => {
            tracing::warn!(%error, "a Swagger UI file could not be unpacked");
            ApiError::internal("the file could not be read").into_response()
        }
    }
}

/// Whether `Accept-Encoding` takes gzip: its own q-value when named (`gzip` or
/// `x-gzip`), else that of `*`; above 0 either way.
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    let (mut named, mut any) = (None::<f32>, None::<f32>);
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            named = Some(named.map_or(q, |n| n.max(q)));
        } else if name == "*" {
            any = Some(q);
        }
    }
    named.or(any).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> bool {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("value"),
        );
        accepts_gzip(&h)
    }

    #[test]
    fn gzip_is_accepted_only_when_asked_for_with_a_positive_q() {
        assert!(accept("gzip, deflate, br"));
        assert!(accept("br;q=1.0, GZIP;q=0.5"));
        assert!(accept("*"));
        assert!(!accept("gzip;q=0"));
        assert!(!accept("gzip;q=0, *"), "named, gzip's own q-value wins");
        assert!(accept("x-gzip"));
        assert!(!accept("*;q=0"));
        assert!(!accept("identity"));
        assert!(!accept("br, deflate"));
        assert!(!accepts_gzip(&http::HeaderMap::new()));
    }
}
