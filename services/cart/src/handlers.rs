//! Events cart consumes.

use emporium_contracts::events::{OrderCancelled, OrderConfirmed, PriceChanged};
use emporium_events::Received;
use emporium_store::{Tx, now_ms};
use futures::future::BoxFuture;

use crate::checkouts;

/// Every cart holding the product at its old price shows the new one. Guarded by the
/// old price, so a late or replayed event never overwrites a newer price (a line
/// added since the change already has the new price from catalog).
pub fn price_changed(
    tx: &mut Tx,
    event: Received<PriceChanged>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let e = event.data;
        sqlx::query(
            "UPDATE cart_items SET unit_price = $2, currency = $3, updated_ms = $4 \
             WHERE sku = $1 AND unit_price = $5",
        )
        .bind(&e.sku)
        .bind(e.new_price)
        .bind(&e.currency)
        .bind(now_ms())
        .bind(e.old_price)
        .execute(&mut **tx)
        .await?;
        Ok(())
    })
}

/// What was ordered is gone from the cart for good. The checkout took it out already
/// (see [`crate::checkouts`]); if its lines are in the cart again (the order's outcome
/// came after its deadline), they leave now, and anything added since stays.
pub fn order_confirmed(
    tx: &mut Tx,
    event: Received<OrderConfirmed>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let e = event.data;
        if checkouts::confirmed(tx, &e.order_id).await? {
            return Ok(());
        }
        for line in &e.lines {
            // Delete first: a line the order used up must not be decremented and then
            // deleted for being small.
            sqlx::query(
                "DELETE FROM cart_items WHERE user_id = $1 AND sku = $2 AND quantity <= $3",
            )
            .bind(&e.user_id)
            .bind(&line.sku)
            .bind(line.quantity)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE cart_items SET quantity = quantity - $3, updated_ms = $4 \
                 WHERE user_id = $1 AND sku = $2 AND quantity > $3",
            )
            .bind(&e.user_id)
            .bind(&line.sku)
            .bind(line.quantity)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    })
}

/// The order did not go through: what its checkout took goes back into the cart
/// (unless the saga's compensation put it back already).
pub fn order_cancelled(
    tx: &mut Tx,
    event: Received<OrderCancelled>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        checkouts::give_back_in(tx, &event.data.order_id).await?;
        Ok(())
    })
}
