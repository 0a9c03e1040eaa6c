//! `emporium logs` and `emporium trace`: reading back what `emporium up` kept.
//!
//! - `emporium logs [SERVICE...] [--follow] [--trace ID] [--level L]` prints the
//!   merged logs, oldest first, filtered by service (or instance), trace id and
//!   minimum level; `--follow` keeps printing new lines, across rotations.
//! - `emporium trace ORDER_ID` finds the traces an order was part of (the lines
//!   that name it carry their trace ids) and prints every line of those traces, from
//!   every service, as one timeline with the time since the first line: the saga,
//!   the calls it made, the events it caused, without installing Jaeger.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::logfile;
use crate::logs::Printer;

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

/// One log line of a timeline: when, the line, its fields.
pub type Entry = (OffsetDateTime, String, Map<String, Value>);

/// The lines of one order's traces, in time order.
pub fn timeline(path: &Path, order_id: &str) -> anyhow::Result<Vec<Entry>> {
    // First pass: the traces of the lines that name the order.
    let mut traces = HashSet::new();
    logfile::read_all(path, |line| {
        if !line.contains(order_id) {
            return;
        }
        if let Ok(m) = serde_json::from_str::<Map<String, Value>>(line)
            && names_order(&m, order_id)
            && let Some(trace) = text(&m, "trace_id")
        {
            traces.insert(trace.to_string());
        }
    })
    .with_context(|| format!("reading {}", path.display()))?;
    // Second pass: every line of those traces, and every line naming the order.
    let mut lines = Vec::new();
    logfile::read_all(path, |line| {
        let Ok(m) = serde_json::from_str::<Map<String, Value>>(line) else {
            return;
        };
        let in_trace = text(&m, "trace_id").is_some_and(|t| traces.contains(t));
        if in_trace || names_order(&m, order_id) {
            // A line without a readable time cannot be placed on the timeline.
            if let Some(at) =
                text(&m, "timestamp").and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            {
                lines.push((at, line.to_string(), m));
            }
        }
    })?;
    lines.sort_by_key(|(at, _, _)| *at);
    Ok(lines)
}

fn names_order(m: &Map<String, Value>, order_id: &str) -> bool {
    text(m, "order_id") == Some(order_id) || text(m, "subject") == Some(order_id)
}

/// `emporium trace ORDER_ID`.
pub fn trace(order_id: &str, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let path = log_path(data_dir)?;
    let lines = timeline(&path, order_id)?;
    anyhow::ensure!(
        !lines.is_empty(),
        "no log line mentions order {order_id} in {}",
        path.display()
    );
    let start = lines[0].0;
    let traces: HashSet<&str> = lines
        .iter()
        .filter_map(|(_, _, m)| text(m, "trace_id"))
        .collect();
    let services: HashSet<&str> = lines
        .iter()
        .filter_map(|(_, _, m)| text(m, "service"))
        .collect();
    println!(
        "order {order_id}: {} lines from {} services in {} trace(s)\n",
        lines.len(),
        services.len(),
        traces.len()
    );
    for (at, _, m) in &lines {
        let since = (*at - start).as_seconds_f64() * 1000.0;
        let source = text(m, "instance")
            .or_else(|| text(m, "service"))
            .unwrap_or("?");
        let level = text(m, "level").unwrap_or("");
        let message = text(m, "message").unwrap_or("");
        let mut details = String::new();
        for key in [
            "method",
            "path",
            "status",
            "latency_ms",
            "reason",
            "detail",
            "event_type",
            "total",
            "error",
        ] {
            if let Some(v) = m.get(key) {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                details.push_str(&format!(" {key}={v}"));
            }
        }
        println!("{since:>10.1} ms  {source:<16} {level:<5} {message}{details}");
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

    #[test]
    fn an_orders_timeline_spans_its_traces_in_time_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emporium.log");
        let mut log = logfile::RotatingFile::open(path.clone(), 1 << 20, 2).expect("open");
        let lines = [
            r#"{"timestamp":"2026-11-30T10:00:00.300Z","level":"INFO","service":"notifications","trace_id":"t1","message":"event handled"}"#,
            r#"{"timestamp":"2026-11-30T10:00:00.100Z","level":"INFO","service":"gateway","trace_id":"t1","message":"request"}"#,
            r#"{"timestamp":"2026-11-30T10:00:00.200Z","level":"INFO","service":"orders","trace_id":"t1","order_id":"o-1","message":"order placed"}"#,
            r#"{"timestamp":"2026-11-30T10:00:00.250Z","level":"INFO","service":"orders","trace_id":"t2","message":"another checkout"}"#,
            r#"{"timestamp":"2026-11-30T10:00:05Z","level":"WARN","service":"orders","trace_id":"t3","order_id":"o-1","message":"resuming a saga left in flight"}"#,
        ];
        for l in lines {
            log.write_line(l).expect("write");
        }
        let got: Vec<String> = timeline(&path, "o-1")
            .expect("timeline")
            .into_iter()
            .map(|(_, _, m)| text(&m, "message").unwrap_or("").to_string())
            .collect();
        assert_eq!(
            got,
            [
                "request",
                "order placed",
                "event handled",
                "resuming a saga left in flight"
            ]
        );
    }
}
