//! Prometheus metrics: one recorder per process, rendered by `GET /metrics`.
//!
//! Code records through the `metrics` macros (`counter!`, `histogram!`, `gauge!`)
//! anywhere; [`install`] puts the Prometheus recorder behind them. Gauges that are a
//! query (outbox backlog, consumer lag, dead letters) register a [`Collector`] that
//! runs just before each scrape, so they are read fresh and cost nothing between
//! scrapes (a collector that fails, its database down, leaves the last values).
//!
//! In a process hosting several services every series gets a `service` label (the
//! service whose work recorded it, from [`crate::identity`]), and each service's
//! `GET /metrics` renders only its own series and the process's.
//!
//! Naming follows Prometheus conventions: base units (`_seconds`, `_bytes`),
//! `_total` on counters, and label values from small fixed sets (a route template,
//! a status code, a service name, a cancel reason), never an id.

use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Latency buckets (seconds) for every `_duration_seconds` histogram: 1 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Runs before a scrape to set query-backed gauges.
pub type Collector = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A collector and the service that added it (none: the process's own).
type Owned = (Option<String>, Collector);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static COLLECTORS: RwLock<Vec<Owned>> = RwLock::new(Vec::new());

/// Installs the process's recorder (the first call wins) and describes the metrics
/// every process has.
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder);
        let recorder = match recorder {
            Ok(r) => r,
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        if metrics::set_global_recorder(PerService(recorder)).is_err() {
            eprintln!("emporium: a metrics recorder was already installed");
        }
        // Histograms keep raw samples until rendered; drain them even when nothing
        // scrapes, so memory stays flat.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        crate::process::start();
        describe_common();
        handle
    });
}

/// HELP lines of the metrics the chassis records in every service.
fn describe_common() {
    describe_counter!(
        "http_server_requests_total",
        "Requests served, by method, route template and status."
    );
    describe_histogram!(
        "http_server_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a request, by method, route template and status."
    );
    describe_counter!(
        "emporium_faults_injected_total",
        "Faults a fault rule injected into this process's calls, by target and kind."
    );
    describe_histogram!(
        "emporium_store_write_seconds",
        Unit::Seconds,
        "Time a write (a batch in one transaction) took as its caller waited for it, the queue and its group included, by class (admitted work or a public request)."
    );
    describe_histogram!(
        "emporium_store_write_wait_seconds",
        Unit::Seconds,
        "Time a SQLite writer waited for the database's write slot itself (until it took it, or gave up after the queue's limit), by class (admitted work or a public request)."
    );
    describe_counter!(
        "emporium_store_write_wait_timeouts_total",
        "SQLite write transactions that waited for the write slot longer than the queue's limit (5 s) and went on to SQLite's busy timeout, by class."
    );
    describe_counter!(
        "http_server_shed_total",
        "Requests refused with 503 because the concurrency limit was reached."
    );
    describe_gauge!(
        "http_server_concurrency_limit",
        "The adaptive concurrency limit of a route, when it moved off its ceiling."
    );
    describe_counter!(
        "http_client_requests_total",
        "Calls to other services, by target service, method and outcome (status, timeout, error)."
    );
    describe_histogram!(
        "http_client_request_duration_seconds",
        Unit::Seconds,
        "Time until another service answered (headers), by target, method and outcome."
    );
    describe_counter!(
        "http_client_retries_total",
        "Calls to another service sent again, by target and reason (refused, reset, status, timeout, hedge)."
    );
    describe_counter!(
        "http_client_retry_budget_exhausted_total",
        "Retries not made because the target's retry budget was spent."
    );
    describe_counter!(
        "http_client_rejected_total",
        "Calls failed at once, by target and reason (breaker_open, bulkhead_full)."
    );
    describe_gauge!(
        "http_client_breaker_state",
        "Circuit breaker per target: 0 closed, 1 open, 2 half-open."
    );
    describe_counter!(
        "http_client_breaker_transitions_total",
        "Circuit breaker state changes, by target and new state."
    );
    describe_counter!(
        "http_client_ejections_total",
        "Instances of a target ejected after consecutive failures."
    );
    describe_counter!(
        "http_client_readmissions_total",
        "Ejected instances re-admitted by a successful probe."
    );
    describe_gauge!(
        "emporium_outbox_head_sequence",
        "Newest sequence number in this service's outbox."
    );
    describe_gauge!(
        "emporium_outbox_unsent_events",
        "Outbox events the relay has not yet published to NATS (0 with the feed)."
    );
    describe_gauge!(
        "emporium_consumer_lag_events",
        "Events the producer has published that this subscription has not applied."
    );
    describe_gauge!(
        "emporium_consumer_connected",
        "1 while the subscription reaches its producer or broker."
    );
    describe_gauge!(
        "emporium_dead_letters",
        "Events parked after failing every attempt (emporium events dead)."
    );
    describe_counter!(
        "emporium_events_handled_total",
        "Events handled, by subscription, type and outcome."
    );
    describe_counter!(
        "emporium_events_parked_total",
        "Events parked as dead letters since the process started."
    );
}

