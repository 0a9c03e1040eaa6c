//! SQL for carts.

use emporium_store::{Batch, Db, Tx, now_ms};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct LineRow {
    pub sku: String,
    pub product_id: String,
    pub name: String,
    pub unit_price: i64,
    pub currency: String,
    pub quantity: i64,
}

pub async fn lines(db: &Db, user_id: &str) -> Result<Vec<LineRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sku, product_id, name, unit_price, currency, quantity FROM cart_items \
         WHERE user_id = $1 ORDER BY added_ms, sku",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
}

/// Why a line could not be added.
pub enum AddRefused {
    /// The line would exceed the per-line maximum; the quantity it has now.
    TooMany(i64),
    /// The cart already has the most lines allowed.
    Full,
    /// The Idempotency-Key was used before for another SKU or quantity.
    KeyReused,
}

/// An add's Idempotency-Key is kept this long (a day, like the orders'): a
/// repeat within it adds nothing.
pub const KEEP_ADD_KEYS_MS: i64 = 24 * 3_600_000;

/// Records `key` for this add in `tx`: `Some(Ok(false))` when it was recorded
/// before for the same line (the add is done already), `Some(Err(KeyReused))`
/// for another line, `None` when it is new. On PostgreSQL a concurrent add with
/// the same key waits here for the other to commit or roll back.
async fn seen(
    tx: &mut Tx,
    user_id: &str,
    key: &str,
    line: &LineRow,
) -> Result<Option<Result<bool, AddRefused>>, sqlx::Error> {
    let recorded = sqlx::query(
        "INSERT INTO cart_adds (user_id, idempotency_key, sku, quantity, created_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, idempotency_key) DO NOTHING",
    )
    .bind(user_id)
    .bind(key)
    .bind(&line.sku)
    .bind(line.quantity)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    if recorded.rows_affected() == 1 {
        return Ok(None);
    }
    let (sku, quantity): (String, i64) = sqlx::query_as(
        "SELECT sku, quantity FROM cart_adds WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Some(if sku == line.sku && quantity == line.quantity {
        Ok(false)
    } else {
        Err(AddRefused::KeyReused)
    }))
}

