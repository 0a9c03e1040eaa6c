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

/// How far past an empty bucket usage admitted elsewhere can push a key, in
/// bursts: enough that N gateways each at their limit still hold the key to one
/// sustained rate between them, and a bounded wait however large the flood.
const MAX_DEBT_BURSTS: u64 = 1;

/// A GCRA limiter keyed by `K`.
pub struct Limiter<K: Hash + Eq> {
    cells: DashMap<K, Cell>,
    /// The nanoseconds between two requests at the sustained rate (high 32
    /// bits) and the burst (low 32), in one word so a check never sees half a
    /// change.
    shape: AtomicU64,
    start: Instant,
}

fn pack(interval_ns: u32, burst: u32) -> u64 {
    (u64::from(interval_ns) << 32) | u64::from(burst)
}

/// The nanoseconds a full bucket spans in a packed shape.
fn tolerance(shape: u64) -> u64 {
    (shape >> 32).saturating_mul(shape & u64::from(u32::MAX))
}

impl<K: Hash + Eq + Clone + Display + FromStr> Limiter<K> {
    /// `per_second` sustained, `burst` at once; `what` names the setting in errors.
    pub fn new(per_second: u32, burst: u32, what: &str) -> anyhow::Result<Self> {
        let limiter = Self {
            cells: DashMap::new(),
            shape: AtomicU64::new(0),
            start: Instant::now(),
        };
        limiter.set(per_second, burst, what)?;
        Ok(limiter)
    }

    /// Changes the rate and the burst from now on. Each key keeps the number of
    /// requests it has used of its bucket: a raised rate or burst helps at
    /// once, a lowered rate does not hand out a new burst.
    pub fn set(&self, per_second: u32, burst: u32, what: &str) -> anyhow::Result<()> {
        anyhow::ensure!(per_second > 0, "{what} rate must be > 0");
        anyhow::ensure!(burst > 0, "{what} burst must be > 0");
        let shape = pack(1_000_000_000 / per_second, burst);
        let old = self.shape.swap(shape, Ordering::Relaxed);
        if old != 0 && old != shape {
            let now = self.now();
            let (old_interval, new_interval) = ((old >> 32).max(1), shape >> 32);
            let most = now.saturating_add(tolerance(shape).saturating_mul(1 + MAX_DEBT_BURSTS));
            for mut cell in self.cells.iter_mut() {
                if let Some(used) = cell.tat.checked_sub(now) {
                    let rescaled =
                        u128::from(used) * u128::from(new_interval) / u128::from(old_interval);
                    cell.tat = now
                        .saturating_add(u64::try_from(rescaled).unwrap_or(u64::MAX))
                        .min(most);
                }
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
        let shape = self.shape.load(Ordering::Relaxed);
        ((shape >> 32).max(1), tolerance(shape))
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

    /// Charges `key` with `n` requests admitted elsewhere `age` ago. Past an
    /// empty bucket the key runs into debt (it waits for what others admitted
    /// while it was at its limit here), at most [`MAX_DEBT_BURSTS`] bursts.
    pub fn charge(&self, key: K, n: u32, age: Duration) {
        let now = self.now();
        let (interval, tolerance) = self.shape();
        let at = now.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX));
        let most = now.saturating_add(tolerance.saturating_mul(1 + MAX_DEBT_BURSTS));
        let mut cell = self.cells.entry(key).or_default();
        let charged = cell
            .tat
            .max(at)
            .saturating_add(interval.saturating_mul(u64::from(n)))
            .min(most);
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

    /// Forgets the keys whose bucket is full again, unless they have usage to
    /// report (`sharing`; without it nothing is ever taken).
    pub fn retain(&self, sharing: bool) {
        let now = self.now();
        self.cells
            .retain(|_, c| c.tat > now || (sharing && c.admitted > 0));
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
        // A flood elsewhere runs the key into debt, one burst at most: the wait
        // is the burst's ten seconds plus one.
        l.charge(ip("10.0.0.2"), 1_000_000, Duration::ZERO);
        let wait = l.check(ip("10.0.0.2")).expect_err("empty");
        assert_eq!(wait, 11, "no debt beyond one burst");
        // At its limit here, what another gateway admitted still counts.
        let busy = ip("10.0.0.4");
        while l.check(busy).is_ok() {}
        l.charge(busy, 3, Duration::ZERO);
        assert_eq!(l.check(busy).expect_err("in debt"), 4);
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
        l.retain(true);
        assert_eq!(l.len(), 0, "every bucket is full again");
        // Without sharing, what was admitted is never taken: keys go all the same.
        l.check(ip("10.0.0.5")).expect("admitted");
        std::thread::sleep(Duration::from_millis(10));
        l.retain(true);
        assert_eq!(l.len(), 1, "kept for its report");
        l.retain(false);
        assert_eq!(l.len(), 0, "no report without sharing");
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
        // Spent, then lowered to one a second: still spent, no new burst.
        while l.check(ip("10.0.0.1")).is_ok() {}
        l.set(1, 5, "test").expect("set");
        assert!(
            l.check(ip("10.0.0.1")).is_err(),
            "a lowered rate hands out nothing"
        );
        assert!(l.set(0, 5, "test").is_err());
    }
}
