//! catalog: products, categories and prices.
//!
//! Owns the product catalog in its own database; stock is not its business (inventory
//! owns it). Public API, through the gateway:
//!
//! - `GET /api/catalog/products` `?category=&min_price=&max_price=&sort=&limit=&cursor=`
//!   → `{items, total, next}`, keyset-paged so pages never skip or repeat items;
//! - `GET /api/catalog/products/{id}`, `GET /api/catalog/products/sku/{sku}`;
//! - `GET /api/catalog/categories`;
//! - `POST /api/catalog/products`, `PATCH /api/catalog/products/{id}` (admin role);
//! - `GET /api/catalog/images/{sku}`: a generated picture.
//!
//! On first start it seeds a deterministic demo catalog ([`seed`]). Publishes
//! `ProductCreated` (seeded and created products), `ProductUpdated` (every change,
//! with the product's whole view and a version that grows with each) and
//! `PriceChanged` through its outbox, and serves every product as a `ProductUpdated`
//! in its snapshot (`/internal/events/snapshot`) for read models built from nothing.

mod api;
mod docs;
mod domain;
mod image;
mod seed;
mod store;

use axum::Router;
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub use api::{AppState, CategoryList, ProductPage, ProductView, router};

pub const NAME: &str = "catalog";

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[catalog]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogSettings {
    /// Seed the demo catalog into an empty database.
    pub seed: bool,
    /// The shop's currency (ISO 4217).
    pub currency: String,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            seed: true,
            currency: "USD".into(),
        }
    }
}

/// The catalog service, as the runtime hosts it.
pub struct Catalog;

impl Service for Catalog {
    type Settings = CatalogSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<CatalogSettings>) -> anyhow::Result<Router> {
        cx.snapshot(store::snapshot);
        let s = &cx.settings;
        let outbox = cx.outbox();
        if s.seed {
            let started = std::time::Instant::now();
            let added =
                store::seed_if_empty(cx.db(), &outbox, &s.currency, emporium_store::now_ms())
                    .await?;
            if added > 0 {
                // How long: it is on the way to every start's readiness (docs/benchmarks.md).
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(products = added, ms, "seeded the demo catalog");
            }
        }
        let state = api::AppState {
            db: cx.db().clone(),
            outbox,
            currency: s.currency.as_str().into(),
        };
        Ok(api::router(state))
    }
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
