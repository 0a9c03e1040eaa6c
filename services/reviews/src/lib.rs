//! reviews: what verified buyers say about products, event-sourced.
//!
//! The source of truth is an append-only store of review events in reviews' own
//! database ([`store`]): a stream per review (`added`, `changed`, `hidden`), each
//! append checked against the stream's version, so two concurrent edits of one
//! version cannot both win (409). The current reviews and each product's rating
//! summary are projections of the store ([`projection`]), updated in the append's
//! transaction, rebuilt from it on demand (`emporium reviews rebuild`) or at start
//! when missing or behind. The published events (`ReviewAdded`, `ReviewChanged`,
//! `ReviewHidden`, each with the product's new rating summary) leave through the
//! outbox in that same transaction.
//!
//! Public API, through the gateway: `POST /api/reviews` (a buyer: reviews learns
//! purchases from orders' `OrderConfirmed`), `PUT /api/reviews/{id}` (your own, with
//! the version you read), `POST /api/reviews/{id}/hide` (admin),
//! `GET /api/reviews?product_id=&sort=recent|rating&limit=&cursor=`,
//! `GET /api/reviews/summary?product_id=`. Reviewers are shown by display name (from
//! users' `UserRegistered`), never by email. Snapshot: every product's rating as a
//! `RatingSummary`.

mod api;
mod domain;
mod handlers;
pub mod projection;
mod store;

use axum::Router;
use emporium_contracts::events::{OrderConfirmed, RatingSummary, UserRegistered};
use emporium_events::SnapshotItem;
use emporium_runtime::{Build, Service};
use emporium_store::Db;
use futures::future::BoxFuture;
use serde::Deserialize;

pub use api::{ReviewPage, ReviewView, SummaryView};
pub use projection::Replayed;

pub const NAME: &str = "reviews";

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[reviews]` settings table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewsSettings {}

/// The reviews service, as the runtime hosts it.
pub struct Reviews;

impl Service for Reviews {
    type Settings = ReviewsSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<ReviewsSettings>) -> anyhow::Result<Router> {
        let db = cx.db().clone();
        let caught_up = projection::catch_up(&db).await?;
        if caught_up.events > 0 {
            tracing::info!(
                events = caught_up.events,
                "projections brought up to the store"
            );
        }
        cx.on::<OrderConfirmed>(handlers::order_confirmed)
            .on::<UserRegistered>(handlers::user_registered)
            .snapshot(snapshot);
        Ok(api::router(api::AppState {
            db,
            outbox: cx.outbox(),
        }))
    }
}

/// Every product's rating, in product id order.
fn snapshot<'a>(
    db: &'a Db,
    after: &'a str,
    limit: u32,
) -> BoxFuture<'a, anyhow::Result<Vec<SnapshotItem>>> {
    Box::pin(async move {
        let ids: Vec<(String,)> = sqlx::query_as(
            "SELECT product_id FROM rating_summaries WHERE product_id > $1 ORDER BY product_id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await?;
        let mut items = Vec::with_capacity(ids.len());
        for (id,) in ids {
            let summary: RatingSummary = projection::summary(db, &id).await?;
            items.push(SnapshotItem::of(id, &summary)?);
        }
        Ok(items)
    })
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
