//! notifications' public API: the signed-in user's messages.

use axum::extract::State;
use axum::{Json, Router};
use emporium_http::openapi::spec_router;
use emporium_http::{ApiError, Caller, Callers, Problem};
use emporium_store::{Db, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Messages listed at most.
const LIMIT: i64 = 100;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
}

#[derive(OpenApi)]
#[openapi(info(title = "Emporium notifications", description = "Messages sent to you"))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(list))
}

pub fn router(state: AppState) -> Router {
    let (routes, api) = routes().split_for_parts();
    // `emporium verify`: the operator alone.
    let audit = Router::new()
        .route(
            "/internal/notifications/audit",
            axum::routing::get(crate::audit::audit),
        )
        .callers(&[])
        .with_state(state.db.clone());
    routes
        .with_state(state)
        .merge(audit)
        .merge(spec_router(api))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// A message to you.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// `welcome`, `verify_email`, `password_reset`, `order_confirmed` or
    /// `order_cancelled`.
    pub kind: String,
    pub subject: String,
    pub body: String,
    /// `pending` until delivered, then `sent` (or `failed` when the mail server refused
    /// it for good, `skipped` when it was not needed any more: a link to confirm an
    /// address confirmed meanwhile).
    pub status: String,
    pub created_at: String,
    pub sent_at: Option<String>,
}

/// Your messages, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    pub total: i64,
    pub next: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    subject: String,
    text_body: String,
    status: String,
    created_ms: i64,
    sent_ms: Option<i64>,
}

/// Messages sent to you (the newest 100).
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", security(("bearer" = [])),
    responses(
        (status = 200, description = "Your messages", body = MessagePage),
        (status = 401, description = "Not signed in", body = Problem),
    ))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<MessagePage>, ApiError> {
    let user = caller.user_id.to_string();
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, kind, subject, text_body, status, created_ms, sent_ms FROM messages \
         WHERE user_id = $1 ORDER BY created_ms DESC, id DESC LIMIT $2",
    )
    .bind(&user)
    .bind(LIMIT)
    .fetch_all(state.db.pool())
    .await
    .map_err(ApiError::internal)?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages WHERE user_id = $1")
        .bind(&user)
        .fetch_one(state.db.pool())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(MessagePage {
        total,
        next: None,
        items: rows
            .into_iter()
            .map(|r| MessageView {
                id: r.id,
                kind: r.kind,
                subject: r.subject,
                // A mail's one-time link is in the mail only: reading the shop's
                // inbox proves nothing about owning the mailbox.
                body: r
                    .text_body
                    .replace(crate::links::PLACEHOLDER, crate::links::IN_THE_MAIL),
                status: r.status,
                created_at: rfc3339(r.created_ms),
                sent_at: r.sent_ms.map(rfc3339),
            })
            .collect(),
    }))
}
