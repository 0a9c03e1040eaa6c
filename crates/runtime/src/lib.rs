//! Hosting one service in one process.
//!
//! A service crate exposes `run(settings, listener, shutdown)`; inside it builds its
//! state and router and hands them to [`Host::serve`], which serves them behind the
//! HTTP chassis and keeps the instance registered while it runs. [`run_process`] is
//! what `emporium serve <service>` calls: load settings, start logs, bind the
//! listener, report the bound address to a supervisor, and run until SIGTERM/SIGINT.

mod backoff;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use emporium_client::{Discovery, HttpTransport, RegistryClient, ServiceClient, Transport, agent};
use emporium_config::{Common, Settings};
use emporium_contracts::registry::Registration;
use emporium_http::Readiness;
use emporium_store::{Db, Migrations};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

pub use backoff::backoff;

/// Environment variable naming a file where the bound address is written, for a
/// supervisor that started the process on port 0.
pub const ADDR_FILE_ENV: &str = "EMPORIUM_ADDR_FILE";

/// Listen on a free loopback port: the default of every service but the gateway and
/// the registry.
pub const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The version every service reports to the registry.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a service gets from the process hosting it.
#[derive(Clone)]
pub struct Host {
    pub service: &'static str,
    pub instance_id: String,
    pub common: Common,
    pub readiness: Readiness,
    pub discovery: Arc<Discovery>,
    pub transport: Arc<dyn Transport>,
}

impl Host {
    /// A host for `service`; discovery goes through the registry in `common`, if any.
    pub fn new(service: &'static str, common: &Common) -> Self {
        let registry = common.registry_url.as_deref().map(RegistryClient::new);
        let discovery = Arc::new(Discovery::new(registry));
        let transport: Arc<dyn Transport> = Arc::new(HttpTransport::new(discovery.clone()));
        Self {
            service,
            instance_id: instance_id(service, common),
            common: common.clone(),
            readiness: Readiness::default(),
            discovery,
            transport,
        }
    }

    /// Replaces the transport (tests, in-process mode).
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// This service's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.common.service_dir(self.service)
    }

    /// Opens this service's database (its own `url`, else the shared
    /// `database_url`, else a SQLite file in its data folder), applies its
    /// migrations, and makes `/readyz` depend on reaching it.
    pub async fn open_db(&self, url: Option<&str>, migrations: &Migrations) -> anyhow::Result<Db> {
        let url = url.or(self.common.database_url.as_deref());
        let db = Db::open_service(self.service, &self.data_dir(), url)
            .await
            .with_context(|| format!("opening the {} database", self.service))?;
        db.migrate_all(migrations)
            .await
            .with_context(|| format!("migrating the {} database", self.service))?;
        let ping = db.clone();
        self.readiness.add("database", move || {
            let db = ping.clone();
            async move { db.ping().await.map_err(|e| e.to_string()) }
        });
        Ok(db)
    }

    /// A client for calling `service` with a per-call timeout.
    pub fn client(&self, service: &str, timeout: Duration) -> ServiceClient {
        ServiceClient::new(service, self.transport.clone(), timeout)
    }

    /// Serves `routes` on `listener` until `shutdown`, registered with the registry
    /// (when one is configured) from the first moment to the last.
    pub async fn serve(
        self,
        routes: Router,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let local = listener.local_addr().context("listener address")?;
        let agent = self.discovery.registry().cloned().map(|registry| {
            let registration = Registration {
                service: self.service.to_string(),
                instance_id: self.instance_id.clone(),
                address: advertised(local, self.common.advertise_host.as_deref()),
                version: VERSION.to_string(),
                metadata: [("pid".to_string(), std::process::id().to_string())].into(),
                ttl_ms: self.common.registry_ttl_ms,
            };
            agent::start(registry, registration, self.readiness.clone())
        });
        tracing::info!(addr = %local, instance = %self.instance_id, "serving");
        let result = emporium_http::serve(
            routes,
            listener,
            &self.common.http,
            self.readiness.clone(),
            shutdown,
        )
        .await;
        if let Some(agent) = agent {
            agent.stop().await;
        }
        result.context("http server")
    }
}

fn instance_id(service: &str, common: &Common) -> String {
    common.instance_id.clone().unwrap_or_else(|| {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("{service}-{}", &id[..8])
    })
}

/// The address others use to reach a listener bound to `local`.
pub fn advertised(local: SocketAddr, host: Option<&str>) -> String {
    match host {
        Some(host) => format!("{host}:{}", local.port()),
        None if local.ip().is_unspecified() => format!("127.0.0.1:{}", local.port()),
        None => local.to_string(),
    }
}

/// Runs one service as a whole process: what `emporium serve <service>` does.
pub async fn run_process<S, F, Fut>(
    service: &'static str,
    default_listen: SocketAddr,
    run: F,
) -> anyhow::Result<()>
where
    S: DeserializeOwned + Default,
    F: FnOnce(Settings<S>, TcpListener, emporium_http::server::Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut settings: Settings<S> = emporium_config::load(service, default_listen)
        .with_context(|| format!("loading the settings of {service}"))?;
    let instance = instance_id(service, &settings.common);
    settings.common.instance_id = Some(instance.clone());
    emporium_telemetry::init(
        emporium_telemetry::Identity {
            service: service.to_string(),
            instance,
        },
        &settings.common.log,
    );
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    if let Ok(path) = std::env::var(ADDR_FILE_ENV) {
        let addr = listener.local_addr()?.to_string();
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, addr)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {path}"))?;
    }
    let result = run(
        settings,
        listener,
        Box::pin(emporium_http::shutdown_signal()),
    )
    .await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "service failed");
    }
    // Spans still queued go out before the process ends (blocking, bounded by the
    // exporter's timeout).
    tokio::task::block_in_place(emporium_telemetry::trace::shutdown);
    result
}
