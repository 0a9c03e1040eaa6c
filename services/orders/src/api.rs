//! orders' public API: checkout, order history, one order with its timeline.

use emporium_http::Callers;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emporium_client::ClientError;
use emporium_client::api::Cart;
use emporium_contracts::auth::ROLE_ADMIN;
use emporium_contracts::checkout::TakeCart;
use emporium_contracts::events::{OrderLine, OrderPlaced};
use emporium_contracts::headers::IDEMPOTENCY_KEY;
use emporium_contracts::money::Money;
use emporium_events::{EventsError, Outbox};
use emporium_http::openapi::spec_router;
use emporium_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, FieldError, Problem};
use emporium_store::{Db, is_unique_violation, now_ms, rfc3339};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{self, CheckoutRequest, ShippingAddress};
use crate::saga::{Saga, keyed};
use crate::store::{self, OrderRow, step};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub outbox: Outbox,
    pub saga: Arc<Saga>,
    /// How long a checkout request waits for its saga before answering PENDING.
    pub wait: Duration,
    /// How long a saga may take to reach its payment authorization.
    pub saga_timeout: Duration,
    /// `orders.require_verified_email`.
    pub require_verified_email: bool,
}

#[derive(OpenApi)]
#[openapi(info(title = "Emporium orders", description = "Checkout and order history"))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(checkout, list_orders))
        .routes(routes!(get_order))
}

pub fn router(state: AppState) -> Router {
    let (routes, api) = routes().split_for_parts();
    // The ops console's checkout outcomes.
    let internal = Router::new()
        .route("/internal/orders/outcomes", axum::routing::get(outcomes))
        .callers(&["storefront"]);
    // `emporium verify`: the operator alone.
    let audit = Router::new()
        .route(
            "/internal/orders/audit",
            axum::routing::get(crate::audit::audit),
        )
        .callers(&[])
        .with_state(state.db.clone());
    routes
        .merge(internal)
        .with_state(state)
        .merge(audit)
        .merge(spec_router(api))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomesQuery {
    /// How far back, in milliseconds (default an hour).
    window_ms: Option<i64>,
}

/// How many orders ended how, by status and reason.
#[derive(Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub status: String,
    pub reason: Option<String>,
    pub orders: i64,
}

/// `GET /internal/orders/outcomes?window_ms=`: the sagas' outcomes of the window,
/// for the ops console.
async fn outcomes(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OutcomesQuery>,
) -> Result<Json<Vec<Outcome>>, ApiError> {
    let window = q
        .window_ms
        .unwrap_or(3_600_000)
        .clamp(0, 30 * 24 * 3_600_000);
    let rows = store::outcomes(&state.db, now_ms() - window)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        rows.into_iter()
            .map(|(status, reason, orders)| Outcome {
                status,
                reason,
                orders,
            })
            .collect(),
    ))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// One line of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderLineView {
    pub sku: String,
    pub product_id: String,
    pub name: String,
    pub unit_price: Money,
    pub quantity: i64,
}

/// Something that happened to an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub at: String,
    /// `placed`, `stock_reserved`, `payment_authorized`, `confirmed`, `out_of_stock`, …
    pub event: String,
    pub detail: String,
}

/// The card an order is paid with.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CardView {
    pub brand: String,
    pub last4: String,
}

/// An order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    /// `PENDING`, `CONFIRMED` or `CANCELLED`.
    pub status: String,
    /// Why it was cancelled: `out_of_stock`, `payment_declined`, `deadline_exceeded`,
    /// `interrupted`, …
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub total: Money,
    pub lines: Vec<OrderLineView>,
    pub shipping_address: ShippingAddress,
    pub card: CardView,
    pub created_at: String,
    pub updated_at: String,
    /// Present on `GET /api/orders/{id}` and the checkout answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntry>>,
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderView>,
    pub total: i64,
    pub next: Option<String>,
}

