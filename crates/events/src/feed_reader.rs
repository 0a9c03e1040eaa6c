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

use crate::consumer::{Consumer, Subscription, cursor_of, pause, pause_after};
use crate::envelope::FeedPage;
use crate::lease::Lease;
use crate::snapshot;

/// The longest `events.batch_linger_ms` may be: past a second a linger is a delay.
pub(crate) const MAX_LINGER_MS: u64 = 1_000;

/// How long a reader keeps a subscription without renewing its lease.
const READER_LEASE: Duration = Duration::from_secs(15);

/// How often a cursor moved only past events this subscription does not handle is
/// saved: rarely, since a restart merely asks again from the last saved one, but
/// not never, or after the producer prunes past it the restart would look like a
/// gap.
const SAVE_SKIPPED_EVERY: Duration = Duration::from_secs(30);

/// How long a reader whose producer refused the type filter (an older version)
/// reads every event before asking with the filter again.
const UNFILTERED_FOR: Duration = Duration::from_secs(300);

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
    let linger = Duration::from_millis(consumer.settings.batch_linger_ms);
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
    // Asked of the producer so it sends only what this subscription handles; an
    // older producer that refuses the filter is read whole, as before.
    let mut types: Vec<&str> = sub.handlers.keys().copied().collect();
    types.sort_unstable();
    let wanted = (!types.is_empty()).then(|| format!("&types={}", types.join(",")));
    let mut filter = wanted.clone();
    let mut unfiltered_since: Option<tokio::time::Instant> = None;
    // The cursor as saved, and when: moving past unsent events saves it only now
    // and then (SAVE_SKIPPED_EVERY); applying a page saves it in the page's
    // transaction.
    let mut saved = (cursor, tokio::time::Instant::now());
    while !*stop.borrow() {
        if renewed.elapsed() >= lease.renew_every() {
            match lease.acquire().await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    // Lost it while away (paused past the lease): the cursor is the
                    // other reader's now; start over as a waiting instance.
                    tracing::warn!(subscription = %sub.name, "another instance took over this subscription");
                    sub.connected.store(false, Ordering::Relaxed);
                    sub.position.store(0, Ordering::Relaxed);
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
        if unfiltered_since.is_some_and(|since| since.elapsed() >= UNFILTERED_FOR) {
            unfiltered_since = None;
            filter = wanted.clone();
        }
        // Until it has caught up, ask without waiting: an empty page then says so
        // at once (a projection is unready until it knows).
        let wait = if sub.caught_up.load(Ordering::Relaxed) {
            wait
        } else {
            0
        };
        let path = format!(
            "/internal/events?after={cursor}&limit={}&wait={wait}{}",
            consumer.settings.batch_size,
            filter.as_deref().unwrap_or("")
        );
        let page: FeedPage = tokio::select! {
            page = client.get_json(&path) => match page {
                Ok(page) => page,
                Err(e) if filter.is_some() && e.status() == Some(http::StatusCode::BAD_REQUEST) => {
                    tracing::warn!(subscription = %sub.name, error = %e, "the producer does not filter by event type; reading all its events for a while");
                    filter = None;
                    unfiltered_since = Some(tokio::time::Instant::now());
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    if sub.connected.swap(false, Ordering::Relaxed) || failures == 1 {
                        tracing::warn!(subscription = %sub.name, error = %e, "feed unreachable; retrying");
                    }
                    if !pause_after(&client, &e, consumer.backoff(failures), &mut stop).await {
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
            // Saved at once: a restart must not go back to the old outbox's cursor.
            saved = match consumer.skip_to(&sub.name, 0).await {
                Ok(()) => (0, tokio::time::Instant::now()),
                Err(_) => {
                    let now = tokio::time::Instant::now();
                    (-1, now.checked_sub(SAVE_SKIPPED_EVERY).unwrap_or(now))
                }
            };
            sub.position.store(0, Ordering::Relaxed);
            continue;
        }
        // A filtered page covers up to `through`: the events between that it did
        // not carry are of types nobody here handles.
        let through = page.through.unwrap_or(cursor);
        let Some(last) = page.events.last() else {
            cursor = cursor.max(through);
            sub.position.store(cursor, Ordering::Relaxed);
            if cursor != saved.0 && saved.1.elapsed() >= SAVE_SKIPPED_EVERY {
                match consumer.skip_to(&sub.name, cursor).await {
                    Ok(()) => saved = (cursor, tokio::time::Instant::now()),
                    Err(e) => {
                        tracing::debug!(subscription = %sub.name, error = %e, "cannot save the cursor now; later");
                    }
                }
            }
            sub.mark_caught_up();
            continue;
        };
        let last = last.seq;
        if !consumer.apply_batch(&sub, &page.events, &mut stop).await {
            return;
        }
        saved = (last, tokio::time::Instant::now());
        cursor = last.max(through);
        sub.position.store(cursor, Ordering::Relaxed);
        if cursor >= page.head {
            sub.mark_caught_up();
        }
        // A short page: events are arriving one or a few at a time. Let the next
        // ones gather before asking again (a long poll would be woken by the first
        // commit and carry it alone). A full page means more are waiting: ask now.
        if page.events.len() < consumer.settings.batch_size as usize
            && linger > Duration::ZERO
            && !pause(linger, &mut stop).await
        {
            return;
        }
    }
}
