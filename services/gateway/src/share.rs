//! The gateway's rate limits, held across every gateway instance, and changed
//! live.
//!
//! Each instance decides on its own, from its own limiter state, so the hot path
//! never waits on the network. Every [`RateLimitSettings::share_every_ms`] it
//! reports to the registry what it admitted per key since its last report, and
//! charges its limiters with what the other instances reported (each report
//! with its age). A client spreading requests over N gateways therefore gets its
//! quota once, not N times, give or take what the instances admit within one
//! exchange. When the registry cannot be reached each instance goes on with its
//! own limits (a warning when sharing stops, a note when it resumes).
//!
//! Live config: `gateway.rate_limit.<field>` (`per_second`, `burst`,
//! `user_per_second`, `user_burst`) in the registry's config store overrides the
//! file's value while it is set.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use emporium_client::RegistryClient;
use emporium_contracts::registry::{ConfigEntry, Usage, UsageReport};
use tokio::sync::watch;
use uuid::Uuid;

use crate::RateLimitSettings;
use crate::ratelimit::Limiter;

/// The limit names in a usage report.
const IP: &str = "ip";
const USER: &str = "user";
/// Most keys of one limit in one report (the busiest), within the registry's cap.
const MAX_KEYS: usize = 8_000;
/// How often idle keys are forgotten.
const RETAIN_EVERY: Duration = Duration::from_secs(30);
/// An instance with nothing to report still asks for the others' reports every
/// this many exchanges, so it knows them before its own traffic comes.
const IDLE_EXCHANGE_EVERY: u32 = 8;
/// The live config keys of the rate limits.
pub const LIVE_PREFIX: &str = "gateway.rate_limit.";
/// The fields that can change live.
const LIVE_FIELDS: [&str; 4] = ["per_second", "burst", "user_per_second", "user_burst"];

/// Per client IP and per signed-in user; `None` when rate limits are off.
pub struct Limits {
    pub ip: Option<Limiter<IpAddr>>,
    pub user: Option<Limiter<Uuid>>,
    file: RateLimitSettings,
}

impl Limits {
    pub fn new(settings: &RateLimitSettings) -> anyhow::Result<Self> {
        let on = settings.enabled;
        Ok(Self {
            ip: on
                .then(|| Limiter::new(settings.per_second, settings.burst, "rate_limit"))
                .transpose()?,
            user: on
                .then(|| {
                    Limiter::new(
                        settings.user_per_second,
                        settings.user_burst,
                        "rate_limit.user",
                    )
                })
                .transpose()?,
            file: settings.clone(),
        })
    }

    /// What this instance admitted since the last report.
    fn take_admitted(&self) -> Usage {
        let mut usage = Usage::new();
        if let Some(ip) = &self.ip {
            usage.insert(IP.into(), ip.take_admitted(MAX_KEYS));
        }
        if let Some(user) = &self.user {
            usage.insert(USER.into(), user.take_admitted(MAX_KEYS));
        }
        usage.retain(|_, keys| !keys.is_empty());
        usage
    }

    /// Charges what another instance admitted `age` ago.
    fn charge(&self, usage: &Usage, age: Duration) {
        for (limit, keys) in usage {
            for (key, n) in keys {
                match limit.as_str() {
                    IP => self.ip.iter().for_each(|l| l.charge_str(key, *n, age)),
                    USER => self.user.iter().for_each(|l| l.charge_str(key, *n, age)),
                    _ => {}
                }
            }
        }
    }

    fn retain(&self) {
        self.ip.iter().for_each(Limiter::retain);
        self.user.iter().for_each(Limiter::retain);
    }

    /// Applies the live `gateway.rate_limit.*` entries over the file's values; a
    /// value that does not fit is logged and the file's kept.
    pub fn apply(&self, entries: &[ConfigEntry]) {
        let mut settings = self.file.clone();
        for entry in entries {
            let Some(field) = entry.key.strip_prefix(LIVE_PREFIX) else {
                continue;
            };
            match parse(field, &entry.value) {
                Ok(value) => {
                    if let Some(slot) = field_mut(&mut settings, field) {
                        *slot = value;
                    }
                }
                Err(error) => tracing::warn!(key = %entry.key, %error, "live rate limit ignored"),
            }
        }
        if let Some(ip) = &self.ip
            && let Err(error) = ip.set(settings.per_second, settings.burst, "rate_limit")
        {
            tracing::warn!(%error, "live rate limit ignored");
        }
        if let Some(user) = &self.user
            && let Err(error) = user.set(
                settings.user_per_second,
                settings.user_burst,
                "rate_limit.user",
            )
        {
            tracing::warn!(%error, "live rate limit ignored");
        }
    }
}

