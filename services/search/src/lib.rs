//! search: finding products, as a read model of other services' events.
//!
//! Nothing here is a source of truth. Search projects catalog's `ProductCreated` /
//! `ProductUpdated`, inventory's `StockChanged` and reviews' rating summaries into a `documents` table of its
//! own (each part kept only if its version is newer, so events and snapshots may
//! arrive in any order), and the indexer projects that table into a tantivy index
//! ([`indexer`]). Both live in the instance's data folder whatever database the
//! others use: delete the folder, or start an instance with an empty one, and it
//! rebuilds itself from the producers' snapshots and events, `/readyz` answering 503
//! until it has caught up.
//!
//! Public API, through the gateway:
//! - `GET /api/search?q=&category=&min_price=&max_price=&in_stock=&min_rating=&sort=&limit=&cursor=`
//!   → `{items, total, facets, next}` (typo tolerant, prefix on the last word,
//!   exact SKU first; see [`query`]);
//! - `GET /api/search/suggest?q=` → up to 10 product names.
//!
//! Internal: `POST /internal/search/reindex` (a new index built beside the current
//! one, then swapped in; `emporium search reindex`), `GET /internal/search/status`.

mod api;
mod documents;
mod handlers;
mod index;
mod indexer;
mod params;
pub mod query;
mod searching;

use axum::Router;
use emporium_contracts::events::{
    ProductCreated, ProductUpdated, RatingSummary, ReviewAdded, ReviewChanged, ReviewHidden,
    StockChanged,
};
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub use api::{Hit, IndexStatus, SearchPage, Suggestions};
pub use indexer::Reindexed;

pub const NAME: &str = "search";

/// SQLite only: the database is always a file in the data folder
/// ([`Service::LOCAL_DATABASE`]), so there is one dialect to migrate.
static MIGRATIONS: emporium_store::Migrations = emporium_store::Migrations {
    sqlite: emporium_store::sqlx::migrate!("./migrations"),
    postgres: emporium_store::sqlx::migrate!("./migrations"),
};

/// The `[search]` settings table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {}

/// The search service, as the runtime hosts it.
pub struct Search;

/// The producers search projects.
const SOURCES: [&str; 3] = ["catalog", "inventory", "reviews"];

impl Service for Search {
    type Settings = SearchSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);
    const LOCAL_DATABASE: bool = true;

    async fn build(&self, cx: &mut Build<SearchSettings>) -> anyhow::Result<Router> {
        let db = cx.db().clone();
        let (shared, indexer) = indexer::open(&db, &cx.host.data_dir()).await?;
        cx.on::<ProductCreated>(handlers::product_created)
            .on::<ProductUpdated>(handlers::product_updated)
            .on::<StockChanged>(handlers::stock_changed)
            .on::<ReviewAdded>(handlers::review_added)
            .on::<ReviewChanged>(handlers::review_changed)
            .on::<ReviewHidden>(handlers::review_hidden)
            .on::<RatingSummary>(handlers::rating)
            .on_commit(shared.wake.clone());
        for source in SOURCES {
            cx.projection(source);
        }
        cx.spawn(move |stop| indexer.run(stop));
        let subscriptions: Vec<String> = SOURCES.iter().map(|s| format!("{NAME}.{s}")).collect();
        let (check_db, check) = (db, shared.clone());
        cx.host.readiness.add("index", move || {
            let (db, shared, subscriptions) =
                (check_db.clone(), check.clone(), subscriptions.clone());
            async move { shared.check(&db, &subscriptions).await }
        });
        Ok(api::router(api::AppState { shared }))
    }
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
