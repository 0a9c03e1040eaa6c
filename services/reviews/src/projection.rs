//! The projections of the event store: the current reviews and each product's
//! rating summary. A write applies its event to them in the append's transaction;
//! [`rebuild`] makes them again from the whole store, and [`catch_up`] applies what
//! they have not seen (at start, when a projection is missing or behind).

use emporium_contracts::events::RatingSummary;
use emporium_store::{Db, Tx};

use crate::domain::{ReviewEvent, Tally};
use crate::store::{self, Stored};

const NAME: &str = "reviews";
const PAGE: i64 = 1_000;

/// What an event did to its product's rating.
pub struct Applied {
    pub product_id: String,
    pub summary: RatingSummary,
    /// The review's rating after the event (hidden: as it was).
    pub rating: i64,
}

/// Applies one stored event to the projections and records it as applied. An event
/// the review already reflects (its version is not newer) changes nothing.
pub async fn apply(tx: &mut Tx, e: &Stored) -> anyhow::Result<Applied> {
    let held: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT product_id, rating, version FROM reviews WHERE id = $1")
            .bind(&e.stream_id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some((product_id, rating, version)) = held
        && version >= e.version
    {
        let summary = read_tally(&mut **tx, &product_id)
            .await?
            .summary(&product_id);
        return Ok(Applied {
            product_id,
            summary,
            rating,
        });
    }
    let applied = match &e.event {
        ReviewEvent::Added {
            product_id,
            user_id,
            author,
            rating,
            title,
            text,
        } => {
            sqlx::query(
                "INSERT INTO reviews (id, product_id, user_id, author, rating, title, text, hidden, \
                 created_ms, updated_ms, version) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8, $9)",
            )
            .bind(&e.stream_id)
            .bind(product_id)
            .bind(user_id)
            .bind(author)
            .bind(rating)
            .bind(title)
            .bind(text)
            .bind(e.recorded_ms)
            .bind(e.version)
            .execute(&mut **tx)
            .await?;
            let summary = tally(tx, product_id, |t| t.count(*rating, 1)).await?;
            Applied {
                product_id: product_id.clone(),
                summary,
                rating: *rating,
            }
        }
        ReviewEvent::Changed {
            rating,
            title,
            text,
        } => {
            let (product_id, old, hidden) = current(tx, &e.stream_id).await?;
            sqlx::query(
                "UPDATE reviews SET rating = $2, title = $3, text = $4, updated_ms = $5, version = $6 \
                 WHERE id = $1",
            )
            .bind(&e.stream_id)
            .bind(rating)
            .bind(title)
            .bind(text)
            .bind(e.recorded_ms)
            .bind(e.version)
            .execute(&mut **tx)
            .await?;
            let summary = tally(tx, &product_id, |t| {
                if !hidden {
                    t.count(old, -1);
                    t.count(*rating, 1);
                }
            })
            .await?;
            Applied {
                product_id,
                summary,
                rating: *rating,
            }
        }
        ReviewEvent::Hidden { .. } => {
            let (product_id, rating, hidden) = current(tx, &e.stream_id).await?;
            sqlx::query(
                "UPDATE reviews SET hidden = 1, updated_ms = $2, version = $3 WHERE id = $1",
            )
            .bind(&e.stream_id)
            .bind(e.recorded_ms)
            .bind(e.version)
            .execute(&mut **tx)
            .await?;
            let summary = tally(tx, &product_id, |t| {
                if !hidden {
                    t.count(rating, -1);
                }
            })
            .await?;
            Applied {
                product_id,
                summary,
                rating,
            }
        }
    };
    // Appends may commit out of position order (PostgreSQL): never move back.
    sqlx::query(
        "INSERT INTO projection_state (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position \
         WHERE projection_state.position < excluded.position",
    )
    .bind(NAME)
    .bind(e.position)
    .execute(&mut **tx)
    .await?;
    Ok(applied)
}

/// The product, rating and hidden flag of a review in the projection.
async fn current(tx: &mut Tx, id: &str) -> anyhow::Result<(String, i64, bool)> {
    let row: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT product_id, rating, hidden FROM reviews WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let (product, rating, hidden) =
        row.ok_or_else(|| anyhow::anyhow!("review {id} has events but no Added"))?;
    Ok((product, rating, hidden != 0))
}

/// Changes a product's tally with `change`, one version more; its new summary.
async fn tally(
    tx: &mut Tx,
    product_id: &str,
    change: impl FnOnce(&mut Tally),
) -> anyhow::Result<RatingSummary> {
    // Lock the product's row first (creating it if needed): on PostgreSQL a
    // concurrent review of the same product waits here and then reads what the other
    // wrote, so no count is lost; SQLite serialises writers anyway.
    sqlx::query(
        "INSERT INTO rating_summaries (product_id, count, total, h1, h2, h3, h4, h5, version) \
         VALUES ($1, 0, 0, 0, 0, 0, 0, 0, 0) ON CONFLICT (product_id) DO NOTHING",
    )
    .bind(product_id)
    .execute(&mut **tx)
    .await?;
    let row: TallyRow = sqlx::query_as(
        "UPDATE rating_summaries SET version = version WHERE product_id = $1 \
         RETURNING count, total, h1, h2, h3, h4, h5, version",
    )
    .bind(product_id)
    .fetch_one(&mut **tx)
    .await?;
    let mut t = row.tally();
    change(&mut t);
    t.version += 1;
    let [h1, h2, h3, h4, h5] = t.histogram;
    sqlx::query(
        "INSERT INTO rating_summaries (product_id, count, total, h1, h2, h3, h4, h5, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (product_id) DO UPDATE SET count = excluded.count, total = excluded.total, \
         h1 = excluded.h1, h2 = excluded.h2, h3 = excluded.h3, h4 = excluded.h4, \
         h5 = excluded.h5, version = excluded.version",
    )
    .bind(product_id)
    .bind(t.count)
    .bind(t.total)
    .bind(h1)
    .bind(h2)
    .bind(h3)
    .bind(h4)
    .bind(h5)
    .bind(t.version)
    .execute(&mut **tx)
    .await?;
    Ok(t.summary(product_id))
}

/// A product's summary as the projection holds it.
pub async fn summary(db: &Db, product_id: &str) -> Result<RatingSummary, sqlx::Error> {
    Ok(read_tally(db.pool(), product_id).await?.summary(product_id))
}

#[derive(sqlx::FromRow)]
struct TallyRow {
    count: i64,
    total: i64,
    h1: i64,
    h2: i64,
    h3: i64,
    h4: i64,
    h5: i64,
    version: i64,
}

/// A product's tally as stored (empty when it has none).
async fn read_tally<'e, E>(executor: E, product_id: &str) -> Result<Tally, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<TallyRow> = sqlx::query_as(
        "SELECT count, total, h1, h2, h3, h4, h5, version FROM rating_summaries WHERE product_id = $1",
    )
    .bind(product_id)
    .fetch_optional(executor)
    .await?;
    Ok(row.map_or_else(Tally::default, |r| r.tally()))
}

