//! Domain events for Emporium services: envelope, outbox, transport, consumers.
//!
//! - Publishing is an insert into the producer's own `outbox` table in the same
//!   transaction as the state change ([`Outbox::publish`]); there is no other way.
//! - The embedded transport is the **feed**: each producer serves its outbox at
//!   `GET /internal/events?after=SEQ&limit=N&wait=MS` (long poll, woken on commit), and
//!   each consumer reads it through the registry, applying every event and advancing
//!   its cursor in one transaction of its own database, with the event id recorded so
//!   a redelivery has no second effect. Under load a reader takes events in pages: after
//!   a short page it waits `events.batch_linger_ms` (20 ms) before asking again, so a
//!   stream of commits costs a request and a transaction per page, not per event (an
//!   event arriving while the reader is idle is still sent at once). Failing handlers
//!   are retried with backoff, then parked in `dead_letters` (`/internal/events/dead`,
//!   replay by id).
//! - With `events.nats_url` set the transport is **NATS JetStream** instead
//!   ([`jetstream`]): a relay publishes each service's outbox to its stream, and
//!   consumers are durable pull consumers shared by a service's instances.
//! - Service code only sees [`Events`] (declare handlers, get the [`Outbox`], merge the
//!   routes, start and stop): the transport is configuration, not code.
//! - [`fleet`] asks every running instance for its delivery status and dead letters
//!   (the CLI's `emporium events`, the ops console).
//!
//! Services declare their handlers through the runtime's `Build`; underneath:
//!
//! ```ignore
//! let events = Events::open(&host, &db).await?
//!     .on::<ProductCreated>(handlers::product_created);
//! let outbox = events.outbox();
//! let running = events.start(); // serve running.router() too; running.stop().await at the end
//! ```

mod admin;
mod consumer;
mod envelope;
mod feed;
mod feed_reader;
pub mod fleet;
pub mod jetstream;
mod lease;
mod outbox;
pub mod retention;
mod snapshot;

use emporium_http::Callers;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::time::Duration;

use axum::Router;
use emporium_client::Host;
use emporium_contracts::events::EventData;
use emporium_store::{Backend, Db};
use emporium_telemetry::identity;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

pub use admin::{DeadLetter, DeadLetters, Replayed, Status, SubscriptionStatus};
pub use consumer::Handler;
pub use envelope::{Envelope, FeedEvent, FeedPage, Received, source_of};
pub use lease::Lease;
pub use outbox::Outbox;
pub use snapshot::{Snapshot, SnapshotItem, SnapshotPage};

use consumer::{Consumer, ErasedHandler, Subscription, Typed};

