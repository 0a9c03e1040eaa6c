//! [`WriteQueue`]: one process's queue for a SQLite file's one write slot, where
//! work the service already admitted goes ahead of new public requests.
//!
//! A checkout's saga step (orders), its cart take (an internal call to cart that
//! the checkout request waits for), an event handler: each finishes work that was
//! admitted earlier, and every
//! millisecond it waits is added to a request someone already waits for. A new
//! add to cart or a new order, by contrast, may as well wait (or be shed by the
//! adaptive limit, which sees it waiting): under overload that is the difference
//! between finishing the work already started and starting work that will not
//! finish in time (as Google's SRE book has sub-requests inherit their request's
//! criticality). Which is which comes from the request context
//! ([`emporium_telemetry::context::is_admitted`]): a public route's request is
//! new work; an internal route's, a saga's, an event handler's, or work outside
//! any request is admitted.
//!
//! Two semaphores make the two classes: admitted writers wait for the slot
//! directly, first come first served; public writers first wait for a gate that
//! lets one of them at a time join that queue. So an admitted writer waits behind
//! the writer holding the slot, the admitted writers before it and at most one
//! public writer, however many public writers wait; public writers keep their
//! order among themselves. Admitted work could starve public writers only while it takes the whole slot: admitted work
//! is mostly the continuation of public work admitted before it (the adaptive
//! limit bounds that), plus background loops and event handlers, which write
//! little.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_telemetry::metrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a writer waits in the process's queue before it goes to SQLite's busy
/// timeout anyway (as long as that timeout: a transaction holding the slot longer
/// is stuck, and the caller gets SQLite's own answer).
const WAIT: Duration = Duration::from_secs(5);

/// The queue for one database file's write slot.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    slot: Arc<Semaphore>,
    /// The one public writer allowed to wait for the slot.
    public_gate: Semaphore,
}

impl WriteQueue {
    pub(crate) fn new() -> Self {
        Self {
            slot: Arc::new(Semaphore::new(1)),
            public_gate: Semaphore::new(1),
        }
    }

    /// Waits for the write slot as the current work's class; `None` after
    /// [`WAIT`] (the caller goes on to SQLite's busy timeout).
    pub(crate) async fn turn(&self) -> Option<Turn> {
        self.turn_as(emporium_telemetry::context::is_admitted())
            .await
    }

    pub(crate) async fn turn_as(&self, admitted: bool) -> Option<Turn> {
        self.turn_within(admitted, WAIT).await
    }

    async fn turn_within(&self, admitted: bool, wait: Duration) -> Option<Turn> {
        let started = Instant::now();
        let turn = tokio::time::timeout(wait, async {
            // Held until this writer has the slot, then given to the next public one.
            let _gate = match admitted {
                true => None,
                false => Some(self.public_gate.acquire().await.ok()?),
            };
            self.slot.clone().acquire_owned().await.ok()
        })
        .await
        .ok()
        .flatten()
        .map(|permit| Turn {
            _permit: permit,
            since: Instant::now(),
        });
        let class = class(admitted);
        metrics::histogram!("emporium_store_write_wait_seconds", "class" => class)
            .record(started.elapsed().as_secs_f64());
        if turn.is_none() {
            // Counted, not logged each time: it happens when the process is
            // overloaded already. The writer goes on, outside the queue.
            metrics::counter!("emporium_store_write_wait_timeouts_total", "class" => class)
                .increment(1);
        }
        turn
    }
}

/// The `class` label of a writer's metrics: admitted work or a public request.
pub(crate) fn class(admitted: bool) -> &'static str {
    if admitted { "admitted" } else { "public" }
}

/// A writer's hold on the write slot, given back when dropped (with the
/// transaction): how long it was held is measured, since every other writer of the
/// process waits that long.
#[derive(Debug)]
pub(crate) struct Turn {
    _permit: OwnedSemaphorePermit,
    since: Instant,
}

impl Drop for Turn {
    fn drop(&mut self) {
        metrics::histogram!("emporium_store_write_hold_seconds")
            .record(self.since.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The order in which writers queued behind a held slot get it.
    async fn order_of(arrivals: &[(&'static str, bool)]) -> Vec<&'static str> {
        let queue = Arc::new(WriteQueue::new());
        let held = queue.turn_as(true).await.expect("the free slot");
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut writers = Vec::new();
        for &(name, admitted) in arrivals {
            let (queue, got) = (queue.clone(), got.clone());
            writers.push(tokio::spawn(async move {
                let turn = queue.turn_as(admitted).await.expect("a turn");
                got.lock().expect("record").push(name);
                // Holds the slot a moment, as a transaction does.
                tokio::task::yield_now().await;
                drop(turn);
            }));
            // Let each one reach its place in the queue before the next arrives.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for w in writers {
            w.await.expect("writer");
        }
        got.lock().expect("record").clone()
    }

    #[tokio::test]
    async fn admitted_writers_go_ahead_of_all_but_one_waiting_public_writer() {
        let order = order_of(&[
            ("add-1", false),
            ("add-2", false),
            ("add-3", false),
            ("take-1", true),
            ("add-4", false),
            ("take-2", true),
        ])
        .await;
        // add-1 was already waiting for the slot; the takes pass the rest.
        assert_eq!(
            order,
            ["add-1", "take-1", "take-2", "add-2", "add-3", "add-4"]
        );
    }

    #[tokio::test]
    async fn a_writer_waiting_past_the_limit_goes_on_without_a_turn_and_leaves_the_queue() {
        let queue = WriteQueue::new();
        let held = queue.turn_as(true).await.expect("the free slot");
        let wait = Duration::from_millis(50);
        assert!(queue.turn_within(false, wait).await.is_none());
        assert!(queue.turn_within(true, wait).await.is_none());
        // The public writer that gave up let go of the gate: the next one gets
        // the slot as soon as it is free.
        drop(held);
        assert!(queue.turn_within(false, wait).await.is_some());
    }

    #[tokio::test]
    async fn each_class_keeps_its_arrival_order() {
        let order = order_of(&[
            ("take-1", true),
            ("take-2", true),
            ("add-1", false),
            ("add-2", false),
            ("take-3", true),
        ])
        .await;
        assert_eq!(order, ["take-1", "take-2", "add-1", "take-3", "add-2"]);
    }
}
