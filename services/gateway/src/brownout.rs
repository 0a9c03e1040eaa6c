//! Journeys admitted at the edge under overload: while the service that finishes
//! journeys sheds them, refuse a share of the requests that start new ones.
//!
//! Every service sheds its own load ([`emporium_http::limit`]), but it cannot see a
//! journey: when orders refuses a checkout, the add to the cart before it was
//! work done for nothing, and at three times the shop's capacity that waste took a
//! quarter of it (`docs/benchmarks.md`, "Overload"). The gateway sees both steps,
//! so it brings the two together, as a shop's waiting room or Google's criticality
//! classes do: the last steps of journeys (`protect`, a checkout) are never
//! refused here, and while their service sheds more than the target share of them
//! the gateway refuses a growing share of the first steps (`start`, an add to
//! the cart) with 503 and `Retry-After`, before anything is done for them.
//!
//! The share is an integral controller: every tick (100 ms) it moves by a quarter
//! of the difference between the shed share of protected requests, read over
//! the last half second or so, and the target (25%). So it rises within a few ticks of
//! a standing overload, and in a busy shop one burst of refusals (64 shoppers
//! without think time return together) among the answered checkouts moves it
//! little: refusing starts for a burst would only turn a few refused checkouts
//! into many refused adds. Fewer than [`FEWEST`] answers in the window say
//! nothing, so a shop answering under about ten checkouts a second is never
//! browned out; above that, a burst of sheds with nothing answered beside it
//! does raise the share for a second or two. The target is not zero on purpose
//! either: a service whose limit refuses nothing decides its overload is over
//! and lets its queue grow back, which in earlier attempts aiming at 1–5% kept
//! admitted checkouts waiting three times longer and, with 64 shoppers without
//! think time, halved what they got through. Refusals follow the share exactly,
//! by error diffusion rather than chance: with a share of 0.3, three of every
//! ten starts are refused.
//!
//! Only load shedding counts (a 503 marked with [`headers::SHED`]), not a 503 for
//! another reason: with payments down, checkouts fail at once but adds to the
//! cart are not refused for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use emporium_contracts::headers;
use http::{HeaderMap, Method, StatusCode};

use crate::routes::lists;

/// The share, as millionths.
const SCALE: u64 = 1_000_000;
/// The most of the starts refused: some journeys always get in, and they are what
/// tells the controller that the overload is over.
const MOST_SHARE: f64 = 0.95;
/// How much of the difference to the target a tick moves the share.
const GAIN: f64 = 0.25;
/// What weight a tick's answers keep in the next: the shed share is read over
/// the last half second or so (a tick's weight halves in three), so one burst
/// of refusals moves the share little.
const MEMORY: f64 = 0.8;
/// Fewer protected answers than this in the decayed window say nothing: one
/// checkout shed in a quiet shop is no overload.
const FEWEST: f64 = 5.0;
/// How often the share is adjusted.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// The controller: which routes, and the share of starts refused now.
#[derive(Debug)]
pub struct Brownout {
    protect: Vec<(Method, String)>,
    start: Vec<(Method, String)>,
    target: f64,
    /// Protected requests answered this tick, and how many of them were shed.
    answered: AtomicU64,
    shed: AtomicU64,
    /// The protected answers and sheds of the last ticks, decayed by
    /// [`MEMORY`] a tick: only the tick task touches them.
    recent: Mutex<(f64, f64)>,
    /// The share of starts refused, in millionths.
    share: AtomicU64,
    /// Error diffusion: the shares of every start so far; a start is refused
    /// when this passes a whole number.
    turns: AtomicU64,
}

impl Brownout {
    /// A controller over `protect` and `start` (`METHOD /exact/path` each),
    /// aiming for `target` of protected requests shed.
    pub fn new(protect: &[String], start: &[String], target: f64) -> anyhow::Result<Self> {
        if !(0.0..1.0).contains(&target) {
            anyhow::bail!("gateway.brownout.target: {target} is not in [0, 1)");
        }
        let protect = crate::routes::parse("brownout.protect", protect)?;
        let start = crate::routes::parse("brownout.start", start)?;
        if let Some((method, path)) = start.iter().find(|r| protect.contains(r)) {
            anyhow::bail!("gateway.brownout: `{method} {path}` cannot both start and finish");
        }
        Ok(Self {
            protect,
            start,
            target,
            answered: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            recent: Mutex::new((0.0, 0.0)),
            share: AtomicU64::new(0),
            turns: AtomicU64::new(0),
        })
    }

    /// Whether `method path` finishes a journey.
    pub fn protects(&self, method: &Method, path: &str) -> bool {
        lists(&self.protect, method, path)
    }

    /// Whether `method path` starts a journey and may go in now; counts a refusal.
    pub fn admits(&self, method: &Method, path: &str) -> bool {
        if !lists(&self.start, method, path) {
            return true;
        }
        let share = self.share.load(Ordering::Relaxed);
        if share == 0 {
            return true;
        }
        let before = self.turns.fetch_add(share, Ordering::Relaxed);
        let refused = (before + share) / SCALE > before / SCALE;
        if refused {
            metrics::counter!("gateway_brownout_refused_total").increment(1);
        }
        !refused
    }

