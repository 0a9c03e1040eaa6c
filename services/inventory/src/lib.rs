//! inventory: stock per SKU, and reservations keyed by order.
//!
//! Stock rows are created from catalog's `ProductCreated` with a deterministic
//! initial quantity ([`stock::initial_stock`]: most products plenty, some scarce, a few
//! sold out). Public API, through the gateway:
//!
//! - `GET /api/inventory/{sku}` → `{sku, available}`;
//! - `PUT /api/inventory/{sku}` `{available}` (admin): restock or correct a count.
//!
//! Internal API for the checkout saga (orders), each call idempotent by order id:
//! `PUT /internal/reservations/{order_id}` (reserve all lines or none),
//! `POST /internal/reservations/{order_id}/commit`,
//! `POST /internal/reservations/{order_id}/release`,
//! `GET /internal/reservations/{order_id}`. Stock never goes negative: every change is
//! a conditional update inside a write transaction, and the table has `CHECK`s.

mod api;
mod handlers;
mod stock;

use std::net::SocketAddr;

use emporium_config::Settings;
use emporium_contracts::events::ProductCreated;
use emporium_events::Events;
use emporium_runtime::Host;
use serde::Deserialize;
use tokio::net::TcpListener;

pub use stock::initial_stock;

pub const NAME: &str = "inventory";

pub const DEFAULT_LISTEN: SocketAddr = emporium_runtime::LOOPBACK_ANY_PORT;

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[inventory]` settings table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventorySettings {
    pub database_url: Option<String>,
}

/// Runs inventory until `shutdown`.
pub async fn run(
    settings: Settings<InventorySettings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let host = Host::new(NAME, &settings.common);
    let db = host
        .open_db(settings.service.database_url.as_deref(), &MIGRATIONS)
        .await?;
    let events = Events::open(&host, &db)
        .await?
        .on::<ProductCreated>(handlers::product_created);
    let routes = api::router(api::AppState { db });
    events.serve(host, routes, listener, shutdown).await
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
