//! orders' facts for `emporium verify`: every order with its saga step and
//! lines, and the `OrderConfirmed` event each confirmed order published.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use emporium_contracts::audit::{OrderFact, OrdersFacts, lines_by_owner};
use emporium_contracts::events::{EventData, OrderConfirmed};
use emporium_http::ApiError;
use emporium_store::Db;

type OrderRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
);

/// Reads the facts from orders' database (also what the CLI calls on a stopped shop).
pub async fn facts(db: &Db) -> Result<OrdersFacts, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(
        "SELECT id, user_id, idempotency_key, status, step, total, currency, deadline_ms, \
         updated_ms FROM orders ORDER BY created_ms, id",
    )
    .fetch_all(db.pool())
    .await?;
    let mut lines = lines_by_owner(
        sqlx::query_as("SELECT order_id, sku, quantity FROM order_lines ORDER BY order_id, sku")
            .fetch_all(db.pool())
            .await?,
    );
    let confirmations: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT subject, id FROM outbox WHERE type = $1")
            .bind(OrderConfirmed::TYPE)
            .fetch_all(db.pool())
            .await?
            .into_iter()
            .collect();
    let orders = rows
        .into_iter()
        .map(
            |(
                id,
                user_id,
                idempotency_key,
                status,
                step,
                total,
                currency,
                deadline_ms,
                updated_ms,
            )| {
                OrderFact {
                    lines: lines.remove(&id).unwrap_or_default(),
                    confirmation_event: confirmations.get(&id).cloned(),
                    id,
                    user_id,
                    idempotency_key,
                    status,
                    step,
                    total,
                    currency,
                    deadline_ms,
                    updated_ms,
                }
            },
        )
        .collect();
    Ok(OrdersFacts { orders })
}

/// `GET /internal/orders/audit` (operator only).
pub async fn audit(State(db): State<Db>) -> Result<Json<OrdersFacts>, ApiError> {
    Ok(Json(facts(&db).await.map_err(ApiError::internal)?))
}
