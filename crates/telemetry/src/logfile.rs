//! The logs `emporium up` keeps on disk: `<data>/logs/emporium.log`, rotated by
//! size into `emporium.log.1` … `emporium.log.<keep>` (the highest is the oldest).
//!
//! One merged file rather than one per service: lines land in the order the
//! supervisor received them, so `emporium logs` shows a checkout crossing services
//! in order without sorting. Every line is a JSON object; what a process wrote that
//! was not JSON (a panic) is wrapped into one.
//!
//! Written here rather than with `tracing-appender`, whose rolling writer rotates by
//! time only: a busy shop must not fill the disk within the hour.
//!
//! [`timeline`] reads one order's traces back out of it: what `emporium trace` and
//! the ops console's trace page show.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Default size of one file before it is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default number of rotated files kept besides the current one.
pub const DEFAULT_KEEP: usize = 4;

/// The folder of `emporium up`'s logs under its data folder.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// The current log file.
pub fn current(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("emporium.log")
}

/// Appends lines to the current file, rotating it when it grows past `max_bytes`.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file,
            size,
            max_bytes: max_bytes.max(1024),
            keep,
        })
    }

    /// Writes one line (a newline is added).
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.max_bytes {
            self.rotate()?;
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.keep == 0 {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(numbered(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Every file of the log, oldest first (rotated ones, then the current one).
pub fn files_oldest_first(current: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(usize, PathBuf)> = (1..1000)
        .map(|n| (n, numbered(current, n)))
        .take_while(|(_, p)| p.exists())
        .collect();
    rotated.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if current.exists() {
        files.push(current.to_path_buf());
    }
    files
}

/// Where a reader of the current file stopped: the file (by inode) and the offset.
#[derive(Debug, Clone, Copy, Default)]
pub struct Position {
    ino: u64,
    offset: u64,
}

fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Calls `each` with every line of every file, oldest first; returns where the
/// current file ended, to follow it from there.
pub fn read_all(current: &Path, mut each: impl FnMut(&str)) -> std::io::Result<Position> {
    let mut end = Position::default();
    for path in files_oldest_first(current) {
        let ino = inode(&path).unwrap_or_default();
        let offset = match read_range(&path, 0, &mut each) {
            Ok(offset) => offset,
            // Rotated away between listing and opening: its lines are in the next one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if path == current {
            end = Position { ino, offset };
        }
    }
    Ok(end)
}

/// Reads the lines appended to the log since `from`. When the current file is a
/// new one (it was rotated), the rest of the old one (now `.1`) is read first, then
/// the new file from its start. Returns the new position.
pub fn read_from(
    current: &Path,
    from: Position,
    mut each: impl FnMut(&str),
) -> std::io::Result<Position> {
    let Some(ino) = inode(current) else {
        return Ok(from);
    };
    let mut start = from.offset;
    if ino != from.ino {
        let previous = numbered(current, 1);
        if from.ino != 0 && inode(&previous) == Some(from.ino) {
            let _ = read_range(&previous, from.offset, &mut each);
        }
        start = 0;
    }
    let offset = read_range(current, start, &mut each)?;
    Ok(Position { ino, offset })
}

fn read_range(path: &Path, from: u64, each: &mut impl FnMut(&str)) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::new(file);
    let mut pos = from;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            // A line still being written is read whole next time.
            return Ok(pos);
        }
        pos += n as u64;
        each(line.trim_end_matches('\n'));
    }
}

/// One order's timeline across services: every line of the traces it was part
/// of, and every line naming it, in time order.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub steps: Vec<Step>,
    /// How many services and traces the lines came from.
    pub services: usize,
    pub traces: usize,
}

/// One line of a timeline, as a person reads it.
#[derive(Debug, Clone)]
pub struct Step {
    /// Milliseconds since the first line.
    pub since_ms: f64,
    /// The instance (or service) that wrote it.
    pub source: String,
    pub level: String,
    pub message: String,
    /// ` method=GET path=/api/orders status=202 ...`: the fields worth a glance.
    pub details: String,
}

/// The fields a timeline shows after the message, in this order.
const DETAILS: [&str; 9] = [
    "method",
    "path",
    "status",
    "latency_ms",
    "reason",
    "detail",
    "event_type",
    "total",
    "error",
];

