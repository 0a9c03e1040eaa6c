//! The consumer side, whatever the transport: handlers, batches, processed ids,
//! retries and dead letters.
//!
//! A consumer applies an event and advances its cursor in one transaction of its own
//! database, and records the event id in `processed_events` in that same
//! transaction: a redelivered event (a retried page, a replay, a second transport)
//! finds its id and has no second effect. A handler that keeps failing is retried
//! with exponential backoff, then parked in `dead_letters` and the cursor moves on.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::time::Duration;

use emporium_config::EventsSettings;
use emporium_contracts::events::EventData;
use emporium_store::{Db, Tx, now_ms};
use emporium_telemetry::context;
use emporium_telemetry::metrics;
use emporium_telemetry::trace::{self, Kind, Span};
use futures::future::BoxFuture;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::envelope::{Envelope, FeedEvent, Received};

/// Handles one type of event inside the consumer's transaction.
///
/// Implemented by any `fn(&mut Tx, Received<E>) -> BoxFuture<'_, anyhow::Result<()>>`.
/// Everything the handler writes through `tx` commits together with the cursor; it
/// must not have effects outside the database (send mail from a loop woken by
/// [`crate::Events::on_commit`] instead).
pub trait Handler<E>: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: Received<E>,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

impl<E, F> Handler<E> for F
where
    F: for<'a> Fn(&'a mut Tx, Received<E>) -> BoxFuture<'a, anyhow::Result<()>>
        + Send
        + Sync
        + 'static,
{
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: Received<E>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self(tx, event)
    }
}

/// Why applying an event failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The data does not decode: retrying cannot help.
    Poison(String),
    /// The handler failed: worth retrying, a few times.
    Failed(String),
    /// This service's own database failed (busy, full, down): retried until it
    /// works, never counted against the event.
    Db(String),
}

pub(crate) trait ErasedHandler: Send + Sync {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), Failure>>;
}

pub(crate) struct Typed<E, H> {
    pub handler: H,
    pub _event: PhantomData<fn() -> E>,
}

impl<E: EventData, H: Handler<E>> ErasedHandler for Typed<E, H> {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let received = event.decode::<E>().map_err(|e| {
                Failure::Poison(format!("data does not decode as {}: {e}", E::TYPE))
            })?;
            self.handler.handle(tx, received).await.map_err(|e| {
                match e.downcast_ref::<sqlx::Error>() {
                    // The database itself failing (busy, I/O, pool) is not the
                    // event's fault; a broken constraint is.
                    Some(db) if !is_constraint(db) => Failure::Db(format!("{e:#}")),
                    _ => Failure::Failed(format!("{e:#}")),
                }
            })
        })
    }
}

/// One subscription: this service reading one producer's events.
pub(crate) struct Subscription {
    /// `<consumer>.<producer>`: the cursor's key.
    pub name: String,
    pub source: &'static str,
    pub handlers: HashMap<&'static str, Arc<dyn ErasedHandler>>,
    /// The producer's head as last seen.
    pub head: AtomicI64,
    /// How far this instance's feed reader has read: every event up to here it
    /// handled, or was not sent because it handles none of that type. Ahead of the
    /// saved cursor while it passes events of other types (saved now and then).
    pub position: AtomicI64,
    pub connected: AtomicBool,
    /// A read model of the producer: loaded from its snapshot when new or behind
    /// what the producer still holds.
    pub projection: bool,
    /// Set once it has read up to the producer's head (a projection is unready
    /// until then).
    pub caught_up: AtomicBool,
    /// Events handled since it was last caught up: a backlog gets one summary line.
    pub handled: std::sync::atomic::AtomicU64,
}

/// A backlog at least this long is summed up in one line at info once handled;
/// each event's own line is at debug.
const BACKLOG_SUMMARY: u64 = 10;

