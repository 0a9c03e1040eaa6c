//! The events search projects into its documents: catalog's view of each product,
//! inventory's stock level, reviews' rating. Snapshot items come through the same
//! handlers.

use emporium_contracts::events::{
    ProductCreated, ProductUpdated, RatingSummary, ReviewAdded, ReviewChanged, ReviewHidden,
    StockChanged,
};
use emporium_events::Received;
use emporium_store::Tx;
use futures::future::BoxFuture;

use crate::documents;

pub fn product_created(
    tx: &mut Tx,
    event: Received<ProductCreated>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        documents::put_product(tx, &event.data.into()).await?;
        Ok(())
    })
}

pub fn product_updated(
    tx: &mut Tx,
    event: Received<ProductUpdated>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        documents::put_product(tx, &event.data).await?;
        Ok(())
    })
}

pub fn stock_changed(
    tx: &mut Tx,
    event: Received<StockChanged>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        documents::put_stock(tx, &event.data).await?;
        Ok(())
    })
}

/// Each review event carries its product's new rating; the snapshot, the rating.
pub fn rating(tx: &mut Tx, event: Received<RatingSummary>) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        documents::put_rating(tx, &event.data).await?;
        Ok(())
    })
}

pub fn review_added(
    tx: &mut Tx,
    event: Received<ReviewAdded>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        documents::put_rating(tx, &event.data.summary).await?;
        Ok(())
    })
}

pub fn review_changed(
    tx: &mut Tx,
    event: Received<ReviewChanged>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        documents::put_rating(tx, &event.data.summary).await?;
        Ok(())
    })
}

pub fn review_hidden(
    tx: &mut Tx,
    event: Received<ReviewHidden>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        documents::put_rating(tx, &event.data.summary).await?;
        Ok(())
    })
}
