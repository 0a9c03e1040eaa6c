//! How a service calls the others (the `[client]` table): retries, hedging, the
//! retry budget, outlier ejection, the circuit breaker and the bulkhead, for every
//! target (`[client.default]`) and per target service (`[client.payments]`).
//!
//! Every value has a default taken from a reference implementation, named beside
//! it; where Emporium departs from it, the reason is given there too.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Declares the policy's fields once: the resolved [`CallPolicy`] and the
/// [`CallPolicyOverrides`] a table of settings may give some of.
macro_rules! call_policy {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr ),* $(,)?) => {
        /// The policy for calls to one target service, every value resolved.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct CallPolicy {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for CallPolicy {
            fn default() -> Self {
                Self { $( $name: $default, )* }
            }
        }

        /// Some of a call policy's values, as one table of settings gives them.
        #[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
        #[serde(default, deny_unknown_fields)]
        pub struct CallPolicyOverrides {
            $( $(#[doc = $doc])* pub $name: Option<$ty>, )*
        }

        impl CallPolicyOverrides {
            /// `policy` with the values this table sets.
            fn over(&self, mut policy: CallPolicy) -> CallPolicy {
                $( if let Some(v) = &self.$name { policy.$name = v.clone(); } )*
                policy
            }

            /// The values this table sets, and `base`'s where it sets none.
            pub fn or(&self, base: &CallPolicyOverrides) -> CallPolicyOverrides {
                CallPolicyOverrides {
                    $( $name: self.$name.clone().or_else(|| base.$name.clone()), )*
                }
            }
        }
    };
}

call_policy! {
    /// Further attempts after the first, for a call that may be repeated (GET,
    /// HEAD, or carrying an `idempotency-key`) or that never reached a server.
    /// Envoy's default is 1; 2 lets a call try a third instance.
    retries: u32 = 2,
    /// First wait before a retry, doubled per retry up to `backoff_max_ms`, with
    /// full jitter (Envoy: 25 ms base, 10× cap). A `Retry-After` answer waits longer.
    backoff_base_ms: u64 = 25,
    backoff_max_ms: u64 = 250,
    /// How long an attempt of a call that may be repeated goes unanswered before the
    /// call is also sent to another instance; the first attempt keeps running and
    /// the first answer wins (Envoy's `hedge_on_per_try_timeout`), so a slow but
    /// working instance loses nothing. 0: never.
    attempt_timeout_ms: u64 = 1_000,
    /// Retries allowed beyond the reserve, as a percentage of the calls made in the
    /// last `budget_window_ms` (Finagle's and Linkerd's retry budget: 20%).
    budget_percent: u32 = 20,
    /// Retries always allowed per second, whatever the traffic (Finagle: 10).
    budget_min_per_sec: u32 = 10,
    /// The window the budget counts over (Finagle's TTL: 10 s).
    budget_window_ms: u64 = 10_000,
    /// Consecutive failures (5xx, connection failures, timed-out attempts) that
    /// eject an instance (Envoy's `consecutive_5xx`: 5).
    eject_after: u32 = 5,
    /// How long the first ejection lasts; the n-th lasts n times as long, up to
    /// `eject_max_ms` (Envoy: 30 s and 300 s). Then one call probes it: an
    /// answer re-admits it, a failure ejects it again.
    eject_base_ms: u64 = 30_000,
    eject_max_ms: u64 = 300_000,
    /// Most of a service's instances ejected at once, in percent; at least one
    /// may be, and never the last one left (Envoy: 10%).
    eject_max_percent: u32 = 10,
    /// The circuit opens when at least this percentage of the calls in the window
    /// failed... (Polly's standard pipeline: 10%; Resilience4j: 50%. Emporium takes
    /// 50%: retries and ejection deal with one bad instance or one bad request
    /// kind, and the breaker is for a target that is failing as a whole.)
    breaker_failure_percent: u32 = 50,
    /// ...and there were at least this many (Polly: 100 in 30 s; a shop's service
    /// sees tens of calls a second per target, so 20 in 10 s).
    breaker_min_calls: u32 = 20,
    breaker_window_ms: u64 = 10_000,
    /// How long an open circuit fails calls at once before letting one probe
    /// through (Polly: 5 s). The probe's success closes it, a failure opens it again.
    breaker_open_ms: u64 = 5_000,
    /// Calls to the target in flight at once; more fail at once with 503. Half the
    /// server's default `http.concurrency_limit`, so a slow target holds at most
    /// half of a caller's request slots.
    max_concurrent: u32 = 512,
}

/// The `[client]` table: `default` for every target, then a table per target
/// service whose values win over it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ClientSettings(pub BTreeMap<String, CallPolicyOverrides>);

impl ClientSettings {
    /// The table that applies to every target.
    pub const DEFAULT: &'static str = "default";

    /// These settings with `live`'s tables laid over them, value by value.
    pub fn with(&self, live: &ClientSettings) -> ClientSettings {
        let mut merged = self.0.clone();
        for (table, values) in &live.0 {
            let base = merged.get(table).cloned().unwrap_or_default();
            merged.insert(table.clone(), values.or(&base));
        }
        ClientSettings(merged)
    }

    /// The policy for calls to `target`: compiled defaults, then `[client.default]`,
    /// then `[client.<target>]`.
    pub fn policy(&self, target: &str) -> CallPolicy {
        let mut policy = CallPolicy::default();
        for table in [Self::DEFAULT, target] {
            if let Some(overrides) = self.0.get(table) {
                policy = overrides.over(policy);
            }
        }
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_table_wins_over_the_default_table_which_wins_over_the_compiled_values() {
        let settings: ClientSettings = serde_json::from_str(
            r#"{"default": {"retries": 1, "max_concurrent": 64}, "payments": {"max_concurrent": 8}}"#,
        )
        .expect("parses");
        let payments = settings.policy("payments");
        assert_eq!((payments.retries, payments.max_concurrent), (1, 8));
        let cart = settings.policy("cart");
        assert_eq!((cart.retries, cart.max_concurrent), (1, 64));
        assert_eq!(cart.eject_after, CallPolicy::default().eject_after);
        assert!(
            serde_json::from_str::<ClientSettings>(r#"{"cart": {"retriez": 1}}"#).is_err(),
            "a misspelt key is an error"
        );
        let live: ClientSettings =
            serde_json::from_str(r#"{"payments": {"retries": 0}}"#).expect("parses");
        let merged = settings.with(&live).policy("payments");
        assert_eq!(
            (merged.retries, merged.max_concurrent),
            (0, 8),
            "a live value wins, the file's others stay"
        );
    }
}
