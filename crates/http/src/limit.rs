//! The adaptive concurrency limit every server sheds load with: a gradient limit
//! in the manner of Netflix's concurrency-limits and Envoy's adaptive concurrency
//! filter, over windows of requests rather than single ones, one per route.
//!
//! Requests in flight past the limit get 503 at once. The limit follows latency:
//! each window (at least 100 ms and 20 requests, or 1 s) compares its average
//! latency with the latency without load (the lowest window average of the last
//! one to two minutes). When requests take more than twice that and at least
//! 10 ms more, they are queueing (for the CPU, a pool, a dependency): the limit
//! drops at once to what was in flight times the ratio (at most halving it). A
//! few milliseconds of queueing is how a busy server works, and refusing work for
//! it would only turn good answers into 503s. Otherwise, while the limit is what
//! holds requests back (at least half of it in use), it grows by its square root,
//! smoothed. It starts at the configured ceiling, so a service that is not
//! overloaded behaves as with a fixed limit.
//!
//! How low it goes tells a burst from overload, as CoDel tells a good queue from a
//! standing one: while queueing has lasted less than the burst time (2 s), the
//! limit stops at the floor (64), so a burst of checkouts queues for a
//! moment and is served rather than half refused; once queueing has stood that
//! long, the limit follows latency down to the minimum (8), where admitted
//! requests take about what they take without load and the rest get 503 at once.
//! The overload is over when for the burst time no window has queued and no
//! request was refused (a limit that holds latency down by refusing is still
//! working): the next window, or the next request the low limit would refuse,
//! puts the limit back at the floor for the next burst. A burst ends when a
//! window without queueing closes a second (the longest window, whatever the
//! burst time) or more after the last window that queued, or when queueing comes
//! back after more than two seconds without one (windows close only as requests
//! finish); shorter dips do not end it. Under standing overload the gateway's
//! brownout makes such dips (it holds journeys back for a moment), and a burst
//! timer that started over at each one kept the limit at the floor, and
//! checkouts waiting, for seconds. So queueing windows less than a second apart
//! are one overload, even with calm windows between them.
//!
//! Each route (method and path template) has a limit of its own ([`Limits`]): a
//! checkout that takes 10 ms and a read that takes 0.3 ms have different latencies
//! without load, and one average over both would read a burst of checkouts as
//! queueing and shed the reads with them. The ceiling also bounds every route's
//! requests together.
//!
//! Calls on `/internal/` paths, which only services make, are held under the
//! ceiling only, never under an adaptive limit: they are steps of work a service
//! already admitted (a checkout's reservation, payment and cart take), and
//! refusing one wastes what was done before it, as a saga step refused after the
//! order was written turns into a compensation. Load is shed on the public routes
//! instead, as Google's SRE book has sub-requests inherit their request's
//! criticality. (A service calling another's public route, as cart looks up a
//! price at catalog, is shed there like anyone.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use emporium_telemetry::metrics;

/// Window latency over the no-load latency beyond which the limit shrinks...
const TOLERANCE: f64 = 2.0;
/// ...if it is also this much longer (seconds), unless the settings say
/// otherwise (`http.concurrency_slack_ms`).
const QUEUE_SLACK: f64 = 0.010;
/// Weight of a growing estimate (the gradient limit's smoothing).
const SMOOTHING: f64 = 0.2;
/// How long one block of the no-load latency lasts: the lowest window of this
/// block and the last one is the baseline, so it can rise after a change.
const BASELINE_BLOCK: Duration = Duration::from_secs(60);
/// A window closes after this long, with at least [`WINDOW_SAMPLES`] requests...
const WINDOW_MIN: Duration = Duration::from_millis(100);
const WINDOW_SAMPLES: u32 = 20;
/// ...or after this long whatever the count.
const WINDOW_MAX: Duration = Duration::from_secs(1);

/// Whether a request is a long poll (an `/internal/` path with a `wait` or
/// `wait_ms` query parameter other than 0: the events feed, the registry's
/// watches): it waits on purpose, holding no CPU, so it is outside the
/// concurrency limit, whose latency it would mislead, and clients do not hedge
/// it. Only internal paths: the public cannot reach them through the gateway, so
/// nobody outside can step around the limit by adding `?wait=1`.
pub fn is_long_poll(uri: &http::Uri) -> bool {
    uri.path().starts_with("/internal/")
        && uri.query().is_some_and(|query| {
        query.split('&').any(|pair| {
            matches!(pair.split_once('='), Some(("wait" | "wait_ms", value)) if !value.is_empty() && value != "0")
        })
    })
}

