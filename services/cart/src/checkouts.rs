//! Checkouts: a checkout takes the cart's lines out of it for an order, so they cannot
//! be bought twice, and they come back if the order does not go through.
//!
//! Before this, orders read the cart and the lines left it only when cart consumed
//! `OrderConfirmed`: a second checkout within that lag bought them again (a load test
//! found 1,172 of 2,781 orders doing so). Now the lines move into `cart_checkouts`
//! in the transaction that reads them. They stay there while the order is under way
//! (`taken`) and then:
//! - `OrderConfirmed`: the row goes; the lines were bought.
//! - the saga's compensation (a `return` call) or `OrderCancelled`: back into the
//!   cart, merged with anything added since (a line still holds at most 99).
//! - neither by `expires_ms` (the order was never placed: orders failed between the
//!   take and the insert): back into the cart by the sweep. Should the order be
//!   confirmed after all, `OrderConfirmed` takes them out as it did before.

use emporium_store::{Db, Tx, now_ms};
use serde::{Deserialize, Serialize};

use crate::api::MAX_QUANTITY;
use crate::store::LineRow;

/// A line as it left the cart.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct TakenLine {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub line: LineRow,
    pub added_ms: i64,
}

/// What a take took, and for which order.
#[derive(Debug)]
pub struct Taken {
    pub order_id: String,
    pub lines: Vec<TakenLine>,
}

/// How long a returned checkout is kept (for a retry with its key, and to look at).
pub const KEEP_RETURNED_MS: i64 = 24 * 3_600_000;

const TAKEN: &str = "taken";

