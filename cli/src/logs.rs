//! The merged log view of `emporium up`, and `emporium logs`.
//!
//! Services write JSON lines; on a terminal each is shown as one readable line
//! behind a coloured service name, otherwise the JSON is passed through behind the
//! name so tools can still parse it. Whatever a process writes that is not JSON (a
//! panic message) is shown as it is; debug lines are not shown, only kept. Every
//! line also goes to the rotated log file under the data folder
//! ([`emporium_telemetry::logfile`]), which `emporium logs` reads back, filtered by service,
//! trace id and level, and follows.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use serde_json::{Map, Value};

use emporium_telemetry::logfile::RotatingFile;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;

/// Keys shown in the prefix or dropped, rather than as `key=value`.
const SKIPPED: [&str; 7] = [
    "timestamp",
    "level",
    "service",
    "instance",
    "target",
    "message",
    "span_id",
];

#[derive(Clone)]
pub struct LogSink {
    pretty: bool,
    out: Arc<std::sync::Mutex<std::io::Stdout>>,
    file: Option<Arc<std::sync::Mutex<RotatingFile>>>,
    /// Whether writing the file has failed (said once).
    file_failed: Arc<std::sync::atomic::AtomicBool>,
}

impl LogSink {
    /// Prints to stdout and, when given, keeps every line in `file`.
    pub fn new(file: Option<RotatingFile>) -> Self {
        Self {
            pretty: std::io::stdout().is_terminal(),
            out: Arc::new(std::sync::Mutex::new(std::io::stdout())),
            file: file.map(|f| Arc::new(std::sync::Mutex::new(f))),
            file_failed: Arc::default(),
        }
    }

    /// Forwards a child's stdout and stderr, line by line. What is not JSON is kept
    /// as `INFO` from stdout and `ERROR` from stderr (a panic). A process hosting
    /// several services (`several`) is shown by the service each line names.
    pub fn attach(&self, service: &'static str, several: bool, child: &mut Child) {
        if let Some(out) = child.stdout.take() {
            self.pump(service, several, out, "INFO");
        }
        if let Some(err) = child.stderr.take() {
            self.pump(service, several, err, "ERROR");
        }
    }

    fn pump(
        &self,
        service: &'static str,
        several: bool,
        stream: impl AsyncRead + Unpin + Send + 'static,
        level: &'static str,
    ) {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.line_by(service, several, &line, level);
            }
        });
    }

    /// Prints one line from `source` (the supervisor's own notes) and keeps it.
    pub fn line(&self, source: &str, line: &str) {
        self.line_at(source, line, "INFO");
    }

    /// Prints one line and keeps it on disk; `level` is for a line that is not JSON.
    fn line_at(&self, source: &str, line: &str, level: &str) {
        self.line_by(source, false, line, level);
    }

    /// [`line_at`](Self::line_at), shown behind the service the line names when
    /// `by_line` (a process hosting several).
    fn line_by(&self, process: &str, by_line: bool, line: &str, level: &str) {
        let parsed = serde_json::from_str::<Map<String, Value>>(line).ok();
        let source = parsed
            .as_ref()
            .filter(|_| by_line)
            .and_then(|m| m.get("service"))
            .and_then(Value::as_str)
            .unwrap_or(process);
        if let Some(file) = &self.file {
            let stored = match &parsed {
                Some(_) => line.to_string(),
                None => wrap(source, line, level),
            };
            if let Ok(mut file) = file.lock()
                && let Err(e) = file.write_line(&stored)
                && !self
                    .file_failed
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                // Said once; later lines are still tried (the disk may recover).
                eprintln!("emporium: cannot write the log file: {e}");
            }
        }
        // Debug lines are for the file (and `emporium logs`, `emporium trace`).
        if parsed
            .as_ref()
            .and_then(|m| m.get("level"))
            .and_then(Value::as_str)
            .is_some_and(|l| l == "DEBUG" || l == "TRACE")
        {
            return;
        }
        let text = if self.pretty {
            let body = parsed.as_ref().map_or_else(|| line.to_string(), human);
            format!("\x1b[{}m{source:>9}\x1b[0m | {body}\n", colour(source))
        } else {
            format!("{source:>9} | {line}\n")
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

/// A line that is not JSON (a panic, the supervisor's own notes) as a JSON line.
fn wrap(source: &str, line: &str, level: &str) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "timestamp": now,
        "level": level,
        "service": source,
        "instance": source,
        "message": line,
    })
    .to_string()
}

/// Prints stored lines for `emporium logs` and `emporium trace`: readable on a
/// terminal, the JSON lines themselves otherwise (for jq and friends).
pub struct Printer {
    pretty: bool,
}

impl Printer {
    pub fn new() -> Self {
        Self {
            pretty: std::io::stdout().is_terminal(),
        }
    }

    pub fn print(&self, line: &str, m: &Map<String, Value>) {
        let text = if self.pretty {
            let source = m
                .get("instance")
                .or_else(|| m.get("service"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            format!(
                "\x1b[{}m{source:>12}\x1b[0m | {}\n",
                colour(source),
                human(m)
            )
        } else {
            format!("{line}\n")
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
    }
}

/// `12:00:01.123 INFO message key=value ...`
fn human(m: &Map<String, Value>) -> String {
    let time = m
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.get(11..23))
        .unwrap_or("");
    let level = m.get("level").and_then(Value::as_str).unwrap_or("");
    let message = m.get("message").and_then(Value::as_str).unwrap_or("");
    let mut s = format!("{time} {} {message}", level_colour(level));
    for (k, v) in m {
        if SKIPPED.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::String(text) => s.push_str(&format!(" \x1b[2m{k}=\x1b[0m{text}")),
            other => s.push_str(&format!(" \x1b[2m{k}=\x1b[0m{other}")),
        }
    }
    s
}

fn level_colour(level: &str) -> String {
    let code = match level {
        "ERROR" => "31",
        "WARN" => "33",
        "INFO" => "32",
        _ => "2",
    };
    format!("\x1b[{code}m{level:<5}\x1b[0m")
}

fn colour(source: &str) -> u8 {
    // A stable colour per name, from the six non-grey ANSI colours.
    31 + (source
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 6) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_become_readable() {
        let m: Map<String, Value> = serde_json::from_str(
            r#"{"timestamp":"2026-11-22T10:00:01.123456Z","level":"INFO","service":"catalog","message":"request","status":200,"path":"/x"}"#,
        )
        .expect("json");
        let h = human(&m);
        assert!(h.starts_with("10:00:01.123 "));
        assert!(h.contains("request"));
        assert!(h.contains("status=\x1b[0m200"));
        assert!(
            !h.contains("catalog"),
            "the service is in the prefix, not the line"
        );
    }
}
