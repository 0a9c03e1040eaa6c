//! What a load run measured: an HDR histogram and error counts per step, the live
//! progress line, and the final table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::LoadArgs;
use super::shopper::Step;

/// Longest latency a histogram holds (longer ones are clamped to it).
const MAX_MICROS: u64 = 60_000_000;

struct StepStats {
    latency: Histogram<u64>,
    /// The latency of the steps that succeeded only: under overload, what the
    /// shop admitted, apart from what it refused at once.
    succeeded: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl StepStats {
    fn new() -> Self {
        Self {
            // 1 µs to 60 s at 3 significant digits: a fixed, small footprint.
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("constant bounds are valid"),
            succeeded: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("constant bounds are valid"),
            errors: BTreeMap::new(),
        }
    }
}

/// Everything recorded, shared by every shopper.
pub struct Report {
    steps: Vec<Mutex<StepStats>>,
    done: AtomicU64,
    failed: AtomicU64,
    /// HTTP requests the journeys sent (a page journey sends several).
    requests: AtomicU64,
}

impl Report {
    pub fn new() -> Self {
        Self {
            steps: Step::ALL
                .iter()
                .map(|_| Mutex::new(StepStats::new()))
                .collect(),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// Counts one request a journey sent.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self, step: Step) -> &Mutex<StepStats> {
        let i = Step::ALL.iter().position(|s| *s == step).unwrap_or(0);
        &self.steps[i]
    }

    /// Records one `step` that was due at `due` and has just ended with `outcome`
    /// (an error's kind). Failed steps count their latency too.
    pub fn record(&self, step: Step, due: Instant, outcome: Result<(), String>) {
        let micros = (due.elapsed().as_micros() as u64).clamp(1, MAX_MICROS);
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.stats(step).lock() {
            let _ = s.latency.record(micros);
            match outcome {
                Ok(()) => {
                    let _ = s.succeeded.record(micros);
                }
                Err(kind) => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    *s.errors.entry(kind).or_insert(0) += 1;
                }
            }
        }
    }

    /// Forgets the journeys so far (after the warm-up); sign-ups and sign-ins stay.
    pub fn reset(&self) {
        for step in Step::ALL.iter().filter(|s| !s.is_setup()) {
            if let Ok(mut s) = self.stats(*step).lock() {
                *s = StepStats::new();
            }
        }
        self.done.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
    }

    pub fn summary(&self, elapsed: Duration, args: &LoadArgs) -> Summary {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let rows = Step::ALL
            .iter()
            .filter_map(|&step| {
                let s = self.stats(step).lock().ok()?;
                let count = s.latency.len();
                (count > 0).then(|| {
                    let ms = |q: f64| s.latency.value_at_quantile(q) as f64 / 1000.0;
                    let ok_ms = |q: f64| s.succeeded.value_at_quantile(q) as f64 / 1000.0;
                    Row {
                        step,
                        count,
                        // Setup happened before the clock started: no rate.
                        per_second: (!step.is_setup()).then(|| count as f64 / seconds),
                        errors: s.errors.clone(),
                        p50: ms(0.50),
                        p90: ms(0.90),
                        p99: ms(0.99),
                        p999: ms(0.999),
                        max: s.latency.max() as f64 / 1000.0,
                        ok_p50: ok_ms(0.50),
                        ok_p99: ok_ms(0.99),
                    }
                })
            })
            .collect();
        Summary {
            rows,
            seconds,
            mode: if args.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            rate: args.rate,
            users: args.users,
            mix: format!("{:?}", args.mix).to_lowercase(),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }
}

struct Row {
    step: Step,
    count: u64,
    per_second: Option<f64>,
    errors: BTreeMap<String, u64>,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    /// Of the steps that succeeded (0 when none did).
    ok_p50: f64,
    ok_p99: f64,
}

impl Row {
    fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The result of a run.
pub struct Summary {
    rows: Vec<Row>,
    seconds: f64,
    mode: &'static str,
    rate: Option<f64>,
    users: usize,
    mix: String,
    requests: u64,
}

impl Summary {
    fn journeys(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| !r.step.is_setup())
    }

    /// Journeys made and journeys failed.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.journeys().map(|r| r.count).sum(),
            self.journeys().map(Row::failed).sum(),
        )
    }

    /// Journeys that only read (through the API one GET each; through the
    /// storefront's pages, a page), and how many of them failed.
    pub fn reads(&self) -> (u64, u64) {
        let reads = || self.journeys().filter(|r| r.step.is_read());
        (
            reads().map(|r| r.count).sum(),
            reads().map(Row::failed).sum(),
        )
    }

