//! notifications' facts for `emporium verify`: the mails it recorded about
//! orders, each under the id of the event that caused it.

use axum::Json;
use axum::extract::State;
use emporium_contracts::audit::{MessageFact, NotificationsFacts};
use emporium_http::ApiError;
use emporium_store::Db;

/// Reads the facts from notifications' database (also what the CLI calls on a
/// stopped shop).
pub async fn facts(db: &Db) -> Result<NotificationsFacts, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, kind, status FROM messages \
         WHERE kind IN ('order_confirmed', 'order_cancelled') ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(NotificationsFacts {
        messages: rows
            .into_iter()
            .map(|(event_id, kind, status)| MessageFact {
                event_id,
                kind,
                status,
            })
            .collect(),
    })
}

/// `GET /internal/notifications/audit` (operator only).
pub async fn audit(State(db): State<Db>) -> Result<Json<NotificationsFacts>, ApiError> {
    Ok(Json(facts(&db).await.map_err(ApiError::internal)?))
}
