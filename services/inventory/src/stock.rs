//! Stock and reservations: every change in one write transaction, conditional on the
//! counts, so no interleaving of requests can oversell or lose a unit. A change that
//! moves a SKU across a level shoppers see ([`StockLevel`]) publishes `StockChanged`
//! in the same transaction ([`announce`]).

use std::collections::BTreeMap;

use emporium_contracts::checkout::{Reservation, StockLine};
use emporium_contracts::events::{StockChanged, StockLevel};
use emporium_events::{EventsError, Outbox, SnapshotItem};
use emporium_store::{Db, Tx, now_ms};
use futures::future::BoxFuture;

pub const RESERVED: &str = "reserved";
pub const REJECTED: &str = "rejected";
pub const COMMITTED: &str = "committed";
pub const RELEASED: &str = "released";

/// The stock a new product starts with, derived from its SKU so every fresh shop
/// looks the same: about 4% sold out, 16% scarce (1–5 units), the rest 20–219.
pub fn initial_stock(sku: &str) -> i64 {
    // FNV-1a: stable across platforms and releases, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sku.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    match h % 100 {
        0..4 => 0,
        4..20 => 1 + (h / 100 % 5) as i64,
        _ => 20 + (h / 100 % 200) as i64,
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct StockRow {
    pub sku: String,
    pub available: i64,
}

pub async fn available(db: &Db, sku: &str) -> Result<Option<StockRow>, sqlx::Error> {
    sqlx::query_as("SELECT sku, available FROM stock WHERE sku = $1")
        .bind(sku)
        .fetch_optional(db.pool())
        .await
}

/// Sets the available count of `sku` (restock or correction). None when unknown.
pub async fn set_available(
    db: &Db,
    outbox: &Outbox,
    sku: &str,
    count: i64,
) -> Result<Option<StockRow>, EventsError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE stock SET adjusted = adjusted + ($2 - available), available = $2, updated_ms = $3 \
         WHERE sku = $1",
    )
    .bind(sku)
    .bind(count)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    announce(&mut tx, outbox, sku).await?;
    outbox.commit(tx).await?;
    Ok(available(db, sku).await?)
}

/// What [`announce_row`] needs of a stock row: its product, available count, the
/// level last announced and its version. A statement that changed the row returns
/// it (`RETURNING product_id, available, level, version`) rather than read it again.
pub type Announced = (String, i64, String, i64);

/// Publishes `StockChanged` when `sku`'s level is not the one last announced, in
/// the transaction that changed it.
pub async fn announce(tx: &mut Tx, outbox: &Outbox, sku: &str) -> Result<(), EventsError> {
    let row: Option<Announced> =
        sqlx::query_as("SELECT product_id, available, level, version FROM stock WHERE sku = $1")
            .bind(sku)
            .fetch_optional(&mut **tx)
            .await?;
    match row {
        Some(row) => announce_row(tx, outbox, sku, row).await,
        None => Ok(()),
    }
}

/// [`announce`] for a row as the transaction left it.
pub async fn announce_row(
    tx: &mut Tx,
    outbox: &Outbox,
    sku: &str,
    (product_id, available, announced, version): Announced,
) -> Result<(), EventsError> {
    let level = StockLevel::of(available);
    if level.as_str() == announced {
        return Ok(());
    }
    sqlx::query("UPDATE stock SET level = $2, version = $3 WHERE sku = $1")
        .bind(sku)
        .bind(level.as_str())
        .bind(version + 1)
        .execute(&mut **tx)
        .await?;
    let event = StockChanged {
        sku: sku.to_string(),
        product_id,
        available,
        level,
        version: version + 1,
    };
    outbox.publish(tx, &event).await?;
    Ok(())
}

