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
//! The counts live in users' database (`login_throttle`), so every users instance
//! sees the same ones: N instances do not give an attacker N times the attempts.
//! Each attempt locks its keys' rows (PostgreSQL `FOR UPDATE`; SQLite's write
//! transaction), so attempts sent in parallel, to one instance or several, are
//! counted one after another. Rows that block nothing and are past the quiet period
//! are pruned.

use std::net::IpAddr;
use std::time::Duration;

use emporium_store::{Db, Tx};
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

/// The state of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    failures: i64,
    last_ms: i64,
    blocked_until_ms: i64,
}

/// How long until the latest block among `entries` ends, if one is on: rounded
/// up, so a client that waits as long as told is let in.
fn wait<'a>(entries: impl Iterator<Item = &'a Entry>, now_ms: i64) -> Option<Duration> {
    entries
        .map(|e| e.blocked_until_ms - now_ms)
        .filter(|left| *left > 0)
        .max()
        .map(|left| Duration::from_secs(u64::try_from(left).unwrap_or(0).div_ceil(1000)))
}

/// A key with its rules: its free failures and its longest block.
struct Key {
    name: String,
    free: i64,
    max_delay_ms: i64,
}

pub struct LoginThrottle {
    settings: ThrottleSettings,
    db: Db,
}

