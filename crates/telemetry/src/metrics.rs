//! Prometheus metrics: one recorder per process, rendered by `GET /metrics`.
//!
//! Code records through the `metrics` macros (`counter!`, `histogram!`, `gauge!`)
//! anywhere; [`install`] puts the Prometheus recorder behind them. Gauges that are a
//! query (outbox backlog, consumer lag, dead letters) register a [`Collector`] that
//! runs just before each scrape, so they are read fresh and cost nothing between
//! scrapes (a collector that fails, its database down, leaves the last values).
//!
//! Naming follows Prometheus conventions: base units (`_seconds`, `_bytes`),
//! `_total` on counters, and label values from small fixed sets (a route template,
//! a status code, a service name, a cancel reason), never an id.

use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

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

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static COLLECTORS: RwLock<Vec<Collector>> = RwLock::new(Vec::new());

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
        if metrics::set_global_recorder(recorder).is_err() {
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
        "http_client_requests_total",
        "Calls to other services, by target service, method and outcome (status, timeout, error)."
    );
    describe_histogram!(
        "http_client_request_duration_seconds",
        Unit::Seconds,
        "Time until another service answered (headers), by target, method and outcome."
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

/// Adds a collector run before every scrape.
pub fn on_scrape<F, Fut>(collect: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let collector: Collector = Arc::new(move || Box::pin(collect()));
    if let Ok(mut list) = COLLECTORS.write() {
        list.push(collector);
    }
}

/// The exposition text: collectors first, then process metrics, then everything.
pub async fn render() -> String {
    let collectors: Vec<Collector> = COLLECTORS.read().map(|l| l.clone()).unwrap_or_default();
    for collect in collectors {
        collect().await;
    }
    let mut text = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    crate::process::render(&mut text);
    text
}

/// The Content-Type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