fn field_mut<'a>(settings: &'a mut RateLimitSettings, field: &str) -> Option<&'a mut u32> {
    match field {
        "per_second" => Some(&mut settings.per_second),
        "burst" => Some(&mut settings.burst),
        "user_per_second" => Some(&mut settings.user_per_second),
        "user_burst" => Some(&mut settings.user_burst),
        _ => None,
    }
}

fn parse(field: &str, value: &str) -> Result<u32, String> {
    if !LIVE_FIELDS.contains(&field) {
        return Err(format!(
            "not a live rate limit field: expected one of {}",
            LIVE_FIELDS.join(", ")
        ));
    }
    match value.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{value:?} is not a whole number above 0")),
    }
}

/// Whether `emporium config set KEY VALUE` sets a live rate limit the gateways
/// would apply: `None` when the key is not theirs.
pub fn check(key: &str, value: &str) -> Option<Result<(), String>> {
    key.strip_prefix(LIVE_PREFIX)
        .map(|field| parse(field, value).map(|_| ()))
}

/// Runs until `stop`: forgets idle keys, and with a registry, exchanges usage
/// with the other gateway instances every `every` (never, when zero).
pub async fn run(
    limits: Arc<Limits>,
    registry: Option<RegistryClient>,
    instance_id: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let registry = registry.filter(|_| !every.is_zero());
    let tick_every = if registry.is_some() {
        every
    } else {
        RETAIN_EVERY
    };
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retain = tokio::time::Instant::now();
    let mut idle = 0;
    let mut after: Option<(String, u64)> = None;
    let mut sharing = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if last_retain.elapsed() >= RETAIN_EVERY {
            limits.retain();
            last_retain = tokio::time::Instant::now();
        }
        let Some(registry) = &registry else {
            continue;
        };
        let usage = limits.take_admitted();
        if usage.is_empty() && idle + 1 < IDLE_EXCHANGE_EVERY {
            idle += 1;
            continue;
        }
        idle = 0;
        let report = UsageReport {
            service: crate::NAME.into(),
            instance_id: instance_id.clone(),
            after: after.clone(),
            usage,
        };
        match registry.exchange_usage(&report).await {
            Ok(answer) => {
                for report in &answer.reports {
                    limits.charge(&report.usage, Duration::from_millis(report.age_ms));
                }
                after = Some((answer.epoch, answer.index));
                if !sharing {
                    tracing::info!("rate limits are shared with the other gateways again");
                    sharing = true;
                }
                metrics::gauge!("gateway_rate_limit_shared").set(1.0);
            }
            Err(error) => {
                if sharing {
                    tracing::warn!(%error, "rate limits are per gateway instance until the registry answers");
                    sharing = false;
                }
                metrics::gauge!("gateway_rate_limit_shared").set(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> ConfigEntry {
        ConfigEntry {
            key: key.into(),
            value: value.into(),
            index: 1,
        }
    }

    #[test]
    fn live_values_override_the_file_until_deleted() {
        let limits = Limits::new(&RateLimitSettings {
            per_second: 1,
            burst: 1,
            ..RateLimitSettings::default()
        })
        .expect("limits");
        let ip = || limits.ip.as_ref().expect("on");
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        ip().check(a).expect("first");
        assert!(ip().check(a).is_err(), "burst of 1");
        limits.apply(&[
            entry("gateway.rate_limit.burst", "3"),
            entry("gateway.rate_limit.per_second", "zero"),
        ]);
        assert!(ip().check(a).is_ok(), "live burst of 3");
        limits.apply(&[]);
        assert!(ip().check(a).is_err(), "back to the file's burst of 1");
    }

    #[test]
    fn config_set_checks_live_rate_limit_values() {
        assert_eq!(check("gateway.rate_limit.burst", "20"), Some(Ok(())));
        assert!(matches!(
            check("gateway.rate_limit.burst", "0"),
            Some(Err(_))
        ));
        assert!(matches!(
            check("gateway.rate_limit.bursts", "2"),
            Some(Err(_))
        ));
        assert_eq!(check("log.level", "debug"), None);
    }
}