/// Most routes with a limit of their own; requests of any further ones share
/// one, so the table cannot grow without bound.
const MAX_ROUTES: usize = 256;
/// The route the requests of routes past [`MAX_ROUTES`] share.
const OTHER_ROUTES: &str = "other";

/// How far a limit may move: down to `floor` for a burst, to `min` once
/// queueing has stood for `burst`, up to `ceiling`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    min: usize,
    floor: usize,
    ceiling: usize,
    burst: Duration,
    /// How much longer than without load (seconds) requests may take before
    /// they count as queueing (besides twice as long).
    slack: f64,
}

impl Bounds {
    /// Bounds from the server's settings: each at least 1 and in order
    /// (`min` ≤ `floor` ≤ `ceiling`), and the burst time at least the longest
    /// window, which is what it is counted in.
    pub fn new(min: usize, floor: usize, ceiling: usize, burst: Duration) -> Self {
        let ceiling = ceiling.max(1);
        let floor = floor.clamp(1, ceiling);
        Self {
            min: min.clamp(1, floor),
            floor,
            ceiling,
            burst: burst.max(WINDOW_MAX),
            slack: QUEUE_SLACK,
        }
    }

    /// These bounds with `slack` as the latency over the one without load
    /// that is not yet queueing.
    #[must_use]
    pub fn with_slack(self, slack: Duration) -> Self {
        Self {
            slack: slack.as_secs_f64(),
            ..self
        }
    }

    /// A fixed limit.
    fn fixed(limit: usize) -> Self {
        Self::new(limit, limit, limit, Duration::ZERO)
    }
}

/// A limit per route under one ceiling for them all.
#[derive(Debug)]
pub struct Limits {
    bounds: Bounds,
    adaptive: bool,
    /// Requests in flight on every route, held under the ceiling.
    total: Arc<AtomicUsize>,
    routes: RwLock<HashMap<String, Arc<Limiter>>>,
    /// Fixed at the ceiling: every internal route's, and every route's when the
    /// limits are not adaptive.
    fixed: Arc<Limiter>,
}

impl Limits {
    /// Limits within `bounds` per route, starting at the ceiling; fixed at the
    /// ceiling unless `adaptive`.
    pub fn new(bounds: Bounds, adaptive: bool) -> Arc<Self> {
        let total = Arc::new(AtomicUsize::new(0));
        Arc::new(Self {
            bounds,
            adaptive,
            fixed: Arc::new(Limiter::with_total(
                Bounds::fixed(bounds.ceiling),
                false,
                "fixed",
                Some(total.clone()),
            )),
            total,
            routes: RwLock::new(HashMap::new()),
        })
    }

    /// The limiter of `route`, made on its first request.
    pub fn route(&self, route: &str) -> Arc<Limiter> {
        if let Ok(routes) = self.routes.read()
            && let Some(limiter) = routes.get(route)
        {
            return limiter.clone();
        }
        let Ok(mut routes) = self.routes.write() else {
            // Poisoned only by a panic while inserting: limit on the ceiling alone.
            return self.make(route);
        };
        let key = if routes.len() >= MAX_ROUTES && !routes.contains_key(route) {
            OTHER_ROUTES
        } else {
            route
        };
        routes
            .entry(key.to_string())
            .or_insert_with(|| self.make(key))
            .clone()
    }

    fn make(&self, route: &str) -> Arc<Limiter> {
        Arc::new(Limiter::with_total(
            self.bounds,
            self.adaptive,
            route,
            Some(self.total.clone()),
        ))
    }

    /// Admits a request of the route `route` (looked at only when the limits
    /// adapt), or `None` when its limit or the ceiling is reached.
    pub fn try_acquire(&self, route: &str) -> Option<Permit> {
        if !self.adaptive {
            return self.fixed.try_acquire();
        }
        self.route(route).try_acquire()
    }

    /// Admits a call from another service, or `None` when the ceiling is reached.
    pub fn try_acquire_internal(&self) -> Option<Permit> {
        self.fixed.try_acquire()
    }
}

