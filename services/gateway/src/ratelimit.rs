//! Rate limiting per client IP and per signed-in user: GCRA (the generic cell
//! rate algorithm, as governor and Redis' redis-cell use it), one theoretical
//! arrival time per key.
//!
//! Written here rather than taken from governor because the quotas hold across
//! gateway instances ([`crate::share`]): a key's state must also be *charged*
//! with requests another instance admitted, saturating at an empty bucket, and
//! governor only tests-and-consumes what fits. Each key also counts what this
//! instance admitted since its last report.
//!
//! A keyed limiter remembers every key it has seen; [`Limiter::retain`] forgets
//! the ones whose bucket is full again, so memory stays bounded. The rate and the
//! burst can change while it runs (live config).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Where the limiter's clock starts.
const CLOCK_ORIGIN: Duration = Duration::from_secs(24 * 3600);

/// One key's state.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    /// Theoretical arrival time on the limiter's clock. The bucket is full when
    /// it is at or before now.
    tat: u64,
    /// Requests admitted here since the last [`Limiter::take_admitted`].
    admitted: u32,
}

/// A GCRA limiter keyed by `K`.
pub struct Limiter<K: Hash + Eq> {
    cells: DashMap<K, Cell>,
    /// Nanoseconds between two requests at the sustained rate.
    interval_ns: AtomicU64,
    burst: AtomicU64,
    start: Instant,
}

impl<K: Hash + Eq + Clone + Display + FromStr> Limiter<K> {
    /// `per_second` sustained, `burst` at once; `what` names the setting in errors.
    pub fn new(per_second: u32, burst: u32, what: &str) -> anyhow::Result<Self> {
        let limiter = Self {
            cells: DashMap::new(),
            interval_ns: AtomicU64::new(0),
            burst: AtomicU64::new(0),
            start: Instant::now(),
        };
        limiter.set(per_second, burst, what)?;
        Ok(limiter)
    }

    /// Changes the rate and the burst from now on. A key's bucket is never
    /// emptier than empty at the new shape: a raised rate helps at once.
    pub fn set(&self, per_second: u32, burst: u32, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(per_second > 0, "{what} rate must be > 0");
        anyhow::ensure!(burst > 0, "{what} burst must be > 0");
        let interval = 1_000_000_000 / u64::from(per_second);
        let burst = u64::from(burst);
        let old_interval = self.interval_ns.swap(interval, Ordering::Relaxed);
        let old_burst = self.burst.swap(burst, Ordering::Relaxed);
        if (old_interval, old_burst) != (interval, burst) {
            let full = self.now().saturating_add(interval.saturating_mul(burst));
            for mut cell in self.cells.iter_mut() {
                cell.tat = cell.tat.min(full);
            }
        }
        Ok(())
    }

    /// Nanoseconds on the limiter's clock, which starts a day in: usage from
    /// before the limiter started is still in its past.
    fn now(&self) -> u64 {
        u64::try_from((self.start.elapsed() + CLOCK_ORIGIN).as_nanos()).unwrap_or(u64::MAX)
    }

    /// `(interval, tolerance)`: the bucket holds `tolerance / interval` requests.
    fn shape(&self) -> (u64, u64) {
        let interval = self.interval_ns.load(Ordering::Relaxed).max(1);
        (
            interval,
            interval.saturating_mul(self.burst.load(Ordering::Relaxed)),
        )
    }

