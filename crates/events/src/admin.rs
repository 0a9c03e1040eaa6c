//! The events' operator endpoints: `/internal/status` (outbox head, consumer lag),
//! `/internal/events/dead` (parked events) and their replay.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use emporium_http::{ApiError, ApiPath};
use emporium_store::rfc3339;
use serde::{Deserialize, Serialize};

use crate::consumer::{Consumer, ReplayOutcome, Subscription, load_cursor};
use crate::feed::head;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub service: &'static str,
    pub instance: String,
    pub transport: &'static str,
    pub consumer: Arc<Consumer>,
    pub subscriptions: Arc<Vec<Arc<Subscription>>>,
}

/// `GET /internal/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub service: String,
    pub instance: String,
    /// `feed` or `jetstream`.
    #[serde(default)]
    pub transport: String,
    /// The newest sequence number in this service's outbox.
    pub outbox_head: i64,
    /// Outbox rows the relay has not yet published (JetStream only).
    #[serde(default)]
    pub outbox_unsent: i64,
    pub subscriptions: Vec<SubscriptionStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionStatus {
    pub name: String,
    pub source: String,
    pub cursor: i64,
    /// The producer's head as last seen.
    pub head: i64,
    /// `head - cursor`: events published and not yet applied here.
    pub lag: i64,
    pub connected: bool,
    pub dead_letters: i64,
    /// Events pruned by the producer before this consumer read them (0 for a
    /// projection, which reloads the snapshot instead).
    #[serde(default)]
    pub missed: i64,
}

/// `GET /internal/events/dead`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetters {
    pub items: Vec<DeadLetter>,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub event_id: String,
    pub subscription: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub subject: String,
    pub error: String,
    pub attempts: i64,
    #[sqlx(skip)]
    pub parked_at: String,
    #[serde(skip)]
    pub parked_ms: i64,
}

/// `POST /internal/events/dead/{id}/replay` on success.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replayed {
    pub event_id: String,
    pub status: String,
}

pub(crate) fn router(state: AdminState) -> Router {
    Router::new()
        .route("/internal/status", get(status))
        .route("/internal/events/dead", get(dead_letters))
        .route("/internal/events/dead/{id}/replay", post(replay))
        .with_state(state)
}

async fn status(State(s): State<AdminState>) -> Result<Json<Status>, ApiError> {
    collect(&s).await.map(Json).map_err(ApiError::internal)
}

/// Sets the event gauges from [`collect`]; run before every scrape of `/metrics`.
pub(crate) async fn export_gauges(s: AdminState) {
    use emporium_telemetry::metrics::gauge;
    let status = match collect(&s).await {
        Ok(status) => status,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the event status for /metrics");
            return;
        }
    };
    gauge!("emporium_outbox_head_sequence").set(status.outbox_head as f64);
    gauge!("emporium_outbox_unsent_events").set(status.outbox_unsent as f64);
    for sub in status.subscriptions {
        let name = sub.name;
        gauge!("emporium_consumer_lag_events", "subscription" => name.clone()).set(sub.lag as f64);
        gauge!("emporium_consumer_connected", "subscription" => name.clone())
            .set(if sub.connected { 1.0 } else { 0.0 });
        gauge!("emporium_dead_letters", "subscription" => name.clone())
            .set(sub.dead_letters as f64);
        gauge!("emporium_events_missed", "subscription" => name).set(sub.missed as f64);
    }
}

/// This instance's outbox and subscriptions, read now.
async fn collect(s: &AdminState) -> Result<Status, sqlx::Error> {
    let db = &s.consumer.db;
    let mut subscriptions = Vec::new();
    for sub in s.subscriptions.iter() {
        let cursor = load_cursor(db, &sub.name).await?;
        let (dead,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM dead_letters WHERE subscription = $1")
                .bind(&sub.name)
                .fetch_one(db.pool())
                .await?;
        let head = sub.head.load(Ordering::Relaxed);
        // This instance's reader may be ahead of the saved cursor (past events of
        // types it does not handle): the lag counts from where it is.
        let read = cursor.max(sub.position.load(Ordering::Relaxed));
        let missed = crate::retention::missed(db, &sub.name).await?;
        subscriptions.push(SubscriptionStatus {
            name: sub.name.clone(),
            source: sub.source.to_string(),
            cursor,
            head,
            lag: (head - read).max(0),
            connected: sub.connected.load(Ordering::Relaxed),
            dead_letters: dead,
            missed,
        });
    }
    let outbox_unsent = if s.transport == "jetstream" {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE sent_ms IS NULL")
            .fetch_one(db.pool())
            .await?;
        n
    } else {
        0
    };
    Ok(Status {
        service: s.service.to_string(),
        instance: s.instance.clone(),
        transport: s.transport.to_string(),
        outbox_head: head(db).await?,
        outbox_unsent,
        subscriptions,
    })
}

async fn dead_letters(State(s): State<AdminState>) -> Result<Json<DeadLetters>, ApiError> {
    let mut items: Vec<DeadLetter> = sqlx::query_as(
        "SELECT event_id, subscription, type, subject, error, attempts, parked_ms \
         FROM dead_letters ORDER BY parked_ms, event_id LIMIT 1000",
    )
    .fetch_all(s.consumer.db.pool())
    .await
    .map_err(ApiError::internal)?;
    for item in &mut items {
        item.parked_at = rfc3339(item.parked_ms);
    }
    Ok(Json(DeadLetters { items }))
}

async fn replay(
    State(s): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Replayed>, ApiError> {
    match s
        .consumer
        .replay(&s.subscriptions, &id)
        .await
        .map_err(ApiError::internal)?
    {
        ReplayOutcome::Replayed => Ok(Json(Replayed {
            event_id: id,
            status: "replayed".into(),
        })),
        ReplayOutcome::NotFound => Err(ApiError::not_found(format!(
            "no dead letter {id} in {}",
            s.service
        ))),
        ReplayOutcome::Unavailable(error) => Err(ApiError::unavailable(format!(
            "the database is unavailable; try again: {error}"
        ))),
        ReplayOutcome::Failed(error) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "replay_failed",
            format!("the handler failed again and the event stays parked: {error}"),
        )),
    }
}
