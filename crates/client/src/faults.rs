//! The fault rules this process applies to its own calls
//! ([`emporium_contracts::chaos`]): set from the registry's config store by the
//! runtime, read by [`crate::HttpTransport`] on every attempt.

use std::sync::Arc;

use arc_swap::ArcSwap;
use emporium_contracts::chaos::{Fault, FaultRule};

/// Milliseconds since the epoch, as rules' expiry times are written.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The rules in force, swapped whole when they change.
#[derive(Debug, Default)]
pub struct Faults {
    rules: ArcSwap<Vec<FaultRule>>,
}

impl Faults {
    /// Replaces the rules.
    pub fn set(&self, rules: Vec<FaultRule>) {
        self.rules.store(Arc::new(rules));
    }

    /// The rules now (expired ones included until the next change).
    pub fn rules(&self) -> Arc<Vec<FaultRule>> {
        self.rules.load_full()
    }

    /// The fault to inject into one call from `caller` to `target`, if a rule
    /// matches and its dice say so: the first such rule wins.
    pub fn pick(&self, caller: &str, target: &str) -> Option<Fault> {
        let rules = self.rules.load();
        if rules.is_empty() {
            return None;
        }
        let now = now_ms();
        rules
            .iter()
            .filter(|r| r.matches(caller, target, now))
            .find(|r| fastrand::f64() * 100.0 < r.percent)
            .map(|r| r.fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(percent: f64, expires_at_ms: i64) -> FaultRule {
        FaultRule {
            from: None,
            to: "payments".into(),
            fault: Fault::Abort { status: 503 },
            percent,
            expires_at_ms,
        }
    }

    #[test]
    fn applies_to_its_share_of_calls_until_it_expires() {
        let faults = Faults::default();
        assert_eq!(faults.pick("orders", "payments"), None);
        let far = now_ms() + 60_000;
        faults.set(vec![rule(100.0, far)]);
        assert_eq!(
            faults.pick("orders", "payments"),
            Some(Fault::Abort { status: 503 })
        );
        assert_eq!(faults.pick("orders", "inventory"), None);
        faults.set(vec![rule(30.0, far)]);
        let hits = (0..2_000)
            .filter(|_| faults.pick("orders", "payments").is_some())
            .count();
        assert!((400..800).contains(&hits), "about 30%: {hits} of 2000");
        faults.set(vec![rule(100.0, now_ms() - 1)]);
        assert_eq!(faults.pick("orders", "payments"), None, "expired");
    }
}