    /// `Ok` when `key` may make a request now (and it is counted); otherwise the
    /// whole seconds to wait.
    pub fn check(&self, key: K) -> Result<(), u64> {
        let now = self.now();
        let (interval, tolerance) = self.shape();
        let mut cell = self.cells.entry(key).or_default();
        let next = cell.tat.max(now).saturating_add(interval);
        let allowed_until = now.saturating_add(tolerance);
        if next > allowed_until {
            let wait = Duration::from_nanos(next - allowed_until);
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        cell.tat = next;
        cell.admitted = cell.admitted.saturating_add(1);
        Ok(())
    }

    /// Charges `key` with `n` requests admitted elsewhere `age` ago; a charge
    /// empties the bucket at most (no debt beyond it).
    pub fn charge(&self, key: K, n: u32, age: Duration) {
        let now = self.now();
        let (interval, tolerance) = self.shape();
        let at = now.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX));
        let full = now.saturating_add(tolerance);
        let mut cell = self.cells.entry(key).or_default();
        let charged = cell
            .tat
            .max(at)
            .saturating_add(interval.saturating_mul(u64::from(n)))
            .min(full);
        cell.tat = cell.tat.max(charged);
    }

    /// [`Self::charge`] with the key as text; a key that does not parse is skipped.
    pub fn charge_str(&self, key: &str, n: u32, age: Duration) {
        if let Ok(key) = key.parse() {
            self.charge(key, n, age);
        }
    }

    /// What this instance admitted per key since the last call, at most `max`
    /// keys (the busiest), as text; the counts start again from zero.
    pub fn take_admitted(&self, max: usize) -> BTreeMap<String, u32> {
        let mut taken: Vec<(K, u32)> = Vec::new();
        for mut cell in self.cells.iter_mut() {
            if cell.admitted > 0 {
                taken.push((cell.key().clone(), std::mem::take(&mut cell.admitted)));
            }
        }
        if taken.len() > max {
            taken.sort_unstable_by_key(|(_, n)| std::cmp::Reverse(*n));
            taken.truncate(max);
        }
        taken.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
    }

    /// Forgets the keys whose bucket is full again and who have nothing to report.
    pub fn retain(&self) {
        let now = self.now();
        self.cells.retain(|_, c| c.tat > now || c.admitted > 0);
        self.cells.shrink_to_fit();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.cells.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn burst_then_refusal_per_ip() {
        let l = Limiter::<IpAddr>::new(1, 3, "test").expect("limiter");
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1")).is_ok());
        }
        let wait = l.check(ip("10.0.0.1")).expect_err("over the burst");
        assert_eq!(wait, 1, "Retry-After is the next whole second");
        assert!(
            l.check(ip("10.0.0.2")).is_ok(),
            "other clients are not affected"
        );
    }

    #[test]
    fn the_sustained_rate_refills_the_bucket() {
        let l = Limiter::<IpAddr>::new(100, 2, "test").expect("limiter");
        assert!(l.check(ip("10.0.0.1")).is_ok());
        assert!(l.check(ip("10.0.0.1")).is_ok());
        assert!(l.check(ip("10.0.0.1")).is_err());
        std::thread::sleep(Duration::from_millis(25));
        assert!(
            l.check(ip("10.0.0.1")).is_ok(),
            "10 ms per request at 100/s"
        );
    }

    #[test]
    fn usage_elsewhere_is_charged_and_saturates_at_an_empty_bucket() {
        let l = Limiter::<IpAddr>::new(1, 10, "test").expect("limiter");
        l.charge(ip("10.0.0.1"), 7, Duration::ZERO);
        let admitted = (0..10).filter(|_| l.check(ip("10.0.0.1")).is_ok()).count();
        assert_eq!(admitted, 3, "7 of the burst of 10 were spent elsewhere");
        // A flood elsewhere empties the bucket, no more: one second refills one.
        l.charge(ip("10.0.0.2"), 1_000_000, Duration::ZERO);
        let wait = l.check(ip("10.0.0.2")).expect_err("empty");
        assert_eq!(wait, 1, "no debt beyond an empty bucket");
        // Usage long past has refilled since.
        l.charge(ip("10.0.0.3"), 10, Duration::from_secs(60));
        assert!(l.check(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn admitted_counts_are_taken_once_and_idle_keys_forgotten() {
        let l = Limiter::<IpAddr>::new(1000, 100, "test").expect("limiter");
        for _ in 0..3 {
            l.check(ip("10.0.0.1")).expect("admitted");
        }
        l.check(ip("10.0.0.2")).expect("admitted");
        l.charge_str("10.0.0.3", 2, Duration::ZERO);
        l.charge_str("not an address", 2, Duration::ZERO);
        let taken = l.take_admitted(10);
        assert_eq!(
            taken.into_iter().collect::<Vec<_>>(),
            [("10.0.0.1".to_string(), 3), ("10.0.0.2".to_string(), 1)],
            "charges are not reported again"
        );
        assert!(l.take_admitted(10).is_empty());
        assert_eq!(l.len(), 3);
        std::thread::sleep(Duration::from_millis(10));
        l.retain();
        assert_eq!(l.len(), 0, "every bucket is full again");
    }

    #[test]
    fn only_the_busiest_keys_are_taken_past_the_cap() {
        let l = Limiter::<IpAddr>::new(1000, 100, "test").expect("limiter");
        for (i, n) in [1, 5, 3].into_iter().enumerate() {
            for _ in 0..n {
                l.check(ip(&format!("10.0.0.{i}"))).expect("admitted");
            }
        }
        let taken = l.take_admitted(2);
        assert_eq!(taken.values().copied().collect::<Vec<_>>(), [5, 3]);
    }

    #[test]
    fn the_rate_changes_while_running() {
        let l = Limiter::<IpAddr>::new(1, 1, "test").expect("limiter");
        l.check(ip("10.0.0.1")).expect("admitted");
        assert!(l.check(ip("10.0.0.1")).is_err());
        l.set(1, 5, "test").expect("set");
        assert!(
            l.check(ip("10.0.0.1")).is_ok(),
            "a larger burst admits at once"
        );
        // Spent at one request a second, then raised to a thousand: no second's wait.
        while l.check(ip("10.0.0.1")).is_ok() {}
        l.set(1000, 5, "test").expect("set");
        std::thread::sleep(Duration::from_millis(3));
        assert!(
            l.check(ip("10.0.0.1")).is_ok(),
            "a raised rate helps at once"
        );
        assert!(l.set(0, 5, "test").is_err());
    }
}
