//! Hosting services in a process: one alone, or several side by side.
//!
//! [`Process`] is what the services of one process share: the registry's discovery
//! cache and the transport of their calls ([`InProcess`] when there are several, so
//! a call between two of them is a function call into the other's router; calls to
//! services elsewhere go over HTTP). [`Process::start`] builds one service, bound to
//! its listener; [`serve`] then runs the built services until shutdown and stops
//! each in order: stop accepting and drain, deregister, stop its consumers, stop its
//! background tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use emporium_client::{
    Clients, Discovery, HttpTransport, InProcess, RegistryClient, Transport, agent,
};
use emporium_config::{Common, IdentityMode, Settings, Source};
use emporium_contracts::registry::{METRICS_ADDRESS, Registration};
use emporium_events::Events;
use emporium_telemetry::Identity;
use emporium_telemetry::identity;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::live::Live;
use crate::service::{Build, Service, Task};

/// The version every service reports to the registry.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a stopping service's consumers and tasks get before they are aborted.
const STOP_TASKS: Duration = Duration::from_secs(5);

/// What the services hosted in one process share.
pub struct Process {
    common: Common,
    /// The registry's cache, made by the first service started (its calls to
    /// the registry present that service's certificate).
    discovery: tokio::sync::OnceCell<Arc<Discovery>>,
    local: Option<InProcess>,
    /// The settings this process takes from the registry's config store.
    live: Arc<Live>,
    /// Where every call to another service's API goes instead (a consumer's
    /// contract tests answer them from its pacts); event feeds are not calls.
    calls: Option<Arc<dyn Transport>>,
}

impl Process {
    /// A process hosting the services named `hosted`, with `common` settings.
    pub fn new(common: &Common, hosted: &[&str]) -> Self {
        let local = (hosted.len() > 1).then(|| {
            // Each service's metrics get a `service` label from here on.
            identity::hosting_several();
            InProcess::new(hosted.iter().copied())
        });
        Self {
            common: common.clone(),
            discovery: tokio::sync::OnceCell::new(),
            local,
            live: Live::new(common),
            calls: None,
        }
    }

    /// Sends every call its services make to another service's API through
    /// `transport` (the registry's traffic and event feeds excepted), bypassing
    /// the resilience policies of the HTTP transport: a consumer's contract
    /// tests host it with its calls answered from its pacts.
    #[must_use]
    pub fn calling_through(mut self, transport: Arc<dyn Transport>) -> Self {
        self.calls = Some(transport);
        self
    }

    /// Whether this process hosts more than one service.
    pub fn several(&self) -> bool {
        self.local.is_some()
    }

