//! SQL for orders, their lines and timelines. Every write of the saga is one
//! transaction: the step it reached (conditional on the step it leaves) when it
//! moved, the timeline entries on the way, and (at the end) the outbox event. The
//! writes are added to a [`Batch`], sent in one round trip on SQLite.

use emporium_contracts::events::OrderLine;
use emporium_store::{Batch, Db, now_ms};

pub const PENDING: &str = "PENDING";
pub const CONFIRMED: &str = "CONFIRMED";
pub const CANCELLED: &str = "CANCELLED";

/// Saga steps.
pub mod step {
    pub const RESERVE: &str = "reserve";
    pub const AUTHORIZE: &str = "authorize";
    pub const COMPLETE: &str = "complete";
    pub const COMPENSATE: &str = "compensate";
    pub const DONE: &str = "done";
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: String,
    pub user_id: String,
    pub idempotency_key: String,
    pub request_hash: String,
    pub status: String,
    pub step: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub total: i64,
    pub currency: String,
    pub card_brand: String,
    pub card_last4: String,
    pub shipping: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub deadline_ms: i64,
}

macro_rules! select_orders {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, idempotency_key, request_hash, status, step, reason, detail, \
             total, currency, card_brand, card_last4, shipping, created_ms, updated_ms, \
             deadline_ms FROM orders ",
            $rest
        )
    };
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimelineRow {
    pub at_ms: i64,
    pub event: String,
    pub detail: String,
}

/// Adds to `batch` the insert of a new order owned by `owner` (the instance that
/// will drive its saga) until `owner_until`, with its lines and first timeline entry.
pub fn insert(
    batch: &mut Batch,
    order: &OrderRow,
    lines: &[OrderLine],
    owner: &str,
    owner_until: i64,
) {
    batch
        .push(
            "INSERT INTO orders (id, user_id, idempotency_key, request_hash, status, step, total, \
             currency, card_brand, card_last4, shipping, created_ms, updated_ms, deadline_ms, \
             owner, owner_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15)",
        )
        .bind(&order.id)
        .bind(&order.user_id)
        .bind(&order.idempotency_key)
        .bind(&order.request_hash)
        .bind(&order.status)
        .bind(&order.step)
        .bind(order.total)
        .bind(&order.currency)
        .bind(&order.card_brand)
        .bind(&order.card_last4)
        .bind(&order.shipping)
        .bind(order.created_ms)
        .bind(order.deadline_ms)
        .bind(owner)
        .bind(owner_until);
    for l in lines {
        batch
            .push(
                "INSERT INTO order_lines (order_id, sku, product_id, name, unit_price, quantity) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&order.id)
            .bind(&l.sku)
            .bind(&l.product_id)
            .bind(&l.name)
            .bind(l.unit_price)
            .bind(l.quantity);
    }
    note(batch, &order.id, "placed", "");
}

/// Adds a timeline entry to `batch`.
pub fn note(batch: &mut Batch, order_id: &str, event: &str, detail: &str) {
    note_at(batch, order_id, now_ms(), event, detail);
}

/// Adds to `batch` the timeline entry `event` of `order_id` as it happened at
/// `at_ms` (an entry the saga kept in memory until its next write).
pub fn note_at(batch: &mut Batch, order_id: &str, at_ms: i64, event: &str, detail: &str) {
    batch
        .push(
            "INSERT INTO order_timeline (order_id, seq, at_ms, event, detail) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM order_timeline WHERE order_id = $1), $2, $3, $4)",
        )
        .bind(order_id)
        .bind(at_ms)
        .bind(event)
        .bind(detail);
}

/// Adds to `batch` the move of the saga of `order_id` from step `from` to `to` at
/// `now`, required: when the order was not at `from` (someone else moved it), the
/// write is undone.
pub fn advance(
    batch: &mut Batch,
    order_id: &str,
    from: &str,
    to: &str,
    status: Option<&str>,
    now: i64,
) {
    batch
        .push(
            "UPDATE orders SET step = $3, status = COALESCE($4, status), updated_ms = $5 \
             WHERE id = $1 AND step = $2",
        )
        .bind(order_id)
        .bind(from)
        .bind(to)
        .bind(status)
        .bind(now)
        .require_one();
}

/// Adds to `batch` the start of a compensation, with the reason the order will be
/// cancelled for; required, as [`advance`].
pub fn start_compensation(
    batch: &mut Batch,
    order_id: &str,
    from: &str,
    reason: &str,
    detail: &str,
) {
    batch
        .push(
            "UPDATE orders SET step = $3, reason = $4, detail = $5, updated_ms = $6 \
             WHERE id = $1 AND step = $2",
        )
        .bind(order_id)
        .bind(from)
        .bind(crate::store::step::COMPENSATE)
        .bind(reason)
        .bind(detail)
        .bind(now_ms())
        .require_one();
}

pub async fn get(db: &Db, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(select_orders!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

pub async fn by_key(db: &Db, user_id: &str, key: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(select_orders!(
        "WHERE user_id = $1 AND idempotency_key = $2"
    ))
    .bind(user_id)
    .bind(key)
    .fetch_optional(db.pool())
    .await
}

/// Which orders a listing shows: one user's (or everyone's, for the back office),
/// in one status or any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub user_id: Option<&'a str>,
    pub status: Option<&'a str>,
}

impl Filter<'_> {
    /// The filter's binds: empty text matches anything.
    fn binds(&self) -> (&str, &str) {
        (self.user_id.unwrap_or(""), self.status.unwrap_or(""))
    }
}

/// Orders matching `filter`, newest first, after the keyset cursor `(created_ms, id)`.
pub async fn page(
    db: &Db,
    filter: Filter<'_>,
    before: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    let (user, status) = filter.binds();
    let (ms, id) = match &before {
        Some((ms, id)) => (Some(*ms), Some(id.as_str())),
        None => (None, None),
    };
    // A shopper's listing keeps to the user index; everyone's (the back office)
    // is its own statement.
    let sql = if filter.user_id.is_some() {
        select_orders!(
            "WHERE user_id = $1 AND ($2 = '' OR status = $2) \
               AND ($3 IS NULL OR created_ms < $3 OR (created_ms = $3 AND id < $4)) \
             ORDER BY created_ms DESC, id DESC LIMIT $5"
        )
    } else {
        select_orders!(
            "WHERE $1 = '' AND ($2 = '' OR status = $2) \
               AND ($3 IS NULL OR created_ms < $3 OR (created_ms = $3 AND id < $4)) \
             ORDER BY created_ms DESC, id DESC LIMIT $5"
        )
    };
    sqlx::query_as(sql)
        .bind(user)
        .bind(status)
        .bind(ms)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await
}

pub async fn count(db: &Db, filter: Filter<'_>) -> Result<i64, sqlx::Error> {
    let (user, status) = filter.binds();
    let sql = if filter.user_id.is_some() {
        "SELECT COUNT(*) FROM orders WHERE user_id = $1 AND ($2 = '' OR status = $2)"
    } else {
        "SELECT COUNT(*) FROM orders WHERE $1 = '' AND ($2 = '' OR status = $2)"
    };
    let (n,): (i64,) = sqlx::query_as(sql)
        .bind(user)
        .bind(status)
        .fetch_one(db.pool())
        .await?;
    Ok(n)
}

/// How the orders last changed since `since_ms` ended: `(status, reason, orders)`.
pub async fn outcomes(
    db: &Db,
    since_ms: i64,
) -> Result<Vec<(String, Option<String>, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, reason, COUNT(*) FROM orders WHERE updated_ms >= $1 \
         GROUP BY status, reason ORDER BY status, reason",
    )
    .bind(since_ms)
    .fetch_all(db.pool())
    .await
}

