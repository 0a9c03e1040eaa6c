//! cart's HTTP handlers.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use emporium_client::{ClientError, ServiceClient};
use emporium_contracts::checkout::{CartReturn, CartSnapshot, TakeCart, TakenCart, paths};
use emporium_contracts::events::OrderLine;
use emporium_contracts::headers::IDEMPOTENCY_KEY;
use emporium_contracts::money::Money;
use emporium_contracts::sku::Sku;
use emporium_http::Callers;
use emporium_http::openapi::spec_router;
use emporium_http::{ApiError, ApiJson, ApiPath, Caller, FieldError, Problem};
use emporium_store::Db;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::checkouts;
use crate::store::{self, AddRefused, LineRow};

/// Units of one product a cart line may hold.
pub const MAX_QUANTITY: i64 = 99;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub catalog: ServiceClient,
    pub max_lines: usize,
}

#[derive(OpenApi)]
#[openapi(info(title = "Emporium cart", description = "Shopping carts"))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(view))
        .routes(routes!(add_item))
        .routes(routes!(change_item, remove_item))
}

pub fn router(state: AppState) -> Router {
    let (public, api) = routes().split_for_parts();
    // Anyone's cart, by user id: for checkout alone.
    let internal = Router::new()
        .route(paths::CART, get(snapshot))
        .route(paths::CART_CHECKOUTS, post(take))
        .route(paths::CART_CHECKOUT_RETURN, post(give_back))
        .callers(&["orders"]);
    public
        .merge(internal)
        .with_state(state)
        .merge(spec_router(api))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// One line of a cart.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CartLineView {
    pub sku: String,
    pub product_id: String,
    pub name: String,
    pub unit_price: Money,
    pub quantity: i64,
    pub line_total: Money,
}

/// A cart, priced.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CartView {
    pub items: Vec<CartLineView>,
    /// Units in the cart.
    pub item_count: i64,
    /// `null` while the cart is empty.
    pub total: Option<Money>,
}

fn cart_view(lines: Vec<LineRow>) -> CartView {
    let currency = lines.first().map(|l| l.currency.clone());
    let total: i64 = lines.iter().map(|l| l.unit_price * l.quantity).sum();
    CartView {
        item_count: lines.iter().map(|l| l.quantity).sum(),
        total: currency.map(|c| Money::new(total, &c)),
        items: lines
            .into_iter()
            .map(|l| CartLineView {
                unit_price: Money::new(l.unit_price, &l.currency),
                line_total: Money::new(l.unit_price * l.quantity, &l.currency),
                sku: l.sku,
                product_id: l.product_id,
                name: l.name,
                quantity: l.quantity,
            })
            .collect(),
    }
}

async fn current(state: &AppState, caller: &Caller) -> Result<CartView, ApiError> {
    let lines = store::lines(&state.db, &caller.user_id.to_string())
        .await
        .map_err(ApiError::internal)?;
    Ok(cart_view(lines))
}

/// Your cart.
#[utoipa::path(get, path = "/api/cart", tag = "cart", security(("bearer" = [])),
    responses(
        (status = 200, description = "The cart", body = CartView),
        (status = 401, description = "Not signed in", body = Problem),
    ))]
async fn view(State(state): State<AppState>, caller: Caller) -> Result<Json<CartView>, ApiError> {
    Ok(Json(current(&state, &caller).await?))
}

/// A product and how many.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    #[schema(value_type = emporium_contracts::sku::Sku)]
    pub sku: String,
    #[schema(example = 1, minimum = 1, maximum = 99)]
    pub quantity: i64,
}

/// A new quantity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityChange {
    #[schema(example = 2, minimum = 1, maximum = 99)]
    pub quantity: i64,
}

fn check_quantity(quantity: i64, errors: &mut Vec<FieldError>) {
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        errors.push(FieldError::new(
            "quantity",
            format!("must be 1 to {MAX_QUANTITY}"),
        ));
    }
}

/// What catalog says about a product.
#[derive(Deserialize)]
struct Product {
    id: String,
    sku: String,
    name: String,
    price: Money,
}

/// Add a product to your cart (or more of one already in it). With an
/// `Idempotency-Key`, sending the same add again (a retry after a lost answer)
/// adds nothing more.
#[utoipa::path(post, path = "/api/cart/items", tag = "cart", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 64,
        pattern = "^[!-~]+$",
        description = "Up to 64 visible ASCII characters you pick per add (a UUID is fine); kept a day")),
    request_body = NewItem,
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 400, description = "A malformed Idempotency-Key", body = Problem),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 422, description = "Unknown SKU, bad quantity, a full cart, or a key used for another add", body = Problem),
        (status = 503, description = "Catalog unavailable", body = Problem),
    ))]
