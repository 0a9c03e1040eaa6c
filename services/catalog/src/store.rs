//! SQL for the catalog's own tables.

use emporium_contracts::events::{ProductCreated, ProductUpdated};
use emporium_events::{EventsError, Outbox, SnapshotItem};
use emporium_store::Db;
use futures::future::BoxFuture;
use sqlx::FromRow;

use crate::domain::{Listing, Sort};
use crate::seed;

#[derive(Debug, Clone, FromRow)]
pub struct ProductRow {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category_id: String,
    pub price_minor: i64,
    pub currency: String,
    pub image_url: String,
    pub attributes: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct CategoryRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub product_count: i64,
}

// One static statement per order: the filters are `($n IS NULL OR ...)`, so every
// statement is prepared once and cached, with no SQL built at run time. Parameters:
// $1 category, $2 min price, $3 max price, $4 the page size, $5 and $6 the sort key
// and id of the previous page's last item (NULL on the first page). Parameters
// repeat rather than being bound twice, so each gets its type from a comparison.
macro_rules! listing {
    ($key:literal, $cmp:literal, $dir:literal) => {
        concat!(
            "SELECT id, sku, name, description, category_id, price_minor, currency, image_url, attributes, created_at_ms, updated_at_ms, version
             FROM products
             WHERE ($1 IS NULL OR category_id = $1)
               AND ($2 IS NULL OR price_minor >= $2)
               AND ($3 IS NULL OR price_minor <= $3)
               AND ($5 IS NULL OR (", $key, ", id) ", $cmp, " ($5, $6))
             ORDER BY ", $key, " ", $dir, ", id ", $dir, "
             LIMIT $4"
        )
    };
}

const LIST_PRICE_ASC: &str = listing!("price_minor", ">", "ASC");
const LIST_PRICE_DESC: &str = listing!("price_minor", "<", "DESC");
const LIST_NAME_ASC: &str = listing!("name", ">", "ASC");
const LIST_NAME_DESC: &str = listing!("name", "<", "DESC");

/// One page of products (`limit + 1` rows are read to know whether more follow).
pub async fn list(db: &Db, q: &Listing) -> Result<Vec<ProductRow>, sqlx::Error> {
    let sql = match q.sort {
        Sort::PriceAsc => LIST_PRICE_ASC,
        Sort::PriceDesc => LIST_PRICE_DESC,
        Sort::NameAsc => LIST_NAME_ASC,
        Sort::NameDesc => LIST_NAME_DESC,
    };
    let query = sqlx::query_as::<_, ProductRow>(sql)
        .bind(q.category.clone())
        .bind(q.min_price)
        .bind(q.max_price)
        .bind(i64::from(q.limit) + 1);
    let after_id = q.after.as_ref().map(|c| c.id.clone());
    let query = match q.sort {
        Sort::PriceAsc | Sort::PriceDesc => query.bind(q.after.as_ref().and_then(|c| c.price)),
        Sort::NameAsc | Sort::NameDesc => query.bind(q.after.as_ref().and_then(|c| c.name.clone())),
    };
    query.bind(after_id).fetch_all(db.pool()).await
}

/// How many products match the listing's filters (all pages).
pub async fn count(db: &Db, q: &Listing) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM products
         WHERE ($1 IS NULL OR category_id = $1)
           AND ($2 IS NULL OR price_minor >= $2)
           AND ($3 IS NULL OR price_minor <= $3)",
    )
    .bind(q.category.clone())
    .bind(q.min_price)
    .bind(q.max_price)
    .fetch_one(db.pool())
    .await?;
    Ok(n)
}

pub async fn by_id(db: &Db, id: &str) -> Result<Option<ProductRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, sku, name, description, category_id, price_minor, currency, image_url, attributes, created_at_ms, updated_at_ms, version
         FROM products WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await
}

/// A product read inside a write transaction, for read-modify-write, with its row
/// locked: a no-op `UPDATE ... RETURNING` (no `FOR UPDATE`, which SQLite rejects). On
/// PostgreSQL a concurrent edit of the same product waits here until this transaction
/// ends and then reads what it wrote, so no update is lost and the old price published
/// is the one really replaced; on SQLite `BEGIN IMMEDIATE` already serialises writers.
pub async fn by_id_in(tx: &mut Tx, id: &str) -> Result<Option<ProductRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE products SET updated_at_ms = updated_at_ms WHERE id = $1
         RETURNING id, sku, name, description, category_id, price_minor, currency, image_url, attributes, created_at_ms, updated_at_ms, version",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub use emporium_store::Tx;

pub async fn by_sku(db: &Db, sku: &str) -> Result<Option<ProductRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, sku, name, description, category_id, price_minor, currency, image_url, attributes, created_at_ms, updated_at_ms, version
         FROM products WHERE sku = $1",
    )
    .bind(sku)
    .fetch_optional(db.pool())
    .await
}

/// A page of every product in id order, after `after`: the catalog's snapshot.
pub async fn snapshot_page(
    db: &Db,
    after: &str,
    limit: u32,
) -> Result<Vec<ProductRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, sku, name, description, category_id, price_minor, currency, image_url, attributes, created_at_ms, updated_at_ms, version
         FROM products WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await
}