async fn view(db: &Db, o: OrderRow, with_timeline: bool) -> Result<OrderView, ApiError> {
    view_of(db, o, None, with_timeline).await
}

/// The view of `o`, with its `lines` (in SKU order) when the caller has them.
async fn view_of(
    db: &Db,
    o: OrderRow,
    lines: Option<Vec<OrderLine>>,
    with_timeline: bool,
) -> Result<OrderView, ApiError> {
    let lines = match lines {
        Some(lines) => lines,
        None => store::lines(db, &o.id).await.map_err(ApiError::internal)?,
    };
    let timeline = if with_timeline {
        Some(
            store::timeline(db, &o.id)
                .await
                .map_err(ApiError::internal)?
                .into_iter()
                .map(|t| TimelineEntry {
                    at: rfc3339(t.at_ms),
                    event: t.event,
                    detail: t.detail,
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(OrderView {
        lines: lines
            .into_iter()
            .map(|l| OrderLineView {
                unit_price: Money::new(l.unit_price, &o.currency),
                sku: l.sku,
                product_id: l.product_id,
                name: l.name,
                quantity: l.quantity,
            })
            .collect(),
        shipping_address: serde_json::from_str(&o.shipping).map_err(ApiError::internal)?,
        total: Money::new(o.total, &o.currency),
        card: CardView {
            brand: o.card_brand,
            last4: o.card_last4,
        },
        created_at: rfc3339(o.created_ms),
        updated_at: rfc3339(o.updated_ms),
        id: o.id,
        status: o.status,
        reason: o.reason,
        detail: o.detail,
        timeline,
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers.get(IDEMPOTENCY_KEY).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_missing",
            "an Idempotency-Key header (a UUID you generate per checkout) is required",
        )
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        .map(|u| u.hyphenated().to_string())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "idempotency_key_invalid",
                "the Idempotency-Key header must be a UUID",
            )
        })
}

/// The answer for an order that already exists under this key.
async fn replay(
    state: &AppState,
    existing: OrderRow,
    fingerprint: &str,
) -> Result<axum::response::Response, ApiError> {
    if existing.request_hash != fingerprint {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different checkout; use a new key",
        ));
    }
    let status = if existing.step == step::DONE {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    respond(state, existing, status).await
}

async fn respond(
    state: &AppState,
    order: OrderRow,
    status: StatusCode,
) -> Result<axum::response::Response, ApiError> {
    respond_with(state, order, None, status).await
}

/// [`respond`], with the order's `lines` (in SKU order) when the caller has them.
async fn respond_with(
    state: &AppState,
    order: OrderRow,
    lines: Option<Vec<OrderLine>>,
    status: StatusCode,
) -> Result<axum::response::Response, ApiError> {
    let location =
        HeaderValue::from_str(&format!("/api/orders/{}", order.id)).map_err(ApiError::internal)?;
    let body = view_of(&state.db, order, lines, true).await?;
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

/// Check out your cart.
///
/// Takes the cart's lines and their prices into a PENDING order (the cart is empty at
/// once; a cancelled order puts them back) and runs the checkout saga: reserve stock,
/// authorize the card, commit stock and capture the payment. Answers
/// `202` with the order as it stands after a short wait (usually already CONFIRMED
/// or CANCELLED); poll `GET /api/orders/{id}` while it is PENDING. Retrying with the
/// same `Idempotency-Key` and body returns the same order.
#[utoipa::path(post, path = "/api/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = uuid::Uuid, Header, description = "A UUID per checkout attempt")),
    request_body = CheckoutRequest,
    responses(
        (status = 202, description = "Accepted; the order and its status", body = OrderView),
        (status = 200, description = "The same key and body again: the order, finished", body = OrderView),
        (status = 400, description = "Missing or invalid Idempotency-Key, malformed JSON", body = Problem),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 403, description = "The email address is not confirmed yet", body = Problem),
        (status = 409, description = "Another request with this Idempotency-Key is still placing the order; retry with the same key", body = Problem),
        (status = 422, description = "Invalid card or address, empty cart, key reused", body = Problem),
        (status = 503, description = "Inventory or payments is known to be down (nothing was reserved or charged); retry shortly", body = Problem),
    ))]
