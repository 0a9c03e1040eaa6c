//! Login throttling, per account and per client address (OWASP Authentication
//! Cheat Sheet: exponential delays rather than lockouts).
//!
//! Each key — the email tried, and the address trying — has a few free failures;
//! after those, each further failure blocks that key for twice as long as the last,
//! up to a cap. A blocked attempt is refused before the password is looked at and
//! does not count, so hammering does not extend the block. The caps differ on
//! purpose: an address that sprays many accounts is slowed for up to 15 minutes,
//! while an account is slowed for at most a minute, so that whoever guesses at
//! someone else's email cannot lock its owner out for long (their own address is
//! not the one being slowed). A success clears the account's failures, not the
//! address's: one valid account does not reset a spraying address. Failures are
//! forgotten after a quiet period. The answer is the same for emails that have an
//! account and emails that do not.
//!
//! The state is each instance's own, bounded in size; several users instances each
//! count on their own (see docs/architecture.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

/// The `[users.login_throttle]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    /// Failures an email may have before delays start.
    pub account_free_failures: u32,
    /// Failures an address may have before delays start.
    pub ip_free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay_ms: u64,
    /// The longest an account is blocked.
    pub account_max_delay_secs: u64,
    /// The longest an address is blocked.
    pub ip_max_delay_secs: u64,
    /// Failures older than this are forgotten.
    pub forget_after_secs: u64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            account_free_failures: 5,
            ip_free_failures: 20,
            base_delay_ms: 1_000,
            account_max_delay_secs: 60,
            ip_max_delay_secs: 15 * 60,
            forget_after_secs: 15 * 60,
        }
    }
}

/// Keys tracked at most; past it, entries that block nothing are dropped first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_ms: i64,
    blocked_until_ms: i64,
}

pub struct LoginThrottle {
    settings: ThrottleSettings,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(account: Option<&str>, ip: Option<IpAddr>) -> impl Iterator<Item = Key> {
        account
            .map(|a| Key::Account(a.to_string()))
            .into_iter()
            .chain(ip.map(Key::Address))
    }

    /// How long until `account` from `ip` may try again, if it is blocked now.
    #[cfg(test)]
    pub fn blocked(
        &self,
        account: Option<&str>,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Self::wait(&entries, account, ip, now_ms)
    }

    fn wait(
        entries: &HashMap<Key, Entry>,
        account: Option<&str>,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Option<Duration> {
        Self::keys(account, ip)
            .filter_map(|k| entries.get(&k))
            .map(|e| e.blocked_until_ms - now_ms)
            .filter(|left| *left > 0)
            .max()
            // Rounded up: a client that waits as long as told is let in.
            .map(|left| Duration::from_secs(u64::try_from(left).unwrap_or(0).div_ceil(1000)))
    }

    /// An attempt about to be checked: refused with how long to wait while blocked,
    /// else counted as a failure at once (so that attempts sent in parallel cannot
    /// all pass before the first is counted) and let through; whether it started a
    /// block. A success gives the count back ([`Self::succeeded`]).
    pub fn attempt(
        &self,
        account: Option<&str>,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Result<bool, Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wait) = Self::wait(&entries, account, ip, now_ms) {
            return Err(wait);
        }
        Ok(self.count(&mut entries, account, ip, now_ms))
    }