/// Admits requests under a limit that adapts to latency (or a fixed one).
#[derive(Debug)]
pub struct Limiter {
    /// The route it limits, for its gauge.
    route: String,
    /// Requests in flight on every route, when it is one of several under a
    /// shared ceiling.
    total: Option<Arc<AtomicUsize>>,
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    bounds: Bounds,
    adaptive: bool,
    origin: Instant,
    /// The open window: its start (µs since `origin`), latency sum (µs), count,
    /// and the most requests in flight at once.
    window_start: AtomicU64,
    window_sum: AtomicU64,
    window_samples: AtomicU32,
    window_peak: AtomicUsize,
    gradient: Mutex<Gradient>,
}

#[derive(Debug)]
struct Gradient {
    estimate: f64,
    /// The lowest window average latency of this block and the last, seconds
    /// (infinite: none yet).
    block_low: f64,
    last_block_low: f64,
    block_start: Instant,
    /// When the queueing of this burst began: kept through windows without
    /// queueing for less than [`WINDOW_MAX`] after the last one that queued.
    queueing_since: Option<Instant>,
    /// The last window that showed queueing.
    last_queueing: Option<Instant>,
    /// The last request refused under this limit (not the ceiling).
    last_shed: Option<Instant>,
    /// Queueing has stood for the burst time: the limit may go down to the
    /// minimum, until for the burst time no window has queued and no request
    /// was refused.
    standing: bool,
}

impl Gradient {
    fn new(estimate: f64) -> Self {
        Self {
            estimate,
            block_low: f64::INFINITY,
            last_block_low: f64::INFINITY,
            block_start: Instant::now(),
            queueing_since: None,
            last_queueing: None,
            last_shed: None,
            standing: false,
        }
    }

    /// Whether a standing overload is over at `now`: for the burst time no
    /// window has queued and no request was refused. If so, the limit is back
    /// at the floor at least, and the next queueing counts as a burst again.
    fn calm_down(&mut self, bounds: &Bounds, now: Instant) -> bool {
        let quiet =
            |at: Option<Instant>| at.is_none_or(|at| now.duration_since(at) >= bounds.burst);
        if !self.standing || !quiet(self.last_queueing) || !quiet(self.last_shed) {
            return false;
        }
        self.standing = false;
        self.queueing_since = None;
        self.estimate = self
            .estimate
            .max(bounds.floor as f64)
            .min(bounds.ceiling as f64);
        true
    }

    /// Moves the estimate after a window whose requests took `short` seconds on
    /// average with at most `peak` in flight at once.
    fn observe(&mut self, short: f64, peak: usize, bounds: &Bounds, now: Instant) {
        let ceiling = bounds.ceiling as f64;
        let min = bounds.min as f64;
        if short <= 0.0 {
            return;
        }
        if now.duration_since(self.block_start) >= BASELINE_BLOCK {
            self.last_block_low = self.block_low;
            self.block_low = short;
            self.block_start = now;
        } else {
            self.block_low = self.block_low.min(short);
        }
        let baseline = self.block_low.min(self.last_block_low);
        let threshold = (TOLERANCE * baseline).max(baseline + bounds.slack);
        let gradient = (threshold / short).clamp(0.5, 1.0);
        self.calm_down(bounds, now);
        if gradient < 1.0 {
            // Queueing: shrink at once, from what was really in flight, down to
            // the floor while it may be a burst, to the minimum once it stands.
            // Queueing after a quiet spell (no window for a while: windows close
            // only as requests finish) starts afresh.
            if self
                .last_queueing
                .is_none_or(|at| now.duration_since(at) > 2 * WINDOW_MAX)
            {
                self.queueing_since = None;
            }
            self.last_queueing = Some(now);
            let since = *self.queueing_since.get_or_insert(now);
            if now.duration_since(since) >= bounds.burst {
                self.standing = true;
            }
            let lower = if self.standing {
                min
            } else {
                bounds.floor as f64
            };
            let from = self.estimate.min(peak as f64);
            self.estimate = (from * gradient + from.sqrt())
                .min(self.estimate)
                .clamp(lower, ceiling);
        } else {
            // A burst is over after a second of windows without queueing, not at
            // the first one: under a standing overload a window or two dips below
            // the threshold whenever the gateway's brownout holds journeys back
            // for a moment, and a burst timer started afresh at each dip kept the
            // limit at the floor, and admitted requests queueing, for seconds.
            if self
                .last_queueing
                .is_none_or(|at| now.duration_since(at) >= WINDOW_MAX)
            {
                self.queueing_since = None;
            }
            if peak as f64 >= self.estimate / 2.0 {
                let proposed = self.estimate + self.estimate.sqrt();
                self.estimate =
                    (self.estimate * (1.0 - SMOOTHING) + proposed * SMOOTHING).clamp(min, ceiling);
            }
        }
    }
}

