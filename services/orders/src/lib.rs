//! orders: checkout, the checkout saga, and order history.
//!
//! Public API, through the gateway:
//!
//! - `POST /api/orders` with `Idempotency-Key: <uuid>` and `{card, shipping_address}`:
//!   snapshots the cart into a PENDING order and runs the [`saga`]; answers `202` with
//!   the order (usually already CONFIRMED or CANCELLED). The same key with the same
//!   body returns the same order; with a different body, `422`;
//! - `GET /api/orders` (own orders, newest first, keyset paged);
//! - `GET /api/orders/{id}` with its status timeline (another user's order is `404`).
//!
//! Publishes `OrderPlaced`, `OrderConfirmed` and `OrderCancelled` through its outbox,
//! in the transactions that change the order. A recovery loop resumes sagas a crash
//! left in flight.

mod api;
mod domain;
mod metrics;
mod saga;
mod store;

use std::net::SocketAddr;
use std::time::Duration;

use emporium_config::Settings;
use emporium_events::Events;
use emporium_runtime::Host;
use serde::Deserialize;
use tokio::net::TcpListener;

pub use api::{OrderPage, OrderView};

pub const NAME: &str = "orders";

pub const DEFAULT_LISTEN: SocketAddr = emporium_runtime::LOOPBACK_ANY_PORT;

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[orders]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersSettings {
    pub database_url: Option<String>,
    /// Time a saga has to reach its payment authorization before it compensates.
    pub saga_timeout_ms: u64,
    /// How long `POST /api/orders` waits for the saga before answering PENDING.
    pub checkout_wait_ms: u64,
    /// How often the recovery loop looks for sagas left in flight.
    pub recovery_interval_ms: u64,
    /// Timeout of each call to cart, inventory and payments.
    pub call_timeout_ms: u64,
    /// First retry delay of a saga step; doubles up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long an order stays with the instance driving it without a renewal:
    /// after a crash, another instance resumes it this much later.
    pub saga_lease_ms: u64,
}

impl Default for OrdersSettings {
    fn default() -> Self {
        Self {
            database_url: None,
            saga_timeout_ms: 30_000,
            checkout_wait_ms: 5_000,
            recovery_interval_ms: 1_000,
            call_timeout_ms: 5_000,
            retry_base_ms: 50,
            retry_max_ms: 2_000,
            saga_lease_ms: 10_000,
        }
    }
}

/// Runs orders until `shutdown`.
pub async fn run(
    settings: Settings<OrdersSettings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let s = &settings.service;
    anyhow::ensure!(
        s.saga_lease_ms >= 1_000,
        "orders.saga_lease_ms must be at least 1000"
    );
    let host = Host::new(NAME, &settings.common);
    metrics::describe();
    let db = host.open_db(s.database_url.as_deref(), &MIGRATIONS).await?;
    let events = Events::open(&host, &db).await?;
    let calls = Duration::from_millis(s.call_timeout_ms);
    let saga = saga::Saga::new(
        db.clone(),
        events.outbox(),
        host.client("inventory", calls),
        host.client("payments", calls),
        saga::SagaSettings {
            retry_base: Duration::from_millis(s.retry_base_ms),
            retry_max: Duration::from_millis(s.retry_max_ms),
            lease: Duration::from_millis(s.saga_lease_ms),
        },
        host.instance_id.clone(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let recovery = tokio::spawn(
        saga.clone()
            .recover(Duration::from_millis(s.recovery_interval_ms), stopped),
    );
    let state = api::AppState {
        db,
        outbox: events.outbox(),
        cart: host.client("cart", calls),
        saga,
        wait: Duration::from_millis(s.checkout_wait_ms),
        saga_timeout: Duration::from_millis(s.saga_timeout_ms),
    };
    let result = events
        .serve(host, api::router(state), listener, shutdown)
        .await;
    let _ = stop.send(true);
    let _ = recovery.await;
    result
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
