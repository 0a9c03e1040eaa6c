//! Per-client-IP rate limiting (GCRA, via governor).
//!
//! A keyed limiter remembers every client it has seen; a background task forgets
//! the ones whose state has returned to idle, so memory stays bounded.

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

pub struct Limiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl Limiter {
    pub fn new(settings: &RateLimitSettings) -> anyhow::Result<Self> {
        let rate =
            NonZeroU32::new(settings.per_second).context("rate_limit.per_second must be > 0")?;
        let burst = NonZeroU32::new(settings.burst).context("rate_limit.burst must be > 0")?;
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

    /// `Ok` when `ip` may make a request now; otherwise the whole seconds to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&ip).map_err(|not_until| {
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
        let l = Limiter::new(&RateLimitSettings {
            enabled: true,
            per_second: 1,
            burst: 3,
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
