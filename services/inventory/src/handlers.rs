//! Events inventory consumes.

use emporium_contracts::events::ProductCreated;
use emporium_events::Received;
use emporium_store::{Tx, now_ms};
use futures::future::BoxFuture;

use crate::stock::initial_stock;

/// A new product gets its stock row, once.
pub fn product_created(
    tx: &mut Tx,
    event: Received<ProductCreated>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let p = event.data;
        let initial = initial_stock(&p.sku);
        sqlx::query(
            "INSERT INTO stock (sku, product_id, available, initial, updated_ms) \
             VALUES ($1, $2, $3, $3, $4) ON CONFLICT (sku) DO NOTHING",
        )
        .bind(&p.sku)
        .bind(&p.product_id)
        .bind(initial)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
        Ok(())
    })
}
