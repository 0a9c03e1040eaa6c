//! inventory's HTTP handlers: the public stock lookup and the saga's internal calls.

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use emporium_contracts::auth::ROLE_ADMIN;
use emporium_contracts::checkout::paths;
use emporium_contracts::checkout::{Reservation, ReserveRequest};
use emporium_contracts::sku::Sku;
use emporium_http::Callers;
use emporium_http::openapi::spec_router;
use emporium_http::{ApiError, ApiJson, ApiPath, Caller, FieldError, Problem};
use emporium_store::Db;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::stock::{self, Transition};

/// Most units of one SKU a single order may hold.
const MAX_LINE_QUANTITY: i64 = 1_000;
const MAX_LINES: usize = 100;
/// Largest stock count an admin may set.
const MAX_STOCK: i64 = 1_000_000_000;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub outbox: emporium_events::Outbox,
}

#[derive(OpenApi)]
#[openapi(info(title = "Emporium inventory", description = "Stock per SKU"))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(get_stock, set_stock))
}

pub fn router(state: AppState) -> Router {
    let (public, api) = routes().split_for_parts();
    let internal = Router::new()
        .route(paths::RESERVATION, put(reserve).get(get_reservation))
        .route(paths::RESERVATION_COMMIT, post(commit))
        .route(paths::RESERVATION_RELEASE, post(release))
        // The saga's steps: orders alone reserves stock.
        .callers(&["orders"]);
    // `emporium verify`: the operator alone.
    let audit = Router::new()
        .route(
            "/internal/inventory/audit",
            axum::routing::get(crate::audit::audit),
        )
        .callers(&[])
        .with_state(state.db.clone());
    public
        .merge(internal)
        .with_state(state)
        .merge(audit)
        .merge(spec_router(api))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// Units of a SKU that can be bought now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StockView {
    #[schema(example = "EMP-0001")]
    pub sku: String,
    #[schema(example = 12)]
    pub available: i64,
}

impl From<stock::StockRow> for StockView {
    fn from(r: stock::StockRow) -> Self {
        Self {
            sku: r.sku,
            available: r.available,
        }
    }
}

/// Units available of one SKU.
#[utoipa::path(get, path = "/api/inventory/{sku}", tag = "inventory",
    params(("sku" = emporium_contracts::sku::Sku, Path, description = "Stock-keeping unit")),
    responses(
        (status = 200, description = "Stock", body = StockView),
        (status = 404, description = "Unknown SKU", body = Problem),
    ))]
async fn get_stock(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> Result<Json<StockView>, ApiError> {
    let sku = path_sku(&sku)?;
    stock::available(&state.db, sku.as_str())
        .await
        .map_err(ApiError::internal)?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found("no stock for this SKU"))
}

/// A new stock count.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockUpdate {
    #[schema(example = 40, minimum = 0, maximum = 1_000_000_000)]
    pub available: i64,
}

/// Set the units available of a SKU (admin): restock or correct a count.
#[utoipa::path(put, path = "/api/inventory/{sku}", tag = "inventory",
    security(("bearer" = [])),
    params(("sku" = emporium_contracts::sku::Sku, Path, description = "Stock-keeping unit")),
    request_body = StockUpdate,
    responses(
        (status = 200, description = "Updated", body = StockView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 403, description = "Not an admin", body = Problem),
        (status = 404, description = "Unknown SKU", body = Problem),
        (status = 422, description = "Invalid count", body = Problem),
    ))]
async fn set_stock(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(sku): ApiPath<String>,
    ApiJson(update): ApiJson<StockUpdate>,
) -> Result<Json<StockView>, ApiError> {
    caller.require_role(ROLE_ADMIN)?;
    if !(0..=MAX_STOCK).contains(&update.available) {
        return Err(ApiError::validation(vec![FieldError::new(
            "available",
            format!("must be 0 to {MAX_STOCK}"),
        )]));
    }
    let sku = path_sku(&sku)?;
    let row = stock::set_available(&state.db, &state.outbox, sku.as_str(), update.available)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no stock for this SKU"))?;
    tracing::info!(sku = %row.sku, available = row.available, "stock set");
    Ok(Json(row.into()))
}

/// A SKU from the path as catalog spells it (upper case); one that is no SKU has
/// no stock.
fn path_sku(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|_| ApiError::not_found("no stock for this SKU"))
}

async fn reserve(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
    ApiJson(request): ApiJson<ReserveRequest>,
) -> Result<Json<Reservation>, ApiError> {
    let mut errors = Vec::new();
    if request.lines.is_empty() || request.lines.len() > MAX_LINES {
        errors.push(FieldError::new("lines", format!("1 to {MAX_LINES} lines")));
    }
    for (i, l) in request.lines.iter().enumerate() {
        if !(1..=MAX_LINE_QUANTITY).contains(&l.quantity) {
            errors.push(FieldError::new(
                format!("lines[{i}].quantity"),
                format!("must be 1 to {MAX_LINE_QUANTITY}"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let r = stock::reserve(&state.db, &state.outbox, &order_id, &request.lines)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(order_id, status = %r.status, "reservation");
    Ok(Json(r))
}

async fn get_reservation(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Reservation>, ApiError> {
    stock::reservation(&state.db, &order_id)
        .await
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no reservation for this order"))
}

async fn commit(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Reservation>, ApiError> {
    match stock::commit(&state.db, &order_id)
        .await
        .map_err(ApiError::internal)?
    {
        Transition::Done(r) => Ok(Json(r)),
        Transition::Unknown => Err(ApiError::not_found("no reservation for this order")),
    }
}

async fn release(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Reservation>, ApiError> {
    let r = stock::release(&state.db, &state.outbox, &order_id)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(order_id, status = %r.status, "release");
    Ok(Json(r))
}
