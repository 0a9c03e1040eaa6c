//! Shared usage: instances of one service (the gateways) report what their rate
//! limits admitted since their last report, and get back what the others
//! reported since theirs, so a client's quota holds across every instance.
//!
//! Reports are kept in memory for [`RETAIN`] (and at most [`MAX_RETAINED`]
//! counts, oldest dropped first): usage older than that no longer matters to a
//! rate limit, and a registry restart loses only seconds of it. Each answer
//! carries every report's age, so an instance that was idle for a while charges
//! old usage as old.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Extension, State};
use emporium_contracts::registry::{Usage, UsageExchange, UsageReport, UsageSince};
use emporium_http::{ApiError, ApiJson, FieldError};
use emporium_identity::Peer;

/// How long a report is kept.
pub const RETAIN: Duration = Duration::from_secs(10);
/// Most counts kept over all reports.
pub const MAX_RETAINED: usize = 500_000;
/// Most counts in one report.
pub const MAX_REPORT: usize = 20_000;
/// Largest report body: 20,000 counts of the longest keys (IPv6 addresses).
pub const MAX_BODY: usize = 2 * 1024 * 1024;

struct Kept {
    index: u64,
    at: Instant,
    service: String,
    instance_id: String,
    entries: usize,
    usage: Arc<Usage>,
}

/// The reports of the last [`RETAIN`].
#[derive(Clone)]
pub struct UsageLog {
    epoch: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    last: u64,
    kept: VecDeque<Kept>,
    entries: usize,
}

impl UsageLog {
    pub fn new(epoch: &str) -> Self {
        Self {
            epoch: epoch.into(),
            inner: Arc::default(),
        }
    }

    /// Keeps `report` and answers what the service's other instances reported
    /// after the report's `after` (everything kept, when it names another epoch);
    /// `None` when the log is unusable (a panic while it was held).
    pub fn exchange(&self, report: UsageReport) -> Option<UsageExchange> {
        let now = Instant::now();
        let after = match &report.after {
            Some((epoch, index)) if **epoch == *self.epoch => *index,
            _ => 0,
        };
        let mut inner = self.inner.lock().ok()?;
        inner.prune(now);
        let reports = inner
            .kept
            .iter()
            .filter(|k| {
                k.index > after
                    && k.service == report.service
                    && k.instance_id != report.instance_id
            })
            .map(|k| UsageSince {
                age_ms: u64::try_from(now.duration_since(k.at).as_millis()).unwrap_or(u64::MAX),
                usage: Usage::clone(&k.usage),
            })
            .collect();
        let entries = report.entries();
        if entries > 0 {
            inner.last += 1;
            let index = inner.last;
            inner.entries += entries;
            inner.kept.push_back(Kept {
                index,
                at: now,
                service: report.service,
                instance_id: report.instance_id,
                entries,
                usage: Arc::new(report.usage),
            });
            inner.prune(now);
        }
        Some(UsageExchange {
            epoch: self.epoch.to_string(),
            index: inner.last,
            reports,
        })
    }
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        while let Some(oldest) = self.kept.front() {
            if now.duration_since(oldest.at) <= RETAIN && self.entries <= MAX_RETAINED {
                break;
            }
            self.entries -= oldest.entries;
            self.kept.pop_front();
        }
    }
}

/// `POST /internal/registry/usage`: an instance reports for its own service only.
pub async fn exchange(
    State(log): State<UsageLog>,
    Extension(peer): Extension<Peer>,
    ApiJson(report): ApiJson<UsageReport>,
) -> Result<Json<UsageExchange>, ApiError> {
    crate::api::must_act_for(&peer, &report.service, "report usage for")?;
    let mut errors = Vec::new();
    if let Err(e) = crate::api::check_name("service", &report.service) {
        errors.push(e);
    }
    if let Err(e) = crate::api::check_name("instance_id", &report.instance_id) {
        errors.push(e);
    }
    if report.entries() > MAX_REPORT {
        errors.push(FieldError::new(
            "usage",
            format!("at most {MAX_REPORT} counts per report"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    log.exchange(report)
        .map(Json)
        .ok_or_else(|| ApiError::unavailable("usage is not shared right now"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(instance: &str, after: Option<(String, u64)>, ip: &[(&str, u32)]) -> UsageReport {
        let mut usage = Usage::new();
        if !ip.is_empty() {
            usage.insert(
                "ip".into(),
                ip.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            );
        }
        UsageReport {
            service: "gateway".into(),
            instance_id: instance.into(),
            after,
            usage,
        }
    }

    fn counts(x: &UsageExchange) -> Vec<u32> {
        x.reports
            .iter()
            .flat_map(|r| r.usage.values().flat_map(|k| k.values().copied()))
            .collect()
    }

    #[test]
    fn each_instance_gets_the_others_reports_once() {
        let log = UsageLog::new("e1");
        let x = |r| log.exchange(r).expect("exchange");
        let a1 = x(report("a", None, &[("10.0.0.1", 3)]));
        assert!(a1.reports.is_empty(), "its own report is not sent back");
        let b1 = x(report("b", None, &[("10.0.0.1", 2)]));
        assert_eq!(counts(&b1), [3]);
        let a2 = x(report("a", Some(("e1".into(), a1.index)), &[]));
        assert_eq!(counts(&a2), [2]);
        let a3 = x(report("a", Some(("e1".into(), a2.index)), &[]));
        assert!(a3.reports.is_empty(), "nothing new");
        // Another service's instances share nothing with these.
        let mut other = report("c", None, &[]);
        other.service = "users".into();
        assert!(x(other).reports.is_empty());
        // A cursor from another epoch (the registry restarted) gets everything kept.
        let stale = x(report("a", Some(("e0".into(), 99)), &[]));
        assert_eq!(counts(&stale), [2]);
    }

    #[test]
    fn counts_beyond_the_cap_drop_the_oldest_reports() {
        let log = UsageLog::new("e1");
        let big: Vec<(String, u32)> = (0..MAX_REPORT).map(|i| (format!("k{i}"), 1)).collect();
        let big: Vec<(&str, u32)> = big.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        for i in 0..(MAX_RETAINED / MAX_REPORT + 3) {
            log.exchange(report(&format!("i{i}"), None, &big));
        }
        let inner = log.inner.lock().expect("lock");
        assert!(inner.entries <= MAX_RETAINED, "{} kept", inner.entries);
        assert_eq!(
            inner.entries,
            inner.kept.iter().map(|k| k.entries).sum::<usize>()
        );
    }
}
