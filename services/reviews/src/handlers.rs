//! Events reviews consumes: who bought what (only buyers may review), and the names
//! reviewers are shown by.

use emporium_contracts::events::{OrderConfirmed, UserRegistered};
use emporium_events::Received;
use emporium_store::Tx;
use futures::future::BoxFuture;

/// Every product of a confirmed order may now be reviewed by its buyer.
pub fn order_confirmed(
    tx: &mut Tx,
    event: Received<OrderConfirmed>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let order = event.data;
        for line in &order.lines {
            sqlx::query(
                "INSERT INTO purchases (user_id, product_id) VALUES ($1, $2) \
                 ON CONFLICT (user_id, product_id) DO NOTHING",
            )
            .bind(&order.user_id)
            .bind(&line.product_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    })
}

/// A reviewer is shown by the name they registered with, never their email.
pub fn user_registered(
    tx: &mut Tx,
    event: Received<UserRegistered>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let user = event.data;
        sqlx::query(
            "INSERT INTO reviewers (user_id, name) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name",
        )
        .bind(&user.user_id)
        .bind(&user.name)
        .execute(&mut **tx)
        .await?;
        Ok(())
    })
}
