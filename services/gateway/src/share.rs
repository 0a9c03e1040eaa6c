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

    fn retain(&self, sharing: bool) {
        self.ip.iter().for_each(|l| l.retain(sharing));
        self.user.iter().for_each(|l| l.retain(sharing));
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
    if field_mut(&mut RateLimitSettings::default(), field).is_none() {
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
    let sharing = registry.is_some();
    let mut tick = tokio::time::interval(if sharing { every } else { RETAIN_EVERY });
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retain = tokio::time::Instant::now();
    let mut exchange = Exchange {
        instance_id,
        after: None,
        unsent: Usage::new(),
        idle: 0,
        shared: true,
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if last_retain.elapsed() >= RETAIN_EVERY {
            limits.retain(sharing);
            last_retain = tokio::time::Instant::now();
        }
        if let Some(registry) = &registry {
            tokio::select! {
                () = exchange.once(&limits, registry) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// Where one gateway stands in the exchange.
struct Exchange {
    instance_id: String,
    /// The last `(epoch, index)` the registry answered.
    after: Option<(String, u64)>,
    /// Usage a failed exchange did not deliver, sent with the next.
    unsent: Usage,
    /// Ticks since the last exchange.
    idle: u32,
    /// Whether the last exchange went through.
    shared: bool,
}

impl Exchange {
    async fn once(&mut self, limits: &Limits, registry: &RegistryClient) {
        let mut usage = limits.take_admitted();
        merge(&mut usage, std::mem::take(&mut self.unsent));
        if usage.is_empty() && self.idle + 1 < IDLE_EXCHANGE_EVERY {
            self.idle += 1;
            return;
        }
        self.idle = 0;
        let report = UsageReport {
            service: crate::NAME.into(),
            instance_id: self.instance_id.clone(),
            after: self.after.clone(),
            usage,
        };
        match registry.exchange_usage(&report).await {
            Ok(answer) => {
                for report in &answer.reports {
                    limits.charge(&report.usage, Duration::from_millis(report.age_ms));
                }
                self.after = Some((answer.epoch, answer.index));
                if !self.shared {
                    tracing::info!("rate limits are shared with the other gateways again");
                    self.shared = true;
                }
                metrics::gauge!("gateway_rate_limit_shared").set(1.0);
            }
            Err(error) => {
                // Unreachable or busy: what this gateway admitted goes with the
                // next report (a report the registry kept but whose answer was
                // lost is then counted twice: limits err on the strict side).
                // A report it refused would only be refused again.
                if !error.status().is_some_and(|s| s.is_client_error()) {
                    self.unsent = report.usage;
                }
                if self.shared {
                    tracing::warn!(%error, "rate limits are per gateway instance until the usage exchange with the registry works again");
                    self.shared = false;
                }
                metrics::gauge!("gateway_rate_limit_shared").set(0.0);
            }
        }
    }
}

/// Adds `more` to `usage`, keeping at most [`MAX_KEYS`] keys per limit.
fn merge(usage: &mut Usage, more: Usage) {
    for (limit, keys) in more {
        let into = usage.entry(limit).or_default();
        for (key, n) in keys {
            if into.len() >= MAX_KEYS && !into.contains_key(&key) {
                continue;
            }
            let count = into.entry(key).or_default();
            *count = count.saturating_add(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> ConfigEntry {
        ConfigEntry::new(key, value, 1)
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
    fn unsent_usage_is_added_to_the_next_report_within_the_cap() {
        let mut usage: Usage = [("ip".to_string(), [("a".to_string(), 2)].into())].into();
        let more: Usage = [
            (
                "ip".to_string(),
                [("a".to_string(), 3), ("b".to_string(), 1)].into(),
            ),
            ("user".to_string(), [("u".to_string(), 4)].into()),
        ]
        .into();
        merge(&mut usage, more);
        assert_eq!(usage["ip"]["a"], 5);
        assert_eq!(usage["ip"]["b"], 1);
        assert_eq!(usage["user"]["u"], 4);
        let full: Usage = [(
            "ip".to_string(),
            (0..MAX_KEYS).map(|i| (i.to_string(), 1)).collect(),
        )]
        .into();
        let mut capped = full.clone();
        merge(
            &mut capped,
            [("ip".to_string(), [("new".to_string(), 1)].into())].into(),
        );
        assert_eq!(capped, full, "no key past the cap");
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
        // The fields the error names are the fields that apply.
        for field in LIVE_FIELDS {
            assert!(
                field_mut(&mut RateLimitSettings::default(), field).is_some(),
                "{field}"
            );
        }
    }
}
