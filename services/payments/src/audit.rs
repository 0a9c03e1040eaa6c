//! payments' facts for `emporium verify`: every payment's status and amount.

use axum::Json;
use axum::extract::State;
use emporium_contracts::audit::{PaymentFact, PaymentsFacts};
use emporium_http::ApiError;
use emporium_store::Db;

/// Reads the facts from payments' database (also what the CLI calls on a stopped shop).
pub async fn facts(db: &Db) -> Result<PaymentsFacts, sqlx::Error> {
    let rows: Vec<(String, String, i64, String)> =
        sqlx::query_as("SELECT order_id, status, amount, currency FROM payments ORDER BY order_id")
            .fetch_all(db.pool())
            .await?;
    Ok(PaymentsFacts {
        payments: rows
            .into_iter()
            .map(|(order_id, status, amount, currency)| PaymentFact {
                order_id,
                status,
                amount,
                currency,
            })
            .collect(),
    })
}

/// `GET /internal/payments/audit` (operator only).
pub async fn audit(State(db): State<Db>) -> Result<Json<PaymentsFacts>, ApiError> {
    Ok(Json(facts(&db).await.map_err(ApiError::internal)?))
}
