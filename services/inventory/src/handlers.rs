//! Events inventory consumes.

use emporium_contracts::events::ProductCreated;
use emporium_events::{Handler, Outbox, Received};
use emporium_store::{Tx, now_ms};
use futures::future::BoxFuture;

use crate::stock::{announce, initial_stock};

/// A new product gets its stock row, once, announced with `StockChanged`.
pub struct ProductCreatedHandler {
    pub outbox: Outbox,
}

impl Handler<ProductCreated> for ProductCreatedHandler {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: Received<ProductCreated>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let p = event.data;
            let initial = initial_stock(&p.sku);
            let added = sqlx::query(
                "INSERT INTO stock (sku, product_id, available, initial, updated_ms) \
                 VALUES ($1, $2, $3, $3, $4) ON CONFLICT (sku) DO NOTHING",
            )
            .bind(&p.sku)
            .bind(&p.product_id)
            .bind(initial)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
            if added.rows_affected() == 1 {
                announce(tx, &self.outbox, &p.sku).await?;
            }
            Ok(())
        })
    }
}