    /// Builds `service` with `settings`, bound to `listener`: its database opened
    /// and migrated, its events opened, its routes made. Nothing runs yet.
    pub async fn start<S: Service>(
        &self,
        service: &S,
        settings: Settings<S::Settings>,
        listener: TcpListener,
    ) -> anyhow::Result<Built> {
        let name = S::NAME;
        // A disposable read model lives in the instance's data folder, whatever
        // the shared database is.
        let database_url = settings
            .database_url()
            .filter(|_| !S::LOCAL_DATABASE)
            .map(str::to_owned);
        let mut common = settings.common;
        if self.several() {
            // The process's instance id names the process; each service's is
            // `<service>-<that id>`.
            common.instance_id = common.instance_id.map(|id| format!("{name}-{id}"));
        }
        S::configure(&mut common);
        let enforce = common.identity.mode == IdentityMode::Mtls;
        if !enforce {
            tracing::warn!(
                service = name,
                "service identity is off: plain HTTP between services, every caller trusted"
            );
        }
        let credentials = emporium_client::identity::credentials(name, &common).await?;
        let clients = Clients::new(
            credentials.clone(),
            emporium_client::Version::http2_if(common.http.http2_calls.unwrap_or(false)),
        );
        let policies = self.live.policies(name, &common.client);
        let mut host =
            emporium_client::Host::new(name, &common, clients.clone()).with_policies(policies);
        if let Some(registry) = host.discovery.registry() {
            self.live.watch(registry.clone());
        }
        if common.registry_url == self.common.registry_url {
            let discovery = self
                .discovery
                .get_or_init(|| async { host.discovery.clone() })
                .await
                .clone();
            // Its own calls: to co-hosted services in-process, as itself; to the
            // rest over the network with its own certificate.
            let remote = HttpTransport::new(discovery.clone(), clients, host.policies.clone());
            let transport: Arc<dyn Transport> = match &self.local {
                Some(local) => Arc::new(local.as_caller(name, remote)),
                None => Arc::new(remote),
            };
            host = host.with_discovery(discovery).with_transport(transport);
        }
        let tls = match &credentials {
            Some(c) => Some(c.server_config()?),
            None => None,
        };
        let guard = emporium_http::Guard {
            enforce,
            public: S::PUBLIC,
            anonymous: S::ANONYMOUS,
            open: S::OPEN,
        };
        let owner = Arc::new(Identity {
            service: name.to_string(),
            instance: host.instance_id.clone(),
        });
        let local_addr = listener.local_addr().context("listener address")?;
        let build = async {
            let db = match S::MIGRATIONS {
                Some(migrations) => {
                    Some(open_db(&host, database_url.as_deref(), &common.store, migrations).await?)
                }
                None => None,
            };
            let events = match &db {
                Some(db) if S::EVENTS => Some(Events::open(&host, db).await?),
                _ => None,
            };
            // Its calls, that is: event feeds still go over the network.
            let calls = match &self.calls {
                Some(calls) => host.clone().with_transport(calls.clone()),
                None => host.clone(),
            };
            let mut cx = Build {
                host: calls,
                settings: settings.service,
                local_addr,
                db,
                events,
                tasks: Vec::new(),
                tls: None,
                admin: None,
                threads: 0,
                admit: None,
                live: self.live.clone(),
            };
            let routes = service.build(&mut cx).await?;
            if let Some(credentials) = credentials {
                let common = cx.host.common.clone();
                cx.spawn(move |stop| emporium_client::identity::renew(credentials, common, stop));
            }
            anyhow::Ok((
                routes, cx.events, cx.tasks, cx.tls, cx.admin, cx.threads, cx.admit,
            ))
        };
        let (routes, events, tasks, own_tls, admin, threads, admit) =
            identity::scope(owner.clone(), build)
                .await
                .with_context(|| format!("starting {name}"))?;
        Ok(Built {
            name,
            host,
            owner,
            routes,
            listener,
            tls: own_tls.or(tls),
            guard,
            admit,
            events,
            tasks,
            local: self.local.clone(),
            admin,
            // Beside other services its handlers would run theirs (and their
            // databases' connections) on threads of its own: not worth it.
            threads: if self.several() { 0 } else { threads },
        })
    }

    /// Loads the settings of `service` from `source`, binds its listener and
    /// [starts](Process::start) it.
    pub async fn start_from<S: Service>(
        &self,
        service: &S,
        source: &Source,
    ) -> anyhow::Result<Built> {
        let settings: Settings<S::Settings> =
            emporium_config::from_figment(source, S::NAME, S::DEFAULT_LISTEN)
                .with_context(|| format!("loading the settings of {}", S::NAME))?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {} for {}", settings.listen, S::NAME))?;
        self.start(service, settings, listener).await
    }
}

/// Opens the service's database (its own URL, else the shared one, else a SQLite
/// file in its data folder) with the `[store]` settings, applies its migrations,
/// and makes `/readyz` depend on reaching it.
async fn open_db(
    host: &emporium_client::Host,
    url: Option<&str>,
    store: &emporium_config::StoreSettings,
    migrations: &emporium_store::Migrations,
) -> anyhow::Result<emporium_store::Db> {
    let service = host.service;
    let db = emporium_store::Db::open_service_with(
        service,
        &host.data_dir(),
        url,
        sqlite_options(store),
    )
    .await
    .with_context(|| format!("opening the {service} database"))?;
    db.migrate_all(migrations)
        .await
        .with_context(|| format!("migrating the {service} database"))?;
    let ping = db.clone();
    host.readiness.add("database", move || {
        let db = ping.clone();
        async move { db.ping().await.map_err(|e| e.to_string()) }
    });
    Ok(db)
}

/// A service built and bound, not yet serving.
pub struct Built {
    name: &'static str,
    host: emporium_client::Host,
    owner: Arc<Identity>,
    routes: Router,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    guard: emporium_http::Guard,
    /// Its own admission rule (see [`Build::admit`]).
    admit: Option<emporium_http::middleware::Admit>,
    events: Option<Events>,
    tasks: Vec<Task>,
    local: Option<InProcess>,
    /// The admin port, when the service serves one (see [`Build::serve_admin`]).
    admin: Option<TcpListener>,
    /// Threads of its own to serve on (see [`Build::serve_on_threads`]).
    threads: usize,
}