fn ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl LoginThrottle {
    pub fn new(settings: ThrottleSettings, db: Db) -> Self {
        Self { settings, db }
    }

    fn account_key(account: &str) -> String {
        format!("account:{account}")
    }

    /// An IPv4 address, or the /64 of an IPv6 one (one subscriber's network:
    /// rotating through its addresses is no way around the limit).
    fn address_key(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                format!("ip:{}/64", std::net::Ipv6Addr::from(network))
            }
        }
    }

    /// The keys of an attempt, always in the same order (the account first), so
    /// that two attempts lock shared rows in the same order.
    fn keys(&self, account: Option<&str>, ip: Option<IpAddr>) -> Vec<Key> {
        let s = &self.settings;
        let account = account.map(|a| Key {
            name: Self::account_key(a),
            free: i64::from(s.account_free_failures),
            max_delay_ms: ms(s.account_max_delay_secs),
        });
        let address = ip.map(|ip| Key {
            name: Self::address_key(ip),
            free: i64::from(s.ip_free_failures),
            max_delay_ms: ms(s.ip_max_delay_secs),
        });
        account.into_iter().chain(address).collect()
    }

    /// An attempt about to be checked: refused with how long to wait while blocked,
    /// else counted as a failure at once (so that attempts sent in parallel cannot
    /// all pass before the first is counted) and let through; whether it started a
    /// block. A success gives the count back ([`Self::succeeded`]).
    pub async fn attempt(
        &self,
        account: Option<&str>,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Result<Result<bool, Duration>, sqlx::Error> {
        let keys = self.keys(account, ip);
        if keys.is_empty() {
            return Ok(Ok(false));
        }
        // A blocked key is refused without a write or a lock: hammering it costs
        // one read.
        let mut seen = Vec::with_capacity(keys.len());
        for key in &keys {
            seen.push(self.read(&key.name).await?);
        }
        if let Some(wait) = wait(seen.iter().flatten(), now_ms) {
            return Ok(Err(wait));
        }
        let mut tx = self.db.begin().await?;
        let mut entries = Vec::with_capacity(keys.len());
        for key in &keys {
            entries.push(self.locked(&mut tx, &key.name, now_ms).await?);
        }
        // Another attempt may have started a block meanwhile.
        if let Some(wait) = wait(entries.iter(), now_ms) {
            tx.rollback().await?;
            return Ok(Err(wait));
        }
        let mut blocked = false;
        for (key, entry) in keys.iter().zip(entries) {
            let (counted, blocks) = self.count(entry, key, now_ms);
            blocked |= blocks;
            sqlx::query(
                "UPDATE login_throttle SET failures = $2, last_ms = $3, blocked_until_ms = $4 \
                 WHERE key = $1",
            )
            .bind(&key.name)
            .bind(counted.failures)
            .bind(counted.last_ms)
            .bind(counted.blocked_until_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(blocked))
    }

    /// The key's row as it stands, if any (no lock).
    async fn read(&self, key: &str) -> Result<Option<Entry>, sqlx::Error> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT failures, last_ms, blocked_until_ms FROM login_throttle WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|(failures, last_ms, blocked_until_ms)| Entry {
            failures,
            last_ms,
            blocked_until_ms,
        }))
    }

    /// The key's row, made if new, locked until the transaction ends: one
    /// statement, so no prune can remove it in between (the no-op update takes
    /// PostgreSQL's row lock; SQLite's write transaction holds its only lock).
    async fn locked(&self, tx: &mut Tx, key: &str, now_ms: i64) -> Result<Entry, sqlx::Error> {
        let (failures, last_ms, blocked_until_ms): (i64, i64, i64) = sqlx::query_as(
            "INSERT INTO login_throttle (key, failures, last_ms, blocked_until_ms) \
             VALUES ($1, 0, $2, 0) ON CONFLICT (key) DO UPDATE SET key = excluded.key \
             RETURNING failures, last_ms, blocked_until_ms",
        )
        .bind(key)
        .bind(now_ms)
        .fetch_one(&mut **tx)
        .await?;
        Ok(Entry {
            failures,
            last_ms,
            blocked_until_ms,
        })
    }

    /// `entry` with one more failure at `now_ms`; whether that starts a block.
    fn count(&self, mut entry: Entry, key: &Key, now_ms: i64) -> (Entry, bool) {
        let s = &self.settings;
        if now_ms - entry.last_ms >= ms(s.forget_after_secs) {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_ms = now_ms;
        if entry.failures <= key.free {
            return (entry, false);
        }
        let doublings = u32::try_from((entry.failures - key.free - 1).min(30)).unwrap_or(30);
        let delay = i64::try_from(s.base_delay_ms.saturating_mul(1 << doublings))
            .unwrap_or(i64::MAX)
            .min(key.max_delay_ms);
        entry.blocked_until_ms = now_ms.saturating_add(delay);
        (entry, true)
    }

    /// A successful sign-in: the account's failures are forgotten, and the
    /// address gets back the count [`Self::attempt`] took (its own failures stay:
    /// one valid account does not clear a spraying address).
    pub async fn succeeded(&self, account: &str, ip: Option<IpAddr>) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(Self::account_key(account))
            .execute(&mut *tx)
            .await?;
        if let Some(ip) = ip {
            sqlx::query(
                "UPDATE login_throttle SET failures = failures - 1, \
                 blocked_until_ms = CASE WHEN failures - 1 <= $2 THEN 0 ELSE blocked_until_ms END \
                 WHERE key = $1 AND failures > 0",
            )
            .bind(Self::address_key(ip))
            .bind(i64::from(self.settings.ip_free_failures))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Forgets keys that block nothing and have been quiet for the quiet period,
    /// a thousand per transaction (sign-ins wait for no long delete); how many.
    pub async fn prune(&self, now_ms: i64) -> Result<u64, sqlx::Error> {
        const BATCH: u64 = 1_000;
        let quiet_since = now_ms.saturating_sub(ms(self.settings.forget_after_secs));
        let mut total = 0;
        loop {
            let mut tx = self.db.begin().await?;
            let done = sqlx::query(
                "DELETE FROM login_throttle WHERE key IN (SELECT key FROM login_throttle \
                 WHERE last_ms <= $2 AND blocked_until_ms <= $1 LIMIT 1000)",
            )
            .bind(now_ms)
            .bind(quiet_since)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            total += done.rows_affected();
            if done.rows_affected() < BATCH {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn throttle() -> (tempfile::TempDir, LoginThrottle) {
        let (dir, db) = crate::test_db().await;
        (dir, LoginThrottle::new(ThrottleSettings::default(), db))
    }

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)));

    /// Counts a failed attempt; whether it started a block.
    async fn fail(t: &LoginThrottle, account: Option<&str>, ip: Option<IpAddr>, now: i64) -> bool {
        t.attempt(account, ip, now)
            .await
            .expect("db")
            .expect("not blocked")
    }

    /// How long until `account` from `ip` may try again, if it is blocked now.
    async fn blocked(
        t: &LoginThrottle,
        account: Option<&str>,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Option<Duration> {
        let mut tx = t.db.begin().await.expect("tx");
        let mut wait = None;
        for key in t.keys(account, ip) {
            let e = t.locked(&mut tx, &key.name, now).await.expect("row");
            let left = e.blocked_until_ms - now;
            if left > 0 {
                wait = wait.max(Some(Duration::from_millis(
                    u64::try_from(left).unwrap_or(0),
                )));
            }
        }
        tx.rollback().await.expect("rollback");
        wait
    }

    #[tokio::test]
    async fn an_account_is_slowed_exponentially_and_at_most_a_minute() {
        let (_dir, t) = throttle().await;
        let a = Some("ada@example.com");
        for i in 0..5 {
            assert!(blocked(&t, a, None, i).await.is_none());
            assert!(!fail(&t, a, None, i).await, "five free failures");
        }
        let mut now = 10;
        let mut delays = Vec::new();
        for _ in 0..10 {
            assert!(blocked(&t, a, None, now).await.is_none());
            assert!(fail(&t, a, None, now).await);
            let left = blocked(&t, a, None, now).await.expect("blocked");
            delays.push(left.as_millis());
            // A blocked attempt is refused and does not count.
            assert!(t.attempt(a, None, now + 1).await.expect("db").is_err());
            now += i64::try_from(left.as_millis()).expect("ms");
        }
        assert_eq!(delays[..4], [1_000, 2_000, 4_000, 8_000]);
        assert_eq!(*delays.last().expect("some"), 60_000, "capped");
        // Another email from the same address is not blocked by this one.
        assert!(
            blocked(&t, Some("grace@example.com"), None, now)
                .await
                .is_none()
        );
        t.succeeded("ada@example.com", None).await.expect("db");
        assert!(blocked(&t, a, None, now).await.is_none());
    }

    #[tokio::test]
    async fn an_address_spraying_many_accounts_is_slowed() {
        let (_dir, t) = throttle().await;
        for i in 0..20 {
            let email = format!("victim{i}@example.com");
            assert!(!fail(&t, Some(&email), IP, i).await);
        }
        assert!(fail(&t, Some("victim20@example.com"), IP, 20).await);
        assert!(
            blocked(&t, Some("victim21@example.com"), IP, 21)
                .await
                .is_some()
        );
        // The victims, from their own addresses, are not.
        let home = Some(IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1)));
        assert!(
            blocked(&t, Some("victim3@example.com"), home, 21)
                .await
                .is_none()
        );
        // While blocked, the address cannot even try an account it owns.
        assert!(
            t.attempt(Some("victim3@example.com"), IP, 22)
                .await
                .expect("db")
                .is_err()
        );
    }

    #[tokio::test]
    async fn attempts_in_parallel_are_counted_one_after_another() {
        let (_dir, t) = throttle().await;
        let a = Some("ada@example.com");
        // Six let through (the sixth starts the block), the seventh refused, all
        // sent at once.
        let mut outcomes: Vec<_> = futures::future::join_all((0..7).map(|_| t.attempt(a, None, 0)))
            .await
            .into_iter()
            .map(|o| o.expect("db"))
            .collect();
        outcomes.sort_by_key(|o| match o {
            Ok(false) => 0,
            Ok(true) => 1,
            Err(_) => 2,
        });
        assert!(
            outcomes[..5].iter().all(|o| *o == Ok(false)),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[5], Ok(true));
        assert_eq!(outcomes[6], Err(Duration::from_secs(1)));
        // A success gives the address its attempt back.
        let (_dir, t) = throttle().await;
        for _ in 0..20 {
            assert!(t.attempt(None, IP, 0).await.expect("db").is_ok());
            t.succeeded("someone@example.com", IP).await.expect("db");
        }
        assert_eq!(
            t.attempt(None, IP, 0).await.expect("db"),
            Ok(false),
            "successes do not add up"
        );
    }

    #[tokio::test]
    async fn two_instances_count_together() {
        let (_dir, t) = throttle().await;
        let other = LoginThrottle::new(ThrottleSettings::default(), t.db.clone());
        let a = Some("ada@example.com");
        for i in 0..5 {
            let one = if i % 2 == 0 { &t } else { &other };
            assert!(!fail(one, a, None, i).await);
        }
        assert!(
            fail(&other, a, None, 5).await,
            "the sixth, wherever it lands, blocks"
        );
        assert!(t.attempt(a, None, 6).await.expect("db").is_err());
    }

    #[test]
    fn an_ipv6_subscriber_is_one_key_for_its_whole_64() {
        let key = |s: &str| LoginThrottle::address_key(s.parse().expect("ip"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.9"), "ip:203.0.113.9");
    }

    #[tokio::test]
    async fn failures_are_forgotten_after_a_quiet_period() {
        let (_dir, t) = throttle().await;
        let a = Some("ada@example.com");
        for i in 0..5 {
            fail(&t, a, None, i).await;
        }
        let later = 15 * 60 * 1000 + 10;
        assert!(!fail(&t, a, None, later).await, "counting starts again");
        assert_eq!(
            t.prune(later).await.expect("prune"),
            0,
            "ada was just counted"
        );
        assert_eq!(t.prune(later * 3).await.expect("prune"), 1);
    }
}