async fn add_item(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(item): ApiJson<NewItem>,
) -> Result<Json<CartView>, ApiError> {
    let key = add_key(&headers)?;
    let mut errors = Vec::new();
    let sku = Sku::parse(&item.sku)
        .map_err(|m| errors.push(FieldError::new("sku", m)))
        .ok();
    check_quantity(item.quantity, &mut errors);
    let Some(sku) = sku.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let product: Product = match state
        .catalog
        .get_json(&format!("/api/catalog/products/sku/{}", sku.as_str()))
        .await
    {
        Ok(p) => p,
        Err(ClientError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
            return Err(ApiError::validation(vec![FieldError::new(
                "sku",
                "no product has this SKU",
            )]));
        }
        Err(e) => return Err(e.into()),
    };
    let line = LineRow {
        sku: product.sku,
        product_id: product.id,
        name: product.name,
        unit_price: product.price.amount,
        currency: product.price.currency,
        quantity: item.quantity,
    };
    let user = caller.user_id.to_string();
    match store::add(
        &state.db,
        &user,
        &line,
        key.as_deref(),
        MAX_QUANTITY,
        state.max_lines,
    )
    .await
    .map_err(ApiError::internal)?
    {
        Ok(true) => {
            emporium_telemetry::metrics::counter!("emporium_cart_items_added_total").increment(1);
        }
        // A repeat of an add already made: counted then.
        Ok(false) => {}
        Err(AddRefused::TooMany(have)) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "quantity",
                format!("the cart has {have} already; a line holds at most {MAX_QUANTITY}"),
            )]));
        }
        Err(AddRefused::Full) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "sku",
                format!("the cart is full ({} lines)", state.max_lines),
            )]));
        }
        Err(AddRefused::KeyReused) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for another add; use a new key",
            ));
        }
    }
    Ok(Json(current(&state, &caller).await?))
}

/// An add's optional `Idempotency-Key`: 1 to 64 visible ASCII characters.
fn add_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_invalid",
            "the Idempotency-Key header must be 1 to 64 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_string()))
}

/// Change how many of a product your cart holds.
#[utoipa::path(patch, path = "/api/cart/items/{sku}", tag = "cart", security(("bearer" = [])),
    params(("sku" = emporium_contracts::sku::Sku, Path, description = "Stock-keeping unit")),
    request_body = QuantityChange,
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 404, description = "Not in the cart", body = Problem),
        (status = 422, description = "Bad quantity", body = Problem),
    ))]
async fn change_item(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(sku): ApiPath<String>,
    ApiJson(change): ApiJson<QuantityChange>,
) -> Result<Json<CartView>, ApiError> {
    let mut errors = Vec::new();
    check_quantity(change.quantity, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let sku =
        Sku::parse(&sku).map_err(|_| ApiError::not_found("this product is not in the cart"))?;
    if !store::set_quantity(
        &state.db,
        &caller.user_id.to_string(),
        sku.as_str(),
        change.quantity,
    )
    .await
    .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("this product is not in the cart"));
    }
    Ok(Json(current(&state, &caller).await?))
}

/// Take a product out of your cart.
#[utoipa::path(delete, path = "/api/cart/items/{sku}", tag = "cart", security(("bearer" = [])),
    params(("sku" = emporium_contracts::sku::Sku, Path, description = "Stock-keeping unit")),
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 404, description = "Not in the cart", body = Problem),
    ))]
async fn remove_item(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(sku): ApiPath<String>,
) -> Result<Json<CartView>, ApiError> {
    let sku =
        Sku::parse(&sku).map_err(|_| ApiError::not_found("this product is not in the cart"))?;
    if !store::remove(&state.db, &caller.user_id.to_string(), sku.as_str())
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("this product is not in the cart"));
    }
    Ok(Json(current(&state, &caller).await?))
}

/// Lines as orders takes them: total, currency (empty without lines) and lines.
fn for_order(lines: Vec<LineRow>) -> (i64, String, Vec<OrderLine>) {
    let currency = lines
        .first()
        .map(|l| l.currency.clone())
        .unwrap_or_default();
    let total = lines.iter().map(|l| l.unit_price * l.quantity).sum();
    let lines = lines
        .into_iter()
        .map(|l| OrderLine {
            sku: l.sku,
            product_id: l.product_id,
            name: l.name,
            unit_price: l.unit_price,
            quantity: l.quantity,
        })
        .collect();
    (total, currency, lines)
}

/// The cart orders checks out (internal).
async fn snapshot(
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<CartSnapshot>, ApiError> {
    let lines = store::lines(&state.db, &user_id)
        .await
        .map_err(ApiError::internal)?;
    let (total, currency, lines) = for_order(lines);
    Ok(Json(CartSnapshot {
        user_id,
        total,
        currency,
        lines,
    }))
}

/// Takes the cart's lines for an order (internal; see [`crate::checkouts`]).
async fn take(
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(request): ApiJson<TakeCart>,
) -> Result<Json<TakenCart>, ApiError> {
    let mut errors = Vec::new();
    if request.order_id.is_empty() || request.order_id.len() > 64 {
        errors.push(FieldError::new("order_id", "must be 1 to 64 characters"));
    }
    if request.idempotency_key.is_empty() || request.idempotency_key.len() > 64 {
        errors.push(FieldError::new(
            "idempotency_key",
            "must be 1 to 64 characters",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let taken = checkouts::take(
        &state.db,
        &user_id,
        &request.order_id,
        &request.idempotency_key,
        request.expires_ms,
    )
    .await
    .map_err(ApiError::internal)?;
    let (total, currency, lines) = for_order(taken.lines.into_iter().map(|t| t.line).collect());
    Ok(Json(TakenCart {
        order_id: taken.order_id,
        user_id,
        total,
        currency,
        lines,
    }))
}

/// Puts what an order took back into its cart (internal).
async fn give_back(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<CartReturn>, ApiError> {
    let returned = checkouts::give_back(&state.db, &order_id)
        .await
        .map_err(ApiError::internal)?;
    if returned {
        tracing::info!(%order_id, "the order's lines are back in the cart");
    }
    Ok(Json(CartReturn { order_id, returned }))
}