impl Built {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of its admin port, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Runs `services` until `shutdown`, then stops them (see the module's header).
pub async fn serve(
    services: Vec<Built>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = on_signal.send(true);
    });
    let running = services.into_iter().map(|built| {
        let stop = stop_rx.clone();
        let stop_all = stop_tx.clone();
        let owner = built.owner.clone();
        identity::scope(owner, async move {
            let result = run_one(built, stop).await;
            if let Err(error) = &result {
                // One service failing stops the process, so its supervisor sees it.
                tracing::error!(
                    error = format!("{error:#}"),
                    "service failed; stopping the process"
                );
                let _ = stop_all.send(true);
            }
            result
        })
    });
    let results = futures::future::join_all(running).await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

/// Serves one built service until `stop` turns true, then stops it in order.
async fn run_one(built: Built, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let Built {
        name,
        host,
        owner,
        mut routes,
        listener,
        tls,
        guard,
        admit,
        events,
        tasks,
        local,
        admin,
        threads,
    } = built;
    let events = events.map(Events::start);
    if let Some(events) = &events {
        routes = routes.merge(events.router());
    }
    let readiness = host.readiness.clone();
    let chassis = emporium_http::middleware::Chassis {
        guard,
        owner: Some(owner.clone()),
        admit,
    };
    let app = match &admin {
        None => emporium_http::server::app(routes, &host.common.http, readiness, chassis),
        Some(_) => emporium_http::server::public_app(routes, &host.common.http, readiness, chassis),
    };
    if let Some(local) = &local {
        local.mount(name, app.clone());
    }
    let (tasks_stop, tasks_stopped) = watch::channel(false);
    // Owned here: dropping the service (a crash in tests) aborts its tasks too.
    let mut tasks: tokio::task::JoinSet<()> = tasks
        .into_iter()
        .map(|task| identity::bind(task(tasks_stopped.clone())))
        .collect();
    let local_addr = listener.local_addr().context("listener address")?;
    // Registered with its own certificate: the registry takes an instance of
    // orders from orders only.
    let registry = host
        .common
        .registry_url
        .as_deref()
        .map(|url| RegistryClient::new(url, host.clients.clone()));
    let admin_addr = match &admin {
        Some(l) => Some(l.local_addr().context("admin listener address")?),
        None => None,
    };
    let agent = registry.map(|registry| {
        let mut metadata: std::collections::BTreeMap<String, String> =
            [("pid".to_string(), std::process::id().to_string())].into();
        if let Some(addr) = admin_addr {
            metadata.insert(
                METRICS_ADDRESS.to_string(),
                advertised(addr, host.common.advertise_host.as_deref()),
            );
        }
        let registration = Registration {
            service: name.to_string(),
            instance_id: host.instance_id.clone(),
            address: advertised(local_addr, host.common.advertise_host.as_deref()),
            version: VERSION.to_string(),
            metadata,
            ttl_ms: host.common.registry_ttl_ms,
            ready: None,
        };
        agent::start(registry, registration, host.readiness.clone())
    });
    tracing::info!(addr = %local_addr, instance = %host.instance_id, "serving");
    // Long polls on the feed end as soon as shutdown starts, not at the grace
    // period's end.
    let close_feed = events.as_ref().map(|e| e.closer());
    let unmount = local.clone();
    let shutdown = async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
        // Co-hosted callers now fail at once and back off, as at a closed port.
        if let Some(local) = unmount {
            local.unmount(name);
        }
        if let Some(close) = close_feed {
            close();
        }
    };
    let grace = Duration::from_millis(host.common.http.grace_period_ms);
    // The admin port stops with the service's own (once it has drained).
    let (admin_stop, admin_stopped) = watch::channel(false);
    let admin_server = admin.map(|listener| {
        tracing::info!(addr = ?admin_addr, "serving metrics and probes on the admin port");
        let app = emporium_http::server::owned_by(
            emporium_http::server::admin_app(host.readiness.clone()),
            owner,
        );
        let readiness = host.readiness.clone();
        let mut stopped = admin_stopped;
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            emporium_http::serve(app, listener, None, grace, readiness, stop).await
        })
    });
    let readiness = host.readiness.clone();
    let served = if threads > 0 {
        let threads = emporium_http::server::Threads {
            count: threads,
            on_start: Arc::new(|_| emporium_client::own_pools()),
        };
        emporium_http::server::serve_threaded(
            app, listener, tls, grace, readiness, shutdown, threads,
        )
        .await
    } else {
        emporium_http::serve(app, listener, tls, grace, readiness, shutdown).await
    }
    .with_context(|| format!("{name}: http server"));
    let _ = admin_stop.send(true);
    if let Some(server) = admin_server
        && let Ok(Err(e)) = server.await
    {
        tracing::warn!(error = %e, "the admin port stopped with an error");
    }
    if let Some(agent) = agent {
        agent.stop().await;
    }
    if let Some(events) = events {
        events.stop().await;
    }
    let _ = tasks_stop.send(true);
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(STOP_TASKS, all).await.is_err() {
        tracing::warn!("background tasks did not stop in time; aborting them");
        tasks.abort_all();
    }
    served
}