async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CheckoutRequest>,
) -> Result<axum::response::Response, ApiError> {
    let key = idempotency_key(&headers)?;
    if state.require_verified_email && !caller.email_verified {
        return Err(ApiError::forbidden(
            "confirm your email address before checking out: open the link we mailed you \
             (POST /api/users/verification sends a new one), then sign in again or refresh \
             your access token",
        ));
    }
    let checkout =
        domain::check(request, emporium_store::year_month_utc()).map_err(ApiError::validation)?;
    let user_id = caller.user_id.to_string();
    if let Some(existing) = store::by_key(&state.db, &user_id, &key)
        .await
        .map_err(ApiError::internal)?
    {
        return replay(&state, existing, &checkout.fingerprint).await;
    }
    // Known to be down (no instance listed, its circuit open): say so at once,
    // before anything is reserved, rather than leave the shopper waiting.
    state.saga.inventory.check().await?;
    state.saga.payments.check().await?;
    let now = now_ms();
    let deadline_ms = now + state.saga_timeout.as_millis() as i64;
    let take = TakeCart {
        order_id: uuid::Uuid::now_v7().to_string(),
        idempotency_key: key.clone(),
        expires_ms: deadline_ms + CART_GRACE_MS,
    };
    let order = OrderRow {
        id: take.order_id.clone(),
        user_id: user_id.clone(),
        idempotency_key: key.clone(),
        request_hash: checkout.fingerprint.clone(),
        status: store::PENDING.into(),
        step: step::RESERVE.into(),
        reason: None,
        detail: None,
        total: 0,
        currency: String::new(),
        card_brand: checkout.summary.brand.clone(),
        card_last4: checkout.summary.last4.clone(),
        shipping: serde_json::to_string(&checkout.shipping).map_err(ApiError::internal)?,
        created_ms: now,
        updated_ms: now,
        deadline_ms,
    };
    // Taking the cart, placing the order and starting its saga happen on their own
    // task: if this request is dropped (the client or the gateway gave up), the order
    // still goes through rather than leaving the lines taken without an order.
    let ctx = emporium_http::context::current();
    let request_id = ctx.as_ref().map(|c| c.request_id.to_string());
    let placing = {
        let state = state.clone();
        let card = checkout.card.clone();
        let cart = Cart(keyed(&state.saga.cart, &key));
        let user_id = user_id.clone();
        let place_and_start = async move {
            let mut taken = cart.take(&user_id, &take).await?;
            if taken.lines.is_empty() {
                return Ok(Placing::Empty);
            }
            // In the order the database answers them (the saga's and the answer's).
            taken.lines.sort_by(|a, b| a.sku.cmp(&b.sku));
            // The same key took the lines before (a retry, or a twin request racing
            // this one): the order is the one they were taken for.
            let order = OrderRow {
                id: taken.order_id.clone(),
                total: taken.total,
                currency: taken.currency.clone(),
                ..order
            };
            let Some(claim) = state.saga.claim(&order.id) else {
                return Ok(Placing::Twin);
            };
            match place(&state, &order, &taken.lines).await {
                Ok(()) => {}
                Err(EventsError::Db(e)) if is_unique_violation(&e) => {
                    // The key's order exists. If it is not the one these lines were
                    // taken for (it finished, and this request took the cart again),
                    // they go back.
                    let existing = store::by_key(&state.db, &order.user_id, &order.idempotency_key)
                        .await
                        .map_err(|e| PlaceError::Events(EventsError::Db(e)))?;
                    if existing.is_some_and(|o| o.id != order.id) {
                        give_back(&cart, &order.id).await;
                    }
                    return Ok(Placing::Twin);
                }
                Err(e) => {
                    // Nothing placed by this request. Unless a twin request placed
                    // the same order meanwhile, the lines go back now (or when the
                    // take expires).
                    if matches!(store::get(&state.db, &order.id).await, Ok(None)) {
                        give_back(&cart, &order.id).await;
                    }
                    return Err(PlaceError::Events(e));
                }
            }
            crate::metrics::placed();
            tracing::info!(order_id = %order.id, total = order.total, lines = taken.lines.len(), "order placed");
            let lines = taken.lines.clone();
            Ok::<_, PlaceError>(Placing::Started(
                order.id.clone(),
                state
                    .saga
                    .spawn(claim, Some(card), Some((order, taken.lines)), request_id),
                lines,
            ))
        }
        .instrument(tracing::Span::current());
        // The request's context (request id, trace) goes along for the outbox row.
        match ctx {
            Some(ctx) => emporium_telemetry::identity::spawn(emporium_http::context::scope(
                ctx,
                place_and_start,
            )),
            None => emporium_telemetry::identity::spawn(place_and_start),
        }
    };
    let (order_id, mut saga, lines) = match placing.await.map_err(ApiError::internal)? {
        Ok(Placing::Started(order_id, saga, lines)) => (order_id, saga, lines),
        Ok(Placing::Empty) => {
            // A request with the same key may have placed the order meanwhile.
            return match store::by_key(&state.db, &user_id, &key)
                .await
                .map_err(ApiError::internal)?
            {
                Some(existing) => replay(&state, existing, &checkout.fingerprint).await,
                None => Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "cart_empty",
                    "the cart is empty; add something before checking out",
                )),
            };
        }
        // The same key raced in from another request: answer with that order.
        Ok(Placing::Twin) => return twin(&state, &user_id, &key, &checkout.fingerprint).await,
        Err(PlaceError::Cart(e)) => return Err(e.into()),
        Err(PlaceError::Events(e)) => return Err(ApiError::internal(e)),
    };
    // A saga that ended in time answers the order as it wrote it last, and the
    // lines are those placed: only the timeline is read back.
    let order = match tokio::time::timeout(state.wait, &mut saga).await {
        Ok(Ok(Some(done))) => done,
        _ => store::get(&state.db, &order_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal(std::io::Error::other("order vanished")))?,
    };
    respond_with(&state, order, Some(lines), StatusCode::ACCEPTED).await
}

