//! cart: one cart per signed-in user.
//!
//! Public API, through the gateway (the user is the verified identity it forwards):
//!
//! - `GET /api/cart` → lines with current unit prices, line totals and the total, in
//!   integer minor units;
//! - `POST /api/cart/items` `{sku, quantity}`: adds (or adds to) a line; the SKU is
//!   checked against catalog, which also gives name and price;
//! - `PATCH /api/cart/items/{sku}` `{quantity}`, `DELETE /api/cart/items/{sku}`.
//!
//! Quantities are 1–99 per line. Consumes catalog's `PriceChanged` (lines are
//! repriced) and orders' `OrderConfirmed` (the ordered quantities leave the cart).
//! Internal: `GET /internal/carts/{user_id}`, the snapshot orders checks out.

mod api;
mod handlers;
mod store;

use std::net::SocketAddr;
use std::time::Duration;

use emporium_config::Settings;
use emporium_contracts::events::{OrderConfirmed, PriceChanged};
use emporium_events::Events;
use emporium_runtime::Host;
use serde::Deserialize;
use tokio::net::TcpListener;

pub use api::{CartLineView, CartView};

pub const NAME: &str = "cart";

pub const DEFAULT_LISTEN: SocketAddr = emporium_runtime::LOOPBACK_ANY_PORT;

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[cart]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CartSettings {
    pub database_url: Option<String>,
    /// Most distinct lines in one cart.
    pub max_lines: usize,
    /// Timeout of a product lookup at catalog.
    pub catalog_timeout_ms: u64,
}

impl Default for CartSettings {
    fn default() -> Self {
        Self {
            database_url: None,
            max_lines: 50,
            catalog_timeout_ms: 2_000,
        }
    }
}

/// Runs cart until `shutdown`.
pub async fn run(
    settings: Settings<CartSettings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let host = Host::new(NAME, &settings.common);
    emporium_telemetry::metrics::describe_counter!(
        "emporium_cart_items_added_total",
        "Items put into carts (the top of the checkout funnel)."
    );
    emporium_telemetry::metrics::counter!("emporium_cart_items_added_total").absolute(0);
    let db = host
        .open_db(settings.service.database_url.as_deref(), &MIGRATIONS)
        .await?;
    let events = Events::open(&host, &db)
        .await?
        .on::<PriceChanged>(handlers::price_changed)
        .on::<OrderConfirmed>(handlers::order_confirmed);
    let state = api::AppState {
        db,
        catalog: host.client(
            "catalog",
            Duration::from_millis(settings.service.catalog_timeout_ms),
        ),
        max_lines: settings.service.max_lines,
    };
    events
        .serve(host, api::router(state), listener, shutdown)
        .await
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
