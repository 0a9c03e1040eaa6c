//! The transactional outbox: the only way to publish an event.
//!
//! [`Outbox::publish`] inserts the event into the producer's `outbox` table inside the
//! caller's transaction, so the event exists if and only if the state change it
//! describes committed. [`Outbox::commit`] commits and wakes the feed's long polls.
//!
//! Sequence numbers must follow commit order, or a feed reader moves its cursor past
//! a row that commits later and never sees it. SQLite has one writer at a time; on
//! PostgreSQL a publishing transaction first takes a transaction-scoped advisory lock
//! of this service's outbox, so publishers commit one after another (readers and
//! transactions that publish nothing are not held up).

use std::sync::Arc;

use emporium_contracts::events::EventData;
use emporium_store::{Backend, Tx, now_ms, rfc3339};
use tokio::sync::watch;

use crate::EventsError;

/// A service's outbox. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    service: &'static str,
    backend: Backend,
    commits: Arc<watch::Sender<u64>>,
}

impl Outbox {
    pub(crate) fn new(service: &'static str, backend: Backend) -> Self {
        Self {
            service,
            backend,
            commits: Arc::new(watch::channel(0).0),
        }
    }

    /// Adds `event` to the outbox in `tx`; returns its id. A service publishes only
    /// its own event types.
    pub async fn publish<E: EventData>(
        &self,
        tx: &mut Tx,
        event: &E,
    ) -> Result<String, EventsError> {
        if E::SOURCE != self.service {
            return Err(EventsError::ForeignEvent {
                service: self.service,
                kind: E::TYPE,
            });
        }
        let id = uuid::Uuid::now_v7().to_string();
        let data = serde_json::to_string(event).map_err(EventsError::Encode)?;
        if self.backend == Backend::Postgres {
            // Held until this transaction ends: the next publisher's row gets a
            // later sequence number and commits later.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.outbox'))")
                .execute(&mut **tx)
                .await?;
        }
        let traceparent = emporium_telemetry::context::current_traceparent();
        sqlx::query(
            "INSERT INTO outbox (id, type, subject, time_ms, traceparent, data) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(E::TYPE)
        .bind(event.subject())
        .bind(now_ms())
        .bind(traceparent)
        .bind(data)
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }

    /// Commits `tx` and wakes whoever waits for new events.
    pub async fn commit(&self, tx: Tx) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.notify();
        Ok(())
    }

    /// Wakes the feed's long polls (after a commit made elsewhere).
    pub fn notify(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }
}

/// Reads stored outbox rows as envelopes.
pub(crate) fn envelope_of(service: &str, row: OutboxRow) -> crate::FeedEvent {
    crate::FeedEvent {
        seq: row.seq,
        event: crate::Envelope {
            specversion: "1.0".into(),
            id: row.id,
            source: crate::source_of(service),
            kind: row.kind,
            time: rfc3339(row.time_ms),
            subject: row.subject,
            datacontenttype: "application/json".into(),
            data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::Null),
            traceparent: row.traceparent,
        },
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    pub seq: i64,
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub subject: String,
    pub time_ms: i64,
    pub traceparent: Option<String>,
    pub data: String,
}
