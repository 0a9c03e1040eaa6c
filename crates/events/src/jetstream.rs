//! The NATS JetStream transport: an outbox relay per producer, durable pull consumers.
//!
//! - Each producing service has one stream, `EVENTS_<SERVICE>`, holding the subjects
//!   `events.emporium.<service>.>`; an event of type `T` travels on `events.T` as its
//!   CloudEvents JSON envelope, with the event id as `Nats-Msg-Id` so JetStream drops
//!   a republished copy inside its duplicate window.
//! - The **relay** publishes outbox rows not yet sent, oldest first, and marks them
//!   sent only after JetStream acknowledged them; anything else is retried. One
//!   instance of a service relays at a time (a [`Lease`]). It reads unsent rows, not
//!   "rows after a position", so a transaction that commits after a later one (on
//!   PostgreSQL sequence order is not commit order) is still relayed.
//! - Each consuming service has one **durable pull consumer** per producer, named
//!   after the service: its instances share it, so each event goes to one of them.
//!   Messages are acknowledged only after the consumer's own transaction committed;
//!   what is not acknowledged comes back. Parked events are also published on
//!   `dead.<consumer>.<producer>` (stream `DEAD_LETTERS`) for outside tools.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, message::PublishMessage, stream};
use emporium_store::{Db, now_ms};
use futures::StreamExt;
use tokio::sync::watch;

use crate::consumer::{Consumer, Subscription, pause};
use crate::envelope::{Envelope, FeedEvent};
use crate::lease::Lease;
use crate::outbox::{Outbox, OutboxRow, envelope_of};

/// How long a relay keeps its lease without renewing it.
const RELAY_LEASE: Duration = Duration::from_secs(10);
/// The relay looks for rows committed by other instances this often.
const RELAY_RECHECK: Duration = Duration::from_secs(1);
/// JetStream drops a message whose id it saw this recently.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// A delivered message not acknowledged in this time is delivered again.
const ACK_WAIT: Duration = Duration::from_secs(60);
const DEAD_STREAM: &str = "DEAD_LETTERS";

/// Connects to NATS; the client keeps reconnecting on its own, from the start too.
pub(crate) async fn connect(url: &str, instance: &str) -> anyhow::Result<jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name(instance)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to NATS at {url}: {e}"))?;
    Ok(jetstream::new(client))
}

/// `EVENTS_<SERVICE>`.
pub fn stream_name(service: &str) -> String {
    format!("EVENTS_{}", service.to_ascii_uppercase())
}

/// The subject an event of type `kind` travels on.
pub fn subject_of(kind: &str) -> String {
    format!("events.{kind}")
}

/// The subject a subscription's parked events are published on.
pub fn dead_subject(subscription: &str) -> String {
    format!("dead.{subscription}")
}

/// Creates `service`'s stream unless it exists. Producer and consumers both call
/// it, with the same settings, so either may start first.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    service: &str,
    max_age: Duration,
) -> anyhow::Result<stream::Stream> {
    let config = stream_config(
        stream_name(service),
        format!("events.emporium.{service}.>"),
        max_age,
    );
    let stream = js
        .get_or_create_stream(config.clone())
        .await
        .map_err(|e| anyhow::anyhow!("stream {}: {e}", stream_name(service)))?;
    if stream.cached_info().config.max_age != max_age {
        // A stream made with another retention follows `events.retention_ms`.
        js.update_stream(config)
            .await
            .map_err(|e| anyhow::anyhow!("updating stream {}: {e}", stream_name(service)))?;
        tracing::info!(stream = %stream_name(service), ?max_age, "stream retention updated");
    }
    Ok(stream)
}

/// The settings of every stream here: files, kept `max_age` (`events.retention_ms`),
/// deduplicated by id.
fn stream_config(name: String, subjects: String, max_age: Duration) -> stream::Config {
    stream::Config {
        name,
        subjects: vec![subjects],
        storage: stream::StorageType::File,
        max_age,
        // JetStream refuses a window longer than the age.
        duplicate_window: DUPLICATE_WINDOW.min(max_age),
        ..Default::default()
    }
}

/// Publishes the outbox of one service to its stream.
pub(crate) struct Relay {
    pub service: &'static str,
    pub instance: String,
    pub db: Db,
    pub js: jetstream::Context,
    pub outbox: Outbox,
    pub batch: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long the stream keeps events.
    pub retention: Duration,
}