impl Subscription {
    /// It has read up to the producer's head: ready, and a backlog it worked
    /// through is summed up (a first start's seed, a catch-up after downtime).
    pub(crate) fn mark_caught_up(&self) {
        self.caught_up
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let handled = self.handled.swap(0, std::sync::atomic::Ordering::Relaxed);
        if handled >= BACKLOG_SUMMARY {
            tracing::info!(subscription = %self.name, events = handled, "caught up");
        }
    }
}

/// What every subscription loop shares.
pub(crate) struct Consumer {
    pub db: Db,
    pub settings: EventsSettings,
    pub hooks: Vec<Arc<Notify>>,
    /// This service's own outbox: a handler may publish, and the feed's long polls
    /// are woken after each commit.
    pub outbox: crate::Outbox,
    /// Where parked events are also published (the JetStream transport).
    pub dead_sink: Option<async_nats::jetstream::Context>,
}

enum Cursor {
    Advance(i64),
    /// A replay from the dead letters: the cursor is already past it.
    Unpark,
}

impl Consumer {
    /// After a commit (through the outbox, which wakes the readers of whatever the
    /// handlers published): the service's commit hooks.
    pub(crate) fn after_commit(&self) {
        for hook in &self.hooks {
            hook.notify_one();
        }
    }

    /// Applies one event in one transaction; returns false when it was a redelivery.
    async fn apply(
        &self,
        sub: &Subscription,
        handler: &dyn ErasedHandler,
        event: &Envelope,
        cursor: Cursor,
    ) -> Result<bool, Failure> {
        let mut span = event_span(sub, event);
        let result = context::in_span(&span, self.apply_in_span(sub, handler, event, cursor))
            .instrument(log_span(&span, sub, event))
            .await;
        outcome(&mut span, sub, event, result.as_ref().map(|_| ()));
        result
    }

    async fn apply_in_span(
        &self,
        sub: &Subscription,
        handler: &dyn ErasedHandler,
        event: &Envelope,
        cursor: Cursor,
    ) -> Result<bool, Failure> {
        let db_failure = |e: sqlx::Error| Failure::Db(format!("database: {e}"));
        let mut tx = self.db.begin().await.map_err(db_failure)?;
        let fresh = mark_processed(&mut tx, &sub.name, &event.id)
            .await
            .map_err(db_failure)?;
        if fresh {
            handler.handle(&mut tx, event).await?;
        }
        match cursor {
            Cursor::Advance(seq) => save_cursor(&mut tx, &sub.name, seq).await,
            Cursor::Unpark => sqlx::query("DELETE FROM dead_letters WHERE event_id = $1")
                .bind(&event.id)
                .execute(&mut *tx)
                .await
                .map(|_| ()),
        }
        .map_err(db_failure)?;
        self.outbox.commit(tx).await.map_err(db_failure)?;
        self.after_commit();
        Ok(fresh)
    }

    /// Delivers one event with retries, parking it when they run out. Returns false
    /// if shutdown interrupted it (the cursor has not moved past it).
    async fn deliver(
        &self,
        sub: &Subscription,
        handler: &dyn ErasedHandler,
        fe: &FeedEvent,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut attempt = 0;
        let mut db_failures = 0;
        let error = loop {
            attempt += 1;
            match self
                .apply(sub, handler, &fe.event, Cursor::Advance(fe.seq))
                .await
            {
                Ok(fresh) => {
                    if !fresh {
                        tracing::debug!(event_id = %fe.event.id, "already processed; skipped");
                    }
                    return true;
                }
                Err(Failure::Poison(error)) => break error,
                Err(Failure::Db(error)) => {
                    attempt -= 1;
                    db_failures += 1;
                    if db_failures <= 3 || db_failures % 20 == 0 {
                        tracing::warn!(subscription = %sub.name, error, "database unavailable; retrying");
                    }
                    if !pause(self.backoff(db_failures), stop).await {
                        return false;
                    }
                }
                Err(Failure::Failed(error)) if attempt >= self.settings.max_attempts => {
                    break error;
                }
                Err(Failure::Failed(error)) => {
                    tracing::warn!(
                        subscription = %sub.name, event_id = %fe.event.id, kind = %fe.event.kind,
                        attempt, error, "event handler failed; retrying"
                    );
                    if !pause(self.backoff(attempt), stop).await {
                        return false;
                    }
                }
            }
        };
        let mut tries = 0;
        loop {
            tries += 1;
            match self.park(sub, fe, &error, attempt).await {
                Ok(()) => {
                    tracing::error!(
                        subscription = %sub.name, event_id = %fe.event.id, kind = %fe.event.kind,
                        attempts = attempt, error, "event parked as a dead letter"
                    );
                    metrics::counter!("emporium_events_parked_total", "subscription" => sub.name.clone())
                        .increment(1);
                    if let Some(js) = &self.dead_sink {
                        crate::jetstream::publish_dead(
                            js,
                            &sub.name,
                            &fe.event,
                            &error,
                            self.retention(),
                        )
                        .await;
                    }
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot park a dead letter yet");
                    if !pause(self.backoff(tries), stop).await {
                        return false;
                    }
                }
            }
        }
    }

