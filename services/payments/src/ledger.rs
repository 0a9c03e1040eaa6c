//! Payments by order: a small state machine kept in the database, driven by the
//! processor's answers. Every operation is idempotent by order id.
//!
//! ```text
//! (none) ─authorize→ authorizing ─approved→ authorized ─capture→ captured ─cancel→ refunded
//!                        │   └─declined→ declined            ├─cancel→ voided
//!                        │                                   └─cancel, void refused→ refunded
//!                        └─transient→ retryable ─authorize→ authorizing …
//! (none) ─cancel→ voided   (a tombstone: a late authorize for the order is refused)
//! voided ─a capture that was on its way→ refunded
//! ```
//!
//! An authorization may ask for the capture too (a sale, `capture: true`): the
//! approval is recorded first (`authorized`, with the processor's reference), then
//! the money taken and `captured` recorded, in the one call. So an `authorized`
//! payment may have its money taken already (the capture on its way, or its record
//! lost in a crash), and a cancel may come meanwhile (the caller gave up on a
//! sale that answered late). Neither loses money: a capture that finds the payment
//! voided when it records gives the money back (`refunded`), and a cancel whose
//! void the processor refuses (the authorization was captured) refunds instead.

use std::sync::Arc;
use std::time::Duration;

use emporium_contracts::card::{Card, CardSummary};
use emporium_contracts::checkout::Payment;
use emporium_store::{Db, now_ms};

use crate::processor::{Outcome, Processor};

pub const AUTHORIZING: &str = "authorizing";
pub const AUTHORIZED: &str = "authorized";
pub const DECLINED: &str = "declined";
pub const RETRYABLE: &str = "retryable";
pub const CAPTURED: &str = "captured";
pub const VOIDED: &str = "voided";
pub const REFUNDED: &str = "refunded";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no payment for this order")]
    NotFound,
    /// Another call for this order is being processed.
    #[error("a payment operation for this order is in progress")]
    InProgress,
    #[error("the payment is {0}")]
    InvalidState(String),
    #[error("the card processor failed: {0}")]
    Processor(String),
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    order_id: String,
    status: String,
    amount: i64,
    currency: String,
    brand: Option<String>,
    last4: Option<String>,
    attempts: i64,
    reason: Option<String>,
    reference: Option<String>,
}

impl From<Row> for Payment {
    fn from(r: Row) -> Self {
        Payment {
            order_id: r.order_id,
            status: r.status,
            amount: r.amount,
            currency: r.currency,
            brand: r.brand,
            last4: r.last4,
            attempts: r.attempts,
            reason: r.reason,
        }
    }
}

#[derive(Clone)]
pub struct Ledger {
    pub db: Db,
    pub processor: Arc<dyn Processor>,
    /// How long an `authorizing` payment may go unchanged before its call is presumed
    /// dead (its process crashed, or its request was dropped at the deadline): longer
    /// than any live processor call, so another instance's call is never taken over.
    pub stale_after: Duration,
}

