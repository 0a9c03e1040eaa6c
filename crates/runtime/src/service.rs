//! A service as a value the runtime hosts: [`Service`], and [`Build`], what its
//! `build` gets to declare what it needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use emporium_client::{Host, ServiceClient};
use emporium_config::Common;
use emporium_contracts::events::EventData;
use emporium_events::{Events, Handler, Outbox, Snapshot};
use emporium_store::{Db, Migrations};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};

/// Listen on a free loopback port: the default of every service but the gateway and
/// the registry.
pub const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// One Emporium service: its name, settings, database, and how it is built.
///
/// The runtime does the rest, the same for every service and whether it hosts one
/// service or many in a process: it loads the settings, opens the database and
/// applies [`Service::MIGRATIONS`], opens the events, calls [`Service::build`],
/// serves the routes behind the HTTP chassis, keeps the instance registered, runs
/// the background tasks, and stops it all in order.
pub trait Service: Send + Sync + 'static {
    /// The service's settings table (`[orders]`), with its defaults.
    type Settings: DeserializeOwned + Default + Send + Sync + 'static;

    /// Its name: in the registry, its data folder, its settings table, logs, metrics.
    const NAME: &'static str;

    /// Where it listens unless `<name>.listen` says otherwise.
    const DEFAULT_LISTEN: SocketAddr = LOOPBACK_ANY_PORT;

    /// The migrations of its own database; `None`: it keeps none.
    const MIGRATIONS: Option<&'static Migrations> = None;

    /// Whether it publishes or consumes events (an outbox in its database).
    const EVENTS: bool = true;

    /// Whether its database is a disposable read model of this instance alone: a
    /// SQLite file in its data folder even when a shared database is configured
    /// (delete the folder and it is rebuilt from the producers' snapshots).
    const LOCAL_DATABASE: bool = false;

    /// Whether it is the public edge: plain HTTP from anyone reaches its routes
    /// (the gateway). Every other service answers verified services only.
    const PUBLIC: bool = false;

    /// Paths a caller without a certificate may reach over TLS (the registry's
    /// certificate endpoint).
    const ANONYMOUS: &'static [&'static str] = &[];

    /// Paths anyone may reach, plain HTTP included, beside the probes and
    /// `/metrics` (the registry's Prometheus discovery).
    const OPEN: &'static [&'static str] = &[];

    /// Adjusts the settings every process shares, for this service alone (the
    /// gateway takes no deadlines from the public).
    fn configure(_common: &mut Common) {}

    /// Builds the service: its state and routes; event handlers and background
    /// tasks are declared on `cx`.
    fn build(
        &self,
        cx: &mut Build<Self::Settings>,
    ) -> impl Future<Output = anyhow::Result<Router>> + Send;
}

/// A background task: given a receiver that turns `true` at shutdown, it returns
/// once it has stopped.
pub(crate) type Task = Box<dyn FnOnce(watch::Receiver<bool>) -> BoxFuture<'static, ()> + Send>;

/// What a service's `build` works with.
pub struct Build<S> {
    /// Who this instance is, and how it calls others.
    pub host: Host,
    /// Its own settings table.
    pub settings: S,
    /// The address it is bound to.
    pub local_addr: SocketAddr,
    pub(crate) db: Option<Db>,
    pub(crate) events: Option<Events>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) admin: Option<tokio::net::TcpListener>,
    pub(crate) threads: usize,
    pub(crate) admit: Option<emporium_http::middleware::Admit>,
    pub(crate) live: Arc<crate::live::Live>,
}

impl<S> Build<S> {
    /// Its database, migrated.
    ///
    /// # Panics
    /// If the service declared no [`Service::MIGRATIONS`]: a programming error that
    /// every test of the service finds.
    pub fn db(&self) -> &Db {
        self.db
            .as_ref()
            .expect("a service with a database declares its MIGRATIONS")
    }

    /// The outbox to publish through.
    ///
    /// # Panics
    /// If the service keeps no database or declared `EVENTS = false`.
    pub fn outbox(&self) -> Outbox {
        self.events().outbox()
    }

    /// Consumes events of type `E` with `handler`.
    pub fn on<E: EventData>(&mut self, handler: impl Handler<E>) -> &mut Self {
        self.events = self.events.take().map(|events| events.on(handler));
        self.events();
        self
    }