    async fn park(
        &self,
        sub: &Subscription,
        fe: &FeedEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), sqlx::Error> {
        let envelope = serde_json::to_string(&fe.event).unwrap_or_default();
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO dead_letters \
             (event_id, subscription, type, subject, envelope, error, attempts, parked_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (event_id) DO UPDATE SET error = excluded.error, \
             attempts = dead_letters.attempts + excluded.attempts, parked_ms = excluded.parked_ms",
        )
        .bind(&fe.event.id)
        .bind(&sub.name)
        .bind(&fe.event.kind)
        .bind(&fe.event.subject)
        .bind(envelope)
        .bind(error)
        .bind(i64::from(attempts))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        save_cursor(&mut tx, &sub.name, fe.seq).await?;
        tx.commit().await
    }

    /// Retries one parked event; on failure it stays parked with one more attempt.
    pub(crate) async fn replay(
        &self,
        subs: &[Arc<Subscription>],
        event_id: &str,
    ) -> Result<ReplayOutcome, sqlx::Error> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT subscription, envelope FROM dead_letters WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(self.db.pool())
                .await?;
        let Some((name, envelope)) = row else {
            return Ok(ReplayOutcome::NotFound);
        };
        let failed = |error: String| async move {
            sqlx::query(
                "UPDATE dead_letters SET attempts = attempts + 1, error = $2, parked_ms = $3 \
                 WHERE event_id = $1",
            )
            .bind(event_id)
            .bind(&error)
            .bind(now_ms())
            .execute(self.db.pool())
            .await?;
            Ok(ReplayOutcome::Failed(error))
        };
        let event: Envelope = match serde_json::from_str(&envelope) {
            Ok(event) => event,
            Err(e) => return failed(format!("stored envelope does not decode: {e}")).await,
        };
        let Some((sub, handler)) = subs
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.handlers.get(event.kind.as_str()).map(|h| (s, h)))
        else {
            return failed(format!("no handler for {} in {name}", event.kind)).await;
        };
        match self
            .apply(sub, handler.as_ref(), &event, Cursor::Unpark)
            .await
        {
            Ok(_) => {
                tracing::info!(event_id, subscription = %name, "dead letter replayed");
                Ok(ReplayOutcome::Replayed)
            }
            Err(Failure::Db(e)) => Ok(ReplayOutcome::Unavailable(e)),
            Err(Failure::Poison(e) | Failure::Failed(e)) => failed(e).await,
        }
    }

    /// How long events are kept (`events.retention_ms`).
    pub(crate) fn retention(&self) -> Duration {
        Duration::from_millis(self.settings.retention_ms)
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        emporium_client::backoff(
            Duration::from_millis(self.settings.retry_base_ms),
            Duration::from_millis(self.settings.retry_max_ms),
            attempt,
        )
    }

    /// Applies `events` in order: all in one transaction, or, when one of them
    /// fails, event by event with retries and parking. False when `stop`
    /// interrupted it (nothing after the interruption is applied or skipped).
    pub(crate) async fn apply_batch(
        &self,
        sub: &Subscription,
        events: &[FeedEvent],
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        match self.apply_page(sub, events).await {
            Ok(()) => return true,
            Err(error) => {
                tracing::debug!(subscription = %sub.name, error = ?error, "page failed; applying event by event");
            }
        }
        let mut skipped = None;
        for fe in events {
            match sub.handlers.get(fe.event.kind.as_str()) {
                None => skipped = Some(fe.seq),
                Some(handler) => {
                    if !self.deliver(sub, handler.as_ref(), fe, stop).await {
                        return false;
                    }
                    skipped = None;
                }
            }
        }
        if let Some(seq) = skipped {
            // Only events nobody here handles: move the cursor past them.
            let mut tries = 0;
            while let Err(e) = self.skip_to(&sub.name, seq).await {
                tries += 1;
                tracing::warn!(error = %e, "cannot save the cursor yet");
                if !pause(self.backoff(tries), stop).await {
                    return false;
                }
            }
        }
        true
    }

    /// Applies a whole page in one transaction: fewer commits when events arrive
    /// faster than they are applied. Any failure rolls all of it back.
    async fn apply_page(&self, sub: &Subscription, events: &[FeedEvent]) -> Result<(), Failure> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        // Each event's span and count are settled once the page has committed: a page
        // that rolls back is applied again event by event, and must not count twice.
        let mut handled: Vec<(Span, &Envelope)> = Vec::new();
        let result = self
            .apply_page_tx(sub, events, last.seq, &mut handled)
            .await;
        let applied = !handled.is_empty();
        for (mut span, event) in handled {
            match &result {
                Ok(()) => outcome(&mut span, sub, event, Ok(())),
                Err(_) => span.set_error("rolled back with its page; applied again alone"),
            }
        }
        if result.is_ok() && applied {
            self.after_commit();
        }
        result
    }

    /// The transaction of [`Self::apply_page`]. It serves events of many traces, so it
    /// is no span of its own; each event's consumer span is in its trace.
    async fn apply_page_tx<'e>(
        &self,
        sub: &Subscription,
        events: &'e [FeedEvent],
        last_seq: i64,
        handled: &mut Vec<(Span, &'e Envelope)>,
    ) -> Result<(), Failure> {
        let db_failure = |e: sqlx::Error| Failure::Db(format!("database: {e}"));
        let mut tx = self.db.begin().await.map_err(db_failure)?;
        for fe in events {
            let Some(handler) = sub.handlers.get(fe.event.kind.as_str()) else {
                continue;
            };
            let fresh = mark_processed(&mut tx, &sub.name, &fe.event.id)
                .await
                .map_err(db_failure)?;
            if fresh {
                let mut span = event_span(sub, &fe.event);
                let result = context::in_span(&span, handler.handle(&mut tx, &fe.event))
                    .instrument(log_span(&span, sub, &fe.event))
                    .await;
                if let Err(failure) = &result {
                    // This attempt failed; the event is retried alone.
                    outcome(&mut span, sub, &fe.event, Err(failure));
                }
                result?;
                handled.push((span, &fe.event));
            }
        }
        save_cursor(&mut tx, &sub.name, last_seq)
            .await
            .map_err(db_failure)?;
        self.outbox.commit(tx).await.map_err(db_failure)
    }

    pub(crate) async fn skip_to(&self, name: &str, seq: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        save_cursor(&mut tx, name, seq).await?;
        tx.commit().await
    }
}