impl Ledger {
    async fn row(&self, order_id: &str) -> Result<Option<Row>, sqlx::Error> {
        sqlx::query_as(
            "SELECT order_id, status, amount, currency, brand, last4, attempts, reason, reference \
             FROM payments WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(self.db.pool())
        .await
    }

    pub async fn get(&self, order_id: &str) -> Result<Payment, LedgerError> {
        self.row(order_id)
            .await?
            .map(Payment::from)
            .ok_or(LedgerError::NotFound)
    }

    /// Moves `order_id` from one of `from` to `to`, in one conditional statement;
    /// false when it was not in `from`.
    async fn transition(
        &self,
        order_id: &str,
        from: &[&str],
        to: &str,
        reason: Option<&str>,
        reference: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let [a, b] = match from {
            [a] => [*a, *a],
            [a, b] => [*a, *b],
            _ => return Ok(false),
        };
        let done = sqlx::query(
            "UPDATE payments SET status = $2, reason = COALESCE($3, reason), \
             reference = COALESCE($4, reference), updated_ms = $5 \
             WHERE order_id = $1 AND status IN ($6, $7)",
        )
        .bind(order_id)
        .bind(to)
        .bind(reason)
        .bind(reference)
        .bind(now_ms())
        .bind(a)
        .bind(b)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Authorizes `amount` on `card` for `order_id`, and with `capture` takes the
    /// money once approved. Asking again answers the outcome of the first call (a
    /// retryable failure is tried again; an authorization not yet captured is
    /// captured when asked).
    pub async fn authorize(
        &self,
        order_id: &str,
        amount: i64,
        currency: &str,
        card: &Card,
        summary: &CardSummary,
        capture: bool,
    ) -> Result<Payment, LedgerError> {
        // Claim the order: create it, or take it back from `retryable` (or from an
        // `authorizing` whose call is presumed dead, see `stale_after`); each a single
        // statement, so two calls for one order cannot both win.
        let now = now_ms();
        let created = sqlx::query(
            "INSERT INTO payments (order_id, status, amount, currency, brand, last4, attempts, \
             created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(AUTHORIZING)
        .bind(amount)
        .bind(currency)
        .bind(&summary.brand)
        .bind(&summary.last4)
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected()
            == 1;
        let mut attempts = 1;
        if !created {
            let retried = sqlx::query(
                "UPDATE payments SET status = $2, attempts = attempts + 1, updated_ms = $3 \
                 WHERE order_id = $1 AND (status = $4 OR (status = $2 AND updated_ms < $5))",
            )
            .bind(order_id)
            .bind(AUTHORIZING)
            .bind(now)
            .bind(RETRYABLE)
            .bind(self.stale_cutoff(now))
            .execute(self.db.pool())
            .await?
            .rows_affected()
                == 1;
            let current = self.row(order_id).await?.ok_or(LedgerError::NotFound)?;
            if !retried {
                return match current.status.as_str() {
                    AUTHORIZING => Err(LedgerError::InProgress),
                    AUTHORIZED if capture => self.capture_sale(current).await,
                    _ => Ok(current.into()),
                };
            }
            attempts = current.attempts;
        }

        let outcome = self.processor.authorize(order_id, amount, card).await;
        let (to, reason, reference) = match &outcome {
            Outcome::Approved(reference) => (AUTHORIZED, None, Some(reference.as_str())),
            Outcome::Declined(reason) => (DECLINED, Some(reason.as_str()), None),
            Outcome::Transient(reason) => (RETRYABLE, Some(reason.as_str()), None),
        };
        let applied = self
            .transition(order_id, &[AUTHORIZING], to, reason, reference)
            .await?;
        if !applied
            && let Outcome::Approved(reference) = &outcome
            && self.get(order_id).await?.status == VOIDED
        {
            // Cancelled while the processor was deciding: let the hold go. (Moved
            // by another call for the order instead, one that took this stale call
            // over or `recover`, the approval is that call's too: it stays.)
            tracing::info!(order_id, "authorization arrived after a cancel; voiding it");
            self.processor
                .void(reference)
                .await
                .map_err(LedgerError::Processor)?;
        }
        tracing::info!(order_id, status = to, brand = %summary.brand, last4 = %summary.last4, "authorization");
        match outcome {
            Outcome::Transient(reason) => Err(LedgerError::Processor(reason)),
            Outcome::Approved(_) | Outcome::Declined(_) if applied => {
                let row = Row {
                    order_id: order_id.to_string(),
                    status: to.to_string(),
                    amount,
                    currency: currency.to_string(),
                    brand: Some(summary.brand.clone()),
                    last4: Some(summary.last4.clone()),
                    attempts,
                    reason: reason.map(str::to_string),
                    reference: reference.map(str::to_string),
                };
                if capture && to == AUTHORIZED {
                    return self.capture_sale(row).await;
                }
                Ok(row.into())
            }
            _ => self.get(order_id).await,
        }
    }

    /// Captures an authorized payment.
    pub async fn capture(&self, order_id: &str) -> Result<Payment, LedgerError> {
        let row = self.row(order_id).await?.ok_or(LedgerError::NotFound)?;
        self.capture_row(row).await
    }

    /// The capture of a sale, once its authorization is recorded. The approval
    /// stands whatever happens to the capture: the answer is the payment as it now
    /// stands (`authorized` after a processor failure: the caller captures it later,
    /// as without a sale; `voided` or `refunded` when a cancel came meanwhile).
    async fn capture_sale(&self, row: Row) -> Result<Payment, LedgerError> {
        let order_id = row.order_id.clone();
        match self.capture_row(row).await {
            Err(LedgerError::Processor(why)) => {
                tracing::warn!(%order_id, %why, "the sale's capture failed; the payment stays as it is");
                self.get(&order_id).await
            }
            Err(LedgerError::InvalidState(_)) => self.get(&order_id).await,
            other => other,
        }
    }

    /// Captures the payment `row` shows: takes the money at the processor, then
    /// records it, conditional on the payment still being authorized. A cancel that
    /// voided it while the money was being taken loses nothing: the money goes back
    /// (`refunded`), and the answer is the payment as it now stands.
    async fn capture_row(&self, row: Row) -> Result<Payment, LedgerError> {
        match row.status.as_str() {
            CAPTURED => return Ok(row.into()),
            AUTHORIZED => {}
            other => return Err(LedgerError::InvalidState(other.to_string())),
        }
        let order_id = row.order_id.as_str();
        let reference = row.reference.as_deref().unwrap_or_default();
        self.processor
            .capture(reference, row.amount)
            .await
            .map_err(LedgerError::Processor)?;
        if !self
            .transition(order_id, &[AUTHORIZED], CAPTURED, None, None)
            .await?
        {
            let now = self.get(order_id).await?;
            if now.status == VOIDED {
                // Only a processor that voids an authorization while capturing it
                // gets here (the contract has the one that comes second fail), as
                // the simulated one does: the money goes back, and a failure here
                // leaves it taken (not retried).
                tracing::warn!(
                    order_id,
                    "cancelled while its money was taken; refunding it"
                );
                self.processor
                    .refund(reference, row.amount)
                    .await
                    .map_err(LedgerError::Processor)?;
                self.transition(order_id, &[VOIDED], REFUNDED, None, None)
                    .await?;
                return Err(LedgerError::InvalidState(self.get(order_id).await?.status));
            }
            if now.status != CAPTURED {
                return Err(LedgerError::InvalidState(now.status));
            }
            return Ok(now);
        }
        tracing::info!(order_id, amount = row.amount, "captured");
        Ok(Payment {
            status: CAPTURED.into(),
            ..row.into()
        })
    }

    /// Undoes whatever the order's payment reached: voids an authorization, refunds
    /// a capture, or leaves a `voided` mark when there was nothing yet.
    pub async fn cancel(&self, order_id: &str) -> Result<Payment, LedgerError> {
        let Some(row) = self.row(order_id).await? else {
            let now = now_ms();
            sqlx::query(
                "INSERT INTO payments (order_id, status, amount, currency, reason, created_ms, updated_ms) \
                 VALUES ($1, $2, 0, '', 'cancelled before authorization', $3, $3) \
                 ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(order_id)
            .bind(VOIDED)
            .bind(now)
            .execute(self.db.pool())
            .await?;
            return Box::pin(self.cancel(order_id)).await;
        };
        let reference = row.reference.clone().unwrap_or_default();
        match row.status.as_str() {
            AUTHORIZED => match self.processor.void(&reference).await {
                Ok(()) => {
                    self.transition(order_id, &[AUTHORIZED], VOIDED, None, None)
                        .await?;
                }
                Err(why) => {
                    // A sale's capture may have taken the money (its record lost in
                    // a crash, or on its way): the processor refuses to void a
                    // captured authorization, and refunds it. Otherwise the void's
                    // failure stands, and the caller asks again.
                    self.processor
                        .refund(&reference, row.amount)
                        .await
                        .map_err(|_| LedgerError::Processor(why))?;
                    self.transition(order_id, &[AUTHORIZED], REFUNDED, None, None)
                        .await?;
                    tracing::info!(
                        order_id,
                        amount = row.amount,
                        "refunded a captured authorization"
                    );
                }
            },
            AUTHORIZING | RETRYABLE => {
                // The authorizing call sees the change and voids what it gets.
                self.transition(order_id, &[AUTHORIZING, RETRYABLE], VOIDED, None, None)
                    .await?;
            }
            CAPTURED => {
                self.processor
                    .refund(&reference, row.amount)
                    .await
                    .map_err(LedgerError::Processor)?;
                self.transition(order_id, &[CAPTURED], REFUNDED, None, None)
                    .await?;
                tracing::info!(order_id, amount = row.amount, "refunded");
            }
            _ => return Ok(row.into()),
        }
        let now = self.get(order_id).await?;
        if matches!(now.status.as_str(), AUTHORIZED | CAPTURED) {
            // Moved under us (an authorization landed): go again.
            return Box::pin(self.cancel(order_id)).await;
        }
        Ok(now)
    }

    /// At start: authorizations a crash left half-done can be tried again. Only stale
    /// ones (see `stale_after`): other instances sharing the database may be in the
    /// middle of theirs. Fresher ones are taken over by `authorize` once stale.
    pub async fn recover(&self) -> Result<u64, sqlx::Error> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE payments SET status = $1, updated_ms = $2 WHERE status = $3 AND updated_ms < $4",
        )
        .bind(RETRYABLE)
        .bind(now)
        .bind(AUTHORIZING)
        .bind(self.stale_cutoff(now))
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// `updated_ms` before which an `authorizing` payment is stale.
    fn stale_cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(i64::try_from(self.stale_after.as_millis()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::BoxFuture;
    use tokio::sync::Notify;

    use super::*;

    /// A processor that approves every card, voids only what was not captured,
    /// and can hold a capture until released; it counts refunds.
    #[derive(Default)]
    struct Gated {
        hold_capture: bool,
        capturing: Notify,
        release: Notify,
        captured: std::sync::Mutex<bool>,
        refunds: AtomicUsize,
    }

    impl Processor for Gated {
        fn authorize<'a>(&'a self, _: &'a str, _: i64, _: &'a Card) -> BoxFuture<'a, Outcome> {
            Box::pin(async { Outcome::Approved("ref-1".into()) })
        }

        fn capture<'a>(&'a self, _: &'a str, _: i64) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                if self.hold_capture {
                    self.capturing.notify_one();
                    self.release.notified().await;
                }
                *self.captured.lock().expect("state") = true;
                Ok(())
            })
        }

