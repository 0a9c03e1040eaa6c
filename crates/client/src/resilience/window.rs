//! Counts over a rolling window of time, in one-second buckets: the retry budget
//! and the circuit breaker both decide on "how many of each in the last N s".

use std::time::{Duration, Instant};

/// Two counters (`a`, `b`) summed over the last `window`, to the second.
#[derive(Debug)]
pub struct Window {
    origin: Instant,
    /// One bucket per second of the window: the second it counts, and its counts.
    buckets: Vec<(u64, u64, u64)>,
}

impl Window {
    pub fn new(window: Duration) -> Self {
        let seconds = window.as_secs().max(1) as usize;
        Self {
            origin: Instant::now(),
            buckets: vec![(u64::MAX, 0, 0); seconds],
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    /// Adds `a` and `b` to the current second.
    pub fn add(&mut self, now: Instant, a: u64, b: u64) {
        let second = self.second(now);
        let len = self.buckets.len() as u64;
        let bucket = &mut self.buckets[(second % len) as usize];
        if bucket.0 != second {
            *bucket = (second, 0, 0);
        }
        bucket.1 += a;
        bucket.2 += b;
    }

    /// The sums of `a` and `b` over the window ending now.
    pub fn totals(&self, now: Instant) -> (u64, u64) {
        let second = self.second(now);
        let len = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|(s, _, _)| *s != u64::MAX && *s <= second && second - *s < len)
            .fold((0, 0), |(a, b), (_, x, y)| (a + x, b + y))
    }

    /// Forgets everything counted so far.
    pub fn clear(&mut self) {
        self.buckets.fill((u64::MAX, 0, 0));
    }

    /// How many seconds the window spans.
    pub fn seconds(&self) -> u64 {
        self.buckets.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_last_seconds() {
        let mut w = Window::new(Duration::from_secs(3));
        let t0 = w.origin;
        w.add(t0, 1, 0);
        w.add(t0 + Duration::from_millis(1_500), 1, 2);
        assert_eq!(w.totals(t0 + Duration::from_millis(1_900)), (2, 2));
        assert_eq!(
            w.totals(t0 + Duration::from_millis(3_100)),
            (1, 2),
            "second 0 left the window"
        );
        w.add(t0 + Duration::from_secs(4), 5, 0);
        assert_eq!(
            w.totals(t0 + Duration::from_secs(4)),
            (5, 0),
            "a reused bucket starts empty"
        );
        w.clear();
        assert_eq!(w.totals(t0 + Duration::from_secs(4)), (0, 0));
    }
}
