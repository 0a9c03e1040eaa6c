//! Process metrics in the names every Prometheus dashboard knows: resident memory,
//! CPU seconds, open and maximum file descriptors, threads and start time, read from
//! `/proc/self` at scrape time (Linux; elsewhere they are simply absent).

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second of `/proc/<pid>/stat` times: USER_HZ, 100 on every Linux
/// architecture's user-space ABI.
const USER_HZ: f64 = 100.0;

static STARTED: OnceLock<f64> = OnceLock::new();

/// Notes the start time; called when the recorder is installed.
pub(crate) fn start() {
    STARTED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    });
}

/// Appends the process metrics, read from `/proc/self` now, in exposition format.
/// Written by hand because the `metrics` facade has no float counters.
pub(crate) fn render(out: &mut String) {
    let mut put = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    if let Some(started) = STARTED.get() {
        put(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            *started,
        );
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            match key {
                "VmRSS:" => put(
                    "process_resident_memory_bytes",
                    "gauge",
                    "Resident memory size in bytes.",
                    value * 1024.0,
                ),
                "VmSize:" => put(
                    "process_virtual_memory_bytes",
                    "gauge",
                    "Virtual memory size in bytes.",
                    value * 1024.0,
                ),
                "Threads:" => put(
                    "process_threads",
                    "gauge",
                    "Operating-system threads.",
                    value,
                ),
                _ => {}
            }
        }
    }
    if let Some(seconds) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| cpu_seconds(&stat))
    {
        put(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            seconds,
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        put(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            dir.count() as f64,
        );
    }
    if let Some(max) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| max_open_files(&l))
    {
        put(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
}

/// utime + stime from `/proc/self/stat`, in seconds. The command name (field 2) may
/// hold spaces, so fields are counted after its closing parenthesis.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11, 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        let stat = "1234 (emporium (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                20000                files\n";
        assert_eq!(max_open_files(limits), Some(20000.0));
        if std::path::Path::new("/proc/self/stat").exists() {
            let own = std::fs::read_to_string("/proc/self/stat").expect("stat");
            assert!(cpu_seconds(&own).is_some(), "own stat parses: {own}");
        }
    }
}
