//! inventory's facts for `emporium verify`: every reservation with its lines,
//! and every SKU's counts.

use axum::Json;
use axum::extract::State;
use emporium_contracts::audit::{InventoryFacts, ReservationFact, StockFact, lines_by_owner};
use emporium_http::ApiError;
use emporium_store::Db;

/// Reads the facts from inventory's database (also what the CLI calls on a
/// stopped shop).
pub async fn facts(db: &Db) -> Result<InventoryFacts, sqlx::Error> {
    let mut lines = lines_by_owner(
        sqlx::query_as(
            "SELECT order_id, sku, quantity FROM reservation_lines ORDER BY order_id, sku",
        )
        .fetch_all(db.pool())
        .await?,
    );
    let reservations: Vec<(String, String)> =
        sqlx::query_as("SELECT order_id, status FROM reservations ORDER BY order_id")
            .fetch_all(db.pool())
            .await?;
    let stock: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT sku, available, reserved, sold, initial, adjusted FROM stock ORDER BY sku",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(InventoryFacts {
        reservations: reservations
            .into_iter()
            .map(|(order_id, status)| ReservationFact {
                lines: lines.remove(&order_id).unwrap_or_default(),
                order_id,
                status,
            })
            .collect(),
        stock: stock
            .into_iter()
            .map(
                |(sku, available, reserved, sold, initial, adjusted)| StockFact {
                    sku,
                    available,
                    reserved,
                    sold,
                    initial,
                    adjusted,
                },
            )
            .collect(),
    })
}

/// `GET /internal/inventory/audit` (operator only).
pub async fn audit(State(db): State<Db>) -> Result<Json<InventoryFacts>, ApiError> {
    Ok(Json(facts(&db).await.map_err(ApiError::internal)?))
}
