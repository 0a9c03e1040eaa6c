//! The registry: where Emporium services find each other, and a small config store.
//!
//! Owns the list of live service instances (in memory: instances re-register after a
//! registry restart) and config values (in its own SQLite database). Its API is
//! internal (`/internal/registry/...`, never routed by the gateway):
//!
//! - `PUT    /instances/{id}`            register (service, address, version, metadata, TTL)
//! - `PUT    /instances/{id}/heartbeat`  keep alive, with readiness; 404 = register again
//! - `DELETE /instances/{id}`            deregister
//! - `GET    /instances`                 every instance (for `emporium status`)
//! - `GET    /services/{name}`           healthy instances; `?epoch=&index=&wait_ms=` long-polls
//! - `GET    /config?prefix=`            config entries; long-polls like services
//! - `GET|PUT|DELETE /config/{key}`      one config value
//! - `GET    /prometheus/targets`        Prometheus HTTP service discovery
//!
//! Every change bumps a change index; `epoch` is new at every start, so a watcher can
//! tell that the registry restarted and forgot its instances.

mod api;
mod prometheus;
mod state;
mod store;

use std::net::SocketAddr;

use emporium_config::Settings;
use emporium_runtime::Host;
use serde::Deserialize;
use tokio::net::TcpListener;

pub use api::router;
pub use state::Registry;

/// The service name.
pub const NAME: &str = "registry";

/// Where the registry listens unless configured (`emporium up` picks a free port).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7070);

/// The `[registry]` settings table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    /// Database URL for config values; a SQLite file in the data folder by default.
    pub database_url: Option<String>,
}

/// Runs the registry until `shutdown`.
pub async fn run(
    settings: Settings<RegistrySettings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The registry does not register with itself.
    let mut common = settings.common.clone();
    common.registry_url = None;
    let host = Host::new(NAME, &common);
    let db = host
        .open_db(settings.service.database_url.as_deref(), &MIGRATIONS)
        .await?;
    let registry = Registry::start(db.clone()).await?;
    let own = prometheus::TargetGroupSeed {
        address: emporium_runtime::advertised(
            listener.local_addr()?,
            common.advertise_host.as_deref(),
        ),
        instance_id: host.instance_id.clone(),
    };
    let routes = api::router(registry.clone()).merge(prometheus::router(registry, own));
    host.serve(routes, listener, shutdown).await
}

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();