    /// Counts a failed attempt; whether it started a block.
    #[cfg(test)]
    pub fn failed(&self, account: Option<&str>, ip: Option<IpAddr>, now_ms: i64) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.count(&mut entries, account, ip, now_ms)
    }

    fn count(
        &self,
        entries: &mut HashMap<Key, Entry>,
        account: Option<&str>,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> bool {
        let s = &self.settings;
        let forget_ms = i64::try_from(s.forget_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.blocked_until_ms > now_ms && now_ms - e.last_ms < forget_ms);
        }
        let mut blocked = false;
        for key in Self::keys(account, ip) {
            let (free, max_secs) = match key {
                Key::Account(_) => (s.account_free_failures, s.account_max_delay_secs),
                Key::Address(_) => (s.ip_free_failures, s.ip_max_delay_secs),
            };
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
                continue;
            }
            let e = entries.entry(key).or_insert(Entry {
                failures: 0,
                last_ms: now_ms,
                blocked_until_ms: 0,
            });
            if now_ms - e.last_ms >= forget_ms {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last_ms = now_ms;
            if e.failures > free {
                let doublings = (e.failures - free - 1).min(30);
                let delay = s
                    .base_delay_ms
                    .saturating_mul(1 << doublings)
                    .min(max_secs.saturating_mul(1000));
                e.blocked_until_ms = now_ms + i64::try_from(delay).unwrap_or(i64::MAX / 2);
                blocked = true;
            }
        }
        blocked
    }

    /// A successful sign-in: the account's failures are forgotten, and the
    /// address gets back the count [`Self::attempt`] took (its own failures stay:
    /// one valid account does not clear a spraying address).
    pub fn succeeded(&self, account: &str, ip: Option<IpAddr>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&Key::Account(account.to_string()));
        if let Some(e) = ip.and_then(|ip| entries.get_mut(&Key::Address(ip))) {
            e.failures = e.failures.saturating_sub(1);
            if e.failures <= self.settings.ip_free_failures {
                e.blocked_until_ms = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleSettings::default())
    }

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)));

    #[test]
    fn an_account_is_slowed_exponentially_and_at_most_a_minute() {
        let t = throttle();
        let a = Some("ada@example.com");
        for i in 0..5 {
            assert!(t.blocked(a, None, i).is_none());
            assert!(!t.failed(a, None, i), "five free failures");
        }
        let mut now = 10;
        let mut delays = Vec::new();
        for _ in 0..10 {
            assert!(t.blocked(a, None, now).is_none());
            assert!(t.failed(a, None, now));
            let left = t.blocked(a, None, now).expect("blocked");
            delays.push(left.as_millis());
            // A blocked attempt is refused and does not count.
            assert!(t.blocked(a, None, now + 1).is_some());
            now += i64::try_from(left.as_millis()).expect("ms");
        }
        assert_eq!(delays[..4], [1_000, 2_000, 4_000, 8_000]);
        assert_eq!(*delays.last().expect("some"), 60_000, "capped");
        // Another email from the same address is not blocked by this one.
        assert!(t.blocked(Some("grace@example.com"), None, now).is_none());
        t.succeeded("ada@example.com", None);
        assert!(t.blocked(a, None, now).is_none());
    }

    #[test]
    fn an_address_spraying_many_accounts_is_slowed() {
        let t = throttle();
        for i in 0..20 {
            let email = format!("victim{i}@example.com");
            assert!(!t.failed(Some(&email), IP, i));
        }
        assert!(t.failed(Some("victim20@example.com"), IP, 20));
        assert!(t.blocked(Some("victim21@example.com"), IP, 21).is_some());
        // The victims, from their own addresses, are not.
        let home = Some(IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1)));
        assert!(t.blocked(Some("victim3@example.com"), home, 21).is_none());
        // While blocked, the address cannot even try an account it owns.
        assert!(t.attempt(Some("victim3@example.com"), IP, 22).is_err());
    }

    #[test]
    fn attempts_in_parallel_are_counted_before_any_is_checked() {
        let t = throttle();
        let a = Some("ada@example.com");
        // Six let through (the sixth starts the block), the seventh refused, all
        // before any of them has been checked.
        let outcomes: Vec<_> = (0..7).map(|_| t.attempt(a, None, 0)).collect();
        assert!(
            outcomes[..5].iter().all(|o| *o == Ok(false)),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[5], Ok(true));
        assert_eq!(outcomes[6], Err(Duration::from_secs(1)));
        // A success gives the address its attempt back.
        let t = throttle();
        for _ in 0..20 {
            assert!(t.attempt(None, IP, 0).is_ok());
            t.succeeded("someone@example.com", IP);
        }
        assert_eq!(t.attempt(None, IP, 0), Ok(false), "successes do not add up");
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let t = throttle();
        let a = Some("ada@example.com");
        for i in 0..5 {
            t.failed(a, None, i);
        }
        let later = 15 * 60 * 1000 + 10;
        assert!(!t.failed(a, None, later), "counting starts again");
    }
}