/// How long after an order's deadline cart gives its lines back if it has heard
/// nothing of the order (it was never placed: orders failed between the two). Long,
/// because an authorized order rolls forward past its deadline while inventory or
/// payments is down, and lines given back while it runs could be bought again.
const CART_GRACE_MS: i64 = 60 * 60_000;

/// Puts the lines `order_id` took back into the cart, or says why not (they come
/// back when the take expires).
async fn give_back(cart: &Cart, order_id: &str) {
    if let Err(e) = cart.give_back(order_id).await {
        tracing::warn!(error = %e, %order_id, "cannot put the lines back into the cart; they come back when the take expires");
    }
}

/// How taking the cart and placing the order went.
enum Placing {
    /// Placed, its saga running; the order's lines.
    Started(
        String,
        tokio::task::JoinHandle<Option<OrderRow>>,
        Vec<OrderLine>,
    ),
    /// The cart was empty.
    Empty,
    /// Another request with the same key is placing (or placed) the same order.
    Twin,
}

#[derive(Debug, thiserror::Error)]
enum PlaceError {
    #[error(transparent)]
    Cart(#[from] ClientError),
    #[error(transparent)]
    Events(EventsError),
}

/// The answer to a request whose twin (the same key) places the order: that order,
/// once it is placed (within a second or two), else a 409 to retry.
async fn twin(
    state: &AppState,
    user_id: &str,
    key: &str,
    fingerprint: &str,
) -> Result<axum::response::Response, ApiError> {
    for _ in 0..40 {
        if let Some(existing) = store::by_key(&state.db, user_id, key)
            .await
            .map_err(ApiError::internal)?
        {
            return replay(state, existing, fingerprint).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "checkout_in_progress",
        "a checkout with this Idempotency-Key is still being placed; retry with the same key",
    ))
}

async fn place(state: &AppState, order: &OrderRow, lines: &[OrderLine]) -> Result<(), EventsError> {
    let mut batch = state.db.batch();
    let (owner, until) = state.saga.ownership();
    store::insert(&mut batch, order, lines, owner, until);
    let placed = OrderPlaced {
        order_id: order.id.clone(),
        user_id: order.user_id.clone(),
        total: order.total,
        currency: order.currency.clone(),
    };
    state.outbox.add(&mut batch, &placed)?;
    state.outbox.write(&state.db, batch).await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    /// `mine` (default) or `all` (admins: every shopper's orders).
    scope: Option<String>,
    /// `PENDING`, `CONFIRMED` or `CANCELLED`.
    status: Option<String>,
}

fn encode_cursor(o: &OrderRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", o.created_ms, o.id))
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let (ms, id) = raw.split_once('|')?;
    Some((ms.parse().ok()?, id.to_string()))
}

/// Your orders, newest first; with `scope=all`, everyone's (admins).
#[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "1–100, default 20", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next` of the previous page"),
        ("scope" = Option<String>, Query, description = "`mine` (default) or `all` (admin)", pattern = "^(mine|all)$"),
        ("status" = Option<String>, Query, description = "`PENDING`, `CONFIRMED` or `CANCELLED`", pattern = "^(PENDING|CONFIRMED|CANCELLED)$"),
    ),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "Bad limit, cursor, scope or status", body = Problem),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 403, description = "`scope=all` without the admin role", body = Problem),
    ))]
