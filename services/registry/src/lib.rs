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
//! - `POST   /usage`                     what an instance's rate limits admitted, for
//!   what the other instances of its service admitted (shared quotas)
//! - `POST   /certificates`              a certificate for an instance that shows its
//!   service's join token (over TLS without a client certificate)
//!
//! It runs the platform's CA (`identity.ca_key`, with the operator's
//! `identity.bootstrap_secret` to check join tokens). Every other call needs a
//! verified peer: an instance registers, heartbeats and deregisters for its own
//! service only, and only the operator writes config.
//!
//! Every change bumps a change index; `epoch` is new at every start, so a watcher can
//! tell that the registry restarted and forgot its instances.

mod api;
mod issuer;
mod prometheus;
mod state;
mod store;
mod usage;

use std::net::SocketAddr;
use std::sync::Arc;

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
    const ANONYMOUS: &'static [&'static str] = &[emporium_contracts::registry::CERTIFICATES];
    const OPEN: &'static [&'static str] = &[prometheus::TARGETS];

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
        let issuer = issuer(cx.common())?.map(Arc::new);
        Ok(api::router(registry.clone(), issuer).merge(prometheus::router(registry, own)))
    }
}

/// The CA and the bootstrap secret, when this registry has both.
fn issuer(common: &Common) -> anyhow::Result<Option<issuer::Issuer>> {
    let settings = &common.identity;
    let (Some(key), Some(secret)) = (&settings.ca_key, settings.bootstrap_secret()?) else {
        return Ok(None);
    };
    let ca = emporium_identity::Ca::load(&emporium_identity::CaFiles {
        cert: settings.trust_anchor_path(&common.data_dir),
        key: key.clone(),
    })?;
    let lifetime = std::time::Duration::from_secs(settings.cert_lifetime_s.max(60));
    Ok(Some(issuer::Issuer::new(ca, secret, lifetime)))
}

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();
