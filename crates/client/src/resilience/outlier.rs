//! Outlier ejection per instance (Envoy's outlier detection): an instance that
//! failed several calls in a row is taken out of the rotation for a while, longer
//! each time; when its time is up the next call to it is a probe, and its answer
//! re-admits it or ejects it again. Also the in-flight count the balancer reads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use emporium_config::CallPolicy;

/// How long an instance that refused a connection is tried last.
const REFUSED_FOR: Duration = Duration::from_secs(5);

/// What the balancer and the ejection rule know of one instance.
#[derive(Debug, Default)]
pub struct Health {
    in_flight: AtomicUsize,
    state: Mutex<Outlier>,
}

#[derive(Debug, Default)]
struct Outlier {
    consecutive: u32,
    ejected_until: Option<Instant>,
    times_ejected: u32,
    /// Refused a connection or left a call unanswered recently: tried after the
    /// others until then.
    refused_until: Option<Instant>,
}

/// How an attempt at an instance failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection was refused: it goes last for a few seconds.
    Refused,
    /// A 5xx, or a broken connection.
    Failed,
    /// Left unanswered past the attempt timeout and given up on (another attempt
    /// answered, or the caller's deadline passed): it goes last for this long, so
    /// calls stop piling onto a hung instance before it is ejected.
    Abandoned(Duration),
}

/// A change worth a metric and a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Ejected(Duration),
    Readmitted,
}

/// Where an instance stands for the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    Available,
    /// Refused a connection, or left a call unanswered, a moment ago.
    Refused,
    Ejected,
}

impl Health {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a call in flight until the guard drops.
    pub fn start(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn standing(&self, now: Instant) -> Standing {
        let Ok(s) = self.state.lock() else {
            return Standing::Available;
        };
        if s.ejected_until.is_some_and(|until| now < until) {
            Standing::Ejected
        } else if s.refused_until.is_some_and(|until| now < until) {
            Standing::Refused
        } else {
            Standing::Available
        }
    }

    /// An answer that was not a failure: the streak ends; after an ejection, this
    /// was the probe, and the instance is back.
    pub fn succeeded(&self) -> Option<Change> {
        let mut s = self.state.lock().ok()?;
        s.consecutive = 0;
        s.refused_until = None;
        // A late answer to a call made before the ejection changes nothing.
        if s.ejected_until.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        s.ejected_until.take().map(|_| {
            // Every clean probe earns back one step of the ejection multiplier.
            s.times_ejected = s.times_ejected.saturating_sub(1);
            Change::Readmitted
        })
    }

    /// A failed call. `may_eject` says whether the service can spare another
    /// instance (asked only when this one has earned its ejection).
    pub fn failed(
        &self,
        failure: Failure,
        policy: &CallPolicy,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Change> {
        let now = Instant::now();
        let mut s = self.state.lock().ok()?;
        let aside = match failure {
            Failure::Refused => Some(REFUSED_FOR),
            Failure::Abandoned(time) => Some(time),
            Failure::Failed => None,
        };
        if let Some(time) = aside {
            s.refused_until = Some(now + time);
        }
        s.consecutive = s.consecutive.saturating_add(1);
        // A failed probe (ejection over, not yet re-admitted) ejects at once.
        let probing = s.ejected_until.is_some_and(|until| now >= until);
        let ejected_now = s.ejected_until.is_some_and(|until| now < until);
        if ejected_now || (!probing && s.consecutive < policy.eject_after.max(1)) {
            return None;
        }
        drop(s);
        if !may_eject() {
            return None;
        }
        let mut s = self.state.lock().ok()?;
        s.times_ejected = s.times_ejected.saturating_add(1);
        let base = Duration::from_millis(policy.eject_base_ms);
        let time = base
            .saturating_mul(s.times_ejected)
            .min(Duration::from_millis(policy.eject_max_ms).max(base));
        s.ejected_until = Some(now + time);
        s.consecutive = 0;
        Some(Change::Ejected(time))
    }

    /// Whether this instance is ejected now or awaiting its probe (it counts
    /// against the share of a service that may be ejected).
    pub fn out(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.ejected_until.is_some())
            .unwrap_or(false)
    }
}

/// One call in flight to an instance.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<Health>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether one more of `instances` may be ejected when `out` already are:
/// at most `percent` of them (at least one), and never the last one in.
pub fn may_eject(instances: usize, out: usize, percent: u32) -> bool {
    let cap = (instances * percent as usize / 100).max(1);
    out < cap && instances.saturating_sub(out) > 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn policy() -> CallPolicy {
        CallPolicy {
            eject_after: 3,
            eject_base_ms: 200,
            eject_max_ms: 500,
            ..CallPolicy::default()
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_then_a_probe_readmits() {
        let h = Health::default();
        let p = policy();
        assert_eq!(h.failed(Failure::Failed, &p, || true), None);
        assert_eq!(h.succeeded(), None, "a success breaks the streak");
        assert_eq!(h.failed(Failure::Failed, &p, || true), None);
        assert_eq!(h.failed(Failure::Failed, &p, || true), None);
        assert_eq!(
            h.failed(Failure::Failed, &p, || true),
            Some(Change::Ejected(Duration::from_millis(200)))
        );
        assert_eq!(h.standing(Instant::now()), Standing::Ejected);
        std::thread::sleep(Duration::from_millis(230));
        assert_eq!(h.standing(Instant::now()), Standing::Available, "probe due");
        assert_eq!(
            h.failed(Failure::Failed, &p, || true),
            Some(Change::Ejected(Duration::from_millis(400))),
            "a failed probe ejects again, for twice as long"
        );
        std::thread::sleep(Duration::from_millis(430));
        assert_eq!(h.succeeded(), Some(Change::Readmitted));
        assert!(!h.out());
    }

    #[test]
    fn not_ejected_when_the_service_cannot_spare_it() {
        let h = Health::default();
        let p = policy();
        for _ in 0..10 {
            assert_eq!(h.failed(Failure::Failed, &p, || false), None);
        }
        assert_eq!(h.standing(Instant::now()), Standing::Available);
    }

    #[test]
    fn the_ejectable_share() {
        assert!(may_eject(2, 0, 10), "one of two may go");
        assert!(!may_eject(2, 1, 10), "never the last one in");
        assert!(!may_eject(1, 0, 10), "nor a lone instance");
        assert!(may_eject(20, 1, 10));
        assert!(!may_eject(20, 2, 10), "10% of 20");
    }

    #[test]
    fn in_flight_counts_until_the_guard_drops() {
        let h = Arc::new(Health::default());
        let a = h.start();
        let b = h.start();
        assert_eq!(h.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(h.in_flight(), 0);
    }
}
