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
//! So a process trims its heap every `heap_trim_ms` (default 5 s). A trim walks the
//! arenas' free chunks and advises the kernel to drop the whole free pages among
//! them: well under a millisecond at these heap sizes; pages used again later come
//! back as zeroed page faults.

use std::time::{Duration, Instant};

/// Trims the heap every `every` until the process ends; does nothing for a zero
/// period or where the C library has no `malloc_trim`.
pub(crate) fn spawn_trimming(every: Duration) {
    if every.is_zero() || !SUPPORTED {
        return;
    }
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
                (trim(), started.elapsed())
            })
            .await;
            if let Ok((released, took)) = trimmed {
                tracing::trace!(released, took_us = took.as_micros() as u64, "heap trimmed");
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SUPPORTED: bool = true;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const SUPPORTED: bool = false;

/// Gives the free pages of every arena back; true when any memory was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "the workspace's one FFI call: glibc has no safe wrapper for malloc_trim"
)]
pub(crate) fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointers and has no caller-side invariants; glibc
    // serializes it with every other allocator call through the arenas' locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident memory of this process, in bytes.
    fn resident() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("resident pages");
        pages * 4096
    }

    /// Memory freed below a block still in use stays resident until a trim gives
    /// it back.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_trim_gives_back_freed_memory_below_a_live_block() {
        // 32 MiB in small blocks (below the mmap threshold), all freed but the
        // last: the free space cannot shrink the heap past it.
        let mut blocks: Vec<Vec<u8>> = (0..32_768).map(|i| vec![i as u8; 1024]).collect();
        let last = blocks.pop();
        drop(blocks);
        let before = resident();
        assert!(trim(), "the trim released memory");
        let after = resident();
        assert!(
            before.saturating_sub(after) > 16 << 20,
            "resident {before} bytes before the trim, {after} after"
        );
        drop(last);
    }
}
