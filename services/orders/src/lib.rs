//! orders: checkout, the checkout saga, and order history.
//!
//! Public API, through the gateway:
//!
//! - `POST /api/orders` with `Idempotency-Key: <uuid>` and `{card, shipping_address}`:
//!   takes the cart's lines into a PENDING order (cart gives them back if it is
//!   cancelled) and runs the [`saga`]; answers `202` with
//!   the order (usually already CONFIRMED or CANCELLED). The same key with the same
//!   body returns the same order; with a different body, `422`;
//! - `GET /api/orders` (own orders, newest first, keyset paged);
//! - `GET /api/orders/{id}` with its status timeline (another user's order is `404`).
//!
//! Publishes `OrderPlaced`, `OrderConfirmed` and `OrderCancelled` through its outbox,
//! in the transactions that change the order. A recovery loop resumes sagas a crash
//! left in flight.

mod api;
pub mod audit;
mod domain;
mod metrics;
mod saga;
mod store;

use std::time::Duration;

use axum::Router;
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub use api::{OrderPage, OrderView};

pub const NAME: &str = "orders";

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The orders service, as the runtime hosts it.
pub struct Orders;

/// The `[orders]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersSettings {
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
    /// Checking out needs a confirmed email address (the access token's
    /// `email_verified`): the shop can reach whoever it takes money from.
    pub require_verified_email: bool,
}

impl Default for OrdersSettings {
    fn default() -> Self {
        Self {
            saga_timeout_ms: 30_000,
            checkout_wait_ms: 5_000,
            recovery_interval_ms: 1_000,
            call_timeout_ms: 5_000,
            retry_base_ms: 50,
            retry_max_ms: 2_000,
            saga_lease_ms: 10_000,
            require_verified_email: true,
        }
    }
}

impl Service for Orders {
    type Settings = OrdersSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<OrdersSettings>) -> anyhow::Result<Router> {
        let s = &cx.settings;
        anyhow::ensure!(
            s.saga_lease_ms >= 1_000,
            "orders.saga_lease_ms must be at least 1000"
        );
        metrics::describe();
        let calls = Duration::from_millis(s.call_timeout_ms);
        let saga = saga::Saga::new(
            cx.db().clone(),
            cx.outbox(),
            cx.client("inventory", calls),
            cx.client("payments", calls),
            cx.client("cart", calls),
            saga::SagaSettings {
                retry_base: Duration::from_millis(s.retry_base_ms),
                retry_max: Duration::from_millis(s.retry_max_ms),
                lease: Duration::from_millis(s.saga_lease_ms),
            },
            cx.host.instance_id.clone(),
        );
        let state = api::AppState {
            db: cx.db().clone(),
            outbox: cx.outbox(),
            saga: saga.clone(),
            wait: Duration::from_millis(s.checkout_wait_ms),
            saga_timeout: Duration::from_millis(s.saga_timeout_ms),
            require_verified_email: s.require_verified_email,
        };
        let interval = Duration::from_millis(s.recovery_interval_ms);
        cx.spawn(move |stopped| saga.recover(interval, stopped));
        Ok(api::router(state))
    }
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