pub(crate) enum ReplayOutcome {
    Replayed,
    NotFound,
    Failed(String),
    /// This service's database failed; the event stays parked as it was.
    Unavailable(String),
}

/// Sleeps for `d` unless `stop` fires first; false means stop.
/// The consumer span of one event: a child of the span that published it (its
/// `traceparent`), so a checkout's trace runs on into every service that reacts.
fn event_span(sub: &Subscription, event: &Envelope) -> Span {
    let producer = event
        .traceparent
        .as_deref()
        .and_then(trace::parse_traceparent);
    let mut span = Span::start("process", Kind::Consumer, producer.as_ref());
    if span.is_recording() {
        span.set_name(format!("process {}", event.kind));
        if let Some(producer) = &producer {
            span.add_link(producer);
        }
        span.set_attribute("messaging.operation.type", "process");
        span.set_attribute("messaging.destination.name", event.kind.clone());
        span.set_attribute("messaging.message.id", event.id.clone());
        span.set_attribute("messaging.consumer.group.name", sub.name.clone());
        span.set_attribute("cloudevents.event_subject", event.subject.clone());
    }
    span
}

/// The `tracing` span of handling one event: its lines carry the trace.
fn log_span(span: &Span, sub: &Subscription, event: &Envelope) -> tracing::Span {
    tracing::info_span!(
        "event",
        subscription = %sub.name,
        event_id = %event.id,
        subject = %event.subject,
        trace_id = %span.context().trace_id(),
        span_id = %span.context().span_id()
    )
}

