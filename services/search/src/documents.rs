//! The `documents` table: what search knows of each product, merged from the
//! events of catalog, inventory and reviews, each part only if its version is newer than
//! the one held. Every change takes the next number of the change counter, which is
//! what the indexer follows.

use std::collections::BTreeMap;

use emporium_contracts::events::{ProductUpdated, RatingSummary, StockChanged, StockLevel};
use emporium_store::{Db, Tx, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One product as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Document {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: i64,
    pub currency: String,
    pub image_url: String,
    pub attributes: String,
    pub created_ms: i64,
    pub product_version: Option<i64>,
    pub stock_level: Option<String>,
    pub rating_count: i64,
    pub rating_average: i64,
    pub rating_histogram: String,
    pub changed: i64,
}

/// The columns of [`Document`], for static statements.
macro_rules! columns {
    () => {
        "product_id, sku, name, description, category, price, currency, image_url, attributes, \
         created_ms, product_version, stock_level, rating_count, rating_average, \
         rating_histogram, changed"
    };
}

/// A product's rating, as search shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rating {
    pub count: i64,
    /// Stars, to two decimals; 0 without reviews.
    pub average: f64,
    /// Reviews with 1, 2, 3, 4 and 5 stars.
    pub histogram: [i64; 5],
}

/// A product as search answers it (without the snippet, which depends on the query).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    pub id: String,
    pub sku: String,
    pub name: String,
    /// The category id.
    pub category: String,
    pub price: emporium_contracts::money::Money,
    pub image_url: String,
    pub rating: Rating,
    /// `in_stock`, `low`, `sold_out`, or `unknown` before inventory said.
    pub stock: String,
    /// The description: what snippets are cut from.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub description: String,
}

impl Document {
    /// Whether catalog's view of it arrived (only then is it searchable).
    pub fn searchable(&self) -> bool {
        self.product_version.is_some()
    }

    pub fn attributes(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.attributes).unwrap_or_default()
    }

    pub fn item(&self) -> Item {
        Item {
            id: self.product_id.clone(),
            sku: self.sku.clone(),
            name: self.name.clone(),
            category: self.category.clone(),
            price: emporium_contracts::money::Money::new(self.price, &self.currency),
            image_url: self.image_url.clone(),
            rating: Rating {
                count: self.rating_count,
                average: self.rating_average as f64 / 100.0,
                histogram: serde_json::from_str(&self.rating_histogram).unwrap_or_default(),
            },
            stock: self
                .stock_level
                .clone()
                .unwrap_or_else(|| "unknown".to_string()),
            description: self.description.clone(),
        }
    }

    /// The stock as the index keeps it: 2 in stock, 1 low, 0 sold out, -1 unknown.
    pub fn stock_code(&self) -> i64 {
        match self.stock_level.as_deref() {
            Some("in_stock") => 2,
            Some("low") => 1,
            Some("sold_out") => 0,
            _ => -1,
        }
    }
}

/// Prepares the table's state row with a fresh generation (once per database).
pub async fn init(db: &Db) -> Result<String, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO index_state (id, changes, generation) VALUES (1, 0, $1) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .execute(&mut *tx)
    .await?;
    let (generation,): (String,) =
        sqlx::query_as("SELECT generation FROM index_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(generation)
}

/// The next change number.
async fn next_change(tx: &mut Tx) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "UPDATE index_state SET changes = changes + 1 WHERE id = 1 RETURNING changes",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(n)
}

/// Keeps catalog's view of a product, unless a newer one is held.
pub async fn put_product(tx: &mut Tx, p: &ProductUpdated) -> Result<(), sqlx::Error> {
    let change = next_change(tx).await?;
    sqlx::query(
        "INSERT INTO documents (product_id, sku, name, description, category, price, currency, \
             image_url, attributes, created_ms, product_version, changed, changed_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (product_id) DO UPDATE SET sku = excluded.sku, name = excluded.name, \
             description = excluded.description, category = excluded.category, \
             price = excluded.price, currency = excluded.currency, \
             image_url = excluded.image_url, attributes = excluded.attributes, \
             created_ms = excluded.created_ms, product_version = excluded.product_version, \
             changed = excluded.changed, changed_ms = excluded.changed_ms \
         WHERE documents.product_version IS NULL \
            OR documents.product_version < excluded.product_version",
    )
    .bind(&p.product_id)
    .bind(&p.sku)
    .bind(&p.name)
    .bind(&p.description)
    .bind(&p.category)
    .bind(p.price)
    .bind(&p.currency)
    .bind(&p.image_url)
    .bind(serde_json::to_string(&p.attributes).unwrap_or_else(|_| "{}".into()))
    .bind(p.created_ms)
    .bind(p.version)
    .bind(change)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps inventory's level of a product, unless a newer one is held.
pub async fn put_stock(tx: &mut Tx, s: &StockChanged) -> Result<(), sqlx::Error> {
    let change = next_change(tx).await?;
    sqlx::query(
        "INSERT INTO documents (product_id, sku, available, stock_level, stock_version, changed, changed_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (product_id) DO UPDATE SET available = excluded.available, \
             stock_level = excluded.stock_level, stock_version = excluded.stock_version, \
             changed = excluded.changed, changed_ms = excluded.changed_ms \
         WHERE documents.stock_version < excluded.stock_version",
    )
    .bind(&s.product_id)
    .bind(&s.sku)
    .bind(s.available)
    .bind(StockLevel::of(s.available).as_str())
    .bind(s.version)
    .bind(change)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps reviews' rating of a product, unless a newer one is held.
pub async fn put_rating(tx: &mut Tx, r: &RatingSummary) -> Result<(), sqlx::Error> {
    let change = next_change(tx).await?;
    sqlx::query(
        "INSERT INTO documents (product_id, rating_count, rating_average, rating_histogram, \
             rating_version, changed, changed_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (product_id) DO UPDATE SET rating_count = excluded.rating_count, \
             rating_average = excluded.rating_average, \
             rating_histogram = excluded.rating_histogram, \
             rating_version = excluded.rating_version, \
             changed = excluded.changed, changed_ms = excluded.changed_ms \
         WHERE documents.rating_version < excluded.rating_version",
    )
    .bind(&r.product_id)
    .bind(r.count)
    .bind((r.average * 100.0).round() as i64)
    .bind(serde_json::to_string(&r.histogram).unwrap_or_else(|_| "[0,0,0,0,0]".into()))
    .bind(r.version)
    .bind(change)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The changes after `after`, oldest first.
pub async fn changed_after(db: &Db, after: i64, limit: i64) -> Result<Vec<Document>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM documents WHERE changed > $1 ORDER BY changed LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// The oldest change not yet indexed: (its number, when it was made), if any.
pub async fn oldest_after(db: &Db, after: i64) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT changed, changed_ms FROM documents WHERE changed > $1 ORDER BY changed LIMIT 1",
    )
    .bind(after)
    .fetch_optional(db.pool())
    .await
}
