//! The policies every call to another service goes through, in Polly's standard
//! order: bulkhead, then (inside the caller's deadline) retries with hedging and a
//! retry budget, the circuit breaker per attempt, and per instance the outlier
//! ejection and in-flight counts the balancer reads. [`crate::HttpTransport`]
//! applies them; the numbers are in [`emporium_config::CallPolicy`].

mod breaker;
mod budget;
pub mod outlier;
pub mod retry;
mod window;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use emporium_config::{CallPolicy, ClientSettings};
use emporium_telemetry::metrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use breaker::{Admit, State as BreakerState};

use crate::error::ClientError;
use crate::faults::Faults;

/// The policies of one caller, with the state of each target it calls, and the
/// fault rules of its process.
#[derive(Debug)]
pub struct Policies {
    caller: String,
    settings: RwLock<ClientSettings>,
    targets: RwLock<HashMap<String, Arc<Target>>>,
    faults: Arc<Faults>,
}

/// One target service as one caller sees it.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub policy: CallPolicy,
    budget: budget::RetryBudget,
    breaker: breaker::Breaker,
    bulkhead: Arc<Semaphore>,
}

impl Policies {
    /// The policies of `caller`'s calls, under `settings` and the rules in `faults`.
    pub fn new(caller: &str, settings: ClientSettings, faults: Arc<Faults>) -> Self {
        Self {
            caller: caller.to_string(),
            settings: RwLock::new(settings),
            targets: RwLock::new(HashMap::new()),
            faults,
        }
    }

    /// The service whose calls these are.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// The fault rules of this process.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Applies new settings from the next call on (live configuration). Targets
    /// whose policy changed start afresh: breaker closed, budget and bulkhead new.
    pub fn reconfigure(&self, settings: ClientSettings) {
        let Ok(mut current) = self.settings.write() else {
            return;
        };
        if *current == settings {
            return;
        }
        if let Ok(mut targets) = self.targets.write() {
            targets.retain(|name, t| t.policy == settings.policy(name));
        }
        *current = settings;
    }

    /// The state of calls to `service`, made on first use.
    pub fn target(&self, service: &str) -> Arc<Target> {
        if let Some(t) = self
            .targets
            .read()
            .ok()
            .and_then(|t| t.get(service).cloned())
        {
            return t;
        }
        let policy = self
            .settings
            .read()
            .map(|s| s.policy(service))
            .unwrap_or_default();
        let target = Arc::new(Target::new(service, policy));
        match self.targets.write() {
            Ok(mut targets) => targets.entry(service.to_string()).or_insert(target).clone(),
            Err(_) => target,
        }
    }
}

impl Target {
    fn new(name: &str, policy: CallPolicy) -> Self {
        // A new target (first call, or new settings) starts with its circuit closed.
        metrics::gauge!("http_client_breaker_state", "target" => name.to_string()).set(0.0);
        Self {
            name: name.to_string(),
            budget: budget::RetryBudget::new(
                policy.budget_percent,
                policy.budget_min_per_sec,
                Duration::from_millis(policy.budget_window_ms),
            ),
            breaker: breaker::Breaker::new(&policy),
            bulkhead: Arc::new(Semaphore::new(policy.max_concurrent.max(1) as usize)),
            policy,
        }
    }

    fn labels(&self) -> [(&'static str, String); 1] {
        [("target", self.name.clone())]
    }

    /// A slot among the calls in flight to this target, or a refusal at once.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, ClientError> {
        self.bulkhead.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("http_client_rejected_total", "target" => self.name.clone(), "reason" => "bulkhead_full")
                .increment(1);
            ClientError::Overloaded(self.name.clone())
        })
    }

    /// Counts a call (not a retry) towards the retry budget.
    pub fn called(&self) {
        self.budget.deposit();
    }

    /// Takes a retry from the budget, counting it by `reason`.
    pub fn retry(&self, reason: &'static str) -> bool {
        if self.budget.withdraw() {
            metrics::counter!("http_client_retries_total", "target" => self.name.clone(), "reason" => reason)
                .increment(1);
            true
        } else {
            metrics::counter!("http_client_retry_budget_exhausted_total", &self.labels())
                .increment(1);
            false
        }
    }

    /// Whether the circuit lets an attempt through.
    pub fn admit(&self) -> Result<Admit, ClientError> {
        let (admit, moved) = self.breaker.admit();
        self.breaker_moved(moved);
        if admit == Admit::No {
            metrics::counter!("http_client_rejected_total", "target" => self.name.clone(), "reason" => "breaker_open")
                .increment(1);
            return Err(ClientError::CircuitOpen(self.name.clone()));
        }
        Ok(admit)
    }

    /// Whether the circuit is open now (calls would fail at once).
    pub fn is_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Tells the circuit how an attempt it let through went.
    pub fn attempted(&self, admitted: Admit, ok: bool) {
        let moved = self.breaker.record(admitted, ok);
        self.breaker_moved(moved);
    }

    fn breaker_moved(&self, moved: Option<BreakerState>) {
        let Some(state) = moved else { return };
        match state {
            BreakerState::Open => {
                tracing::warn!(target_service = %self.name, "circuit opened: calls fail at once for a while")
            }
            _ => {
                tracing::info!(target_service = %self.name, state = state.label(), "circuit changed")
            }
        }
        metrics::gauge!("http_client_breaker_state", &self.labels()).set(state as u8 as f64);
        metrics::counter!("http_client_breaker_transitions_total", "target" => self.name.clone(), "state" => state.label())
            .increment(1);
    }

    /// Counts an instance's ejection or re-admission.
    pub fn outlier(&self, address: &str, change: outlier::Change) {
        match change {
            outlier::Change::Ejected(time) => {
                tracing::warn!(target_service = %self.name, %address, seconds = time.as_secs_f64(), "instance ejected after consecutive failures");
                metrics::counter!("http_client_ejections_total", &self.labels()).increment(1);
            }
            outlier::Change::Readmitted => {
                tracing::info!(target_service = %self.name, %address, "ejected instance answered its probe: re-admitted");
                metrics::counter!("http_client_readmissions_total", &self.labels()).increment(1);
            }
        }
    }
}

#[cfg(test)]
mod tests;
