//! Retention: outbox rows and processed-event ids do not pile up forever.
//!
//! Every `events.prune_every_ms` a service deletes the outbox rows older than
//! `events.retention_ms` — only a prefix of the outbox, and on JetStream only rows the
//! relay has published — and remembers the highest sequence number it pruned
//! (`outbox_pruned`), which the feed serves with every page. A reader whose cursor is
//! below it has missed events: a projection loads the producer's snapshot again;
//! any other consumer of the feed records the gap (`event_gaps`, the
//! `emporium_events_gap_events_total` counter, `emporium events lag`) and goes on
//! from what is still there, loudly. (On JetStream the streams keep events as long,
//! and a durable consumer whose events aged out is not detected yet.) Processed-event ids older than the retention are
//! deleted too: a redelivery that late is not expected from either transport.

use std::time::Duration;

use emporium_store::{Db, Tx, now_ms};
use tokio::sync::watch;

use crate::consumer::pause;

/// The highest outbox sequence number pruned (0: none).
pub(crate) async fn pruned_through(db: &Db) -> Result<i64, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT through FROM outbox_pruned WHERE id = 1")
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map_or(0, |(t,)| t))
}

/// What one pruning removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub processed: u64,
    /// The highest sequence number pruned so far.
    pub through: i64,
}

/// Prunes what is older than `retention` now; `relayed_only` keeps rows the
/// JetStream relay has not published.
pub async fn prune(
    db: &Db,
    retention: Duration,
    relayed_only: bool,
) -> Result<Pruned, sqlx::Error> {
    let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
    let mut tx = db.begin().await?;
    // Only a prefix: the rows below the first one that must stay.
    let (keep_from,): (Option<i64>,) = if relayed_only {
        sqlx::query_as("SELECT MIN(seq) FROM outbox WHERE time_ms >= $1 OR sent_ms IS NULL")
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?
    } else {
        sqlx::query_as("SELECT MIN(seq) FROM outbox WHERE time_ms >= $1")
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?
    };
    let (last,): (Option<i64>,) = sqlx::query_as("SELECT MAX(seq) FROM outbox")
        .fetch_one(&mut *tx)
        .await?;
    let through = match (keep_from, last) {
        (Some(keep), _) => keep - 1,
        (None, Some(last)) => last,
        (None, None) => 0,
    };
    let outbox = sqlx::query("DELETE FROM outbox WHERE seq <= $1")
        .bind(through)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if outbox > 0 {
        record_pruned(&mut tx, through).await?;
    }
    let processed = sqlx::query("DELETE FROM processed_events WHERE processed_ms < $1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Pruned {
        outbox,
        processed,
        through: pruned_through(db).await?,
    })
}

async fn record_pruned(tx: &mut Tx, through: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox_pruned (id, through) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET through = excluded.through \
         WHERE outbox_pruned.through < excluded.through",
    )
    .bind(through)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Prunes every `every` until `stop`.
pub(crate) async fn run(
    db: Db,
    retention: Duration,
    every: Duration,
    relayed_only: bool,
    mut stop: watch::Receiver<bool>,
) {
    while pause(every, &mut stop).await {
        match prune(&db, retention, relayed_only).await {
            Ok(p) if p.outbox > 0 || p.processed > 0 => tracing::info!(
                outbox = p.outbox,
                processed = p.processed,
                through = p.through,
                "pruned events past their retention"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune events; trying again later"),
        }
    }
}

/// Records that `subscription` missed the events after `cursor` up to `through`.
pub(crate) async fn record_gap(
    db: &Db,
    subscription: &str,
    cursor: i64,
    through: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO event_gaps (subscription, after_seq, through_seq, detected_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (subscription, after_seq) DO NOTHING",
    )
    .bind(subscription)
    .bind(cursor)
    .bind(through)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    crate::consumer::save_cursor(&mut tx, subscription, through).await?;
    tx.commit().await
}

/// Events `subscription` is known to have missed, in total.
pub(crate) async fn missed(db: &Db, subscription: &str) -> Result<i64, sqlx::Error> {
    let (n,): (Option<i64>,) = sqlx::query_as(
        "SELECT CAST(SUM(through_seq - after_seq) AS BIGINT) FROM event_gaps WHERE subscription = $1",
    )
    .bind(subscription)
    .fetch_one(db.pool())
    .await?;
    Ok(n.unwrap_or(0))
}
