//! Snapshots: a producer's current state as a paged list of events, so a read model
//! can be built from nothing, even after the producer's outbox was pruned.
//!
//! A producer offers one snapshot ([`crate::Events::snapshot`]): pages of
//! [`SnapshotItem`]s, each an event (of a type the producer publishes) that brings a
//! consumer to the current state of one thing — catalog serves every product as a
//! `ProductUpdated`. `GET /internal/events/snapshot?after=KEY&limit=N` answers one page
//! with the **position** it corresponds to: the outbox head read *before* the page.
//! Every event up to the position is reflected in the items; events after it may be
//! too, so a consumer following the events from the position sees some changes twice
//! — which is why snapshot items and events carry versions and read models keep the
//! newest one.
//!
//! A consumer declares a subscription a **projection** ([`crate::Events::projection`]):
//! with no cursor yet (a new or emptied database) or when the producer can no longer
//! serve what follows its cursor, it loads the snapshot through the same handlers as
//! the events, then follows the events from the position.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use emporium_client::ServiceClient;
use emporium_contracts::events::EventData;
use emporium_http::{ApiError, ApiQuery, FieldError};
use emporium_store::{Db, now_ms, rfc3339};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::consumer::{Consumer, Subscription, pause, pause_after, save_cursor};
use crate::envelope::Envelope;

pub const MAX_LIMIT: u32 = 1_000;
const PAGE: u32 = 500;

/// One item of a snapshot: an event bringing a consumer to the current state of the
/// thing named by `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotItem {
    /// The producer's order of items: pages follow it.
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: serde_json::Value,
}

impl SnapshotItem {
    pub fn of<E: EventData>(key: impl Into<String>, event: &E) -> serde_json::Result<Self> {
        Ok(Self {
            key: key.into(),
            kind: E::TYPE.to_string(),
            data: serde_json::to_value(event)?,
        })
    }

    fn envelope(&self, service: &str) -> Envelope {
        Envelope {
            specversion: "1.0".into(),
            id: format!("snapshot:{}", self.key),
            source: crate::source_of(service),
            kind: self.kind.clone(),
            time: rfc3339(now_ms()),
            subject: self.key.clone(),
            datacontenttype: "application/json".into(),
            data: self.data.clone(),
            traceparent: None,
        }
    }
}

/// `GET /internal/events/snapshot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotPage {
    pub items: Vec<SnapshotItem>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
    /// The outbox head when the page was read: follow the events after the first
    /// page's position.
    pub position: i64,
}

/// Reads a page of a producer's snapshot: the items after `after` (`""` first) in
/// key order, at most `limit`.
pub trait Snapshot: Send + Sync + 'static {
    fn page<'a>(
        &'a self,
        db: &'a Db,
        after: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, anyhow::Result<Vec<SnapshotItem>>>;
}

impl<F> Snapshot for F
where
    F: for<'a> Fn(&'a Db, &'a str, u32) -> BoxFuture<'a, anyhow::Result<Vec<SnapshotItem>>>
        + Send
        + Sync
        + 'static,
{
    fn page<'a>(
        &'a self,
        db: &'a Db,
        after: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, anyhow::Result<Vec<SnapshotItem>>> {
        self(db, after, limit)
    }
}

#[derive(Clone)]
struct SnapshotState {
    db: Db,
    source: Arc<dyn Snapshot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotQuery {
    #[serde(default)]
    after: String,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    PAGE
}

pub(crate) fn router(db: Db, source: Arc<dyn Snapshot>) -> Router {
    Router::new()
        .route("/internal/events/snapshot", get(page))
        .with_state(SnapshotState { db, source })
}

async fn page(
    State(state): State<SnapshotState>,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> Result<Json<SnapshotPage>, ApiError> {
    if !(1..=MAX_LIMIT).contains(&q.limit) {
        return Err(ApiError::invalid_query(vec![FieldError::new(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        )]));
    }
    // Read first: whatever committed up to it is in the items read after.
    let position = crate::feed::head(&state.db)
        .await
        .map_err(ApiError::internal)?;
    let items = state
        .source
        .page(&state.db, &q.after, q.limit)
        .await
        .map_err(|e| ApiError::internal(e.context("reading the snapshot")))?;
    let next = match items.last() {
        Some(last) if items.len() == q.limit as usize => Some(last.key.clone()),
        _ => None,
    };
    Ok(Json(SnapshotPage {
        items,
        next,
        position,
    }))
}

/// Loads `sub`'s producer's snapshot into this service's database, page by page
/// (each page one transaction through the subscription's handlers), and sets the
/// cursor to `position` (else to the first page's position). Returns the cursor, or
/// `None` if `stop` came first. Failures are retried with backoff: a projection that
/// cannot load stays unready, and says so in its logs.
pub(crate) async fn load(
    consumer: &Consumer,
    client: &ServiceClient,
    sub: &Subscription,
    position: Option<i64>,
    stop: &mut watch::Receiver<bool>,
) -> Option<i64> {
    tracing::info!(subscription = %sub.name, "loading the producer's snapshot");
    let started = std::time::Instant::now();
    let mut after = String::new();
    let mut position = position;
    let mut loaded = 0usize;
    let mut failures = 0;
    loop {
        let path = format!(
            "/internal/events/snapshot?after={}&limit={PAGE}",
            encode(&after)
        );
        let page: SnapshotPage = tokio::select! {
            page = client.get_json(&path) => match page {
                Ok(page) => page,
                Err(e) => {
                    failures += 1;
                    if failures <= 3 || failures % 20 == 0 {
                        tracing::warn!(subscription = %sub.name, error = %e, "snapshot unreachable; retrying");
                    }
                    if !pause_after(client, &e, consumer.backoff(failures), stop).await {
                        return None;
                    }
                    continue;
                }
            },
            _ = stop.changed() => return None,
        };
        let position = *position.get_or_insert(page.position);
        loop {
            match apply(
                consumer,
                sub,
                &page.items,
                page.next.is_none().then_some(position),
            )
            .await
            {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(subscription = %sub.name, error = %format!("{e:#}"), "cannot apply a snapshot page; retrying");
                    if !pause(consumer.backoff(failures), stop).await {
                        return None;
                    }
                }
            }
        }
        failures = 0;
        loaded += page.items.len();
        match page.next {
            Some(next) => after = next,
            None => {
                tracing::info!(
                    subscription = %sub.name, items = loaded, position,
                    ms = started.elapsed().as_millis() as u64, "snapshot loaded"
                );
                return Some(position);
            }
        }
    }
}

/// Applies one page in one transaction; with `cursor`, the last page, also sets it.
async fn apply(
    consumer: &Consumer,
    sub: &Subscription,
    items: &[SnapshotItem],
    cursor: Option<i64>,
) -> anyhow::Result<()> {
    let mut tx = consumer.db.begin().await?;
    for item in items {
        let Some(handler) = sub.handlers.get(item.kind.as_str()) else {
            continue;
        };
        handler
            .handle(&mut tx, &item.envelope(sub.source))
            .await
            .map_err(|f| anyhow::anyhow!("{} {}: {f:?}", item.kind, item.key))?;
    }
    if let Some(cursor) = cursor {
        save_cursor(&mut tx, &sub.name, cursor).await?;
    }
    consumer.outbox.commit(tx).await?;
    consumer.after_commit();
    Ok(())
}

/// Percent-encodes a key for a query string.
fn encode(key: &str) -> String {
    form_urlencoded::byte_serialize(key.as_bytes()).collect()
}