/// The timeline of order `order_id` in the log file at `path` (and its rotated
/// predecessors); empty when no line names the order.
pub fn timeline(path: &Path, order_id: &str) -> std::io::Result<Timeline> {
    // First pass: the traces of the lines that name the order.
    let mut traces = HashSet::new();
    read_all(path, |line| {
        if !line.contains(order_id) {
            return;
        }
        if let Ok(m) = serde_json::from_str::<Map<String, Value>>(line)
            && names_order(&m, order_id)
            && let Some(trace) = text(&m, "trace_id")
        {
            traces.insert(trace.to_string());
        }
    })?;
    // Second pass: every line of those traces, and every line naming the order.
    let mut lines = Vec::new();
    read_all(path, |line| {
        let Ok(m) = serde_json::from_str::<Map<String, Value>>(line) else {
            return;
        };
        let in_trace = text(&m, "trace_id").is_some_and(|t| traces.contains(t));
        if in_trace || names_order(&m, order_id) {
            // A line without a readable time cannot be placed on the timeline.
            if let Some(at) =
                text(&m, "timestamp").and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            {
                lines.push((at, m));
            }
        }
    })?;
    lines.sort_by_key(|(at, _)| *at);
    let Some(start) = lines.first().map(|(at, _)| *at) else {
        return Ok(Timeline::default());
    };
    let traces: HashSet<&str> = lines
        .iter()
        .filter_map(|(_, m)| text(m, "trace_id"))
        .collect();
    let services: HashSet<&str> = lines
        .iter()
        .filter_map(|(_, m)| text(m, "service"))
        .collect();
    let (traces, services) = (traces.len(), services.len());
    let steps = lines
        .iter()
        .map(|(at, m)| {
            let mut details = String::new();
            for key in DETAILS {
                if let Some(v) = m.get(key) {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    details.push_str(&format!(" {key}={v}"));
                }
            }
            Step {
                since_ms: (*at - start).as_seconds_f64() * 1000.0,
                source: text(m, "instance")
                    .or_else(|| text(m, "service"))
                    .unwrap_or("?")
                    .to_string(),
                level: text(m, "level").unwrap_or("").to_string(),
                message: text(m, "message").unwrap_or("").to_string(),
                details,
            }
        })
        .collect();
    Ok(Timeline {
        steps,
        services,
        traces,
    })
}

fn names_order(m: &Map<String, Value>, order_id: &str) -> bool {
    text(m, "order_id") == Some(order_id) || text(m, "subject") == Some(order_id)
}

fn text<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_by_size_and_keep_a_bounded_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emporium.log");
        let mut log = RotatingFile::open(path.clone(), 1024, 2).expect("open");
        for i in 0..100 {
            log.write_line(&format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(40)))
                .expect("write");
        }
        let files = files_oldest_first(&path);
        assert_eq!(files.len(), 3, "current + 2 rotated: {files:?}");
        for f in &files {
            assert!(std::fs::metadata(f).expect("meta").len() <= 1024);
        }
        let mut seen = Vec::new();
        read_all(&path, |l| seen.push(l.to_string())).expect("read");
        // The newest lines survive, in order, without gaps.
        let numbers: Vec<i64> = seen
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["n"]
                    .as_i64()
                    .expect("n")
            })
            .collect();
        assert_eq!(numbers.last(), Some(&99));
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(numbers.len() < 100, "old lines were dropped");
    }

    #[test]
    fn following_reads_new_lines_across_a_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emporium.log");
        let mut log = RotatingFile::open(path.clone(), 1024, 3).expect("open");
        log.write_line("first").expect("write");
        let mut seen = Vec::new();
        let mut pos = read_all(&path, |l| seen.push(l.to_string())).expect("read");
        let line = "y".repeat(300);
        for _ in 0..5 {
            log.write_line(&line).expect("write");
        }
        pos = read_from(&path, pos, |l| seen.push(l.to_string())).expect("follow");
        log.write_line("last").expect("write");
        read_from(&path, pos, |l| seen.push(l.to_string())).expect("follow");
        assert_eq!(seen.first().map(String::as_str), Some("first"));
        assert_eq!(seen.last().map(String::as_str), Some("last"));
        assert_eq!(seen.len(), 7, "every line once: {}", seen.len());
    }

    #[test]
    fn an_orders_timeline_spans_its_traces_in_time_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emporium.log");
        let mut log = RotatingFile::open(path.clone(), 1 << 20, 2).expect("open");
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
        let found = timeline(&path, "o-1").expect("timeline");
        assert_eq!((found.services, found.traces), (3, 2));
        assert_eq!(found.steps[0].since_ms, 0.0);
        assert_eq!(found.steps[1].since_ms, 100.0);
        let got: Vec<&str> = found.steps.iter().map(|s| s.message.as_str()).collect();
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