/// Forgets add keys older than [`KEEP_ADD_KEYS_MS`].
pub async fn prune_add_keys(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM cart_adds WHERE created_ms < $1")
        .bind(now - KEEP_ADD_KEYS_MS)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Adds `line.quantity` units of a product (a new line or more of an existing one),
/// refreshing the name and price from catalog. With an idempotency `key`, a
/// repeat of an add that was done adds nothing (and a refused add records no
/// key: its repeat is judged afresh). `Ok(true)`: added now; `Ok(false)`: a
/// repeat, nothing added.
///
/// The usual add (a new key, room on the line and in the cart) is one write, one
/// round trip; only when it finds otherwise, having written nothing, is the add
/// judged step by step to say why.
pub async fn add(
    db: &Db,
    user_id: &str,
    line: &LineRow,
    key: Option<&str>,
    max_quantity: i64,
    max_lines: usize,
) -> Result<Result<bool, AddRefused>, sqlx::Error> {
    if add_in_one(db, user_id, line, key, max_quantity, max_lines).await? {
        return Ok(Ok(true));
    }
    add_step_by_step(db, user_id, line, key, max_quantity, max_lines).await
}

/// The usual add as one [`Db::write`]: the key recorded and the line added or
/// grown, each required to change one row. False, with nothing written, when
/// either did not: the key was used before, the line would pass `max_quantity`,
/// or a new line finds `max_lines` in the cart.
async fn add_in_one(
    db: &Db,
    user_id: &str,
    line: &LineRow,
    key: Option<&str>,
    max_quantity: i64,
    max_lines: usize,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let mut batch = db.batch();
    if let Some(key) = key {
        batch
            .push(
                "INSERT INTO cart_adds (user_id, idempotency_key, sku, quantity, created_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, idempotency_key) DO NOTHING",
            )
            .bind(user_id)
            .bind(key)
            .bind(line.sku.as_str())
            .bind(line.quantity)
            .bind(now)
            .require_one();
    }
    upsert(&mut batch, user_id, line, now, max_quantity, max_lines).require_one();
    Ok(db.write(batch).await?.is_some())
}

/// Adds to `batch` the line's upsert: a new line, inserted only where the cart
/// has room for it, or more of an existing one within `max_quantity` (its name
/// and price refreshed). It changes one row, or none when there is no room.
/// (SQLite needs the SELECT's WHERE to read the ON CONFLICT after it rightly.)
/// A line that did not exist when the add looked may have been added by a
/// concurrent request since (a row lock cannot cover a missing row): then the
/// insert turns into adding to it, instead of a primary-key error. On
/// PostgreSQL the conflict waits for the other transaction and the WHERE is
/// evaluated against the row it committed.
fn upsert<'b>(
    batch: &'b mut Batch,
    user_id: &str,
    line: &LineRow,
    now: i64,
    max_quantity: i64,
    max_lines: usize,
) -> &'b mut Batch {
    batch
        .push(
            "INSERT INTO cart_items (user_id, sku, product_id, name, unit_price, currency, \
             quantity, added_ms, updated_ms) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8 \
             WHERE EXISTS (SELECT 1 FROM cart_items WHERE user_id = $1 AND sku = $2) \
             OR (SELECT COUNT(*) FROM cart_items WHERE user_id = $1) < $10 \
             ON CONFLICT (user_id, sku) DO UPDATE SET \
             quantity = cart_items.quantity + excluded.quantity, name = excluded.name, \
             unit_price = excluded.unit_price, currency = excluded.currency, \
             updated_ms = excluded.updated_ms \
             WHERE cart_items.quantity + excluded.quantity <= $9",
        )
        .bind(user_id)
        .bind(line.sku.as_str())
        .bind(line.product_id.as_str())
        .bind(line.name.as_str())
        .bind(line.unit_price)
        .bind(line.currency.as_str())
        .bind(line.quantity)
        .bind(now)
        .bind(max_quantity)
        .bind(i64::try_from(max_lines).unwrap_or(i64::MAX))
}

/// An add read and decided one statement at a time, in one transaction: what
/// answers the adds [`add_in_one`] does not make.
async fn add_step_by_step(
    db: &Db,
    user_id: &str,
    line: &LineRow,
    key: Option<&str>,
    max_quantity: i64,
    max_lines: usize,
) -> Result<Result<bool, AddRefused>, sqlx::Error> {
    let mut tx = db.begin().await?;
    if let Some(key) = key
        && let Some(done) = seen(&mut tx, user_id, key, line).await?
    {
        tx.rollback().await?;
        return Ok(done);
    }
    // A locking read (a no-op UPDATE ... RETURNING, on both engines): on PostgreSQL a
    // concurrent add of the same line waits here and then sees this one's quantity,
    // so the per-line maximum is answered as TooMany rather than a CHECK violation.
    let existing: Option<(i64,)> = sqlx::query_as(
        "UPDATE cart_items SET updated_ms = updated_ms WHERE user_id = $1 AND sku = $2 \
         RETURNING quantity",
    )
    .bind(user_id)
    .bind(&line.sku)
    .fetch_optional(&mut *tx)
    .await?;
    match existing {
        Some((have,)) if have + line.quantity > max_quantity => {
            return Ok(Err(AddRefused::TooMany(have)));
        }
        Some(_) => {}
        None => {
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM cart_items WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if count as usize >= max_lines {
                return Ok(Err(AddRefused::Full));
            }
        }
    }
    // One upsert for both cases, as `add_in_one` makes it (see `upsert`).
    let mut batch = tx.batch();
    upsert(&mut batch, user_id, line, now_ms(), max_quantity, max_lines);
    let done = tx.run(batch).await?;
    if done.first() != Some(&1) {
        // The line exists (the upsert's conflict locked it) and would exceed the
        // maximum: report the quantity it has now. No line: a concurrent add
        // took the cart's last room since it was counted (PostgreSQL).
        let have: Option<(i64,)> =
            sqlx::query_as("SELECT quantity FROM cart_items WHERE user_id = $1 AND sku = $2")
                .bind(user_id)
                .bind(&line.sku)
                .fetch_optional(&mut *tx)
                .await?;
        return Ok(Err(match have {
            Some((have,)) => AddRefused::TooMany(have),
            None => AddRefused::Full,
        }));
    }
    tx.commit().await?;
    Ok(Ok(true))
}