/// Inventory's snapshot: every SKU's availability as a `StockChanged`, in SKU order.
pub fn snapshot<'a>(
    db: &'a Db,
    after: &'a str,
    limit: u32,
) -> BoxFuture<'a, anyhow::Result<Vec<SnapshotItem>>> {
    Box::pin(async move {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT sku, product_id, available, version FROM stock WHERE sku > $1 \
             ORDER BY sku LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await?;
        rows.into_iter()
            .map(|(sku, product_id, available, version)| {
                let event = StockChanged {
                    sku: sku.clone(),
                    product_id,
                    available,
                    level: StockLevel::of(available),
                    version,
                };
                Ok(SnapshotItem::of(sku, &event)?)
            })
            .collect()
    })
}

pub async fn reservation(db: &Db, order_id: &str) -> Result<Option<Reservation>, sqlx::Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT status, unavailable FROM reservations WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|row| to_reservation(order_id, row)))
}

/// The reservation as seen inside a write transaction, with its row locked: a no-op
/// `UPDATE ... RETURNING` (no `FOR UPDATE`, which SQLite rejects). On PostgreSQL a
/// concurrent commit or release of the same order waits here until this transaction
/// ends and then reads the status it left, so units are never moved twice; on SQLite
/// `BEGIN IMMEDIATE` already serialises writers and this is an ordinary read.
async fn reservation_in(tx: &mut Tx, order_id: &str) -> Result<Option<Reservation>, sqlx::Error> {
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE reservations SET updated_ms = updated_ms WHERE order_id = $1 \
         RETURNING status, unavailable",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|row| to_reservation(order_id, row)))
}

fn to_reservation(order_id: &str, (status, unavailable): (String, String)) -> Reservation {
    Reservation {
        order_id: order_id.to_string(),
        status,
        unavailable: unavailable
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    }
}

