//! Rate limiting per client IP and per signed-in user (GCRA, via governor).
//!
//! A keyed limiter remembers every key it has seen; a background task forgets
//! the ones whose state has returned to idle, so memory stays bounded.

use std::hash::Hash;
#[cfg(test)]
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::RateLimitSettings;

/// How often idle clients are forgotten.
const RETAIN_EVERY: Duration = Duration::from_secs(30);

pub struct Limiter<K: Hash + Eq + Clone> {
    limiter: Arc<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Limiter<K> {
    /// Per client IP, as `settings` say.
    pub fn per_ip(settings: &RateLimitSettings) -> anyhow::Result<Self> {
        Self::new(settings.per_second, settings.burst, "rate_limit")
    }

    /// Per signed-in user, as `settings` say.
    pub fn per_user(settings: &RateLimitSettings) -> anyhow::Result<Self> {
        Self::new(
            settings.user_per_second,
            settings.user_burst,
            "rate_limit.user",
        )
    }

    fn new(per_second: u32, burst: u32, what: &str) -> anyhow::Result<Self> {
        let rate =
            NonZeroU32::new(per_second).with_context(|| format!("{what} rate must be > 0"))?;
        let burst = NonZeroU32::new(burst).with_context(|| format!("{what} burst must be > 0"))?;
        let limiter = Arc::new(RateLimiter::keyed(
            Quota::per_second(rate).allow_burst(burst),
        ));
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RETAIN_EVERY);
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
        Ok(Self {
            limiter,
            clock: DefaultClock::default(),
        })
    }

    /// `Ok` when `key` may make a request now; otherwise the whole seconds to wait.
    pub fn check(&self, key: K) -> Result<(), u64> {
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_then_refusal_per_ip() {
        let l = Limiter::<IpAddr>::per_ip(&RateLimitSettings {
            per_second: 1,
            burst: 3,
            ..RateLimitSettings::default()
        })
        .expect("limiter");
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).expect_err("over the burst");
        assert!(wait >= 1, "Retry-After is at least a second: {wait}");
        assert!(l.check(b).is_ok(), "other clients are not affected");
    }
}
