//! `emporium logs` and `emporium trace`: reading back what `emporium up` kept.
//!
//! - `emporium logs [SERVICE...] [--follow] [--trace ID] [--level L]` prints the
//!   merged logs, oldest first, filtered by service (or instance), trace id and
//!   minimum level; `--follow` keeps printing new lines, across rotations.
//! - `emporium trace ORDER_ID` finds the traces an order was part of (the lines
//!   that name it carry their trace ids) and prints every line of those traces, from
//!   every service, as one timeline with the time since the first line: the saga,
//!   the calls it made, the events it caused, without installing Jaeger.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value};

use crate::logs::Printer;
use emporium_telemetry::logfile;
use emporium_telemetry::logfile::timeline;

/// Which lines to show.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Services or instance ids; empty means all.
    pub services: Vec<String>,
    pub trace: Option<String>,
    pub min_level: Option<Level>,
}

/// Log levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn of(text: &str) -> Option<Level> {
        match text.to_ascii_uppercase().as_str() {
            "TRACE" => Some(Level::Trace),
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARN" | "WARNING" => Some(Level::Warn),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }
}

fn text<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

impl Filter {
    pub fn matches(&self, m: &Map<String, Value>) -> bool {
        if !self.services.is_empty() {
            let service = text(m, "service");
            let instance = text(m, "instance");
            if !self
                .services
                .iter()
                .any(|s| Some(s.as_str()) == service || Some(s.as_str()) == instance)
            {
                return false;
            }
        }
        if let Some(trace) = &self.trace
            && !text(m, "trace_id").is_some_and(|t| t.eq_ignore_ascii_case(trace))
        {
            return false;
        }
        if let Some(min) = self.min_level
            && text(m, "level").and_then(Level::of).is_none_or(|l| l < min)
        {
            return false;
        }
        true
    }
}

/// The log file of the `emporium up` using `data_dir` (else the running shop's,
/// [`crate::running`]), which must exist.
fn log_path(data_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = crate::running::data_dir(data_dir);
    let path = logfile::current(&dir);
    anyhow::ensure!(
        path.exists() || !logfile::files_oldest_first(&path).is_empty(),
        "no logs in {} (has `emporium up` run with this data folder? pass --data-dir)",
        logfile::dir(&dir).display()
    );
    Ok(path)
}

/// `emporium logs`.
pub async fn logs(filter: Filter, follow: bool, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let path = log_path(data_dir)?;
    let printer = Printer::new();
    let show = |line: &str| {
        if let Ok(m) = serde_json::from_str::<Map<String, Value>>(line)
            && filter.matches(&m)
        {
            printer.print(line, &m);
        }
    };
    let mut position =
        logfile::read_all(&path, show).with_context(|| format!("reading {}", path.display()))?;
    if !follow {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        position = logfile::read_from(&path, position, show)
            .with_context(|| format!("reading {}", path.display()))?;
    }
}

/// `emporium trace ORDER_ID`.
pub fn trace(order_id: &str, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let path = log_path(data_dir)?;
    let timeline =
        timeline(&path, order_id).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        !timeline.steps.is_empty(),
        "no log line mentions order {order_id} in {}",
        path.display()
    );
    println!(
        "order {order_id}: {} lines from {} services in {} trace(s)\n",
        timeline.steps.len(),
        timeline.services,
        timeline.traces
    );
    for s in &timeline.steps {
        println!(
            "{:>10.1} ms  {:<16} {:<5} {}{}",
            s.since_ms, s.source, s.level, s.message, s.details
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).expect("object")
    }

    #[test]
    fn filters_combine_service_trace_and_level() {
        let f = Filter {
            services: vec!["orders".into()],
            trace: Some("ABC".into()),
            min_level: Some(Level::Info),
        };
        let base = serde_json::json!({"service":"orders","instance":"orders-2","trace_id":"abc","level":"WARN"});
        assert!(f.matches(&line(base.clone())));
        let mut other = base.clone();
        other["service"] = "cart".into();
        other["instance"] = "cart".into();
        assert!(!f.matches(&line(other)));
        let mut debug = base.clone();
        debug["level"] = "DEBUG".into();
        assert!(!f.matches(&line(debug)));
        let mut no_trace = base.clone();
        no_trace["trace_id"] = "def".into();
        assert!(!f.matches(&line(no_trace)));
        let by_instance = Filter {
            services: vec!["orders-2".into()],
            ..Filter::default()
        };
        assert!(by_instance.matches(&line(base)));
    }
}