async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let limit = q.limit.unwrap_or(20);
    let mut errors = Vec::new();
    if !(1..=100).contains(&limit) {
        errors.push(FieldError::new("limit", "must be 1 to 100"));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => match decode_cursor(c) {
            Some(c) => Some(c),
            None => {
                errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this API gave out",
                ));
                None
            }
        },
        None => None,
    };
    let all = match q.scope.as_deref() {
        None | Some("mine") => false,
        Some("all") => true,
        Some(_) => {
            errors.push(FieldError::new("scope", "must be mine or all"));
            false
        }
    };
    let status = q.status.as_deref();
    if status.is_some_and(|s| ![store::PENDING, store::CONFIRMED, store::CANCELLED].contains(&s)) {
        errors.push(FieldError::new(
            "status",
            "must be PENDING, CONFIRMED or CANCELLED",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_query(errors));
    }
    if all {
        caller.require_role(ROLE_ADMIN)?;
    }
    let user_id = caller.user_id.to_string();
    let filter = store::Filter {
        user_id: (!all).then_some(user_id.as_str()),
        status,
    };
    let rows = store::page(&state.db, filter, cursor, limit + 1)
        .await
        .map_err(ApiError::internal)?;
    let total = store::count(&state.db, filter)
        .await
        .map_err(ApiError::internal)?;
    let more = rows.len() > limit as usize;
    let rows: Vec<OrderRow> = rows.into_iter().take(limit as usize).collect();
    let next = if more {
        rows.last().map(encode_cursor)
    } else {
        None
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(view(&state.db, row, false).await?);
    }
    Ok(Json(OrderPage { items, total, next }))
}

/// One of your orders, with its timeline.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 404, description = "No such order of yours (admins see every order)", body = Problem),
    ))]
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderView>, ApiError> {
    let order = store::get(&state.db, &id)
        .await
        .map_err(ApiError::internal)?
        // Another user's order is as unknown as a missing one (but to an admin).
        .filter(|o| o.user_id == caller.user_id.to_string() || caller.has_role(ROLE_ADMIN))
        .ok_or_else(|| ApiError::not_found("no such order"))?;
    Ok(Json(view(&state.db, order, true).await?))
}
