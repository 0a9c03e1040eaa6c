//! cart: one cart per signed-in user.
//!
//! Public API, through the gateway (the user is the verified identity it forwards):
//!
//! - `GET /api/cart` → lines with current unit prices, line totals and the total, in
//!   integer minor units;
//! - `POST /api/cart/items` `{sku, quantity}`: adds (or adds to) a line; the SKU is
//!   checked against catalog, which also gives name and price; with an
//!   `Idempotency-Key`, the same add sent again within a day adds nothing;
//! - `PATCH /api/cart/items/{sku}` `{quantity}`, `DELETE /api/cart/items/{sku}`.
//!
//! Quantities are 1–99 per line. Consumes catalog's `PriceChanged` (lines are
//! repriced) and orders' `OrderConfirmed` and `OrderCancelled` (the outcome of a
//! checkout). Internal, for orders alone: `POST /internal/carts/{user_id}/checkouts`
//! takes the lines out of the cart for an order, and
//! `POST /internal/cart-checkouts/{order_id}/return` puts them back (see
//! [`checkouts`]); `GET /internal/carts/{user_id}` still reads a cart.

mod api;
mod checkouts;
mod handlers;
mod store;

use std::time::Duration;

use axum::Router;
use emporium_contracts::events::{OrderCancelled, OrderConfirmed, PriceChanged};
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub use api::{CartLineView, CartView};

pub const NAME: &str = "cart";

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[cart]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CartSettings {
    /// Most distinct lines in one cart.
    pub max_lines: usize,
    /// Timeout of a product lookup at catalog.
    pub catalog_timeout_ms: u64,
    /// How often checkouts whose order's outcome never came (by the order's
    /// deadline, which orders sends) give their lines back, and add keys
    /// older than a day are forgotten.
    pub checkout_sweep_ms: u64,
}

impl Default for CartSettings {
    fn default() -> Self {
        Self {
            max_lines: 50,
            catalog_timeout_ms: 2_000,
            checkout_sweep_ms: 10_000,
        }
    }
}

/// The cart service, as the runtime hosts it.
pub struct Cart;

impl Service for Cart {
    type Settings = CartSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<CartSettings>) -> anyhow::Result<Router> {
        emporium_telemetry::metrics::describe_counter!(
            "emporium_cart_items_added_total",
            "Items put into carts (the top of the checkout funnel)."
        );
        emporium_telemetry::metrics::counter!("emporium_cart_items_added_total").absolute(0);
        cx.on::<PriceChanged>(handlers::price_changed)
            .on::<OrderConfirmed>(handlers::order_confirmed)
            .on::<OrderCancelled>(handlers::order_cancelled);
        let db = cx.db().clone();
        cx.every(
            Duration::from_millis(cx.settings.checkout_sweep_ms.max(1)),
            move || {
                let db = db.clone();
                async move {
                    let now = emporium_store::now_ms();
                    if let Err(e) = checkouts::sweep(&db, now).await {
                        tracing::warn!(error = %e, "cannot give back expired checkouts");
                    }
                    if let Err(e) = store::prune_add_keys(&db, now).await {
                        tracing::warn!(error = %e, "cannot forget old add keys");
                    }
                }
            },
        );
        let state = api::AppState {
            db: cx.db().clone(),
            catalog: cx.client(
                "catalog",
                Duration::from_millis(cx.settings.catalog_timeout_ms),
            ),
            max_lines: cx.settings.max_lines,
        };
        Ok(api::router(state))
    }
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
