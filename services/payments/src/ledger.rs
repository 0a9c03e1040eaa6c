//! Payments by order: a small state machine kept in the database, driven by the
//! processor's answers. Every operation is idempotent by order id.
//!
//! ```text
//! (none) ─authorize→ authorizing ─approved→ authorized ─capture→ captured ─cancel→ refunded
//!                        │   └─declined→ declined            └─cancel→ voided
//!                        └─transient→ retryable ─authorize→ authorizing …
//! (none) ─cancel→ voided   (a tombstone: a late authorize for the order is refused)
//! ```
//!
//! An authorization may ask for the capture too (a sale, `capture: true`): the
//! approval is recorded first (`authorized`, with the processor's reference), then
//! the money taken and `captured` recorded, in the one call. Each step is the one
//! the separate calls make, so a crash between them leaves what those would: an
//! `authorized` payment whose capture, asked again, the processor makes once.

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
        if !applied && let Outcome::Approved(reference) = &outcome {
            // Cancelled while the processor was deciding: let the hold go.
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
    /// stands whatever happens to the capture: a processor failure answers the
    /// payment as authorized (the caller captures it later, as without a sale), a
    /// payment cancelled meanwhile answers as it now stands.
    async fn capture_sale(&self, row: Row) -> Result<Payment, LedgerError> {
        let authorized = Payment::from(row.clone());
        match self.capture_row(row).await {
            Err(LedgerError::Processor(why)) => {
                tracing::warn!(order_id = %authorized.order_id, %why, "the sale's capture failed; the payment stays authorized");
                Ok(authorized)
            }
            Err(LedgerError::InvalidState(_)) => self.get(&authorized.order_id).await,
            other => other,
        }
    }

    /// Captures the payment `row` shows: takes the money at the processor, then
    /// records it, conditional on the payment still being authorized (a cancel
    /// may have voided it meanwhile: its answer is the payment as it now stands).
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
            AUTHORIZED => {
                self.processor
                    .void(&reference)
                    .await
                    .map_err(LedgerError::Processor)?;
                self.transition(order_id, &[AUTHORIZED], VOIDED, None, None)
                    .await?;
            }
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