    /// Notes the answer to a protected request: whether its service shed it.
    pub fn answered(&self, status: StatusCode, headers: &HeaderMap) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if status == StatusCode::SERVICE_UNAVAILABLE && headers.contains_key(headers::SHED) {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The share of starts refused now.
    pub fn share(&self) -> f64 {
        self.share.load(Ordering::Relaxed) as f64 / SCALE as f64
    }

    /// Moves the share by what the recent protected answers say, and starts the
    /// next tick. Too few of them (a quiet shop, or none for a while) are no
    /// sign of shedding.
    pub fn tick(&self) {
        let answered = self.answered.swap(0, Ordering::Relaxed) as f64;
        let shed = self.shed.swap(0, Ordering::Relaxed) as f64;
        let seen = {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent.0 = recent.0 * MEMORY + answered;
            recent.1 = recent.1 * MEMORY + shed;
            if recent.0 < FEWEST {
                0.0
            } else {
                recent.1 / recent.0
            }
        };
        let share = (self.share() + GAIN * (seen - self.target)).clamp(0.0, MOST_SHARE);
        self.share
            .store((share * SCALE as f64).round() as u64, Ordering::Relaxed);
        metrics::gauge!("gateway_brownout_share").set(share);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brownout() -> Brownout {
        Brownout::new(
            &["POST /api/orders".into()],
            &["POST /api/cart/items".into()],
            0.25,
        )
        .expect("valid")
    }

    fn shed_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::SHED, http::HeaderValue::from_static("1"));
        h
    }

    /// One tick in which `shed` of `answered` protected requests were shed.
    fn tick(b: &Brownout, answered: u32, shed: u32) {
        for i in 0..answered {
            if i < shed {
                b.answered(StatusCode::SERVICE_UNAVAILABLE, &shed_headers());
            } else {
                b.answered(StatusCode::CREATED, &HeaderMap::new());
            }
        }
        b.tick();
    }

    fn refused_of(b: &Brownout, n: u32) -> u32 {
        let post = Method::POST;
        (0..n)
            .filter(|_| !b.admits(&post, "/api/cart/items"))
            .count() as u32
    }

    #[test]
    fn starts_are_refused_while_checkouts_are_shed_and_let_in_again_after() {
        let b = brownout();
        assert_eq!(refused_of(&b, 100), 0, "nothing refused without shedding");
        // Below the target: nothing refused.
        tick(&b, 20, 4);
        assert_eq!(b.share(), 0.0);
        // Most checkouts shed: the share rises tick by tick, to its cap.
        let mut last = 0.0;
        for _ in 0..3 {
            tick(&b, 20, 18);
            assert!(b.share() > last, "{} after {last}", b.share());
            last = b.share();
        }
        let expected = (b.share() * 1000.0).round() as u32;
        let refused = refused_of(&b, 1000);
        assert!(
            refused.abs_diff(expected) <= 1,
            "refusals follow the share exactly: {refused} of 1000 at {}",
            b.share()
        );
        // Other routes, and the protected one, are never refused.
        assert!(b.admits(&Method::POST, "/api/orders"));
        assert!(b.admits(&Method::GET, "/api/cart/items"));
        for _ in 0..20 {
            tick(&b, 20, 20);
        }
        assert!((b.share() - MOST_SHARE).abs() < 1e-6, "{}", b.share());
        // One burst of refusals after a calm second moves it little.
        let calm = brownout();
        for _ in 0..10 {
            tick(&calm, 20, 0);
        }
        tick(&calm, 20, 20);
        assert!(calm.share() < 0.05, "{}", calm.share());
        // Checkouts answered again: it falls back to nothing within seconds.
        for _ in 0..40 {
            tick(&b, 20, 0);
        }
        assert_eq!(b.share(), 0.0);
        assert_eq!(refused_of(&b, 100), 0);
    }

    #[test]
    fn only_load_shedding_counts() {
        let b = brownout();
        // Payments down: checkouts answered 503 without the mark.
        for _ in 0..20 {
            b.answered(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new());
        }
        b.tick();
        assert_eq!(b.share(), 0.0);
        assert!(Brownout::new(&[], &[], 1.0).is_err());
        assert!(Brownout::new(&["orders".into()], &[], 0.05).is_err());
        let both = ["POST /api/orders".to_string()];
        assert!(Brownout::new(&both, &both, 0.25).is_err());
    }

    #[test]
    fn a_quiet_shop_is_never_browned_out() {
        let b = brownout();
        // One checkout a tick (ten a second), every one shed: too few to say.
        for _ in 0..50 {
            tick(&b, 1, 1);
        }
        assert_eq!(b.share(), 0.0);
        let b = brownout();
        tick(&b, 4, 4);
        assert_eq!(b.share(), 0.0);
        // Enough of them: it acts.
        tick(&b, 4, 4);
        assert!(b.share() > 0.0);
    }
}