async fn insert_reservation(
    tx: &mut Tx,
    order_id: &str,
    status: &str,
    unavailable: &[String],
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO reservations (order_id, status, unavailable, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(order_id)
    .bind(status)
    .bind(unavailable.join(","))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The usual reservation as one write, one round trip: new for the order, and
/// every line leaving its SKU in stock as announced, so there is no
/// `StockChanged` to publish. False, with nothing written, for any other: a
/// reservation the order has (or a release's mark), a line that does not fit, would
/// change its SKU's level or is of a SKU not announced as in stock (never announced
/// yet). [`reserve`] then goes step by step.
async fn reserve_in_one(
    db: &Db,
    order_id: &str,
    wanted: &BTreeMap<&str, i64>,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let mut batch = db.batch();
    batch
        .push(
            "INSERT INTO reservations (order_id, status, unavailable, created_ms, updated_ms) \
             VALUES ($1, $2, '', $3, $3) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(RESERVED)
        .bind(now)
        .require_one();
    for (sku, quantity) in wanted {
        // In stock before and after: more than `LOW` left, announced as in stock.
        batch
            .push(
                "UPDATE stock SET available = available - $2, reserved = reserved + $2, \
                 updated_ms = $3 WHERE sku = $1 AND available - $2 > $4 AND level = $5",
            )
            .bind(*sku)
            .bind(*quantity)
            .bind(now)
            .bind(StockLevel::LOW)
            .bind(StockLevel::InStock.as_str())
            .require_one();
        batch
            .push("INSERT INTO reservation_lines (order_id, sku, quantity) VALUES ($1, $2, $3)")
            .bind(order_id)
            .bind(*sku)
            .bind(*quantity);
    }
    Ok(db.write(batch).await?.is_some())
}

/// Reserves every line for `order_id`, or none of them. Asking again answers the
/// first outcome; an order released before it was ever reserved stays released.
pub async fn reserve(
    db: &Db,
    outbox: &Outbox,
    order_id: &str,
    lines: &[StockLine],
) -> Result<Reservation, EventsError> {
    // Merge duplicate SKUs and lock rows in a stable order.
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for l in lines {
        *wanted.entry(l.sku.as_str()).or_default() += l.quantity;
    }
    if reserve_in_one(db, order_id, &wanted).await? {
        return Ok(Reservation {
            order_id: order_id.to_string(),
            status: RESERVED.into(),
            unavailable: Vec::new(),
        });
    }
    let mut tx = db.begin().await?;
    if let Some(existing) = reservation_in(&mut tx, order_id).await? {
        return Ok(existing);
    }
    let now = now_ms();
    let mut unavailable = Vec::new();
    let mut moved = Vec::with_capacity(wanted.len());
    for (sku, quantity) in &wanted {
        let row: Option<Announced> = sqlx::query_as(
            "UPDATE stock SET available = available - $2, reserved = reserved + $2, updated_ms = $3 \
             WHERE sku = $1 AND available >= $2 RETURNING product_id, available, level, version",
        )
        .bind(*sku)
        .bind(*quantity)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(row) => moved.push(row),
            None => unavailable.push((*sku).to_string()),
        }
    }
    if !unavailable.is_empty() {
        // Undo the lines that fit, and remember the refusal.
        tx.rollback().await?;
        let mut tx = db.begin().await?;
        if let Some(existing) = reservation_in(&mut tx, order_id).await? {
            return Ok(existing);
        }
        insert_reservation(&mut tx, order_id, REJECTED, &unavailable).await?;
        tx.commit().await?;
        return Ok(Reservation {
            order_id: order_id.to_string(),
            status: REJECTED.into(),
            unavailable,
        });
    }
    insert_reservation(&mut tx, order_id, RESERVED, &[]).await?;
    for ((sku, quantity), row) in wanted.iter().zip(moved) {
        sqlx::query("INSERT INTO reservation_lines (order_id, sku, quantity) VALUES ($1, $2, $3)")
            .bind(order_id)
            .bind(*sku)
            .bind(*quantity)
            .execute(&mut *tx)
            .await?;
        announce_row(&mut tx, outbox, sku, row).await?;
    }
    outbox.commit(tx).await?;
    Ok(Reservation {
        order_id: order_id.to_string(),
        status: RESERVED.into(),
        unavailable: Vec::new(),
    })
}

/// What commit or release found.
pub enum Transition {
    Done(Reservation),
    /// No reservation for this order.
    Unknown,
}

/// Turns a reservation into a sale. Idempotent; other states are answered as they are.
pub async fn commit(db: &Db, order_id: &str) -> Result<Transition, sqlx::Error> {
    if commit_in_one(db, order_id).await? {
        return Ok(Transition::Done(Reservation {
            order_id: order_id.to_string(),
            status: COMMITTED.into(),
            unavailable: Vec::new(),
        }));
    }
    let mut tx = db.begin().await?;
    let Some(r) = reservation_in(&mut tx, order_id).await? else {
        return Ok(Transition::Unknown);
    };
    if r.status != RESERVED {
        return Ok(Transition::Done(r));
    }
    move_lines(
        &mut tx,
        order_id,
        "UPDATE stock SET reserved = reserved - $2, sold = sold + $2, updated_ms = $3 WHERE sku = $1 \
         RETURNING product_id, available, level, version",
    )
    .await?;
    set_status(&mut tx, order_id, COMMITTED).await?;
    tx.commit().await?;
    Ok(Transition::Done(Reservation {
        status: COMMITTED.into(),
        ..r
    }))
}

/// The usual commit, of a reservation that is reserved, as one write: its lines
/// read first, outside the write (they never change once reserved), then the
/// status moved and each line's units, in SKU order as [`move_lines`] does.
/// False, with nothing written, when the reservation was not reserved or no
/// lines were found.
async fn commit_in_one(db: &Db, order_id: &str) -> Result<bool, sqlx::Error> {
    let lines = lines_of(db.pool(), order_id).await?;
    // None (an unknown order, or one not yet visible here): a reservation always
    // has lines, so the step-by-step commit reads it in its transaction.
    if lines.is_empty() {
        return Ok(false);
    }
    let now = now_ms();
    let mut batch = db.batch();
    batch
        .push(
            "UPDATE reservations SET status = $2, updated_ms = $3 \
             WHERE order_id = $1 AND status = $4",
        )
        .bind(order_id)
        .bind(COMMITTED)
        .bind(now)
        .bind(RESERVED)
        .require_one();
    for (sku, quantity) in lines {
        batch
            .push(
                "UPDATE stock SET reserved = reserved - $2, sold = sold + $2, updated_ms = $3 \
                 WHERE sku = $1",
            )
            .bind(sku)
            .bind(quantity)
            .bind(now);
    }
    Ok(db.write(batch).await?.is_some())
}

/// Gives reserved (or sold) units back. Idempotent. Releasing an order never
/// reserved leaves a `released` mark, so a reserve arriving late is refused.
pub async fn release(db: &Db, outbox: &Outbox, order_id: &str) -> Result<Reservation, EventsError> {
    let mut tx = db.begin().await?;
    let Some(r) = reservation_in(&mut tx, order_id).await? else {
        insert_reservation(&mut tx, order_id, RELEASED, &[]).await?;
        tx.commit().await?;
        return Ok(Reservation {
            order_id: order_id.to_string(),
            status: RELEASED.into(),
            unavailable: Vec::new(),
        });
    };
    let sql = match r.status.as_str() {
        RESERVED => {
            "UPDATE stock SET reserved = reserved - $2, available = available + $2, updated_ms = $3 \
             WHERE sku = $1 RETURNING product_id, available, level, version"
        }
        COMMITTED => {
            "UPDATE stock SET sold = sold - $2, available = available + $2, updated_ms = $3 \
             WHERE sku = $1 RETURNING product_id, available, level, version"
        }
        _ => return Ok(r),
    };
    for (sku, row) in move_lines(&mut tx, order_id, sql).await? {
        announce_row(&mut tx, outbox, &sku, row).await?;
    }
    set_status(&mut tx, order_id, RELEASED).await?;
    outbox.commit(tx).await?;
    Ok(Reservation {
        status: RELEASED.into(),
        ..r
    })
}

/// Moves the units of each line with `sql` (an `UPDATE` of one SKU's row returning
/// [`Announced`]); returns the SKUs moved, each with its row as left.
async fn move_lines(
    tx: &mut Tx,
    order_id: &str,
    sql: &'static str,
) -> Result<Vec<(String, Announced)>, sqlx::Error> {
    let lines = lines_of(&mut **tx, order_id).await?;
    let now = now_ms();
    let mut moved = Vec::with_capacity(lines.len());
    for (sku, quantity) in lines {
        let row: Option<Announced> = sqlx::query_as(sql)
            .bind(&sku)
            .bind(quantity)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(row) = row {
            moved.push((sku, row));
        }
    }
    Ok(moved)
}

/// A reservation's lines, in SKU order (the order their stock rows are moved in).
async fn lines_of<'e, E>(executor: E, order_id: &str) -> Result<Vec<(String, i64)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query_as("SELECT sku, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY sku")
        .bind(order_id)
        .fetch_all(executor)
        .await
}

async fn set_status(tx: &mut Tx, order_id: &str, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reservations SET status = $2, updated_ms = $3 WHERE order_id = $1")
        .bind(order_id)
        .bind(status)
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_stock_is_deterministic_and_varied() {
        assert_eq!(initial_stock("EMP-0001"), initial_stock("EMP-0001"));
        let counts: Vec<i64> = (0..1200)
            .map(|i| initial_stock(&format!("EMP-{i:04}")))
            .collect();
        let sold_out = counts.iter().filter(|&&c| c == 0).count();
        let scarce = counts.iter().filter(|&&c| (1..=5).contains(&c)).count();
        assert!((20..=80).contains(&sold_out), "a few sold out: {sold_out}");
        assert!((120..=300).contains(&scarce), "some scarce: {scarce}");
    }

    async fn db_with(sku: &str, available: i64) -> (tempfile::TempDir, Db, Outbox) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_service("inventory", dir.path(), None)
            .await
            .expect("db");
        db.migrate_all(&crate::MIGRATIONS).await.expect("migrate");
        sqlx::query(
            "INSERT INTO stock (sku, product_id, available, initial, updated_ms) VALUES ($1, 'p', $2, $2, 0)",
        )
        .bind(sku)
        .bind(available)
        .execute(db.pool())
        .await
        .expect("stock");
        let outbox = Outbox::standalone("inventory", &db).await.expect("outbox");
        (dir, db, outbox)
    }

    fn line(sku: &str, quantity: i64) -> Vec<StockLine> {
        vec![StockLine {
            sku: sku.into(),
            quantity,
        }]
    }

    #[tokio::test]
    async fn concurrent_reservations_never_oversell() {
        let (_dir, db, outbox) = db_with("S", 10).await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let db = db.clone();
            let outbox = outbox.clone();
            tasks.push(tokio::spawn(async move {
                reserve(&db, &outbox, &format!("o{i}"), &line("S", 1)).await
            }));
        }
        let mut reserved = 0;
        for t in tasks {
            if t.await.expect("join").expect("reserve").status == RESERVED {
                reserved += 1;
            }
        }
        assert_eq!(reserved, 10);
        assert_eq!(
            available(&db, "S")
                .await
                .expect("read")
                .expect("row")
                .available,
            0
        );
    }

    #[tokio::test]
    async fn every_step_is_idempotent_and_conserves_units() {
        let (_dir, db, outbox) = db_with("S", 5).await;
        let two = line("S", 2);
        assert_eq!(
            reserve(&db, &outbox, "a", &two).await.expect("r").status,
            RESERVED
        );
        assert_eq!(
            reserve(&db, &outbox, "a", &two).await.expect("r").status,
            RESERVED
        );
        assert_eq!(
            available(&db, "S")
                .await
                .expect("r")
                .expect("row")
                .available,
            3
        );
        let rejected = reserve(&db, &outbox, "b", &line("S", 4)).await.expect("r");
        assert_eq!(
            (rejected.status.as_str(), rejected.unavailable),
            (REJECTED, vec!["S".to_string()])
        );
        assert!(
            matches!(commit(&db, "a").await.expect("c"), Transition::Done(r) if r.status == COMMITTED)
        );
        assert!(
            matches!(commit(&db, "a").await.expect("c"), Transition::Done(r) if r.status == COMMITTED)
        );
        assert!(matches!(
            commit(&db, "zzz").await.expect("c"),
            Transition::Unknown
        ));
        // A committed sale released (compensation after commit) goes back on the shelf.
        assert_eq!(
            release(&db, &outbox, "a").await.expect("rel").status,
            RELEASED
        );
        assert_eq!(
            release(&db, &outbox, "a").await.expect("rel").status,
            RELEASED
        );
        assert_eq!(
            available(&db, "S")
                .await
                .expect("r")
                .expect("row")
                .available,
            5
        );
        // Released first: a late reserve is refused.
        assert_eq!(
            release(&db, &outbox, "late").await.expect("rel").status,
            RELEASED
        );
        assert_eq!(
            reserve(&db, &outbox, "late", &two).await.expect("r").status,
            RELEASED
        );
        let (a, r, s): (i64, i64, i64) =
            sqlx::query_as("SELECT available, reserved, sold FROM stock WHERE sku = 'S'")
                .fetch_one(db.pool())
                .await
                .expect("row");
        assert_eq!((a, r, s), (5, 0, 0));
    }

    /// The levels announced for SKU `S`, oldest first, as (available, level, version).
    async fn announced(db: &Db) -> Vec<(i64, String, i64)> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT data FROM outbox WHERE type = $1 ORDER BY seq")
                .bind(<StockChanged as emporium_contracts::events::EventData>::TYPE)
                .fetch_all(db.pool())
                .await
                .expect("outbox");
        rows.into_iter()
            .map(|(data,)| {
                let e: StockChanged = serde_json::from_str(&data).expect("event");
                (e.available, e.level.as_str().to_string(), e.version)
            })
            .collect()
    }

    #[tokio::test]
    async fn stock_changed_is_published_when_the_level_changes_and_only_then() {
        let (_dir, db, outbox) = db_with("S", 8).await;
        // As the product's creation left it: announced in stock.
        sqlx::query("UPDATE stock SET level = 'in_stock', version = 1")
            .execute(db.pool())
            .await
            .expect("level");
        // 8 -> 7: still in stock, nothing to say.
        reserve(&db, &outbox, "a", &line("S", 1)).await.expect("r");
        assert!(announced(&db).await.is_empty());
        // 7 -> 4: low.
        reserve(&db, &outbox, "b", &line("S", 3)).await.expect("r");
        // 4 -> 0: sold out; then back to 4 when "b" is released: low again.
        reserve(&db, &outbox, "c", &line("S", 4)).await.expect("r");
        release(&db, &outbox, "c").await.expect("release");
        // A restock to 50: in stock.
        set_available(&db, &outbox, "S", 50).await.expect("set");
        set_available(&db, &outbox, "S", 49).await.expect("set");
        assert_eq!(
            announced(&db).await,
            vec![
                (4, "low".into(), 2),
                (0, "sold_out".into(), 3),
                (4, "low".into(), 4),
                (50, "in_stock".into(), 5),
            ]
        );
    }

    /// The usual reservation and commit are one write each; every other one is
    /// left to the step-by-step path with nothing written.
    #[tokio::test]
    async fn the_usual_reservation_and_commit_are_one_write_each() {
        let (_dir, db, _outbox) = db_with("S", 20).await;
        sqlx::query("UPDATE stock SET level = 'in_stock', version = 1")
            .execute(db.pool())
            .await
            .expect("level");
        let wanted = |quantity: i64| BTreeMap::from([("S", quantity)]);
        let reserve = |order: &'static str, quantity: i64| {
            let db = db.clone();
            async move {
                reserve_in_one(&db, order, &wanted(quantity))
                    .await
                    .expect("write")
            }
        };
        assert!(reserve("a", 4).await, "in stock before and after");
        assert!(!reserve("a", 1).await, "the order has its reservation");
        assert!(
            !reserve("b", 11).await,
            "would leave it low: announced step by step"
        );
        assert!(!reserve("c", 21).await, "does not fit");
        let commit = |order: &'static str| {
            let db = db.clone();
            async move { commit_in_one(&db, order).await.expect("write") }
        };
        assert!(commit("a").await);
        assert!(!commit("a").await, "committed already");
        assert!(!commit("b").await, "never reserved");
        let units: (i64, i64, i64) =
            sqlx::query_as("SELECT available, reserved, sold FROM stock WHERE sku = 'S'")
                .fetch_one(db.pool())
                .await
                .expect("row");
        assert_eq!(units, (16, 0, 4));
        let rows: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM reservations), (SELECT COUNT(*) FROM reservation_lines)",
        )
        .fetch_one(db.pool())
        .await
        .expect("counts");
        assert_eq!(
            rows,
            (1, 1),
            "nothing written by the writes that were not made"
        );
        // Two SKUs, the second one short: the first one's units are not moved.
        sqlx::query(
            "INSERT INTO stock (sku, product_id, available, initial, updated_ms, level) \
             VALUES ('T', 't', 3, 3, 0, 'in_stock'), ('U', 'u', 50, 50, 0, '')",
        )
        .execute(db.pool())
        .await
        .expect("more stock");
        let both = BTreeMap::from([("S", 2), ("T", 4)]);
        assert!(!reserve_in_one(&db, "d", &both).await.expect("write"));
        // A SKU never announced is left to the step-by-step reservation, which
        // announces it.
        let never = BTreeMap::from([("U", 1)]);
        assert!(!reserve_in_one(&db, "f", &never).await.expect("write"));
        let units: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT sku, available, reserved FROM stock ORDER BY sku")
                .fetch_all(db.pool())
                .await
                .expect("rows");
        let expected: Vec<(String, i64, i64)> =
            vec![("S".into(), 16, 0), ("T".into(), 3, 0), ("U".into(), 50, 0)];
        assert_eq!(units, expected);
        let rows: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM reservations), (SELECT COUNT(*) FROM reservation_lines)",
        )
        .fetch_one(db.pool())
        .await
        .expect("counts");
        assert_eq!(rows, (1, 1));
    }
}
