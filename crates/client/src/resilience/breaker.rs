//! A circuit breaker per target service (Polly's and Resilience4j's): when most
//! recent calls failed it opens and fails calls at once, then lets one probe
//! through; the probe's answer closes it or opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use emporium_config::CallPolicy;

use super::window::Window;

/// Where a breaker stands, as the `http_client_breaker_state` gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Mode {
    Closed,
    Open {
        until: Instant,
    },
    /// Open time is over; one probe may be in flight (since when).
    HalfOpen {
        probe: Option<Instant>,
    },
}

#[derive(Debug)]
pub struct Breaker {
    failure_percent: u64,
    min_calls: u64,
    open_for: Duration,
    inner: Mutex<(Mode, Window)>,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Yes, as the probe of a half-open circuit.
    Probe,
    /// No: the circuit is open.
    No,
}

impl Breaker {
    pub fn new(policy: &CallPolicy) -> Self {
        Self {
            failure_percent: u64::from(policy.breaker_failure_percent),
            min_calls: u64::from(policy.breaker_min_calls.max(1)),
            open_for: Duration::from_millis(policy.breaker_open_ms),
            inner: Mutex::new((
                Mode::Closed,
                Window::new(Duration::from_millis(policy.breaker_window_ms)),
            )),
        }
    }

    /// Whether a call may go ahead now, and the state it moved to, if it moved.
    pub fn admit(&self) -> (Admit, Option<State>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Admit::Yes, None);
        };
        let now = Instant::now();
        match inner.0 {
            Mode::Closed => (Admit::Yes, None),
            Mode::Open { until } if now < until => (Admit::No, None),
            Mode::Open { .. } => {
                inner.0 = Mode::HalfOpen { probe: Some(now) };
                (Admit::Probe, Some(State::HalfOpen))
            }
            // A probe that never reported back (its call was dropped) is given up
            // after the open time, and another may go.
            Mode::HalfOpen { probe: Some(since) } if now < since + self.open_for => {
                (Admit::No, None)
            }
            Mode::HalfOpen { .. } => {
                inner.0 = Mode::HalfOpen { probe: Some(now) };
                (Admit::Probe, None)
            }
        }
    }

    /// Whether calls are failed at once now (open, or half-open with its probe out).
    pub fn is_open(&self) -> bool {
        let now = Instant::now();
        self.inner.lock().is_ok_and(|inner| match inner.0 {
            Mode::Closed => false,
            Mode::Open { until } => now < until,
            Mode::HalfOpen { probe } => probe.is_some_and(|since| now < since + self.open_for),
        })
    }

    /// Records a call's outcome; returns the state the breaker moved to, if it moved.
    pub fn record(&self, admitted: Admit, ok: bool) -> Option<State> {
        let mut inner = self.inner.lock().ok()?;
        let now = Instant::now();
        match (&inner.0, admitted) {
            (Mode::HalfOpen { .. }, Admit::Probe) if ok => {
                inner.0 = Mode::Closed;
                inner.1.clear();
                Some(State::Closed)
            }
            (Mode::HalfOpen { .. }, Admit::Probe) => {
                inner.0 = Mode::Open {
                    until: now + self.open_for,
                };
                Some(State::Open)
            }
            (Mode::Closed, _) => {
                inner.1.add(now, u64::from(ok), u64::from(!ok));
                let (oks, failures) = inner.1.totals(now);
                let calls = oks + failures;
                if !ok && calls >= self.min_calls && failures * 100 >= calls * self.failure_percent
                {
                    inner.0 = Mode::Open {
                        until: now + self.open_for,
                    };
                    return Some(State::Open);
                }
                None
            }
            // Calls admitted before the circuit opened, answering late: the
            // decision is made.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> Breaker {
        Breaker::new(&CallPolicy {
            breaker_failure_percent: 50,
            breaker_min_calls: 4,
            breaker_open_ms: open_ms,
            ..CallPolicy::default()
        })
    }

    #[test]
    fn opens_on_a_failure_ratio_over_enough_calls_then_probes_then_closes() {
        let b = breaker(300);
        assert_eq!(
            b.record(Admit::Yes, false),
            None,
            "one failure is not enough calls"
        );
        assert_eq!(b.record(Admit::Yes, true), None);
        assert_eq!(b.record(Admit::Yes, true), None);
        assert_eq!(
            b.record(Admit::Yes, false),
            Some(State::Open),
            "2 of 4 failed"
        );
        assert_eq!(b.admit(), (Admit::No, None), "fails fast while open");
        assert!(b.is_open());
        std::thread::sleep(Duration::from_millis(330));
        assert_eq!(b.admit(), (Admit::Probe, Some(State::HalfOpen)));
        assert_eq!(b.admit(), (Admit::No, None), "one probe at a time");
        assert_eq!(
            b.record(Admit::Probe, false),
            Some(State::Open),
            "a failed probe opens again"
        );
        std::thread::sleep(Duration::from_millis(330));
        assert_eq!(b.admit().0, Admit::Probe);
        assert_eq!(b.record(Admit::Probe, true), Some(State::Closed));
        assert!(!b.is_open());
        assert_eq!(b.admit(), (Admit::Yes, None));
        assert_eq!(
            b.record(Admit::Yes, false),
            None,
            "closing forgot the old failures"
        );
    }

    #[test]
    fn a_probe_that_never_reports_is_given_up() {
        let b = breaker(200);
        for _ in 0..4 {
            b.record(Admit::Yes, false);
        }
        std::thread::sleep(Duration::from_millis(230));
        assert_eq!(b.admit().0, Admit::Probe);
        std::thread::sleep(Duration::from_millis(230));
        assert_eq!(b.admit().0, Admit::Probe, "the lost probe no longer blocks");
    }
}