impl TallyRow {
    fn tally(self) -> Tally {
        Tally {
            count: self.count,
            total: self.total,
            histogram: [self.h1, self.h2, self.h3, self.h4, self.h5],
            version: self.version,
        }
    }
}

/// What a rebuild or catch-up did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Replayed {
    pub events: u64,
    pub position: i64,
    pub ms: u64,
}

/// Empties the projections and applies the whole store again, in one transaction:
/// readers see the old projections until it commits.
pub async fn rebuild(db: &Db) -> anyhow::Result<Replayed> {
    let started = std::time::Instant::now();
    let mut tx = db.begin().await?;
    for table in ["DELETE FROM reviews", "DELETE FROM rating_summaries"] {
        sqlx::query(table).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM projection_state WHERE name = $1")
        .bind(NAME)
        .execute(&mut *tx)
        .await?;
    let mut done = replay(&mut tx, 0).await?;
    tx.commit().await?;
    done.ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        events = done.events,
        position = done.position,
        ms = done.ms,
        "projections rebuilt"
    );
    Ok(done)
}

/// Brings the projections up to the store: a full rebuild when they were never
/// built, else the events after the position they reached.
pub async fn catch_up(db: &Db) -> anyhow::Result<Replayed> {
    let mut tx = db.begin().await?;
    let at: Option<(i64,)> =
        sqlx::query_as("SELECT position FROM projection_state WHERE name = $1")
            .bind(NAME)
            .fetch_optional(&mut *tx)
            .await?;
    let head = store::head(&mut tx).await?;
    let Some((at,)) = at else {
        drop(tx);
        return if head == 0 {
            Ok(Replayed::default())
        } else {
            tracing::warn!("the projections were never built; rebuilding them from the store");
            rebuild(db).await
        };
    };
    if at >= head {
        return Ok(Replayed {
            position: at,
            ..Replayed::default()
        });
    }
    tracing::warn!(
        at,
        head,
        "the projections are behind the store; catching up"
    );
    let done = replay(&mut tx, at).await?;
    tx.commit().await?;
    Ok(done)
}

async fn replay(tx: &mut Tx, mut position: i64) -> anyhow::Result<Replayed> {
    let mut events = 0;
    loop {
        let page = store::read_after(tx, position, PAGE).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for e in &page {
            apply(tx, e).await?;
        }
        events += page.len() as u64;
        position = last;
    }
    Ok(Replayed {
        events,
        position,
        ms: 0,
    })
}