impl Relay {
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let lease = Lease::new(
            self.db.clone(),
            "outbox-relay",
            self.instance.clone(),
            RELAY_LEASE,
        );
        let mut commits = self.outbox.subscribe();
        let mut leader = false;
        let mut stream_ready = false;
        let mut failures = 0;
        while !*stop.borrow() {
            match lease.acquire().await {
                Ok(true) if !leader => {
                    leader = true;
                    tracing::info!(stream = %stream_name(self.service), "relaying the outbox to JetStream");
                }
                Ok(true) => {}
                Ok(false) => {
                    if leader {
                        tracing::warn!("another instance took over relaying the outbox");
                    }
                    leader = false;
                    if !pause(lease.renew_every(), &mut stop).await {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    if failures <= 3 || failures % 20 == 0 {
                        tracing::warn!(error = %e, "cannot take the relay lease; retrying");
                    }
                    if !pause(self.backoff(failures), &mut stop).await {
                        break;
                    }
                    continue;
                }
            }
            let renew_at = tokio::time::Instant::now() + lease.renew_every();
            while tokio::time::Instant::now() < renew_at && !*stop.borrow() {
                if !stream_ready {
                    match ensure_stream(&self.js, self.service, self.retention).await {
                        Ok(_) => stream_ready = true,
                        Err(e) => {
                            failures += 1;
                            if failures <= 3 || failures % 20 == 0 {
                                tracing::warn!(error = %e, "JetStream unavailable; retrying");
                            }
                            pause(self.backoff(failures), &mut stop).await;
                            break;
                        }
                    }
                }
                commits.borrow_and_update();
                match self.relay_once().await {
                    Ok(0) => {
                        failures = 0;
                        let until = (tokio::time::Instant::now() + RELAY_RECHECK).min(renew_at);
                        tokio::select! {
                            _ = commits.changed() => {}
                            () = tokio::time::sleep_until(until) => {}
                            _ = stop.changed() => {}
                        }
                    }
                    Ok(_) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        if failures <= 3 || failures % 20 == 0 {
                            tracing::warn!(error = %e, attempt = failures, "relaying failed; retrying");
                        }
                        // The stream may be gone (a server that lost its data).
                        stream_ready = false;
                        pause(self.backoff(failures), &mut stop).await;
                        break;
                    }
                }
            }
        }
        if leader && let Err(e) = lease.release().await {
            tracing::debug!(error = %e, "cannot release the relay lease; it expires");
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        emporium_client::backoff(self.retry_base, self.retry_max, attempt)
    }

    /// Publishes one batch of unsent rows; returns how many JetStream acknowledged.
    async fn relay_once(&self) -> anyhow::Result<usize> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT seq, id, type, subject, time_ms, traceparent, data FROM outbox \
             WHERE sent_ms IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(i64::from(self.batch))
        .fetch_all(self.db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // Send them all, then wait for the acknowledgements: one round trip per batch.
        let mut pending = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            let seq = row.seq;
            let id = row.id.clone();
            let subject = subject_of(&row.kind);
            let event = envelope_of(self.service, row).event;
            let payload = serde_json::to_vec(&event)?;
            let message = PublishMessage::build()
                .message_id(&id)
                .payload(payload.into());
            match self.js.send_publish(subject, message).await {
                Ok(ack) => pending.push((seq, ack)),
                Err(e) => {
                    failure = Some(anyhow::anyhow!("publishing {id}: {e}"));
                    break;
                }
            }
        }
        let mut sent = Vec::with_capacity(pending.len());
        for (seq, ack) in pending {
            match ack.await {
                Ok(_) => sent.push(seq),
                Err(e) => {
                    failure.get_or_insert_with(|| anyhow::anyhow!("JetStream refused: {e}"));
                }
            }
        }
        if !sent.is_empty() {
            let mut tx = self.db.begin().await?;
            let now = now_ms();
            for seq in &sent {
                sqlx::query("UPDATE outbox SET sent_ms = $1 WHERE seq = $2")
                    .bind(now)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(sent.len()),
        }
    }
}