/// The catalog's snapshot: every product as a `ProductUpdated`, in id order.
pub fn snapshot<'a>(
    db: &'a Db,
    after: &'a str,
    limit: u32,
) -> BoxFuture<'a, anyhow::Result<Vec<SnapshotItem>>> {
    Box::pin(async move {
        let rows = snapshot_page(db, after, limit).await?;
        rows.iter()
            .map(|p| Ok(SnapshotItem::of(p.id.clone(), &updated(p))?))
            .collect()
    })
}

pub async fn categories(db: &Db) -> Result<Vec<CategoryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.name, c.description,
                (SELECT COUNT(*) FROM products p WHERE p.category_id = c.id) AS product_count
         FROM categories c ORDER BY c.name",
    )
    .fetch_all(db.pool())
    .await
}

pub async fn category_exists(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM categories WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.is_some())
}

/// Adds a product and publishes `ProductCreated`, in one transaction.
pub async fn insert(db: &Db, outbox: &Outbox, p: &ProductRow) -> Result<(), EventsError> {
    let mut tx = db.begin().await?;
    insert_in(&mut tx, outbox, p).await?;
    outbox.commit(tx).await?;
    Ok(())
}

/// The event announcing `p`.
fn created(p: &ProductRow) -> ProductCreated {
    ProductCreated {
        product_id: p.id.clone(),
        sku: p.sku.clone(),
        name: p.name.clone(),
        category: p.category_id.clone(),
        price: p.price_minor,
        currency: p.currency.clone(),
        description: p.description.clone(),
        image_url: p.image_url.clone(),
        attributes: serde_json::from_str(&p.attributes).unwrap_or_default(),
        created_ms: p.created_at_ms,
        version: p.version,
    }
}

/// `p`'s whole public view, as events and the snapshot carry it.
pub fn updated(p: &ProductRow) -> ProductUpdated {
    created(p).into()
}

async fn insert_in(tx: &mut Tx, outbox: &Outbox, p: &ProductRow) -> Result<(), EventsError> {
    sqlx::query(
        "INSERT INTO products (id, sku, name, description, category_id, price_minor, currency, image_url, attributes, created_at_ms, updated_at_ms, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&p.id)
    .bind(&p.sku)
    .bind(&p.name)
    .bind(&p.description)
    .bind(&p.category_id)
    .bind(p.price_minor)
    .bind(&p.currency)
    .bind(&p.image_url)
    .bind(&p.attributes)
    .bind(p.created_at_ms)
    .bind(p.updated_at_ms)
    .bind(p.version)
    .execute(&mut **tx)
    .await?;
    outbox.publish(tx, &created(p)).await?;
    Ok(())
}

/// Whether two rows show shoppers the same product (ignoring times and version).
pub fn same_view(a: &ProductRow, b: &ProductRow) -> bool {
    a.name == b.name
        && a.description == b.description
        && a.category_id == b.category_id
        && a.price_minor == b.price_minor
        && a.image_url == b.image_url
        && a.attributes == b.attributes
}

/// Replaces a product's editable fields. False when there is no such product.
pub async fn update(tx: &mut Tx, p: &ProductRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE products SET name = $2, description = $3, category_id = $4, price_minor = $5,
                image_url = $6, attributes = $7, updated_at_ms = $8, version = $9
         WHERE id = $1",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(&p.category_id)
    .bind(p.price_minor)
    .bind(&p.image_url)
    .bind(&p.attributes)
    .bind(p.updated_at_ms)
    .bind(p.version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Seeds the demo catalog into an empty database, in one transaction. Returns how many
/// products it added (0 when the catalog already had categories). Each product is
/// announced with `ProductCreated`, which is how inventory learns of it.
pub async fn seed_if_empty(
    db: &Db,
    outbox: &Outbox,
    currency: &str,
    now_ms: i64,
) -> Result<usize, EventsError> {
    let mut tx = db.begin().await?;
    let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM categories")
        .fetch_one(&mut *tx)
        .await?;
    if existing > 0 {
        return Ok(0);
    }
    // Several instances may start on one fresh PostgreSQL database and all count no
    // categories. The first category is the claim: its insert waits for any other
    // seeding transaction holding that key and then does nothing, and whoever inserted
    // nothing leaves the seeding (all of it, in that transaction) to the other.
    for (i, c) in seed::CATEGORIES.iter().enumerate() {
        let sql = if i == 0 {
            "INSERT INTO categories (id, name, description) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING"
        } else {
            "INSERT INTO categories (id, name, description) VALUES ($1, $2, $3)"
        };
        let done = sqlx::query(sql)
            .bind(c.id)
            .bind(c.name)
            .bind(c.description)
            .execute(&mut *tx)
            .await?;
        if i == 0 && done.rows_affected() == 0 {
            return Ok(0);
        }
    }
    let products = seed::products();
    for p in &products {
        let row = ProductRow {
            id: p.id.clone(),
            sku: p.sku.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            category_id: p.category_id.to_string(),
            price_minor: p.price_minor,
            currency: currency.to_string(),
            image_url: crate::api::image_path(&p.sku),
            attributes: serde_json::to_string(&p.attributes).unwrap_or_else(|_| "{}".into()),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            version: 1,
        };
        insert_in(&mut tx, outbox, &row).await?;
    }
    outbox.commit(tx).await?;
    Ok(products.len())
}