/// A request admitted: counted in flight, and its latency sampled, until dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    started: Instant,
}

impl Limiter {
    /// A limit within `bounds`, starting at the ceiling; fixed at the ceiling
    /// unless `adaptive`.
    pub fn new(bounds: Bounds, adaptive: bool) -> Arc<Self> {
        Arc::new(Self::with_total(bounds, adaptive, "", None))
    }

    fn with_total(
        bounds: Bounds,
        adaptive: bool,
        route: &str,
        total: Option<Arc<AtomicUsize>>,
    ) -> Self {
        let ceiling = bounds.ceiling;
        Self {
            route: route.to_string(),
            total,
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(ceiling),
            bounds,
            adaptive,
            origin: Instant::now(),
            window_start: AtomicU64::new(0),
            window_sum: AtomicU64::new(0),
            window_samples: AtomicU32::new(0),
            window_peak: AtomicUsize::new(0),
            gradient: Mutex::new(Gradient::new(ceiling as f64)),
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Admits a request, or `None` when the limit is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        if let Some(total) = &self.total
            && total.fetch_add(1, Ordering::AcqRel) >= self.bounds.ceiling
        {
            total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        if now > self.limit() && !self.calmed_down() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Some(total) = &self.total {
                total.fetch_sub(1, Ordering::AcqRel);
            }
            return None;
        }
        if self.adaptive {
            self.window_peak.fetch_max(now, Ordering::Relaxed);
        }
        Some(Permit {
            limiter: self.clone(),
            started: Instant::now(),
        })
    }

    /// On a request the limit would refuse: whether a standing overload was
    /// over (then the limit is back at the floor, and the request is admitted
    /// if that makes room); else the refusal is noted, as a sign the overload
    /// goes on. Windows close only as requests finish, so after a quiet spell
    /// the first requests of a burst are where the limit learns it.
    fn calmed_down(&self) -> bool {
        if !self.adaptive {
            return false;
        }
        // Held briefly, once per window and per refusal: a refusal that finds
        // it held goes unnoted, and the next one is noted.
        let Ok(mut g) = self.gradient.try_lock() else {
            return false;
        };
        let now = Instant::now();
        if self.limit() < self.bounds.floor && g.calm_down(&self.bounds, now) {
            self.publish(g.estimate);
            return self.in_flight.load(Ordering::Acquire) <= self.limit();
        }
        g.last_shed = Some(now);
        false
    }

    /// Makes `estimate` the limit; called with the gradient locked, so a newer
    /// estimate is never overwritten by an older one.
    fn publish(&self, estimate: f64) {
        let limit = estimate.round() as usize;
        if self.limit.swap(limit, Ordering::Relaxed) != limit {
            metrics::gauge!("http_server_concurrency_limit", "route" => self.route.clone())
                .set(limit as f64);
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_micros() as u64
    }

    fn sample(&self, started: Instant) {
        if !self.adaptive {
            return;
        }
        let now = Instant::now();
        let latency = now.saturating_duration_since(started).as_micros() as u64;
        self.window_sum.fetch_add(latency, Ordering::Relaxed);
        let samples = self.window_samples.fetch_add(1, Ordering::Relaxed) + 1;
        let start = self.window_start.load(Ordering::Relaxed);
        let open = Duration::from_micros(self.micros(now).saturating_sub(start));
        if (open < WINDOW_MIN || samples < WINDOW_SAMPLES) && open < WINDOW_MAX {
            return;
        }
        // One completion closes the window; the others go on.
        if self
            .window_start
            .compare_exchange(start, self.micros(now), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let sum = self.window_sum.swap(0, Ordering::Relaxed);
        let samples = self.window_samples.swap(0, Ordering::Relaxed);
        let peak = self
            .window_peak
            .swap(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
        if samples == 0 {
            return;
        }
        let average = sum as f64 / f64::from(samples) / 1e6;
        let Ok(mut g) = self.gradient.lock() else {
            return;
        };
        g.observe(average, peak, &self.bounds, now);
        self.publish(g.estimate);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(total) = &self.limiter.total {
            total.fetch_sub(1, Ordering::AcqRel);
        }
        self.limiter.sample(self.started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Between 20 and 1024, and no burst time: the floor is the minimum.
    const BOUNDS: Bounds = Bounds {
        min: 20,
        floor: 20,
        ceiling: 1024,
        burst: Duration::ZERO,
        slack: QUEUE_SLACK,
    };

    /// A service that can work on `capacity` requests at once, each taking
    /// `service_time` s, offered more than it can take: `limit` requests are in
    /// flight and those past the capacity queue. Returns the last window's latency.
    fn overloaded(g: &mut Gradient, capacity: f64, service_time: f64, windows: usize) -> f64 {
        let mut latency = 0.0;
        for _ in 0..windows {
            latency = service_time * (g.estimate / capacity).max(1.0);
            g.observe(latency, g.estimate as usize, &BOUNDS, Instant::now());
        }
        latency
    }

    #[test]
    fn under_overload_the_limit_drops_at_once_and_settles_where_latency_stays_near_the_unloaded() {
        let mut g = Gradient::new(1024.0);
        // Unloaded first: 20 ms with few in flight.
        g.observe(0.020, 10, &BOUNDS, Instant::now());
        assert_eq!(g.estimate, 1024.0);
        overloaded(&mut g, 50.0, 0.020, 5);
        assert!(
            g.estimate < 200.0,
            "drops within a few windows: {}",
            g.estimate
        );
        let latency = overloaded(&mut g, 50.0, 0.020, 200);
        assert!(
            g.estimate > 80.0 && g.estimate < 140.0,
            "settles near twice the capacity: {}",
            g.estimate
        );
        assert!(latency < 0.05, "admitted requests stay fast: {latency}");
    }

    /// Like [`overloaded`] with `bounds`, one window every 100 ms from `*at`;
    /// the last window's latency and the highest limit on the way.
    fn windows(
        g: &mut Gradient,
        bounds: &Bounds,
        at: &mut Instant,
        capacity: f64,
        count: usize,
    ) -> (f64, f64) {
        let (mut latency, mut highest) = (0.0, 0.0_f64);
        for _ in 0..count {
            *at += Duration::from_millis(100);
            latency = 0.020 * (g.estimate / capacity).max(1.0);
            g.observe(latency, g.estimate as usize, bounds, *at);
            highest = highest.max(g.estimate);
        }
        (latency, highest)
    }

    /// Between 8 and 1024, a burst down to 64 for 2 s: an unloaded window, then
    /// `count` windows of overload (room for 4 at once, 20 ms each).
    fn overload(count: usize) -> (Gradient, Bounds, Instant) {
        let bounds = Bounds::new(8, 64, 1024, Duration::from_secs(2));
        let mut g = Gradient::new(1024.0);
        let mut at = Instant::now();
        g.observe(0.020, 10, &bounds, at);
        windows(&mut g, &bounds, &mut at, 4.0, count);
        (g, bounds, at)
    }

    #[test]
    fn a_burst_is_served_down_to_the_floor_and_a_standing_queue_below_it() {
        // For the burst time the limit stops at the floor...
        let (mut g, bounds, mut at) = overload(19);
        assert_eq!(g.estimate, 64.0, "a burst is served down to the floor");
        // ...then queueing stands, and it goes below and stays there.
        windows(&mut g, &bounds, &mut at, 4.0, 20);
        let (latency, highest) = windows(&mut g, &bounds, &mut at, 4.0, 80);
        assert!(
            g.estimate >= 8.0 && highest < 16.0,
            "settles near the minimum: {} (at most {highest})",
            g.estimate
        );
        assert!(latency < 0.06, "admitted requests stay fast: {latency}");
        // Latency is back, but only because the limit refuses requests: the
        // overload goes on.
        for _ in 0..30 {
            g.last_shed = Some(at);
            windows(&mut g, &bounds, &mut at, 5_000.0, 1);
        }
        assert!(g.standing && g.estimate < 64.0, "{}", g.estimate);
        // Nothing queued nor refused for the burst time: the overload is over,
        // and the next burst is served down to the floor again.
        windows(&mut g, &bounds, &mut at, 5_000.0, 21);
        assert!(g.estimate >= 64.0, "back at the floor: {}", g.estimate);
        windows(&mut g, &bounds, &mut at, 4.0, 19);
        assert_eq!(g.estimate, 64.0, "the next burst");
    }

    #[test]
    fn the_slack_sets_how_much_longer_than_unloaded_is_still_not_queueing() {
        let after = |bounds: Bounds| {
            let mut g = Gradient::new(1024.0);
            let mut at = Instant::now();
            g.observe(0.005, 10, &bounds, at);
            at += Duration::from_millis(100);
            // 17 ms longer than without load, 500 in flight.
            g.observe(0.022, 500, &bounds, at);
            g.estimate
        };
        let bounds = Bounds::new(8, 64, 1024, Duration::from_secs(2));
        let wider = bounds.with_slack(Duration::from_millis(20));
        assert_eq!(after(wider), 1024.0, "within 20 ms of slack");
        let default = after(bounds);
        assert!(
            (64.0..500.0).contains(&default),
            "queueing past the default 10 ms of slack: {default}"
        );
    }

    #[test]
    fn a_dip_in_queueing_does_not_start_the_burst_time_again() {
        // A second of queueing, then 300 ms of windows without (the gateway held
        // journeys back for a moment), then queueing again: it has stood past
        // the burst time, and the limit goes below the floor.
        let (mut g, bounds, mut at) = overload(10);
        windows(&mut g, &bounds, &mut at, 5_000.0, 3);
        windows(&mut g, &bounds, &mut at, 4.0, 12);
        assert!(g.standing && g.estimate < 64.0, "{}", g.estimate);
        // A whole second without queueing ends the burst: the next is served
        // down to the floor again.
        let (mut g, bounds, mut at) = overload(10);
        windows(&mut g, &bounds, &mut at, 5_000.0, 11);
        windows(&mut g, &bounds, &mut at, 4.0, 12);
        assert!(!g.standing && g.estimate >= 64.0, "{}", g.estimate);
    }

    #[test]
    fn queueing_after_a_quiet_spell_is_a_new_burst() {
        let (mut g, bounds, mut at) = overload(15);
        // No request for ten seconds (no window closes), then queueing again.
        at += Duration::from_secs(10);
        windows(&mut g, &bounds, &mut at, 4.0, 15);
        assert_eq!(g.estimate, 64.0, "1.5 s of queueing is a burst");
        assert!(!g.standing);
    }

    #[test]
    fn after_a_standing_overload_the_first_request_of_a_burst_lifts_the_limit() {
        let limiter = Limiter::new(Bounds::new(2, 4, 8, Duration::from_secs(1)), true);
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(5))
            .expect("a clock past five seconds");
        {
            let mut g = limiter.gradient.lock().expect("lock");
            g.standing = true;
            g.estimate = 2.0;
            g.last_queueing = Some(long_ago);
        }
        limiter.limit.store(2, Ordering::Relaxed);
        let _a = limiter.try_acquire().expect("first");
        let _b = limiter.try_acquire().expect("second");
        // A window queued just now: refused, and the refusal noted...
        limiter.gradient.lock().expect("lock").last_queueing = Some(Instant::now());
        assert!(limiter.try_acquire().is_none(), "the overload goes on");
        // ...so that while requests are refused the overload goes on, though
        // no window has queued for the burst time.
        limiter.gradient.lock().expect("lock").last_queueing = Some(long_ago);
        assert!(limiter.try_acquire().is_none(), "refusals keep it standing");
        // Nothing refused nor queued for the burst time: a burst again.
        limiter.gradient.lock().expect("lock").last_shed = Some(long_ago);
        let _c = limiter.try_acquire().expect("back at the floor");
        let _d = limiter.try_acquire().expect("the floor");
        assert_eq!(limiter.limit(), 4);
        assert!(limiter.try_acquire().is_none(), "the floor holds");
    }

    #[test]
    fn a_few_milliseconds_of_queueing_is_not_overload() {
        let mut g = Gradient::new(1024.0);
        g.observe(0.000_3, 1, &BOUNDS, Instant::now());
        for _ in 0..100 {
            // 32 in flight on a fast service: 1.6 ms each, five times the unloaded.
            g.observe(0.001_6, 32, &BOUNDS, Instant::now());
        }
        assert_eq!(g.estimate, 1024.0);
    }

    #[test]
    fn the_limit_grows_back_when_capacity_returns() {
        let mut g = Gradient::new(1024.0);
        g.observe(0.020, 10, &BOUNDS, Instant::now());
        overloaded(&mut g, 50.0, 0.020, 50);
        assert!(g.estimate < 200.0);
        // Capacity is back (the neighbour stopped eating the CPU).
        overloaded(&mut g, 5_000.0, 0.020, 400);
        assert_eq!(g.estimate, 1024.0, "{}", g.estimate);
    }

    #[test]
    fn light_traffic_does_not_grow_the_limit() {
        let mut g = Gradient::new(100.0);
        g.observe(0.010, 100, &BOUNDS, Instant::now());
        let before = g.estimate;
        for _ in 0..20 {
            g.observe(0.010, 10, &BOUNDS, Instant::now());
        }
        assert_eq!(
            g.estimate, before,
            "few in flight: the limit holds nothing back"
        );
    }

    #[test]
    fn long_polls_are_known_by_their_wait() {
        let uri = |u: &str| u.parse::<http::Uri>().expect("uri");
        assert!(is_long_poll(&uri("/internal/events?after=3&wait=20000")));
        assert!(is_long_poll(&uri(
            "/internal/registry/config?epoch=e&index=1&wait_ms=20000"
        )));
        assert!(!is_long_poll(&uri("/internal/events?after=3&wait=0")));
        assert!(!is_long_poll(&uri("/api/catalog/products?await=1")));
        assert!(!is_long_poll(&uri("/api/catalog/products")));
        assert!(
            !is_long_poll(&uri("/api/catalog/products?wait=1")),
            "public paths never"
        );
    }

    #[test]
    fn each_route_has_its_limit_and_the_ceiling_bounds_them_together() {
        let limits = Limits::new(Bounds::new(1, 1, 3, Duration::ZERO), true);
        let slow = limits.route("POST /slow");
        // The slow route queues: its limit drops to the floor.
        slow.gradient.lock().expect("lock").estimate = 1.0;
        slow.limit.store(1, Ordering::Relaxed);
        let a = limits.try_acquire("POST /slow").expect("first");
        assert!(limits.try_acquire("POST /slow").is_none(), "its limit");
        let b = limits.try_acquire("GET /fast").expect("another route");
        let _c = limits.try_acquire("GET /fast").expect("another route");
        assert!(limits.try_acquire("GET /fast").is_none(), "the ceiling");
        drop(a);
        drop(b);
        let _d = limits.try_acquire("GET /fast").expect("room again");
        let e = limits.try_acquire("POST /slow").expect("room again");
        // Calls from other services: under the ceiling only.
        assert!(limits.try_acquire_internal().is_none(), "the ceiling");
        drop(e);
        let _f = limits.try_acquire_internal().expect("internal");
        assert!(
            limits.try_acquire("POST /other").is_none(),
            "the ceiling, internal calls counted"
        );
    }

    #[test]
    fn past_the_most_routes_the_rest_share_one_limit() {
        let limits = Limits::new(Bounds::new(1, 1, 8, Duration::ZERO), true);
        for i in 0..MAX_ROUTES + 10 {
            limits.route(&format!("GET /r{i}"));
        }
        let routes = limits.routes.read().expect("lock");
        assert_eq!(routes.len(), MAX_ROUTES + 1);
        assert!(routes.contains_key(OTHER_ROUTES));
    }

    #[test]
    fn admits_up_to_the_limit() {
        let l = Limiter::new(Bounds::new(1, 1, 2, Duration::ZERO), false);
        let a = l.try_acquire().expect("first");
        let _b = l.try_acquire().expect("second");
        assert!(l.try_acquire().is_none(), "third sheds");
        drop(a);
        assert!(l.try_acquire().is_some(), "room again");
    }
}