/// Adds a collector run before every scrape, as the work of the service that added
/// it (its gauges carry that service's label).
pub fn on_scrape<F, Fut>(collect: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let owner = crate::identity::scoped();
    let name = owner.as_ref().map(|o| o.service.clone());
    let collector: Collector = Arc::new(move || match owner.clone() {
        Some(owner) => Box::pin(crate::identity::scope(owner, collect())),
        None => Box::pin(collect()),
    });
    if let Ok(mut list) = COLLECTORS.write() {
        list.push((name, collector));
    }
}

/// The exposition text: collectors first, then process metrics, then everything.
/// In a process hosting several services, a service's scrape runs its own
/// collectors only and shows its own series.
pub async fn render() -> String {
    let me = crate::identity::scoped().filter(|_| crate::identity::several());
    let collectors: Vec<Collector> = COLLECTORS
        .read()
        .map(|list| {
            list.iter()
                .filter(|(owner, _)| match (&me, owner) {
                    (Some(me), Some(owner)) => *owner == me.service,
                    _ => true,
                })
                .map(|(_, c)| c.clone())
                .collect()
        })
        .unwrap_or_default();
    for collect in collectors {
        collect().await;
    }
    let mut text = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    if let Some(me) = &me {
        text = only_service(&text, &me.service);
    }
    crate::process::render(&mut text);
    text
}

/// The Content-Type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The recorder behind the macros: Prometheus's, adding a `service` label when the
/// process hosts several services.
struct PerService<R>(R);

impl<R> PerService<R> {
    fn key(&self, key: &Key) -> Option<Key> {
        if !crate::identity::several() {
            return None;
        }
        let me = crate::identity::scoped()?;
        if key.labels().any(|l| l.key() == "service") {
            return None;
        }
        Some(key.with_extra_labels(vec![Label::new("service", me.service.clone())]))
    }
}

impl<R: Recorder> Recorder for PerService<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description)
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description)
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.key(key) {
            Some(key) => self.0.register_counter(&key, metadata),
            None => self.0.register_counter(key, metadata),
        }
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.key(key) {
            Some(key) => self.0.register_gauge(&key, metadata),
            None => self.0.register_gauge(key, metadata),
        }
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.key(key) {
            Some(key) => self.0.register_histogram(&key, metadata),
            None => self.0.register_histogram(key, metadata),
        }
    }
}

/// The exposition `text` without the series of other services: samples labelled
/// with another `service` are dropped, and a family's `# HELP`/`# TYPE` lines are
/// kept only when one of its samples is.
fn only_service(text: &str, service: &str) -> String {
    let mine = format!("service=\"{service}\"");
    let mut out = String::with_capacity(text.len() / 2);
    // The headers of the family being read, until one of its samples is kept.
    let mut header = String::new();
    let mut family = "";
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            let name = comment.split_whitespace().nth(1).unwrap_or_default();
            if name != family {
                header.clear();
                family = name;
            }
            header.push_str(line);
            header.push('\n');
            continue;
        }
        if line.is_empty() {
            continue;
        }
        // The last `}` closes the labels: values may hold braces (a route template).
        let labels = line
            .find('{')
            .and_then(|open| line.rfind('}').map(|close| &line[open..close]));
        let keep = match labels {
            Some(labels) if has_label(labels, "service=\"") => has_label(labels, &mine),
            _ => true,
        };
        if keep {
            out.push_str(&header);
            header.clear();
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Whether `labels` (`{a="1",b="2"`) has a label starting with `pair`.
fn has_label(labels: &str, pair: &str) -> bool {
    labels
        .strip_prefix('{')
        .unwrap_or(labels)
        .split(',')
        .any(|label| label.starts_with(pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_services_own_series_and_their_headers_are_kept() {
        let text = "\
# HELP a_total A.
# TYPE a_total counter
a_total{service=\"cart\",x=\"1\"} 1
a_total{service=\"orders\",x=\"1\"} 2
a_total{route=\"/r/{id}\",service=\"orders\"} 6
# HELP b_total B.
# TYPE b_total counter
b_total{service=\"orders\"} 3
b_total{subservice=\"cart\"} 5
# HELP c C.
# TYPE c gauge
c 4
";
        assert_eq!(
            only_service(text, "cart"),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{service=\"cart\",x=\"1\"} 1\n\
             # HELP b_total B.\n# TYPE b_total counter\nb_total{subservice=\"cart\"} 5\n\
             # HELP c C.\n# TYPE c gauge\nc 4\n"
        );
        let orders = only_service(text, "orders");
        assert!(orders.contains("a_total{service=\"orders\",x=\"1\"} 2"));
        assert!(orders.contains("# TYPE a_total counter\na_total{service=\"orders\""));
        assert!(orders.contains("a_total{route=\"/r/{id}\",service=\"orders\"} 6"));
        assert!(orders.contains("# TYPE b_total counter\nb_total"));
        assert!(
            orders.contains("b_total{subservice=\"cart\"} 5"),
            "not a service label"
        );
    }
}