/// Reads one producer's stream through this service's durable consumer until `stop`.
pub(crate) async fn read(
    consumer: Arc<Consumer>,
    js: jetstream::Context,
    durable: &'static str,
    sub: Arc<Subscription>,
    mut stop: watch::Receiver<bool>,
) {
    let batch = consumer.settings.batch_size as usize;
    let mut failures = 0;
    while !*stop.borrow() {
        let messages = match subscribe(&js, durable, &sub, batch, consumer.retention()).await {
            Ok(messages) => messages,
            Err(e) => {
                if !retry_later(&consumer, &sub, &mut failures, &e, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        sub.connected.store(true, Ordering::Relaxed);
        tracing::info!(subscription = %sub.name, consumer = durable, "consuming from JetStream");
        if follow(&consumer, &sub, messages, true, &mut stop).await == Ended::Stopped {
            return;
        }
        sub.connected.store(false, Ordering::Relaxed);
        failures += 1;
        if !pause(consumer.backoff(failures), &mut stop).await {
            return;
        }
    }
}

/// Reads one producer's stream into a projection until `stop`: an ordered consumer
/// of this instance alone (every instance of a read model needs every event), from
/// the stream sequence after the cursor kept in this service's database. With no
/// cursor, or one the stream no longer holds the events after (they aged out), it
/// first loads the producer's snapshot, from the stream's last sequence read before.
pub(crate) async fn read_projection(
    consumer: Arc<Consumer>,
    js: jetstream::Context,
    client: emporium_client::ServiceClient,
    sub: Arc<Subscription>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0;
    while !*stop.borrow() {
        let opened = async {
            let stream = ensure_stream(&js, sub.source, consumer.retention()).await?;
            let state = stream.get_info().await?.state;
            let cursor = crate::consumer::cursor_of(&consumer.db, &sub.name).await?;
            anyhow::Ok((stream, state, cursor))
        };
        let (stream, state, cursor) = match opened.await {
            Ok(opened) => opened,
            Err(e) => {
                if !retry_later(&consumer, &sub, &mut failures, &e, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let last = i64::try_from(state.last_sequence).unwrap_or(i64::MAX);
        let first = i64::try_from(state.first_sequence).unwrap_or(i64::MAX);
        let cursor = match cursor {
            // Every event after the cursor is still in the stream.
            Some(c) if c + 1 >= first && c <= last => c,
            other => {
                if let Some(c) = other {
                    tracing::warn!(
                        subscription = %sub.name, cursor = c, first, last,
                        "the stream no longer holds the events after this cursor; loading the snapshot"
                    );
                }
                sub.caught_up.store(false, Ordering::Relaxed);
                match crate::snapshot::load(&consumer, &client, &sub, Some(last), &mut stop).await {
                    Some(position) => position,
                    None => return,
                }
            }
        };
        sub.head.store(last, Ordering::Relaxed);
        if cursor >= last {
            sub.mark_caught_up();
        }
        let config = pull::OrderedConfig {
            description: Some(format!("{} projecting {} events", sub.name, sub.source)),
            filter_subject: format!("events.emporium.{}.>", sub.source),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: u64::try_from(cursor + 1).unwrap_or(1),
            },
            ..Default::default()
        };
        let messages = async {
            let ordered = stream.create_consumer(config).await?;
            anyhow::Ok(ordered.messages().await?)
        };
        let messages = match messages.await {
            Ok(messages) => messages,
            Err(e) => {
                if !retry_later(&consumer, &sub, &mut failures, &e, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        sub.connected.store(true, Ordering::Relaxed);
        tracing::info!(subscription = %sub.name, cursor, "projecting from JetStream");
        if follow(&consumer, &sub, messages, false, &mut stop).await == Ended::Stopped {
            return;
        }
        sub.connected.store(false, Ordering::Relaxed);
        failures += 1;
        if !pause(consumer.backoff(failures), &mut stop).await {
            return;
        }
    }
}

/// Counts a failure to reach JetStream, logs the first few and every 20th, and
/// waits with backoff; false if `stop` came first.
async fn retry_later(
    consumer: &Consumer,
    sub: &Subscription,
    failures: &mut u32,
    error: &(dyn std::fmt::Display + Sync),
    stop: &mut watch::Receiver<bool>,
) -> bool {
    *failures += 1;
    if *failures <= 3 || failures.is_multiple_of(20) {
        tracing::warn!(subscription = %sub.name, error = %error, "JetStream unavailable; retrying");
    }
    pause(consumer.backoff(*failures), stop).await
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Stopped,
    /// The consumer failed: subscribe again.
    Broken,
}

/// Applies `messages` as they come, in chunks; acknowledges them after their
/// transaction committed when `ack`.
async fn follow<S, E>(
    consumer: &Consumer,
    sub: &Subscription,
    messages: S,
    ack: bool,
    stop: &mut watch::Receiver<bool>,
) -> Ended
where
    S: futures::Stream<Item = Result<jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let batch = consumer.settings.batch_size as usize;
    let mut chunks = messages.ready_chunks(batch.max(1));
    loop {
        let chunk = tokio::select! {
            chunk = chunks.next() => chunk,
            _ = stop.changed() => return Ended::Stopped,
        };
        let Some(chunk) = chunk else {
            return Ended::Broken;
        };
        let mut broken = false;
        let mut received = Vec::with_capacity(chunk.len());
        let mut events = Vec::with_capacity(chunk.len());
        let mut pending = 0;
        for item in chunk {
            let message = match item {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(subscription = %sub.name, error = %e, "JetStream consumer failed; subscribing again");
                    broken = true;
                    continue;
                }
            };
            let Ok(info) = message.info() else {
                tracing::warn!(subject = %message.subject, "not a JetStream message; ignored");
                continue;
            };
            let seq = i64::try_from(info.stream_sequence).unwrap_or(i64::MAX);
            pending = i64::try_from(info.pending).unwrap_or(0);
            sub.head.store(seq + pending, Ordering::Relaxed);
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(event) => {
                    events.push(FeedEvent { seq, event });
                    received.push(message);
                }
                Err(e) => {
                    // Not an envelope at all: nothing to retry or replay.
                    tracing::error!(subscription = %sub.name, seq, error = %e, "undecodable message dropped");
                    if ack && let Err(e) = message.ack_with(jetstream::AckKind::Term).await {
                        tracing::debug!(error = %e, "cannot terminate the message");
                    }
                }
            }
        }
        if !events.is_empty() {
            if !consumer.apply_batch(sub, &events, stop).await {
                // Stopped before they were applied: not acknowledged, they come back.
                return Ended::Stopped;
            }
            if pending == 0 {
                sub.mark_caught_up();
            }
            if ack {
                for message in received {
                    if let Err(e) = message.ack().await {
                        // Delivered again after ACK_WAIT and recognised by id.
                        tracing::debug!(error = %e, "acknowledgement lost");
                    }
                }
            }
        }
        if broken {
            return Ended::Broken;
        }
    }
}

async fn subscribe(
    js: &jetstream::Context,
    durable: &str,
    sub: &Subscription,
    batch: usize,
    max_age: Duration,
) -> anyhow::Result<pull::Stream> {
    let stream = ensure_stream(js, sub.source, max_age).await?;
    let consumer = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_string()),
                description: Some(format!("{durable} consuming {} events", sub.source)),
                filter_subject: format!("events.emporium.{}.>", sub.source),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                // Retries and parking are the consumer's own; the server never gives up.
                max_deliver: -1,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("consumer {durable} on {}: {e}", stream_name(sub.source)))?;
    consumer
        .stream()
        .max_messages_per_batch(batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("pulling from {}: {e}", stream_name(sub.source)))
}

/// Publishes a parked event on its dead-letter subject, best effort: the database
/// row is what `emporium events dead` reads and replays.
pub(crate) async fn publish_dead(
    js: &jetstream::Context,
    subscription: &str,
    event: &Envelope,
    error: &str,
    max_age: Duration,
) {
    let result = async {
        js.get_or_create_stream(stream_config(
            DEAD_STREAM.to_string(),
            "dead.>".to_string(),
            max_age,
        ))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let payload = serde_json::to_vec(event)?;
        let message = PublishMessage::build()
            .message_id(format!("{}:{subscription}", event.id))
            .header("Emporium-Error", error.replace(['\r', '\n'], " "))
            .payload(payload.into());
        js.send_publish(dead_subject(subscription), message)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(subscription, event_id = %event.id, error = %e, "dead letter not published to NATS");
    }
}
