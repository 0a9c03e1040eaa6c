//! The retry budget (Finagle's `RetryBudget`, Linkerd's `retryBudget`): retries
//! to a target may be at most a share of the calls made to it recently, plus a
//! small reserve per second, so retries can never multiply an outage.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::window::Window;

#[derive(Debug)]
pub struct RetryBudget {
    percent: u64,
    reserve: u64,
    /// Calls (`a`) and retries (`b`) in the window.
    counts: Mutex<Window>,
}

impl RetryBudget {
    /// `percent` of the calls in `window`, plus `min_per_sec` a second.
    pub fn new(percent: u32, min_per_sec: u32, window: Duration) -> Self {
        let counts = Window::new(window);
        let reserve = u64::from(min_per_sec) * counts.seconds();
        Self {
            percent: u64::from(percent),
            reserve,
            counts: Mutex::new(counts),
        }
    }

    /// Counts a call (not a retry): it earns the budget its share.
    pub fn deposit(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.add(Instant::now(), 1, 0);
        }
    }

    /// Takes one retry from the budget; `false` when none is left.
    pub fn withdraw(&self) -> bool {
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        let now = Instant::now();
        let (calls, retries) = counts.totals(now);
        if retries * 100 >= calls * self.percent + self.reserve * 100 {
            return false;
        }
        counts.add(now, 0, 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_share_of_the_calls_plus_the_reserve() {
        let budget = RetryBudget::new(20, 1, Duration::from_secs(10));
        for _ in 0..100 {
            budget.deposit();
        }
        let allowed = (0..1_000).take_while(|_| budget.withdraw()).count();
        assert_eq!(allowed, 20 + 10, "20% of 100 calls plus 1/s over 10 s");
        budget.deposit();
        budget.deposit();
        budget.deposit();
        budget.deposit();
        budget.deposit();
        assert!(budget.withdraw(), "five more calls earn one more retry");
        assert!(!budget.withdraw());
    }
}