pub async fn lines(db: &Db, order_id: &str) -> Result<Vec<OrderLine>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT sku, product_id, name, unit_price, quantity FROM order_lines \
         WHERE order_id = $1 ORDER BY sku",
    )
    .bind(order_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, product_id, name, unit_price, quantity)| OrderLine {
            sku,
            product_id,
            name,
            unit_price,
            quantity,
        })
        .collect())
}

pub async fn timeline(db: &Db, order_id: &str) -> Result<Vec<TimelineRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at_ms, event, detail FROM order_timeline WHERE order_id = $1 ORDER BY seq",
    )
    .bind(order_id)
    .fetch_all(db.pool())
    .await
}

/// Orders whose saga has not finished and that `me` may drive: their owner's
/// lease ran out (it crashed or stopped), or `me` owned them before a restart.
pub async fn in_flight(
    db: &Db,
    me: &str,
    now: i64,
    limit: u32,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM orders WHERE step <> $1 AND (owner_until < $2 OR owner = $3) \
         ORDER BY updated_ms LIMIT $4",
    )
    .bind(step::DONE)
    .bind(now)
    .bind(me)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Makes `me` the owner of an unfinished order whose owner's lease ran out (or
/// that `me` owned already); false when another instance holds it.
pub async fn take_over(
    db: &Db,
    id: &str,
    me: &str,
    until: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET owner = $2, owner_until = $3 \
         WHERE id = $1 AND step <> $5 AND (owner_until < $4 OR owner = $2)",
    )
    .bind(id)
    .bind(me)
    .bind(until)
    .bind(now)
    .bind(step::DONE)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends `me`'s ownership of an order; false when `me` no longer owns it.
pub async fn renew(db: &Db, id: &str, me: &str, until: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE orders SET owner_until = $3 WHERE id = $1 AND owner = $2")
        .bind(id)
        .bind(me)
        .bind(until)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}
