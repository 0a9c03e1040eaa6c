//! The events search projects into its documents: catalog's view of each product,
//! inventory's stock level. Snapshot items come through the same handlers.

use emporium_contracts::events::{ProductCreated, ProductUpdated, StockChanged};
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
