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
//! `ProductCreated` (seeded and created products) and `PriceChanged` through its outbox.

mod api;
mod domain;
mod image;
mod seed;
mod store;

use std::net::SocketAddr;

use emporium_config::Settings;
use emporium_events::Events;
use emporium_runtime::Host;
use serde::Deserialize;
use tokio::net::TcpListener;

pub use api::{AppState, CategoryList, ProductPage, ProductView, router};

pub const NAME: &str = "catalog";

pub const DEFAULT_LISTEN: SocketAddr = emporium_runtime::LOOPBACK_ANY_PORT;

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[catalog]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogSettings {
    pub database_url: Option<String>,
    /// Seed the demo catalog into an empty database.
    pub seed: bool,
    /// The shop's currency (ISO 4217).
    pub currency: String,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            database_url: None,
            seed: true,
            currency: "USD".into(),
        }
    }
}

/// Runs catalog until `shutdown`.
pub async fn run(
    settings: Settings<CatalogSettings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let host = Host::new(NAME, &settings.common);
    let db = host
        .open_db(settings.service.database_url.as_deref(), &MIGRATIONS)
        .await?;
    let events = Events::open(&host, &db).await?;
    let outbox = events.outbox();
    if settings.service.seed {
        let added = store::seed_if_empty(
            &db,
            &outbox,
            &settings.service.currency,
            emporium_store::now_ms(),
        )
        .await?;
        if added > 0 {
            tracing::info!(products = added, "seeded the demo catalog");
        }
    }
    let state = api::AppState {
        db,
        outbox,
        currency: settings.service.currency.as_str().into(),
    };
    events
        .serve(host, api::router(state), listener, shutdown)
        .await
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