/// Runs one service alone until `shutdown`: what tests and `emporium serve <one>`
/// do.
pub async fn run<S: Service>(
    service: S,
    settings: Settings<S::Settings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_in(
        Process::new(&settings.common, &[S::NAME]),
        service,
        settings,
        listener,
        shutdown,
    )
    .await
}

/// Runs one service alone in `process` (made for it, as [`run`] does, with
/// something changed) until `shutdown`.
pub async fn run_in<S: Service>(
    process: Process,
    service: S,
    settings: Settings<S::Settings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let built = process.start(&service, settings, listener).await?;
    serve(vec![built], shutdown).await
}

/// A service whose type is erased: what `emporium serve a,b,c` picks by name.
pub trait AnyService: Send + Sync {
    fn name(&self) -> &'static str;
    /// Loads its settings, binds and builds it in `process`.
    fn start_in<'a>(
        &'a self,
        process: &'a Process,
        source: &'a Source,
    ) -> BoxFuture<'a, anyhow::Result<Built>>;
}

impl<S: Service> AnyService for S {
    fn name(&self) -> &'static str {
        S::NAME
    }
    fn start_in<'a>(
        &'a self,
        process: &'a Process,
        source: &'a Source,
    ) -> BoxFuture<'a, anyhow::Result<Built>> {
        Box::pin(process.start_from(self, source))
    }
}

/// The address others use to reach a listener bound to `local`.
/// An IPv6 address given as the host (a pod IP from the downward API) is bracketed.
pub fn advertised(local: SocketAddr, host: Option<&str>) -> String {
    match host {
        Some(host) if host.parse::<std::net::Ipv6Addr>().is_ok() => {
            format!("[{host}]:{}", local.port())
        }
        Some(host) => format!("{host}:{}", local.port()),
        None if local.ip().is_unspecified() => format!("127.0.0.1:{}", local.port()),
        None => local.to_string(),
    }
}