/// Takes every line of `user_id`'s cart for `order_id`; the same key again answers
/// what it took then (and for which order). No lines: the cart was empty.
pub async fn take(
    db: &Db,
    user_id: &str,
    order_id: &str,
    key: &str,
    expires_ms: i64,
) -> Result<Taken, sqlx::Error> {
    let returned = match earlier(db, user_id, key).await? {
        Some(Earlier::Taken(taken)) => return Ok(taken),
        Some(Earlier::Returned) => true,
        None => false,
    };
    let mut tx = db.begin().await?;
    // A key whose lines came back (its order was never placed) may take again: its
    // returned checkout makes way, before the cart's rows are locked (the order in
    // which a late `OrderConfirmed` locks them too).
    if returned {
        clear_returned(&mut tx, user_id, key).await?;
    }
    // The read is the delete: on PostgreSQL a concurrent take of the same cart waits
    // for this one's row locks and then finds the rows gone.
    let mut lines: Vec<TakenLine> = sqlx::query_as(
        "DELETE FROM cart_items WHERE user_id = $1 \
         RETURNING sku, product_id, name, unit_price, currency, quantity, added_ms",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    if lines.is_empty() {
        tx.rollback().await?;
        // Empty, or a take with the same key just emptied it: answer that one.
        return Ok(by_key(db, user_id, key).await?.unwrap_or(Taken {
            order_id: order_id.to_string(),
            lines,
        }));
    }
    lines.sort_by(|a, b| (a.added_ms, &a.line.sku).cmp(&(b.added_ms, &b.line.sku)));
    let json = serde_json::to_string(&lines).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let now = now_ms();
    let mut inserted = record(&mut tx, order_id, user_id, key, &json, expires_ms, now).await?;
    // Returned since it was looked for: it makes way now.
    if inserted == 0 && clear_returned(&mut tx, user_id, key).await? {
        inserted = record(&mut tx, order_id, user_id, key, &json, expires_ms, now).await?;
    }
    if inserted == 0 {
        // The key (or the order id) took first, concurrently: the lines stay, and the
        // answer is what that take took.
        tx.rollback().await?;
        return by_key(db, user_id, key)
            .await?
            .ok_or(sqlx::Error::RowNotFound);
    }
    tx.commit().await?;
    Ok(Taken {
        order_id: order_id.to_string(),
        lines,
    })
}

/// The checkout into a new order, as a row: changed one, or none on a conflict.
async fn record(
    tx: &mut Tx,
    order_id: &str,
    user_id: &str,
    key: &str,
    lines: &str,
    expires_ms: i64,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO cart_checkouts (order_id, user_id, idempotency_key, lines, state, \
         expires_ms, created_ms, updated_ms) VALUES ($1, $2, $3, $4, 'taken', $5, $6, $6) \
         ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(user_id)
    .bind(key)
    .bind(lines)
    .bind(expires_ms)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes the returned checkout `key` made, if there is one.
async fn clear_returned(tx: &mut Tx, user_id: &str, key: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM cart_checkouts WHERE user_id = $1 AND idempotency_key = $2 \
         AND state = 'returned'",
    )
    .bind(user_id)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// What a key's earlier take left: lines taken, or given back.
enum Earlier {
    Taken(Taken),
    Returned,
}

async fn earlier(db: &Db, user_id: &str, key: &str) -> Result<Option<Earlier>, sqlx::Error> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT order_id, lines, state FROM cart_checkouts \
         WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    match row {
        None => Ok(None),
        Some((order_id, lines, state)) if state == TAKEN => Ok(Some(Earlier::Taken(Taken {
            order_id,
            lines: decode(&lines)?,
        }))),
        Some(_) => Ok(Some(Earlier::Returned)),
    }
}

async fn by_key(db: &Db, user_id: &str, key: &str) -> Result<Option<Taken>, sqlx::Error> {
    Ok(match earlier(db, user_id, key).await? {
        Some(Earlier::Taken(taken)) => Some(taken),
        _ => None,
    })
}

fn decode(lines: &str) -> Result<Vec<TakenLine>, sqlx::Error> {
    serde_json::from_str(lines).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Puts what `order_id` took back into its cart, in `tx`; false if there is nothing
/// taken to put back (returned already, confirmed, or never taken).
pub async fn give_back_in(tx: &mut Tx, order_id: &str) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    // The guarded update is the claim: a concurrent return waits on the row and then
    // finds it returned.
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE cart_checkouts SET state = 'returned', updated_ms = $2 \
         WHERE order_id = $1 AND state = 'taken' RETURNING user_id, lines",
    )
    .bind(order_id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((user_id, lines)) = row else {
        return Ok(false);
    };
    for TakenLine { line, added_ms } in decode(&lines)? {
        // Merged with a line added since: its name and price are the newer ones, its
        // place in the cart the first.
        sqlx::query(
            "INSERT INTO cart_items (user_id, sku, product_id, name, unit_price, currency, \
             quantity, added_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (user_id, sku) DO UPDATE SET \
             quantity = CASE WHEN cart_items.quantity + excluded.quantity > $10 THEN $10 \
             ELSE cart_items.quantity + excluded.quantity END, \
             added_ms = CASE WHEN excluded.added_ms < cart_items.added_ms \
             THEN excluded.added_ms ELSE cart_items.added_ms END, \
             updated_ms = excluded.updated_ms",
        )
        .bind(&user_id)
        .bind(&line.sku)
        .bind(&line.product_id)
        .bind(&line.name)
        .bind(line.unit_price)
        .bind(&line.currency)
        .bind(line.quantity.min(MAX_QUANTITY))
        .bind(added_ms)
        .bind(now)
        .bind(MAX_QUANTITY)
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

/// [`give_back_in`] in a transaction of its own.
pub async fn give_back(db: &Db, order_id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let returned = give_back_in(&mut tx, order_id).await?;
    tx.commit().await?;
    Ok(returned)
}

/// The order was confirmed: true if it had taken its lines (they are gone for good
/// and the row with them), false if its lines are still in the cart (returned by the
/// sweep before the outcome arrived, or taken by an orders from before checkouts).
pub async fn confirmed(tx: &mut Tx, order_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM cart_checkouts WHERE order_id = $1 AND state = $2")
        .bind(order_id)
        .bind(TAKEN)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 1 {
        return Ok(true);
    }
    sqlx::query("DELETE FROM cart_checkouts WHERE order_id = $1")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(false)
}

/// Gives back every checkout taken before `now` expired (its order's outcome never
/// came), and forgets returned ones older than [`KEEP_RETURNED_MS`]. Returns how
/// many it gave back.
pub async fn sweep(db: &Db, now: i64) -> Result<usize, sqlx::Error> {
    let expired: Vec<(String,)> = sqlx::query_as(
        "SELECT order_id FROM cart_checkouts WHERE state = $1 AND expires_ms < $2 \
         ORDER BY expires_ms LIMIT 500",
    )
    .bind(TAKEN)
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    let mut returned = 0;
    for (order_id,) in expired {
        if give_back(db, &order_id).await? {
            tracing::warn!(%order_id, "no outcome for the order by its deadline; its lines are back in the cart");
            returned += 1;
        }
    }
    sqlx::query("DELETE FROM cart_checkouts WHERE state = 'returned' AND updated_ms < $1")
        .bind(now - KEEP_RETURNED_MS)
        .execute(db.pool())
        .await?;
    Ok(returned)
}