        fn void<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                match *self.captured.lock().expect("state") {
                    true => Err("captured: refund it".into()),
                    false => Ok(()),
                }
            })
        }

        fn refund<'a>(&'a self, _: &'a str, _: i64) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                self.refunds.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    async fn ledger(processor: Arc<Gated>) -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_service("payments", dir.path(), None)
            .await
            .expect("db");
        db.migrate_all(&crate::MIGRATIONS).await.expect("migrate");
        let ledger = Ledger {
            db,
            processor,
            stale_after: Duration::from_secs(30),
        };
        (dir, ledger)
    }

    async fn sale(ledger: &Ledger, order_id: &str, capture: bool) -> Result<Payment, LedgerError> {
        let card = Card {
            number: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2099,
            cvc: "123".into(),
        };
        let summary = CardSummary {
            brand: "visa".into(),
            last4: "4242".into(),
        };
        ledger
            .authorize(order_id, 500, "USD", &card, &summary, capture)
            .await
    }

    #[tokio::test]
    async fn a_cancel_that_meets_a_sale_on_its_way_gives_the_money_back() {
        let processor = Arc::new(Gated {
            hold_capture: true,
            ..Gated::default()
        });
        let (_dir, ledger) = ledger(processor.clone()).await;
        let selling = tokio::spawn({
            let ledger = ledger.clone();
            async move { sale(&ledger, "o-1", true).await }
        });
        // The approval is recorded and the money on its way when the cancel comes.
        processor.capturing.notified().await;
        let cancelled = ledger.cancel("o-1").await.expect("cancel");
        assert_eq!(cancelled.status, VOIDED);
        processor.release.notify_one();
        let sold = selling.await.expect("task").expect("answered");
        assert_eq!(sold.status, REFUNDED, "the money taken went back");
        assert_eq!(processor.refunds.load(Ordering::SeqCst), 1);
        assert_eq!(ledger.get("o-1").await.expect("payment").status, REFUNDED);
    }

    #[tokio::test]
    async fn a_cancel_the_processor_cannot_void_refunds_a_capture_whose_record_was_lost() {
        let processor = Arc::new(Gated::default());
        let (_dir, ledger) = ledger(processor.clone()).await;
        let held = sale(&ledger, "o-2", false).await.expect("authorized");
        assert_eq!(held.status, AUTHORIZED);
        // The money was taken, and its record lost (a crash before the write).
        *processor.captured.lock().expect("state") = true;
        let cancelled = ledger.cancel("o-2").await.expect("cancel");
        assert_eq!(cancelled.status, REFUNDED);
        assert_eq!(processor.refunds.load(Ordering::SeqCst), 1);
    }
}
