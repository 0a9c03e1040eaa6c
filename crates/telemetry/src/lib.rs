//! Logs, traces and metrics for every Emporium process.
//!
//! - [`init`] installs one global `tracing` subscriber for logs (below), the
//!   Prometheus recorder ([`metrics`]) and span export when asked ([`trace`]).
//! - [`trace::Span`] is one traced operation; its ids go into log lines and
//!   `traceparent` headers.
//! - [`metrics::render`] is what `GET /metrics` serves.
//! - [`logfile`] is the rotated file `emporium up` keeps every line in, and reads
//!   one order's timeline back out of it.
//!
//! A process hosting several services tells each one's work apart by [`identity`]:
//! its log lines, metric labels and spans carry that service's name.
//!
//! [`init`] installs one global `tracing` subscriber. On a terminal the output is
//! human-readable; otherwise (under `emporium up`, in a container) it is one JSON
//! object per line with `timestamp`, `level`, `target`, `service`, `instance`,
//! `message`, the event's fields and the fields of the spans it happened in (such as
//! `request_id`, set by the HTTP middleware). `emporium up` reads those lines to print
//! its merged, coloured view.

pub mod context;
pub mod identity;
mod json;
pub mod logfile;
pub mod meters;
pub mod metrics;
mod process;
pub mod trace;

use std::io::IsTerminal;

use emporium_config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use identity::Identity;
pub use json::JsonLayer;

/// Installs the global subscriber, the metrics recorder and span export (when the
/// OTel environment asks for it). Calling it again (tests) is harmless.
pub fn init(identity: Identity, settings: &LogSettings) {
    identity::set_process(identity.clone());
    metrics::install();
    trace::init(&identity);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(JsonLayer::stdout(identity)).try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    // A second init (several services in one test process) keeps the first.
    if result.is_ok() {
        let _ = LOG_FILTER.set(handle);
    }
}

static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Replaces the log filter of the running process with `directive` (as in
/// `log.level`, e.g. `info,emporium_orders=debug`): the live setting.
pub fn set_log_level(directive: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
    match LOG_FILTER.get() {
        Some(handle) => handle.reload(filter).map_err(|e| e.to_string()),
        None => Err("logging is not set up in this process".into()),
    }
}

/// Whether `directive` is a valid log filter.
pub fn valid_log_level(directive: &str) -> Result<(), String> {
    EnvFilter::try_new(directive)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Logs for tests: silent unless `TEST_LOG` is set.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init(
            Identity {
                service: "test".into(),
                instance: "test".into(),
            },
            &LogSettings {
                format: LogFormat::Pretty,
                level: std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
            },
        );
    }
}