/// Sets a line's quantity; false when the cart has no such line.
pub async fn set_quantity(
    db: &Db,
    user_id: &str,
    sku: &str,
    quantity: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE cart_items SET quantity = $3, updated_ms = $4 WHERE user_id = $1 AND sku = $2",
    )
    .bind(user_id)
    .bind(sku)
    .bind(quantity)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes a line; false when the cart had no such line.
pub async fn remove(db: &Db, user_id: &str, sku: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND sku = $2")
        .bind(user_id)
        .bind(sku)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_service("cart", dir.path(), None)
            .await
            .expect("db");
        db.migrate_all(&crate::MIGRATIONS).await.expect("migrate");
        (dir, db)
    }

    fn line(sku: &str, quantity: i64) -> LineRow {
        LineRow {
            sku: sku.into(),
            product_id: format!("p-{sku}"),
            name: sku.into(),
            unit_price: 100,
            currency: "USD".into(),
            quantity,
        }
    }

    async fn in_one(db: &Db, sku: &str, quantity: i64, key: Option<&str>) -> bool {
        add_in_one(db, "ann", &line(sku, quantity), key, 10, 2)
            .await
            .expect("write")
    }

    async fn keys(db: &Db) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM cart_adds")
            .fetch_one(db.pool())
            .await
            .expect("count");
        n
    }

    /// The usual adds are made in one write; every other one leaves it to the
    /// step-by-step add, with nothing written (not even its key).
    #[tokio::test]
    async fn the_usual_add_is_one_write_and_the_rest_write_nothing() {
        let (_dir, db) = db().await;
        assert!(in_one(&db, "a", 4, Some("k1")).await, "a new line");
        assert!(
            in_one(&db, "a", 6, None).await,
            "more of a line, up to its most"
        );
        assert!(in_one(&db, "b", 1, Some("k2")).await, "a second line");
        let cart = || async { lines(&db, "ann").await.expect("lines") };
        let before: Vec<(String, i64)> = cart()
            .await
            .into_iter()
            .map(|l| (l.sku, l.quantity))
            .collect();
        assert_eq!(before, vec![("a".into(), 10), ("b".into(), 1)]);
        assert_eq!(keys(&db).await, 2);
        assert!(
            !in_one(&db, "a", 1, Some("k3")).await,
            "past the line's most"
        );
        assert!(
            !in_one(&db, "c", 1, Some("k4")).await,
            "a third line in a cart of two"
        );
        assert!(!in_one(&db, "b", 1, Some("k1")).await, "a key used before");
        let after: Vec<(String, i64)> = cart()
            .await
            .into_iter()
            .map(|l| (l.sku, l.quantity))
            .collect();
        assert_eq!(after, before);
        assert_eq!(keys(&db).await, 2, "a refused add records no key");
        // The step-by-step add then says why.
        let why = add(&db, "ann", &line("c", 1), Some("k4"), 10, 2)
            .await
            .expect("add");
        assert!(matches!(why, Err(AddRefused::Full)));
        let why = add(&db, "ann", &line("a", 1), None, 10, 2)
            .await
            .expect("add");
        assert!(matches!(why, Err(AddRefused::TooMany(10))));
        let repeat = add(&db, "ann", &line("a", 4), Some("k1"), 10, 2)
            .await
            .expect("add");
        assert!(matches!(repeat, Ok(false)), "a repeat adds nothing");
    }
}