/// Errors of publishing.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{service} cannot publish {kind}: services publish only their own events")]
    ForeignEvent {
        service: &'static str,
        kind: &'static str,
    },
    #[error("event data does not serialize")]
    Encode(#[source] serde_json::Error),
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// Creates (or updates) the chassis' tables in `db`.
async fn migrate(db: &Db) -> anyhow::Result<()> {
    let mut migrator = match db.backend() {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.dangerous_set_table_name("_events_migrations");
    db.migrate(&migrator).await?;
    Ok(())
}

impl Outbox {
    /// The outbox of `service` in `db`, with the chassis' tables created, for code
    /// that publishes without the rest of [`Events`] (unit tests of a store).
    pub async fn standalone(service: &'static str, db: &Db) -> anyhow::Result<Self> {
        migrate(db).await?;
        Ok(Self::new(service, db.backend()))
    }
}

/// A service's events: its outbox, its feed, and the events it consumes.
pub struct Events {
    host: Host,
    db: Db,
    outbox: Outbox,
    handlers: BTreeMap<&'static str, HashMap<&'static str, Arc<dyn ErasedHandler>>>,
    hooks: Vec<Arc<Notify>>,
    /// What this service serves as its snapshot, if anything.
    snapshot: Option<Arc<dyn Snapshot>>,
    /// Producers whose events this service projects into a read model.
    projections: BTreeSet<&'static str>,
    /// Set when the transport is NATS JetStream.
    js: Option<async_nats::jetstream::Context>,
}

impl Events {
    /// Prepares the events of the service hosted by `host`, creating the chassis'
    /// tables (`outbox`, `event_cursors`, `processed_events`, `dead_letters`) in `db`.
    pub async fn open(host: &Host, db: &Db) -> anyhow::Result<Self> {
        let settings = &host.common.events;
        anyhow::ensure!(
            (1..=feed::MAX_LIMIT).contains(&settings.batch_size),
            "events.batch_size must be 1 to {}",
            feed::MAX_LIMIT
        );
        anyhow::ensure!(
            (100..=feed::MAX_WAIT_MS).contains(&settings.feed_wait_ms),
            "events.feed_wait_ms must be 100 to {}",
            feed::MAX_WAIT_MS
        );
        anyhow::ensure!(
            settings.batch_linger_ms <= feed_reader::MAX_LINGER_MS,
            "events.batch_linger_ms must be at most {}",
            feed_reader::MAX_LINGER_MS
        );
        anyhow::ensure!(
            settings.max_attempts >= 1 && settings.retry_base_ms >= 1,
            "events.max_attempts and events.retry_base_ms must be at least 1"
        );
        migrate(db).await?;
        let js = match &settings.nats_url {
            Some(url) => Some(jetstream::connect(url, &host.instance_id).await?),
            None => None,
        };
        Ok(Self {
            host: host.clone(),
            db: db.clone(),
            outbox: Outbox::new(host.service, db.backend()),
            handlers: BTreeMap::new(),
            hooks: Vec::new(),
            snapshot: None,
            projections: BTreeSet::new(),
            js,
        })
    }

    /// The outbox to publish through.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Consumes events of type `E` with `handler`. Handlers of one producer share one
    /// subscription, so its events are applied in the order they were published.
    pub fn on<E: EventData>(mut self, handler: impl Handler<E>) -> Self {
        let typed = Typed::<E, _> {
            handler,
            _event: PhantomData,
        };
        self.handlers
            .entry(E::SOURCE)
            .or_default()
            .insert(E::TYPE, Arc::new(typed));
        self
    }

    /// Wakes `notify` after every committed event: for work that follows an event's
    /// effect outside the database (sending mail).
    pub fn on_commit(mut self, notify: Arc<Notify>) -> Self {
        self.hooks.push(notify);
        self
    }

    /// Serves `snapshot` at `/internal/events/snapshot`: this service's current
    /// state as events, for read models built from nothing (see [`Snapshot`]).
    pub fn snapshot(mut self, snapshot: impl Snapshot) -> Self {
        self.snapshot = Some(Arc::new(snapshot));
        self
    }

    /// Makes this service's subscription to `source` a projection: a read model
    /// this instance alone keeps, loaded from `source`'s snapshot when it has no
    /// cursor yet or the producer no longer holds the events after it, and then
    /// kept up by the events. `/readyz` fails until it has caught up.
    pub fn projection(mut self, source: &'static str) -> Self {
        self.projections.insert(source);
        self
    }

    /// Starts consuming; the returned handle serves the internal routes.
    pub fn start(self) -> RunningEvents {
        let service = self.host.service;
        let subscriptions: Vec<Arc<Subscription>> = self
            .handlers
            .into_iter()
            .map(|(source, handlers)| {
                Arc::new(Subscription {
                    name: format!("{service}.{source}"),
                    source,
                    handlers,
                    head: AtomicI64::new(0),
                    position: AtomicI64::new(0),
                    connected: AtomicBool::new(false),
                    projection: self.projections.contains(source),
                    caught_up: AtomicBool::new(false),
                    handled: Default::default(),
                })
            })
            .collect();
        let settings = self.host.common.events.clone();
        let consumer = Arc::new(Consumer {
            db: self.db.clone(),
            settings: settings.clone(),
            hooks: self.hooks,
            outbox: self.outbox.clone(),
            dead_sink: self.js.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let timeout = Duration::from_millis(settings.feed_wait_ms + 5_000);
        for sub in &subscriptions {
            match &self.js {
                Some(js) if sub.projection => {
                    let client = emporium_client::ServiceClient::new(
                        sub.source,
                        self.host.transport.clone(),
                        timeout,
                    );
                    tasks.spawn(identity::bind(jetstream::read_projection(
                        consumer.clone(),
                        js.clone(),
                        client,
                        sub.clone(),
                        stopped.clone(),
                    )))
                }
                Some(js) => tasks.spawn(identity::bind(jetstream::read(
                    consumer.clone(),
                    js.clone(),
                    service,
                    sub.clone(),
                    stopped.clone(),
                ))),
                None => tasks.spawn(identity::bind(feed_reader::read(
                    consumer.clone(),
                    self.host.transport.clone(),
                    self.host.instance_id.clone(),
                    sub.clone(),
                    stopped.clone(),
                ))),
            };
        }
        tasks.spawn(identity::bind(retention::run(
            self.db.clone(),
            Duration::from_millis(settings.retention_ms),
            Duration::from_millis(settings.prune_every_ms.max(1)),
            self.js.is_some(),
            stopped.clone(),
        )));
        if let Some(js) = &self.js {
            let relay = jetstream::Relay {
                service,
                instance: self.host.instance_id.clone(),
                db: self.db.clone(),
                js: js.clone(),
                outbox: self.outbox.clone(),
                batch: settings.batch_size,
                retry_base: Duration::from_millis(settings.retry_base_ms),
                retry_max: Duration::from_millis(settings.retry_max_ms),
                retention: Duration::from_millis(settings.retention_ms),
            };
            tasks.spawn(identity::bind(relay.run(stopped.clone())));
        }
        let projections: Vec<Arc<Subscription>> = subscriptions
            .iter()
            .filter(|s| s.projection)
            .cloned()
            .collect();
        if !projections.is_empty() {
            self.host.readiness.add("projections", move || {
                let behind: Vec<&str> = projections
                    .iter()
                    .filter(|s| !s.caught_up.load(std::sync::atomic::Ordering::Relaxed))
                    .map(|s| s.name.as_str())
                    .collect();
                let result = if behind.is_empty() {
                    Ok(())
                } else {
                    Err(format!("catching up: {}", behind.join(", ")))
                };
                std::future::ready(result)
            });
        }
        let subscriptions = Arc::new(subscriptions);
        let (closing, closed) = watch::channel(false);
        let mut router = feed::router(feed::FeedState {
            service,
            db: self.db.clone(),
            outbox: self.outbox,
            closing: closed,
        });
        if let Some(snapshot) = self.snapshot {
            router = router.merge(snapshot::router(self.db, snapshot));
        }
        // Its events, whole: for the services that consume them alone.
        let router = router.callers(emporium_contracts::events::consumers_of(service));
        let admin = admin::AdminState {
            service,
            instance: self.host.instance_id.clone(),
            transport: if self.js.is_some() {
                "jetstream"
            } else {
                "feed"
            },
            consumer,
            subscriptions,
        };
        for sub in admin.subscriptions.iter() {
            // From zero at startup, so "parked since start" is a series to alert on.
            emporium_telemetry::metrics::counter!(
                "emporium_events_parked_total",
                "subscription" => sub.name.clone()
            )
            .absolute(0);
            emporium_telemetry::metrics::counter!(
                "emporium_events_gap_events_total",
                "subscription" => sub.name.clone()
            )
            .absolute(0);
        }
        let gauges = admin.clone();
        emporium_telemetry::metrics::on_scrape(move || admin::export_gauges(gauges.clone()));
        // Delivery status, dead letters, replay: the ops console's (and the
        // operator's).
        let router = router.merge(admin::router(admin).callers(&["storefront"]));
        RunningEvents {
            router,
            stop,
            closing: Arc::new(closing),
            tasks,
        }
    }
}

/// Consumers at work; serve [`RunningEvents::router`] and call
/// [`RunningEvents::stop`] at shutdown.
pub struct RunningEvents {
    router: Router,
    stop: watch::Sender<bool>,
    /// Ends the feed's long polls.
    closing: Arc<watch::Sender<bool>>,
    tasks: JoinSet<()>,
}

impl RunningEvents {
    /// `/internal/events` (the feed), `/internal/events/dead[/{id}/replay]`,
    /// `/internal/status`.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Ends the feed's long polls at once: for when shutdown starts, so open polls
    /// do not hold the server until the grace period's end.
    pub fn closer(&self) -> impl FnOnce() + Send + 'static {
        let closing = self.closing.clone();
        move || {
            let _ = closing.send(true);
        }
    }

    /// Stops the consumers after the transaction in flight, if any.
    pub async fn stop(mut self) {
        let _ = self.closing.send(true);
        let _ = self.stop.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}
