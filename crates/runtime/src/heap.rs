//! Giving freed heap memory back to the system.
//!
//! glibc's malloc returns memory to the system only from the top of its main arena
//! (past `M_TRIM_THRESHOLD`). What a burst frees elsewhere — catalog's seeding and
//! search's indexing at start-up, the buffers of a load spike, anything freed by a
//! thread other than the main one (every tokio worker and SQLite connection thread
//! allocates from a thread arena) — stays resident, though unused, until
//! `malloc_trim` runs. A process hosting every service held 56 MiB (PSS) five
//! seconds after start and 46 MiB once trimmed (docs/benchmarks.md, 2026-12-05).
//!
//! So a process trims its heap every `heap_trim_ms` (default 5 s; at least 100 ms).
//! A trim walks the arenas' free chunks and advises the kernel to drop the whole
//! free pages among them: well under a millisecond at these heap sizes; pages used
//! again later come back as zeroed page faults. The call itself is in
//! `emporium_heap`, the one crate allowed `unsafe`.

use std::time::{Duration, Instant};

/// The shortest period: trimming is not meant to run back to back.
const MIN_PERIOD: Duration = Duration::from_millis(100);

/// Trims the heap every `every` (at least [`MIN_PERIOD`]) until the process ends;
/// does nothing for a zero period or where the C library has no `malloc_trim`.
pub(crate) fn spawn_trimming(every: Duration) {
    if every.is_zero() || !emporium_heap::SUPPORTED {
        return;
    }
    let every = every.max(MIN_PERIOD);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once: the process has only just started.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            // On a blocking thread: a trim locks each arena in turn while it walks
            // it, and a large heap takes a while.
            let trimmed = tokio::task::spawn_blocking(|| {
                let started = Instant::now();
                (emporium_heap::trim(), started.elapsed())
            })
            .await;
            if let Ok((released, took)) = trimmed {
                tracing::trace!(released, took_us = took.as_micros() as u64, "heap trimmed");
            }
        }
    });
}
