//! Fault rules: faults injected into calls between services on purpose, to watch
//! the shop cope. The operator writes them to the registry's config store
//! (`emporium chaos ...`), under [`FAULTS_PREFIX`]; every process reads them and
//! its client chassis applies them to its own calls.

use serde::{Deserialize, Serialize};

/// Config keys of fault rules: `faults/<id>`.
pub const FAULTS_PREFIX: &str = "faults/";

/// One fault, on a share of the calls from one service (or any) to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The calling service; none: every caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The called service.
    pub to: String,
    pub fault: Fault,
    /// The share of matching calls it applies to, 0 to 100.
    pub percent: f64,
    /// When it stops applying (ms since the epoch): every rule expires, so a
    /// forgotten one cannot linger.
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The call waits this long before it is sent (plus up to `jitter_ms` more,
    /// uniformly).
    Delay {
        ms: u64,
        #[serde(default)]
        jitter_ms: u64,
    },
    /// The call is answered with this status at once, never sent.
    Abort { status: u16 },
    /// The call fails as if the connection had been reset.
    Reset,
}

impl FaultRule {
    /// Whether it applies to calls from `caller` to `target` at `now_ms`.
    pub fn matches(&self, caller: &str, target: &str, now_ms: i64) -> bool {
        self.to == target
            && self.from.as_deref().is_none_or(|from| from == caller)
            && now_ms < self.expires_at_ms
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(0.0..=100.0).contains(&self.percent) || self.percent.is_nan() {
            return Some(format!("percent {} is not between 0 and 100", self.percent));
        }
        match self.fault {
            Fault::Abort { status } if !(400..=599).contains(&status) => {
                Some(format!("status {status} is not an error status (400-599)"))
            }
            Fault::Delay { ms, jitter_ms } if ms.saturating_add(jitter_ms) > 600_000 => {
                Some("a delay of more than 10 minutes".into())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_matches_its_caller_and_target_until_it_expires() {
        let rule = FaultRule {
            from: Some("orders".into()),
            to: "payments".into(),
            fault: Fault::Delay {
                ms: 800,
                jitter_ms: 0,
            },
            percent: 50.0,
            expires_at_ms: 1_000,
        };
        assert!(rule.matches("orders", "payments", 999));
        assert!(!rule.matches("orders", "payments", 1_000), "expired");
        assert!(!rule.matches("cart", "payments", 0));
        assert!(!rule.matches("orders", "inventory", 0));
        let any = FaultRule { from: None, ..rule };
        assert!(any.matches("cart", "payments", 0));
        let json = serde_json::to_string(&any).expect("json");
        assert_eq!(
            json,
            r#"{"to":"payments","fault":{"kind":"delay","ms":800,"jitter_ms":0},"percent":50.0,"expires_at_ms":1000}"#
        );
        assert_eq!(serde_json::from_str::<FaultRule>(&json).expect("back"), any);
        let bad = FaultRule {
            fault: Fault::Abort { status: 200 },
            ..any
        };
        assert!(bad.problem().is_some());
    }
}
