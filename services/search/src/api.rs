//! search's HTTP handlers.

use emporium_http::Callers;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use emporium_http::openapi::spec_router;
use emporium_http::{ApiError, ApiQuery, FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::documents::Item;
use crate::indexer::{Reindexed, Shared};
use crate::params::{self, SearchParams};
use crate::searching::{self, Facets};

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Emporium search",
    description = "Product search with typo tolerance, facets and suggestions"
))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(search))
        .routes(routes!(suggest))
}

pub fn router(state: AppState) -> Router {
    let (routes, api) = routes().split_for_parts();
    let internal = Router::new()
        .route("/internal/search/reindex", post(reindex))
        .route("/internal/search/status", get(status))
        // `emporium search reindex`: the operator's.
        .callers(&[]);
    routes
        .merge(internal)
        .with_state(state)
        .merge(spec_router(api))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// One found product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Hit {
    #[serde(flatten)]
    pub item: Item,
    /// A piece of the description with the matching words in `<mark>`; the rest is
    /// HTML-escaped.
    pub snippet: String,
}

/// A page of results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    pub items: Vec<Hit>,
    /// Products matching the query and filters, over all pages.
    pub total: usize,
    /// Counts for the query and filters.
    pub facets: Facets,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// Search products.
#[utoipa::path(get, path = "/api/search", tag = "search",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of results", body = SearchPage),
        (status = 400, description = "Invalid query parameters", body = Problem),
    ))]
async fn search(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    // A category nothing is in finds nothing, as a price range nothing is in.
    let checked = params.check().map_err(ApiError::invalid_query)?;
    let engine = state.shared.engine();
    let sort = checked.sort;
    let outcome = tokio::task::spawn_blocking(move || {
        let parsed = crate::query::parse(&mut crate::index::analyzer(), &checked.text);
        searching::search(
            &engine,
            &searching::Request {
                parsed,
                filters: checked.filters,
                sort,
                limit: checked.limit,
                after: checked.after,
            },
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let next = match (outcome.more, outcome.found.last()) {
        (true, Some(last)) => Some(params::encode_cursor(sort, &last.after)),
        _ => None,
    };
    Ok(Json(SearchPage {
        items: outcome
            .found
            .into_iter()
            .map(|f| Hit {
                item: f.item,
                snippet: f.snippet,
            })
            .collect(),
        total: outcome.total,
        facets: outcome.facets,
        next,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SuggestParams {
    /// What has been typed so far.
    #[param(max_length = 10240)]
    q: Option<String>,
}

/// Product names for what has been typed so far.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Suggestions {
    /// At most 10, best first.
    pub items: Vec<String>,
}

/// Suggest product names (search-as-you-type).
#[utoipa::path(get, path = "/api/search/suggest", tag = "search",
    params(SuggestParams),
    responses(
        (status = 200, description = "Up to 10 product names", body = Suggestions),
        (status = 400, description = "Invalid query parameters", body = Problem),
    ))]
async fn suggest(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SuggestParams>,
) -> Result<Json<Suggestions>, ApiError> {
    let text = params.q.unwrap_or_default();
    if text.chars().count() > params::MAX_QUERY_CHARS {
        return Err(ApiError::invalid_query(vec![FieldError::new(
            "q",
            format!("must be at most {} characters", params::MAX_QUERY_CHARS),
        )]));
    }
    let engine = state.shared.engine();
    let items = tokio::task::spawn_blocking(move || {
        let parsed = crate::query::parse(&mut crate::index::analyzer(), &text);
        searching::suggest(&engine, &parsed)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(Suggestions { items }))
}

/// `GET /internal/search/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexStatus {
    pub documents: u64,
    /// The last change of the documents table in the index.
    pub indexed_change: i64,
    pub bytes: u64,
}

async fn status(State(state): State<AppState>) -> Json<IndexStatus> {
    let engine = state.shared.engine();
    Json(IndexStatus {
        documents: engine.reader.searcher().num_docs(),
        indexed_change: state.shared.indexed(),
        bytes: engine.size_bytes(),
    })
}

/// Builds a new index beside the current one and swaps to it.
async fn reindex(State(state): State<AppState>) -> Result<Json<Reindexed>, ApiError> {
    state
        .shared
        .reindex()
        .await
        .map(Json)
        .map_err(|e| ApiError::internal(e.context("reindexing")))
}
