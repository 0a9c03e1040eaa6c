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

use axum::Router;
use emporium_config::Common;
use emporium_runtime::{Build, Service};
use serde::Deserialize;

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
pub struct RegistrySettings {}

/// The registry, as the runtime hosts it. Config values live in its database
/// (`registry.database_url`, or a SQLite file in its data folder).
pub struct RegistryService;

impl Service for RegistryService {
    type Settings = RegistrySettings;
    const NAME: &'static str = NAME;
    const DEFAULT_LISTEN: SocketAddr = DEFAULT_LISTEN;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);
    const EVENTS: bool = false;

    fn configure(common: &mut Common) {
        // The registry does not register with itself.
        common.registry_url = None;
    }

    async fn build(&self, cx: &mut Build<RegistrySettings>) -> anyhow::Result<Router> {
        let registry = Registry::start(cx.db().clone()).await?;
        let own = prometheus::TargetGroupSeed {
            address: emporium_runtime::advertised(
                cx.local_addr,
                cx.common().advertise_host.as_deref(),
            ),
            instance_id: cx.host.instance_id.clone(),
        };
        Ok(api::router(registry.clone()).merge(prometheus::router(registry, own)))
    }
}

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();
