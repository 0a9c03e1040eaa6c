//! The transactional outbox: the only way to publish an event.
//!
//! [`Outbox::publish`] inserts the event into the producer's `outbox` table inside the
//! caller's transaction, so the event exists if and only if the state change it
//! describes committed. [`Outbox::commit`] commits and wakes the feed's long polls.
//!
//! Sequence numbers must follow commit order, or a feed reader moves its cursor past
//! a row that commits later and never sees it. SQLite has one writer at a time; on
//! PostgreSQL a publishing transaction first takes a transaction-scoped advisory lock
//! of this service's outbox, so publishers commit one after another (readers and
//! transactions that publish nothing are not held up).
//!
//! A commit wakes only the long polls waiting for a type it published: the
//! transaction records the types ([`Tx::note_published`]), and the outbox keeps a
//! count of commits per type that each poll compares with the one it last read.

use std::collections::HashMap;
use std::sync::Arc;

use emporium_contracts::events::EventData;
use emporium_store::{Backend, Batch, Db, Tx, now_ms, rfc3339};
use tokio::sync::watch;

use crate::EventsError;

/// A service's outbox. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    service: &'static str,
    backend: Backend,
    commits: Arc<watch::Sender<Commits>>,
}

/// Commits counted so far, for the feed's long polls and the relay to wait on.
#[derive(Debug, Default)]
pub(crate) struct Commits {
    /// Every commit that published something.
    all: u64,
    /// Commits that published at least one event of the type.
    by_type: HashMap<&'static str, u64>,
}

impl Commits {
    /// A number that changes whenever a commit may carry one of `types` (of any
    /// type when `None`): the long poll reads again only then.
    pub(crate) fn seen(&self, types: Option<&[String]>) -> u64 {
        match types {
            None => self.all,
            Some(types) => types.iter().fold(0, |sum: u64, t| {
                sum.wrapping_add(self.by_type.get(t.as_str()).copied().unwrap_or(0))
            }),
        }
    }
}

impl Outbox {
    pub(crate) fn new(service: &'static str, backend: Backend) -> Self {
        Self {
            service,
            backend,
            commits: Arc::new(watch::channel(Commits::default()).0),
        }
    }

    /// Adds `event` to the outbox in `tx`; returns its id. A service publishes only
    /// its own event types.
    pub async fn publish<E: EventData>(
        &self,
        tx: &mut Tx,
        event: &E,
    ) -> Result<String, EventsError> {
        let mut batch = tx.batch();
        let id = self.add(&mut batch, event)?;
        tx.run(batch).await?;
        Ok(id)
    }

    /// Adds `event` to `batch`, to be inserted into the outbox when the batch runs
    /// in its transaction; returns its id.
    pub fn add<E: EventData>(&self, batch: &mut Batch, event: &E) -> Result<String, EventsError> {
        if E::SOURCE != self.service {
            return Err(EventsError::ForeignEvent {
                service: self.service,
                kind: E::TYPE,
            });
        }
        let id = uuid::Uuid::now_v7().to_string();
        let data = serde_json::to_string(event).map_err(EventsError::Encode)?;
        if self.backend == Backend::Postgres {
            // Held until this transaction ends: the next publisher's row gets a
            // later sequence number and commits later.
            batch.push("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.outbox'))");
        }
        let traceparent = emporium_telemetry::context::current_traceparent();
        batch
            .push(
                "INSERT INTO outbox (id, type, subject, time_ms, traceparent, data) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(E::TYPE)
            .bind(event.subject())
            .bind(now_ms())
            .bind(traceparent)
            .bind(data);
        batch.note_published(E::TYPE);
        Ok(id)
    }

    /// Runs `batch` as a transaction of its own ([`Db::write`]) and wakes whoever
    /// waits for the types of events it published; `None` when it was undone (a
    /// statement it requires to change one row did not).
    pub async fn write(&self, db: &Db, batch: Batch) -> Result<Option<Vec<u64>>, sqlx::Error> {
        Ok(db.write(batch).await?.map(|written| {
            self.wake(written.published);
            written.changed
        }))
    }

    /// Commits `tx` and wakes whoever waits for the types of events it published.
    pub async fn commit(&self, mut tx: Tx) -> Result<(), sqlx::Error> {
        let published = tx.take_published();
        tx.commit().await?;
        self.wake(published);
        Ok(())
    }

    fn wake(&self, published: Vec<&'static str>) {
        if !published.is_empty() {
            self.commits.send_modify(|c| {
                c.all = c.all.wrapping_add(1);
                for t in published {
                    let n = c.by_type.entry(t).or_default();
                    *n = n.wrapping_add(1);
                }
            });
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Commits> {
        self.commits.subscribe()
    }
}

/// Reads stored outbox rows as envelopes.
pub(crate) fn envelope_of(service: &str, row: OutboxRow) -> crate::FeedEvent {
    crate::FeedEvent {
        seq: row.seq,
        event: crate::Envelope {
            specversion: "1.0".into(),
            id: row.id,
            source: crate::source_of(service),
            kind: row.kind,
            time: rfc3339(row.time_ms),
            subject: row.subject,
            datacontenttype: "application/json".into(),
            data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::Null),
            traceparent: row.traceparent,
        },
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    pub seq: i64,
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub subject: String,
    pub time_ms: i64,
    pub traceparent: Option<String>,
    pub data: String,
}

#[cfg(test)]
mod tests {
    use emporium_contracts::events::{PriceChanged, ProductCreated};
    use emporium_store::Db;

    use super::*;

    fn price_changed() -> PriceChanged {
        PriceChanged {
            product_id: "p-1".into(),
            sku: "SKU-1".into(),
            old_price: 100,
            new_price: 90,
            currency: "USD".into(),
        }
    }

    #[tokio::test]
    async fn a_commit_wakes_only_polls_for_the_types_it_published() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_service("catalog", dir.path(), None)
            .await
            .expect("open");
        crate::migrate(&db).await.expect("migrate");
        let outbox = Outbox::new("catalog", db.backend());
        let prices = [PriceChanged::TYPE.to_string()];
        let created = [ProductCreated::TYPE.to_string()];
        let both = [prices[0].clone(), created[0].clone()];
        let seen = |rx: &mut watch::Receiver<Commits>| {
            let c = rx.borrow_and_update();
            [
                c.seen(None),
                c.seen(Some(&prices)),
                c.seen(Some(&created)),
                c.seen(Some(&both)),
            ]
        };
        let mut rx = outbox.subscribe();
        let before = seen(&mut rx);

        let mut tx = db.begin().await.expect("begin");
        outbox
            .publish(&mut tx, &price_changed())
            .await
            .expect("publish");
        outbox
            .publish(&mut tx, &price_changed())
            .await
            .expect("publish");
        outbox.commit(tx).await.expect("commit");
        let after = seen(&mut rx);
        assert_ne!(after[0], before[0], "an unfiltered poll wakes");
        assert_ne!(after[1], before[1], "a poll for price changes wakes");
        assert_eq!(after[2], before[2], "a poll for product creations does not");
        assert_ne!(after[3], before[3], "a poll for either wakes");

        // A transaction that published nothing wakes nobody.
        let tx = db.begin().await.expect("begin");
        outbox.commit(tx).await.expect("commit");
        assert!(!rx.has_changed().expect("open"), "nothing to wake for");
    }
}
