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
//!
//! Publishes `StockChanged` when a SKU's stock row is created and whenever its level
//! as shoppers see it (in stock, low, sold out) changes, and serves every SKU's
//! availability as a `StockChanged` in its snapshot.

mod api;
pub mod audit;
mod handlers;
mod stock;

use axum::Router;
use emporium_contracts::events::ProductCreated;
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub use stock::initial_stock;

pub const NAME: &str = "inventory";

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[inventory]` settings table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventorySettings {}

/// The inventory service, as the runtime hosts it.
pub struct Inventory;

impl Service for Inventory {
    type Settings = InventorySettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<InventorySettings>) -> anyhow::Result<Router> {
        let outbox = cx.outbox();
        cx.on::<ProductCreated>(handlers::ProductCreatedHandler {
            outbox: outbox.clone(),
        })
        .snapshot(stock::snapshot);
        Ok(api::router(api::AppState {
            db: cx.db().clone(),
            outbox,
        }))
    }
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