    /// HTTP requests the journeys sent.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let total: u64 = self.journeys().map(|r| r.count).sum();
        let failed: u64 = self.journeys().map(Row::failed).sum();
        let _ = writeln!(
            out,
            "\n{} journeys in {:.1} s ({:.1}/s, {:.1} requests/s), {} failed; {} loop, {} shoppers, mix {}{}\n",
            total,
            self.seconds,
            total as f64 / self.seconds,
            self.requests as f64 / self.seconds,
            failed,
            self.mode,
            self.users,
            self.mix,
            self.rate
                .map(|r| format!(", due at {r}/s"))
                .unwrap_or_default(),
        );
        let _ = writeln!(
            out,
            "  {:<15} {:>8} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "STEP", "COUNT", "RATE/s", "ERRORS", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for r in &self.rows {
            let rate = r
                .per_second
                .map_or_else(|| "-".into(), |v| format!("{v:.1}"));
            let _ = writeln!(
                out,
                "  {:<15} {:>8} {:>9} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                r.step.name(),
                r.count,
                rate,
                r.failed(),
                r.p50,
                r.p90,
                r.p99,
                r.p999,
                r.max
            );
        }
        let kinds: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| {
                r.errors
                    .iter()
                    .map(move |(kind, n)| format!("{}: {kind} ×{n}", r.step.name()))
            })
            .collect();
        if !kinds.is_empty() {
            let _ = writeln!(out, "\n  errors: {}", kinds.join("; "));
        }
        out.push('\n');
        out
    }

    pub fn to_json(&self) -> Value {
        let steps: serde_json::Map<String, Value> = self
            .rows
            .iter()
            .map(|r| {
                (
                    r.step.name().to_string(),
                    json!({
                        "count": r.count,
                        "per_second": r.per_second,
                        "errors": r.failed(),
                        "error_kinds": r.errors,
                        "p50_ms": r.p50,
                        "p90_ms": r.p90,
                        "p99_ms": r.p99,
                        "p999_ms": r.p999,
                        "max_ms": r.max,
                        "succeeded_p50_ms": r.ok_p50,
                        "succeeded_p99_ms": r.ok_p99,
                    }),
                )
            })
            .collect();
        let total: u64 = self.journeys().map(|r| r.count).sum();
        let failed: u64 = self.journeys().map(Row::failed).sum();
        let checkout = self.rows.iter().find(|r| r.step == Step::Checkout);
        let confirmed = checkout.map_or(0, |c| c.count - c.failed());
        json!({
            "mode": self.mode,
            "mix": self.mix,
            "rate": self.rate,
            "users": self.users,
            "seconds": self.seconds,
            "journeys": total,
            "journeys_per_s": total as f64 / self.seconds,
            "requests": self.requests,
            "requests_per_s": self.requests as f64 / self.seconds,
            "errors": failed,
            "steps": steps,
            // The checkout step, flat, for scripts.
            "completed": checkout.map_or(0, |c| c.count),
            "confirmed": confirmed,
            "checkouts_per_s": confirmed as f64 / self.seconds,
            "p50_ms": checkout.map_or(0.0, |c| c.p50),
            "p90_ms": checkout.map_or(0.0, |c| c.p90),
            "p99_ms": checkout.map_or(0.0, |c| c.p99),
            "max_ms": checkout.map_or(0.0, |c| c.max),
            "confirmed_p50_ms": checkout.map_or(0.0, |c| c.ok_p50),
            "confirmed_p99_ms": checkout.map_or(0.0, |c| c.ok_p99),
        })
    }
}

/// The live progress line (on a terminal, not with `--json`).
pub struct Progress {
    bar: indicatif::ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Prints `line` above the progress line (a kill, a fault rule).
    pub fn note(&self, line: &str) {
        if self.bar.is_hidden() {
            println!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    pub fn start(report: Arc<Report>, quiet: bool, seconds: u64) -> Self {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(seconds)
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let done = report.done.load(Ordering::Relaxed);
                let failed = report.failed.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = done.saturating_sub(last.1) as f64
                    / now.duration_since(last.0).as_secs_f64().max(1e-9);
                last = (now, done);
                shown.set_position(started.elapsed().as_secs());
                shown.set_message(format!("{done} steps  {rate:.0}/s  {failed} errors"));
            }
        });
        Self { bar, task }
    }

    pub fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