/// Ends an event's span with its outcome, logs and counts it.
fn outcome(span: &mut Span, sub: &Subscription, event: &Envelope, result: Result<(), &Failure>) {
    let outcome = match result {
        Ok(()) => "applied",
        Err(Failure::Db(_)) => "db_error",
        Err(Failure::Failed(_)) | Err(Failure::Poison(_)) => "failed",
    };
    if let Err(Failure::Db(e) | Failure::Failed(e) | Failure::Poison(e)) = result {
        span.set_error(e.clone());
    }
    if result.is_ok() {
        sub.handled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(
            subscription = %sub.name,
            event_id = %event.id,
            subject = %event.subject,
            event_type = %event.kind,
            trace_id = %span.context().trace_id(),
            span_id = %span.context().span_id(),
            "event handled"
        );
    }
    metrics::counter!(
        "emporium_events_handled_total",
        "subscription" => sub.name.clone(),
        "type" => event.kind.clone(),
        "outcome" => outcome,
    )
    .increment(1);
}

pub(crate) async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}

/// Like [`pause`] after a call to a producer failed with `error`: when the
/// producer had no instance listed (it is still starting), over as soon as one
/// is, so a reader starting beside it does not sit out a whole backoff.
pub(crate) async fn pause_after(
    client: &emporium_client::ServiceClient,
    error: &emporium_client::ClientError,
    d: Duration,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    if !matches!(error, emporium_client::ClientError::NoInstances(_)) {
        return pause(d, stop).await;
    }
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        () = client.until_listed(d) => true,
        _ = stop.changed() => false,
    }
}

pub(crate) async fn load_cursor(db: &Db, name: &str) -> Result<i64, sqlx::Error> {
    Ok(cursor_of(db, name).await?.unwrap_or(0))
}

/// The subscription's cursor; `None` when it never read anything.
pub(crate) async fn cursor_of(db: &Db, name: &str) -> Result<Option<i64>, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT position FROM event_cursors WHERE subscription = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(p,)| p))
}

fn is_constraint(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        d.is_unique_violation() || d.is_foreign_key_violation() || d.is_check_violation()
    })
}

/// Records `event_id` as applied by `subscription`; false when it already was.
async fn mark_processed(
    tx: &mut Tx,
    subscription: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO processed_events (event_id, subscription, processed_ms) \
         VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(subscription)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn save_cursor(tx: &mut Tx, name: &str, seq: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_cursors (subscription, position, updated_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (subscription) DO UPDATE SET position = excluded.position, \
         updated_ms = excluded.updated_ms",
    )
    .bind(name)
    .bind(seq)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map(|_| ())
}