/// How the `[store]` settings write a SQLite database.
fn sqlite_options(store: &emporium_config::StoreSettings) -> emporium_store::SqliteOptions {
    emporium_store::SqliteOptions {
        checkpoint_every: (store.checkpoint_ms > 0)
            .then(|| Duration::from_millis(store.checkpoint_ms)),
        write_group_max: store.write_group_max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Json;
    use axum::routing::get;

    #[test]
    fn the_store_settings_default_to_the_stores_own_defaults() {
        // The settings crate cannot name the store's constants (it sits below
        // it); this keeps the two from drifting apart.
        assert_eq!(
            sqlite_options(&emporium_config::StoreSettings::default()),
            emporium_store::SqliteOptions::default()
        );
    }

    /// Answers with the service whose work the request is.
    struct Echo;

    impl Service for Echo {
        type Settings = ();
        const NAME: &'static str = "echo";

        async fn build(&self, _cx: &mut Build<()>) -> anyhow::Result<Router> {
            Ok(Router::new().route("/whoami", get(whoami)))
        }
    }

    async fn whoami() -> Json<String> {
        tracing::info!("asked who I am");
        Json(
            identity::current()
                .map(|i| i.service.clone())
                .unwrap_or_default(),
        )
    }

    /// Relays to echo through its client.
    struct Front;

    impl Service for Front {
        type Settings = ();
        const NAME: &'static str = "front";

        async fn build(&self, cx: &mut Build<()>) -> anyhow::Result<Router> {
            let echo = cx.client("echo", Duration::from_secs(2));
            let relay = get(move || {
                let echo = echo.clone();
                async move { Json(echo.get_json::<String>("/whoami").await.unwrap_or_default()) }
            });
            Ok(Router::new()
                .route("/relay", relay)
                .route("/whoami", get(whoami)))
        }
    }

    /// Asks for threads of its own; answers with the thread that served it.
    struct Threaded;

    impl Service for Threaded {
        type Settings = ();
        const NAME: &'static str = "threaded";

        async fn build(&self, cx: &mut Build<()>) -> anyhow::Result<Router> {
            cx.serve_on_threads(2);
            Ok(Router::new().route(
                "/thread",
                get(|| async { std::thread::current().name().unwrap_or("?").to_string() }),
            ))
        }
    }

    /// The thread name `/thread` answers with, hosted in a process of `hosted`.
    async fn serving_thread(hosted: &[&str]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = Settings::<()>::for_test(dir.path());
        let process = Process::new(&settings.common, hosted);
        let bind = || TcpListener::bind("127.0.0.1:0");
        let mut built = vec![
            process
                .start(&Threaded, settings.clone(), bind().await.expect("bind"))
                .await
                .expect("threaded"),
        ];
        if hosted.contains(&"echo") {
            built.push(
                process
                    .start(&Echo, settings, bind().await.expect("bind"))
                    .await
                    .expect("echo"),
            );
        }
        let url = format!("http://{}/thread", built[0].local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(serve(built, async {
            let _ = stopped.await;
        }));
        let mut answer = None;
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                answer = Some(r.text().await.expect("body"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(());
        running.await.expect("join").expect("served");
        answer.expect("answered")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_alone_serves_on_threads_of_its_own_when_it_asks_and_not_beside_others() {
        let alone = serving_thread(&["threaded"]).await;
        assert!(alone.starts_with("http-"), "alone: served on {alone}");
        let beside = serving_thread(&["threaded", "echo"]).await;
        assert!(
            !beside.starts_with("http-"),
            "beside another service: served on {beside}"
        );
    }

    #[test]
    fn advertised_addresses_others_can_dial() {
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert_eq!(advertised(wildcard, Some("10.1.2.3")), "10.1.2.3:8080");
        assert_eq!(advertised(wildcard, Some("catalog")), "catalog:8080");
        assert_eq!(advertised(wildcard, Some("fd00::7")), "[fd00::7]:8080");
        assert_eq!(advertised(wildcard, None), "127.0.0.1:8080");
        let bound: SocketAddr = "192.168.5.9:81".parse().expect("addr");
        assert_eq!(advertised(bound, None), "192.168.5.9:81");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn services_in_one_process_call_each_other_in_process_each_as_itself() {
        emporium_telemetry::metrics::install();
        let dir = tempfile::tempdir().expect("tempdir");
        // No registry: a call that left the process would find no instance.
        let settings = Settings::<()>::for_test(dir.path());
        let process = Process::new(&settings.common, &["front", "echo"]);
        let bind = || TcpListener::bind("127.0.0.1:0");
        let front = process
            .start(&Front, settings.clone(), bind().await.expect("bind"))
            .await
            .expect("front");
        let echo = process
            .start(&Echo, settings, bind().await.expect("bind"))
            .await
            .expect("echo");
        let front_url = format!("http://{}", front.local_addr().expect("addr"));
        let echo_url = format!("http://{}", echo.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(serve(vec![front, echo], async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        let text = |url: String| {
            let http = http.clone();
            async move {
                for _ in 0..100 {
                    if let Ok(r) = http.get(&url).send().await
                        && r.status().is_success()
                    {
                        return r.text().await.expect("body");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("{url} did not answer");
            }
        };
        assert_eq!(text(format!("{front_url}/whoami")).await, "\"front\"");
        assert_eq!(
            text(format!("{front_url}/relay")).await,
            "\"echo\"",
            "front reached echo in the process, and echo's handler ran as echo"
        );
        let metrics = text(format!("{echo_url}/metrics")).await;
        assert!(
            metrics.contains(r#"route="/whoami",status="200",service="echo""#),
            "{metrics}"
        );
        assert!(
            !metrics.contains(r#"service="front""#),
            "only echo's series"
        );
        let _ = stop.send(());
        running.await.expect("join").expect("served");
    }
}