    /// Serves `snapshot`: this service's current state as events, for read models
    /// of other services built from nothing.
    pub fn snapshot(&mut self, snapshot: impl Snapshot) -> &mut Self {
        self.events = self.events.take().map(|events| events.snapshot(snapshot));
        self.events();
        self
    }

    /// Keeps the events of `source` as a projection: loaded from `source`'s
    /// snapshot when new or behind, ready once caught up (see
    /// [`Events::projection`]).
    pub fn projection(&mut self, source: &'static str) -> &mut Self {
        self.events = self.events.take().map(|events| events.projection(source));
        self.events();
        self
    }

    /// Wakes `notify` after every committed event (work that follows an event's
    /// effect outside the database: sending mail).
    pub fn on_commit(&mut self, notify: Arc<Notify>) -> &mut Self {
        self.events = self.events.take().map(|events| events.on_commit(notify));
        self.events();
        self
    }

    /// Serves TLS with `config` instead of the instance's own certificate: the
    /// public edge, with the certificate the public sees.
    pub fn serve_tls(&mut self, config: Arc<rustls::ServerConfig>) -> &mut Self {
        self.tls = Some(config);
        self
    }

    /// Serves its port on `threads` threads of its own, each running a
    /// single-threaded runtime (`emporium_http::server::serve_threaded`) with
    /// connection pools of its own, when it is the only service in its process;
    /// 0 (the default), or beside other services, on the process's runtime. For a
    /// proxy whose requests do little but wait on calls: none of its tasks is
    /// then woken from another thread.
    pub fn serve_on_threads(&mut self, threads: usize) -> &mut Self {
        self.threads = threads;
        self
    }

    /// Refuses a request with the answer `rule` gives, after the chassis's own
    /// steps (guard, load shedding) and before its route — and before the layers
    /// `build` puts on its routes, so a rule that must come after one of those
    /// does that layer's part itself (the gateway's rate limits and its edge TLS).
    /// Probes are never put to it. A rule for every route without a layer of its
    /// own: a layer costs every request about ten allocations.
    pub fn admit(
        &mut self,
        rule: impl Fn(&axum::extract::Request) -> Option<axum::response::Response>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        self.admit = Some(Arc::new(rule));
        self
    }

    /// Serves `/metrics` and the detailed `/readyz` on `listener` (plain HTTP, for
    /// operators and Prometheus) instead of on the service's own port, whose
    /// `/readyz` then only says ready or not: a public edge keeps its internals
    /// off the internet. The registry learns the address as the instance's
    /// `metrics_address`.
    pub fn serve_admin(&mut self, listener: tokio::net::TcpListener) -> &mut Self {
        self.admin = Some(listener);
        self
    }

    /// Runs `task` while the service runs: started once the service serves, told to
    /// stop (its receiver turns `true`) after the server has drained, and awaited.
    pub fn spawn<F, Fut>(&mut self, task: F) -> &mut Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(Box::new(move |stop| Box::pin(task(stop))));
        self
    }

    /// Runs `work` every `period` while the service runs (the first time one period
    /// after it starts serving; a run that overruns delays the next).
    pub fn every<F, Fut>(&mut self, period: Duration, mut work: F) -> &mut Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(move |mut stop| async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => work().await,
                    _ = stop.changed() => return,
                }
            }
        })
    }

    /// Calls `apply` with the registry's config store now and after every change
    /// (live config of the service's own keys; see [`crate::live`]).
    pub fn on_config(
        &mut self,
        apply: impl Fn(&[emporium_contracts::registry::ConfigEntry]) + Send + Sync + 'static,
    ) -> &mut Self {
        self.live.on_change(apply);
        self
    }

    /// A client for calling `service` with a per-call timeout.
    pub fn client(&self, service: &str, timeout: Duration) -> ServiceClient {
        self.host.client(service, timeout)
    }

    /// The settings every process shares.
    pub fn common(&self) -> &Common {
        &self.host.common
    }

    fn events(&self) -> &Events {
        self.events
            .as_ref()
            .expect("a service with events declares MIGRATIONS and EVENTS")
    }
}
