//! The feed transport's consumer side: long-polling a producer's feed through the
//! registry, with the cursor kept in this service's own database.
//!
//! When a service runs several instances they share the cursor, so one of them at a
//! time reads each subscription: it holds a [`Lease`] named after the subscription,
//! renewed between polls (which are kept shorter than the renewal period), and the
//! others wait to take over if it stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use crate::consumer::{Consumer, Subscription, cursor_of, pause};
use crate::envelope::FeedPage;
use crate::lease::Lease;
use crate::snapshot;

/// How long a reader keeps a subscription without renewing its lease.
const READER_LEASE: Duration = Duration::from_secs(15);

/// Reads one producer's feed until `stop`.
pub(crate) async fn read(
    consumer: Arc<Consumer>,
    transport: Arc<dyn emporium_client::Transport>,
    instance: String,
    sub: Arc<Subscription>,
    mut stop: watch::Receiver<bool>,
) {
    let lease = Lease::new(
        consumer.db.clone(),
        format!("feed:{}", sub.name),
        instance,
        READER_LEASE,
    );
    let mut failures = 0;
    // Wait for the subscription: another instance may be reading it.
    loop {
        match lease.acquire().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                failures += 1;
                tracing::warn!(subscription = %sub.name, error = %e, "cannot take the reader lease");
            }
        }
        if !pause(lease.renew_every(), &mut stop).await {
            return;
        }
    }
    let mut renewed = tokio::time::Instant::now();
    let wait = consumer
        .settings
        .feed_wait_ms
        .min(lease.renew_every().as_millis() as u64);
    let client = emporium_client::ServiceClient::new(
        sub.source,
        transport.clone(),
        Duration::from_millis(wait + 5_000),
    );
    let mut cursor = loop {
        match cursor_of(&consumer.db, &sub.name).await {
            Ok(Some(c)) => break c,
            Ok(None) if sub.projection => {
                match snapshot::load(&consumer, &client, &sub, None, &mut stop).await {
                    Some(position) => break position,
                    None => return,
                }
            }
            Ok(None) => break 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(subscription = %sub.name, error = %e, "cannot read the cursor");
                if !pause(consumer.backoff(failures), &mut stop).await {
                    return;
                }
            }
        }
    };
    failures = 0;
    tracing::info!(subscription = %sub.name, cursor, "subscribed");
    while !*stop.borrow() {
        if renewed.elapsed() >= lease.renew_every() {
            match lease.acquire().await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    // Lost it while away (paused past the lease): the cursor is the
                    // other reader's now; start over as a waiting instance.
                    tracing::warn!(subscription = %sub.name, "another instance took over this subscription");
                    sub.connected.store(false, Ordering::Relaxed);
                    return Box::pin(read(
                        consumer,
                        transport,
                        lease.holder().to_string(),
                        sub,
                        stop,
                    ))
                    .await;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(subscription = %sub.name, error = %e, "cannot renew the reader lease");
                    if !pause(consumer.backoff(failures), &mut stop).await {
                        return;
                    }
                    continue;
                }
            }
        }
        // Until it has caught up, ask without waiting: an empty page then says so
        // at once (a projection is unready until it knows).
        let wait = if sub.caught_up.load(Ordering::Relaxed) {
            wait
        } else {
            0
        };
        let path = format!(
            "/internal/events?after={cursor}&limit={}&wait={wait}",
            consumer.settings.batch_size
        );
        let page: FeedPage = tokio::select! {
            page = client.get_json(&path) => match page {
                Ok(page) => page,
                Err(e) => {
                    failures += 1;
                    if sub.connected.swap(false, Ordering::Relaxed) || failures == 1 {
                        tracing::warn!(subscription = %sub.name, error = %e, "feed unreachable; retrying");
                    }
                    if !pause(consumer.backoff(failures), &mut stop).await {
                        return;
                    }
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        failures = 0;
        if !sub.connected.swap(true, Ordering::Relaxed) {
            tracing::info!(subscription = %sub.name, cursor, head = page.head, "feed connected");
        }
        sub.head.store(page.head, Ordering::Relaxed);
        // Missed events: the producer pruned past the cursor and the page does not
        // go on right after it (a prune racing the page's read deleted nothing the
        // page carries); everything up to `through` is gone. A projection then
        // rebuilds from what the producer holds now, as it does when the producer's
        // database was replaced (its head behind the cursor).
        let first = page.events.first().map(|e| e.seq);
        let pruned = cursor < page.pruned && first.is_none_or(|f| f > cursor + 1);
        let through = first.map_or(page.pruned, |f| (f - 1).min(page.pruned));
        if sub.projection && (pruned || page.head < cursor) {
            tracing::warn!(
                subscription = %sub.name, cursor, head = page.head, pruned = page.pruned,
                "the producer no longer serves what follows this cursor; loading its snapshot"
            );
            sub.caught_up.store(false, Ordering::Relaxed);
            match snapshot::load(&consumer, &client, &sub, None, &mut stop).await {
                Some(position) => cursor = position,
                None => return,
            }
            continue;
        }
        if pruned {
            let missed = through - cursor;
            tracing::error!(
                subscription = %sub.name, cursor, through, missed,
                "events were pruned before this consumer read them; going on after the gap"
            );
            emporium_telemetry::metrics::counter!(
                "emporium_events_gap_events_total",
                "subscription" => sub.name.clone()
            )
            .increment(u64::try_from(missed).unwrap_or(0));
            match crate::retention::record_gap(&consumer.db, &sub.name, cursor, through).await {
                Ok(()) => cursor = through,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(subscription = %sub.name, error = %e, "cannot record the gap yet");
                    if !pause(consumer.backoff(failures), &mut stop).await {
                        return;
                    }
                }
            }
            continue;
        }
        if page.head < cursor {
            // Sequence numbers only grow, so the producer's database was replaced
            // (reset, restored): read it again from the start. Events already
            // applied are recognised by id and have no second effect.
            tracing::warn!(
                subscription = %sub.name, cursor, head = page.head,
                "the producer's outbox is behind this cursor; reading it again from the start"
            );
            cursor = 0;
            continue;
        }
        let Some(last) = page.events.last() else {
            sub.mark_caught_up();
            continue;
        };
        let last = last.seq;
        if !consumer.apply_batch(&sub, &page.events, &mut stop).await {
            return;
        }
        cursor = last;
        if last >= page.head {
            sub.mark_caught_up();
        }
    }
}
