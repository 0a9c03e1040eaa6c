//! The checkout saga, orchestrated here and persisted whenever it stops.
//!
//! ```text
//! reserve ──reserved──▶ authorize ──authorized──▶ complete ──▶ done (CONFIRMED)
//!    │ rejected / deadline    │ declined / deadline / interrupted
//!    └──────────────▶ compensate ──▶ done (CANCELLED)
//! ```
//!
//! Steps before the payment authorization can be compensated (release the stock,
//! void the payment, or refund it); the authorization is the pivot, after which the saga only rolls
//! forward: commit the stock and capture the payment, retried until they succeed.
//! The authorization asks for a sale (the money taken with the approval, as card
//! processors offer it): one call to payments instead of two. The saga asks for
//! the capture itself only when payments answered the payment `authorized` (the
//! sale's capture failed, or recovery found an authorization of an earlier run).
//! Every call is idempotent by order id, so a step repeated after a crash is harmless.
//! That lets a saga that runs straight through write its order three times: placed,
//! the pivot (written before the stock is sold), and confirmed; the steps on the way
//! are carried in memory and written with the next write, or before any wait or
//! retry ([`Unwritten`]).
//! The cart's lines left it when the order was placed (cart's checkouts); the
//! compensation puts them back at once, so the shopper can try another card.
//!
//! The card number is never stored: it lives in the memory of the task that runs the
//! saga. A saga resumed by recovery after a crash has no card; whatever step its
//! order shows before the pivot, it asks payments: if payments never saw the
//! authorization, the order is cancelled as `interrupted` (nothing was charged); if
//! it did, recovery carries on from what payments recorded.
//!
//! Several orders instances may run side by side. Each order records its owner (the
//! instance driving it) and a lease the owner renews while it works; recovery takes
//! over only orders whose owner's lease ran out, or its own after a restart (instance
//! ids are stable under `emporium up`). Every transition is conditional on the step it
//! leaves, so even a takeover racing a slow owner moves each order once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emporium_client::api::{Cart, Inventory, Payments};
use emporium_client::{ClientError, ServiceClient};
use emporium_contracts::card::Card;
use emporium_contracts::checkout::{AuthorizeRequest, Payment, Reservation, StockLine};
use emporium_contracts::events::{OrderCancelled, OrderConfirmed, OrderLine};
use emporium_events::Outbox;
use emporium_http::context::{self, RequestContext};
use emporium_store::{Db, now_ms};
use emporium_telemetry::trace::{Kind, Span};
use http::StatusCode;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::store::{self, OrderRow, step};

/// How a saga's time and retries are bounded.
#[derive(Debug, Clone)]
pub struct SagaSettings {
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long an order stays owned by its instance without a renewal.
    pub lease: Duration,
}

pub struct Saga {
    pub db: Db,
    pub outbox: Outbox,
    pub inventory: ServiceClient,
    pub payments: ServiceClient,
    pub cart: ServiceClient,
    pub settings: SagaSettings,
    /// This instance: the owner it records on the orders it drives.
    pub instance: String,
    running: Mutex<HashSet<String>>,
}

/// What a step asks for next.
enum Next {
    Continue,
    /// Nothing to do yet: try the step again after a pause.
    Wait,
    Done,
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Call(#[from] ClientError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("publishing: {0}")]
    Events(#[from] emporium_events::EventsError),
}

/// This process drives the saga of one order while it lives.
pub struct Claim {
    saga: Arc<Saga>,
    order_id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.saga
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.order_id);
    }
}

impl Saga {
    pub fn new(
        db: Db,
        outbox: Outbox,
        inventory: ServiceClient,
        payments: ServiceClient,
        cart: ServiceClient,
        settings: SagaSettings,
        instance: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            outbox,
            inventory,
            payments,
            cart,
            settings,
            instance,
            running: Mutex::new(HashSet::new()),
        })
    }

    /// The owner and lease end to record on an order this instance is to drive.
    pub fn ownership(&self) -> (&str, i64) {
        (&self.instance, self.lease_end())
    }

    fn lease_end(&self) -> i64 {
        now_ms() + i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// Claims `order_id` for this process; None when it is being driven already.
    /// Claim before committing a new order, so recovery never picks it up first.
    pub fn claim(self: &Arc<Self>, order_id: &str) -> Option<Claim> {
        let fresh = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(order_id.to_string());
        fresh.then(|| Claim {
            saga: self.clone(),
            order_id: order_id.to_string(),
        })
    }

    /// Drives a claimed order to a terminal state on its own task. `placed` is the
    /// order with its lines (in SKU order, as the database answers them) when the
    /// caller has them (it just placed the order): the lines never change, and the
    /// saga then need not read either back. The task
    /// answers the order as it wrote it last when it took the order to its end
    /// (else `None`: read it).
    pub fn spawn(
        self: &Arc<Self>,
        claim: Claim,
        card: Option<Card>,
        placed: Option<(OrderRow, Vec<OrderLine>)>,
        request_id: Option<String>,
    ) -> JoinHandle<Option<OrderRow>> {
        let saga = self.clone();
        // The saga is a span of the checkout's trace (a new trace when recovery
        // resumes it), and every call and transaction of it is a child.
        let mut trace_span = Span::start("saga", Kind::Internal, context::current_trace().as_ref());
        if trace_span.is_recording() {
            trace_span.set_attribute("emporium.order_id", claim.order_id.clone());
        }
        let span = tracing::info_span!(
            "saga",
            order_id = %claim.order_id,
            trace_id = %trace_span.context().trace_id(),
            span_id = %trace_span.context().span_id()
        );
        // Each call has its own timeout; the saga's deadline is in the database.
        let ctx = RequestContext::unbounded(
            request_id.unwrap_or_else(|| format!("saga-{}", claim.order_id)),
            Some(trace_span.context().clone()),
        );
        emporium_telemetry::identity::spawn(context::scope(
            ctx,
            async move {
                let done = saga.drive(&claim.order_id, card.as_ref(), placed).await;
                drop(claim);
                drop(trace_span);
                done
            }
            .instrument(span),
        ))
    }

    /// Resumes every saga in flight that no task here drives, every `interval`,
    /// until `stop` fires.
    pub async fn recover(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            match store::in_flight(&self.db, &self.instance, now_ms(), 500).await {
                Ok(ids) => {
                    for id in ids {
                        let Some(claim) = self.claim(&id) else {
                            continue;
                        };
                        match store::take_over(
                            &self.db,
                            &id,
                            &self.instance,
                            self.lease_end(),
                            now_ms(),
                        )
                        .await
                        {
                            Ok(true) => {
                                tracing::warn!(order_id = %id, "resuming a saga left in flight");
                                self.spawn(claim, None, None, None);
                            }
                            Ok(false) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot take over a saga"),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list sagas in flight"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        emporium_runtime::backoff(self.settings.retry_base, self.settings.retry_max, failures)
    }

    /// Drives the order to a terminal state; answers it as last written when this
    /// task wrote that state.
    async fn drive(
        &self,
        order_id: &str,
        card: Option<&Card>,
        placed: Option<(OrderRow, Vec<OrderLine>)>,
    ) -> Option<OrderRow> {
        let (placed, lines) = placed.unzip();
        let mut waits = 0;
        // The order as this task last moved it: read again only after a retry.
        let mut cached: Option<OrderRow> = placed;
        // What moved in memory and is not written yet.
        let mut unwritten = Unwritten::default();
        // Whether payments answered this task that the money is taken (a sale):
        // the saga then need not ask for the capture.
        let mut captured = false;
        // Ownership was just recorded (placed or taken over); renew it when a third
        // of the lease has gone.
        let mut renewed = std::time::Instant::now();
        loop {
            if renewed.elapsed() > self.settings.lease / 3 {
                match store::renew(&self.db, order_id, &self.instance, self.lease_end()).await {
                    Ok(true) => renewed = std::time::Instant::now(),
                    Ok(false) => {
                        tracing::warn!("another instance took this saga over; leaving it");
                        return None;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the saga's lease"),
                }
            }
            match self
                .step(
                    order_id,
                    &mut cached,
                    &mut unwritten,
                    &mut captured,
                    card,
                    lines.as_deref(),
                )
                .await
            {
                Ok(Next::Continue) => {
                    waits = 0;
                    continue;
                }
                // The step left the order as it wrote it last, if it did.
                Ok(Next::Done) => return cached,
                Ok(Next::Wait) => waits += 1,
                Err(e) => {
                    waits += 1;
                    crate::metrics::step_failed();
                    if waits <= 3 || waits % 10 == 0 {
                        tracing::warn!(error = %e, attempt = waits, "saga step failed; retrying");
                    }
                }
            }
            // Before waiting, the progress is written, so that another instance
            // taking over (or recovery after a crash) starts from it; then the
            // order is read again (which forgets `unwritten`). If it cannot be
            // written, the saga goes on from memory.
            if let Some(order) = &cached {
                match self.write_progress(order, &mut unwritten).await {
                    Ok(_) => cached = None,
                    Err(e) => tracing::warn!(error = %e, "cannot write the saga's progress"),
                }
            }
            tokio::time::sleep(self.backoff(waits)).await;
        }
    }

    async fn step(
        &self,
        order_id: &str,
        cached: &mut Option<OrderRow>,
        unwritten: &mut Unwritten,
        captured: &mut bool,
        card: Option<&Card>,
        lines: Option<&[OrderLine]>,
    ) -> Result<Next, StepError> {
        // The order as it stands in memory is kept until the step succeeds: a
        // failed step goes on from it when its progress cannot be written.
        let order = match cached {
            Some(order) => order.clone(),
            None => {
                // The database is the truth again.
                *unwritten = Unwritten::default();
                match store::get(&self.db, order_id).await? {
                    Some(order) => order,
                    None => {
                        tracing::error!("no such order");
                        return Ok(Next::Done);
                    }
                }
            }
        };
        let (started, at) = (
            std::time::Instant::now(),
            crate::metrics::step_name(&order.step),
        );
        let taken = self
            .step_from(order, unwritten, captured, card, lines)
            .await;
        crate::metrics::step_took(at, started.elapsed());
        let (next, order) = taken?;
        *cached = order;
        Ok(next)
    }

    /// Takes one step from `order`'s current state; returns what to do next and the
    /// order as it now stands, when known.
    async fn step_from(
        &self,
        order: OrderRow,
        unwritten: &mut Unwritten,
        captured: &mut bool,
        card: Option<&Card>,
        lines: Option<&[OrderLine]>,
    ) -> Result<(Next, Option<OrderRow>), StepError> {
        let order_id = order.id.as_str();
        let past_deadline = now_ms() >= order.deadline_ms;
        // Every step's calls may be repeated (they are keyed by the order): saying
        // so lets the client retry them on another instance.
        let key = format!("{order_id}:{}", order.step);
        let inventory = Inventory(keyed(&self.inventory, &key));
        let payments = Payments(keyed(&self.payments, &key));
        match order.step.as_str() {
            step::RESERVE => {
                if card.is_none() {
                    // Resumed without the card: the saga may have gone past the
                    // payment in memory before it stopped.
                    return self
                        .resume_without_card(&order, &payments, past_deadline, unwritten, captured)
                        .await;
                }
                if past_deadline {
                    return self
                        .compensate(
                            &order,
                            unwritten,
                            "deadline_exceeded",
                            "stock was not reserved in time",
                        )
                        .await;
                }
                let lines = self
                    .lines(order_id, lines)
                    .await?
                    .into_iter()
                    .map(|l| StockLine {
                        sku: l.sku,
                        quantity: l.quantity,
                    })
                    .collect();
                let r: Reservation = inventory.reserve(order_id, lines).await?;
                match r.status.as_str() {
                    "reserved" => {
                        let moved =
                            unwritten.advance(&order, step::AUTHORIZE, "stock_reserved", "");
                        Ok((Next::Continue, Some(moved)))
                    }
                    "rejected" => {
                        let detail = format!("not enough stock of {}", r.unavailable.join(", "));
                        self.compensate(&order, unwritten, "out_of_stock", &detail)
                            .await
                    }
                    other => {
                        self.compensate(
                            &order,
                            unwritten,
                            "interrupted",
                            &format!("the reservation is {other}"),
                        )
                        .await
                    }
                }
            }
            step::AUTHORIZE => match card {
                Some(card) => {
                    if past_deadline {
                        // An earlier call may have been answered too late (its
                        // attempt timed out) after the sale took the money: what
                        // payments recorded decides, as for a saga without its card.
                        return match payments.payment(order_id).await {
                            Ok(p)
                                if matches!(
                                    p.status.as_str(),
                                    "authorized" | "captured" | "declined"
                                ) =>
                            {
                                self.after_authorization(&order, &p, true, unwritten, captured)
                                    .await
                            }
                            Ok(_) => self.not_in_time(&order, unwritten).await,
                            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
                                self.not_in_time(&order, unwritten).await
                            }
                            Err(e) => Err(e.into()),
                        };
                    }
                    // A sale: the money is taken with the approval, one call
                    // instead of two (a compensation refunds it).
                    let request = AuthorizeRequest {
                        amount: order.total,
                        currency: order.currency.clone(),
                        card: card.clone(),
                        capture: true,
                    };
                    match payments.authorize(order_id, &request).await {
                        Ok(payment) => {
                            self.after_authorization(&order, &payment, false, unwritten, captured)
                                .await
                        }
                        Err(e) if e.problem_code() == Some("processor_unavailable") => {
                            unwritten.note("payment_retry", "the card processor failed; retrying");
                            Ok((Next::Wait, Some(order)))
                        }
                        Err(e) if e.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                            self.compensate(
                                &order,
                                unwritten,
                                "payment_invalid",
                                "the card was refused as invalid",
                            )
                            .await
                        }
                        Err(e) => Err(e.into()),
                    }
                }
                None => {
                    self.resume_without_card(&order, &payments, past_deadline, unwritten, captured)
                        .await
                }
            },
            step::COMPLETE => {
                // The pivot is written before the stock is sold: from then on
                // every instance only rolls the order forward, so one that took it
                // over (its owner's lease ran out) cannot be compensating it while
                // this one commits the stock. (A sale's money is taken before the
                // pivot: an instance compensating the order meanwhile gets it back,
                // as payments refunds a capture that a cancel meets, whether the
                // capture was recorded, lost, or on its way; see payments' ledger.)
                if unwritten.from.is_some() && !self.write_progress(&order, unwritten).await? {
                    return Ok((Next::Continue, None));
                }
                let r: Reservation = inventory.commit(order_id).await?;
                if r.status != "committed" {
                    tracing::error!(status = %r.status, "stock could not be committed after payment");
                    return self
                        .compensate(
                            &order,
                            unwritten,
                            "interrupted",
                            "the stock was no longer held",
                        )
                        .await;
                }
                if *captured {
                    return self.confirm(&order, unwritten, lines).await;
                }
                let capture = payments.capture(order_id).await;
                // Payments refuses a capture it can never make (the payment is not
                // authorized: voided, declined, refunded, or unknown); asking again
                // would wait forever. Only then is the sale undone: any other failure
                // may pass, and is retried.
                let refusal = match &capture {
                    Ok(p) if p.status == "captured" => None,
                    Ok(p) => Some(format!("the payment is {}", p.status)),
                    Err(e) if matches!(e.problem_code(), Some("invalid_state" | "not_found")) => {
                        Some(e.problem_detail().unwrap_or("refused").to_string())
                    }
                    Err(_) => None,
                };
                if let Some(why) = refusal {
                    tracing::error!(%why, "the payment could not be captured; undoing the sale");
                    return self
                        .compensate(
                            &order,
                            unwritten,
                            "payment_failed",
                            &format!("the payment could not be captured: {why}"),
                        )
                        .await;
                }
                capture?;
                self.confirm(&order, unwritten, lines).await
            }
            step::COMPENSATE => {
                let r: Reservation = inventory.release(order_id).await?;
                let p: Payment = payments.cancel(order_id).await?;
                // The lines back into the cart before the answer says CANCELLED, so a
                // retry with another card finds them. Not a step that must succeed:
                // cart puts them back on OrderCancelled too.
                let cart = Cart(keyed(&self.cart, &key));
                if let Err(e) = cart.give_back(order_id).await {
                    tracing::warn!(error = %e, "cannot put the lines back into the cart now; OrderCancelled will");
                }
                self.cancel(
                    &order,
                    unwritten,
                    &format!("stock {}, payment {}", r.status, p.status),
                )
                .await
            }
            _ => Ok((Next::Done, None)),
        }
    }

    /// Goes on from what payments recorded for an order whose saga lost the card
    /// (resumed after a crash or by another instance): nothing there, nothing was
    /// charged and the order is cancelled; authorized, the sale rolls forward.
    async fn resume_without_card(
        &self,
        order: &OrderRow,
        payments: &Payments,
        past_deadline: bool,
        unwritten: &mut Unwritten,
        captured: &mut bool,
    ) -> Result<(Next, Option<OrderRow>), StepError> {
        match payments.payment(&order.id).await {
            Ok(payment) => {
                // Found at the step before the payment: the stock was reserved
                // first (payments hears of an order only after that), in memory only.
                let order = if order.step == step::RESERVE {
                    &unwritten.advance(order, step::AUTHORIZE, "stock_reserved", "")
                } else {
                    order
                };
                self.after_authorization(order, &payment, past_deadline, unwritten, captured)
                    .await
            }
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
                self.interrupted(order, unwritten).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Cancels an order whose payment was not authorized by its deadline (the
    /// cancel voids whatever authorization comes).
    async fn not_in_time(
        &self,
        order: &OrderRow,
        unwritten: &mut Unwritten,
    ) -> Result<(Next, Option<OrderRow>), StepError> {
        self.compensate(
            order,
            unwritten,
            "deadline_exceeded",
            "the payment was not authorized in time",
        )
        .await
    }

    /// Cancels an order whose saga stopped before payments saw its authorization.
    async fn interrupted(
        &self,
        order: &OrderRow,
        unwritten: &mut Unwritten,
    ) -> Result<(Next, Option<OrderRow>), StepError> {
        self.compensate(
            order,
            unwritten,
            "interrupted",
            "the checkout was interrupted before payment; nothing was charged",
        )
        .await
    }

    async fn after_authorization(
        &self,
        order: &OrderRow,
        p: &Payment,
        past_deadline: bool,
        unwritten: &mut Unwritten,
        captured: &mut bool,
    ) -> Result<(Next, Option<OrderRow>), StepError> {
        match p.status.as_str() {
            "authorized" | "captured" => {
                *captured = p.status == "captured";
                let card = format!(
                    "{} ending {}",
                    p.brand.as_deref().unwrap_or("card"),
                    p.last4.as_deref().unwrap_or("????")
                );
                let moved = unwritten.advance(order, step::COMPLETE, "payment_authorized", &card);
                Ok((Next::Continue, Some(moved)))
            }
            "declined" => {
                let why = p.reason.clone().unwrap_or_else(|| "declined".into());
                self.compensate(
                    order,
                    unwritten,
                    "payment_declined",
                    &format!("the card was declined: {why}"),
                )
                .await
            }
            // Still deciding: wait, unless time is up (the cancel voids whatever comes).
            "authorizing" if !past_deadline => Ok((Next::Wait, Some(order.clone()))),
            "authorizing" => self.not_in_time(order, unwritten).await,
            "retryable" if !past_deadline => Ok((Next::Wait, Some(order.clone()))),
            // Cancelled meanwhile (by an instance that took the order over).
            "voided" | "refunded" => {
                let detail = format!("the payment was {} meanwhile", p.status);
                self.compensate(order, unwritten, "interrupted", &detail)
                    .await
            }
            _ => self.interrupted(order, unwritten).await,
        }
    }

    /// Writes what moved in memory: the step the order reached and the timeline
    /// entries on the way, conditional on the step the database shows. False when
    /// the order was not there (another instance moved it).
    async fn write_progress(
        &self,
        order: &OrderRow,
        unwritten: &mut Unwritten,
    ) -> Result<bool, StepError> {
        if unwritten.is_empty() {
            return Ok(true);
        }
        // The order's row first, as every write of the saga takes it: on PostgreSQL
        // the move's row lock orders the writers of one order, and the loser of a
        // race stops at its move (on either engine) before touching the timeline.
        let mut batch = self.db.batch();
        if let Some(from) = &unwritten.from {
            store::advance(&mut batch, &order.id, from, &order.step, None, now_ms());
        }
        unwritten.write_notes(&mut batch, &order.id);
        let written = self.db.write(batch).await?;
        *unwritten = Unwritten::default();
        Ok(written.is_some())
    }

    async fn compensate(
        &self,
        order: &OrderRow,
        unwritten: &mut Unwritten,
        reason: &str,
        detail: &str,
    ) -> Result<(Next, Option<OrderRow>), StepError> {
        let mut batch = self.db.batch();
        let from = unwritten.recorded(order);
        store::start_compensation(&mut batch, &order.id, from, reason, detail);
        unwritten.write_notes(&mut batch, &order.id);
        store::note(&mut batch, &order.id, reason, detail);
        if self.db.write(batch).await?.is_none() {
            *unwritten = Unwritten::default();
            return Ok((Next::Continue, None));
        }
        *unwritten = Unwritten::default();
        tracing::info!(reason, detail, "compensating");
        let moved = OrderRow {
            step: step::COMPENSATE.to_string(),
            reason: Some(reason.to_string()),
            detail: Some(detail.to_string()),
            ..order.clone()
        };
        Ok((Next::Continue, Some(moved)))
    }

    /// The order's lines: those the saga was given, else as stored.
    async fn lines(
        &self,
        order_id: &str,
        given: Option<&[OrderLine]>,
    ) -> Result<Vec<OrderLine>, sqlx::Error> {
        match given {
            Some(lines) => Ok(lines.to_vec()),
            None => store::lines(&self.db, order_id).await,
        }
    }

    async fn confirm(
        &self,
        order: &OrderRow,
        unwritten: &mut Unwritten,
        lines: Option<&[OrderLine]>,
    ) -> Result<(Next, Option<OrderRow>), StepError> {
        let lines = self.lines(&order.id, lines).await?;
        let mut batch = self.db.batch();
        let now = now_ms();
        store::advance(
            &mut batch,
            &order.id,
            unwritten.recorded(order),
            step::DONE,
            Some(store::CONFIRMED),
            now,
        );
        unwritten.write_notes(&mut batch, &order.id);
        store::note(
            &mut batch,
            &order.id,
            "confirmed",
            "stock committed, payment captured",
        );
        let event = OrderConfirmed {
            order_id: order.id.clone(),
            user_id: order.user_id.clone(),
            total: order.total,
            currency: order.currency.clone(),
            lines,
        };
        self.outbox.add(&mut batch, &event)?;
        if self.outbox.write(&self.db, batch).await?.is_none() {
            return Ok((Next::Done, None));
        }
        *unwritten = Unwritten::default();
        crate::metrics::confirmed(order.total, &order.currency, order.created_ms, now_ms());
        tracing::info!(total = order.total, "order confirmed");
        let done = OrderRow {
            step: step::DONE.to_string(),
            status: store::CONFIRMED.to_string(),
            updated_ms: now,
            ..order.clone()
        };
        Ok((Next::Done, Some(done)))
    }

    async fn cancel(
        &self,
        order: &OrderRow,
        unwritten: &mut Unwritten,
        undone: &str,
    ) -> Result<(Next, Option<OrderRow>), StepError> {
        let mut batch = self.db.batch();
        let now = now_ms();
        store::advance(
            &mut batch,
            &order.id,
            unwritten.recorded(order),
            step::DONE,
            Some(store::CANCELLED),
            now,
        );
        unwritten.write_notes(&mut batch, &order.id);
        store::note(&mut batch, &order.id, "cancelled", undone);
        let event = OrderCancelled {
            order_id: order.id.clone(),
            user_id: order.user_id.clone(),
            reason: order.reason.clone().unwrap_or_default(),
            detail: order.detail.clone().unwrap_or_default(),
        };
        self.outbox.add(&mut batch, &event)?;
        if self.outbox.write(&self.db, batch).await?.is_none() {
            return Ok((Next::Done, None));
        }
        *unwritten = Unwritten::default();
        crate::metrics::cancelled(order.reason.as_deref(), order.created_ms, now_ms());
        tracing::info!(
            reason = order.reason.as_deref().unwrap_or(""),
            undone,
            "order cancelled"
        );
        let done = OrderRow {
            step: step::DONE.to_string(),
            status: store::CANCELLED.to_string(),
            updated_ms: now,
            ..order.clone()
        };
        Ok((Next::Done, Some(done)))
    }
}

/// What the saga did in memory since it last wrote the order: the step the
/// database still shows, and the timeline entries on the way there.
///
/// A step that moves straight on to the next (stock reserved, so authorize;
/// authorized, so complete) writes nothing then: its calls are repeatable, and
/// payments records the authorization, so a saga resumed from the older step finds
/// its way (see [`Saga::resume_without_card`]). The next write takes it all along —
/// the pivot before the stock is committed, a compensation, or the write before a
/// wait or a retry — moving the order from the step the database shows (the move
/// conditional on it), in one transaction. A checkout that runs straight through
/// writes its order three times (placed, pivot, confirmed) instead of four: under
/// load, SQLite's one write slot is the checkout's bottleneck.
#[derive(Debug, Default)]
struct Unwritten {
    /// The step the database shows, once the saga moved past it.
    from: Option<String>,
    /// Timeline entries not written yet: when, what, detail.
    notes: Vec<(i64, &'static str, String)>,
}

impl Unwritten {
    fn is_empty(&self) -> bool {
        self.from.is_none() && self.notes.is_empty()
    }

    /// The step the database shows for `order`.
    fn recorded<'a>(&'a self, order: &'a OrderRow) -> &'a str {
        self.from.as_deref().unwrap_or(&order.step)
    }

    /// Moves `order` on to the step `to` in memory, with its timeline entry.
    fn advance(
        &mut self,
        order: &OrderRow,
        to: &str,
        event: &'static str,
        detail: &str,
    ) -> OrderRow {
        if self.from.is_none() {
            self.from = Some(order.step.clone());
        }
        self.note(event, detail);
        OrderRow {
            step: to.to_string(),
            ..order.clone()
        }
    }

    /// A timeline entry, as of now.
    fn note(&mut self, event: &'static str, detail: &str) {
        self.notes.push((now_ms(), event, detail.to_string()));
    }

    /// Adds the entries to the timeline in `batch`.
    fn write_notes(&self, batch: &mut emporium_store::Batch, order_id: &str) {
        for (at_ms, event, detail) in &self.notes {
            store::note_at(batch, order_id, *at_ms, event, detail);
        }
    }
}

/// `client` marking its calls safe to repeat, with `key`.
pub(crate) fn keyed(client: &ServiceClient, key: &str) -> ServiceClient {
    match http::HeaderValue::from_str(key) {
        Ok(value) => client.clone().with_header(
            http::HeaderName::from_static(emporium_contracts::headers::IDEMPOTENCY_KEY),
            value,
        ),
        Err(_) => client.clone(),
    }
}
