//! Live configuration: every process watches the registry's config store and
//! applies what it holds without a restart.
//!
//! | key | what |
//! |---|---|
//! | `log.level` | the log filter (`info`, `info,emporium_orders=debug`) |
//! | `client.<table>.<field>` | a call policy value (`client.payments.retries`), over `[client.<table>]` |
//! | `faults/<id>` | a fault rule (JSON, [`emporium_contracts::chaos::FaultRule`]) |
//! | a service's own keys | what it registered with [`Live::on_change`] (the gateway's `gateway.rate_limit.<field>`) |
//!
//! A value that does not parse is logged and ignored; the key's file or default
//! value applies, as it does once the key is deleted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use emporium_client::{Faults, Policies, RegistryClient};
use emporium_config::{ClientSettings, Common};
use emporium_contracts::chaos::{FAULTS_PREFIX, FaultRule};
use emporium_contracts::registry::ConfigEntry;
use serde_json::Value;

/// The key of the log filter.
pub const LOG_LEVEL: &str = "log.level";
/// The prefix of call policy values.
pub const CLIENT_PREFIX: &str = "client.";

/// How long one watch of the config store waits for a change.
const WATCH_WAIT: Duration = Duration::from_secs(20);

/// What one process applies from the config store.
pub struct Live {
    faults: Arc<Faults>,
    /// Each hosted service's call policies, with its settings from the file.
    callers: Mutex<Vec<(Arc<Policies>, ClientSettings)>>,
    /// The log filter from the file, restored when `log.level` is deleted.
    file_log_level: String,
    /// The log filter applied last.
    log_level: Mutex<Option<String>>,
    watching: std::sync::atomic::AtomicBool,
    /// What services apply themselves (their own keys), with the entries
    /// applied last (for a hook added later): one lock, so a hook added while
    /// the store changes sees the change.
    hooks: Mutex<Hooks>,
}

#[derive(Default)]
struct Hooks {
    last: Vec<ConfigEntry>,
    hooks: Vec<Hook>,
}

type Hook = Box<dyn Fn(&[ConfigEntry]) + Send + Sync>;

impl Live {
    pub fn new(common: &Common) -> Arc<Self> {
        // What logging started with: `RUST_LOG` wins over the file there too.
        let started = std::env::var("RUST_LOG").unwrap_or_else(|_| common.log.level.clone());
        Arc::new(Self {
            faults: Arc::new(Faults::default()),
            callers: Mutex::new(Vec::new()),
            file_log_level: started.clone(),
            log_level: Mutex::new(Some(started)),
            watching: std::sync::atomic::AtomicBool::new(false),
            hooks: Mutex::new(Hooks::default()),
        })
    }

    /// Calls `hook` with the whole store now and after every change: a service
    /// applying keys of its own (the gateway's `gateway.rate_limit.*`). Hooks
    /// are called one at a time, under a lock: a hook must not add another.
    pub fn on_change(&self, hook: impl Fn(&[ConfigEntry]) + Send + Sync + 'static) {
        if let Ok(mut hooks) = self.hooks.lock() {
            hook(&hooks.last);
            hooks.hooks.push(Box::new(hook));
        }
    }

    /// The call policies of `caller`, kept up to date from now on.
    pub fn policies(&self, caller: &str, settings: &ClientSettings) -> Arc<Policies> {
        let policies = Arc::new(Policies::new(caller, settings.clone(), self.faults.clone()));
        if let Ok(mut callers) = self.callers.lock() {
            callers.push((policies.clone(), settings.clone()));
        }
        policies
    }

    /// Starts watching the config store through `registry`, once per process;
    /// the watch ends when the process's services are gone.
    pub fn watch(self: &Arc<Self>, registry: RegistryClient) {
        if self
            .watching
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        tokio::spawn(watch(Arc::downgrade(self), registry));
    }

    /// Applies the whole store as it stands.
    pub fn apply(&self, entries: &[ConfigEntry]) {
        let now = emporium_client::faults::now_ms();
        let rules: Vec<FaultRule> = entries
            .iter()
            .filter(|e| e.key.starts_with(FAULTS_PREFIX))
            .filter_map(|e| match serde_json::from_str::<FaultRule>(&e.value) {
                Ok(rule) if rule.problem().is_none() => Some(rule),
                Ok(rule) => {
                    tracing::warn!(key = %e.key, problem = rule.problem().unwrap_or_default(), "fault rule ignored");
                    None
                }
                Err(error) => {
                    tracing::warn!(key = %e.key, %error, "fault rule ignored: not a rule");
                    None
                }
            })
            .filter(|r| r.expires_at_ms > now)
            .collect();
        if *self.faults.rules() != rules {
            tracing::info!(rules = rules.len(), "fault rules changed");
            self.faults.set(rules);
        }

        if let Ok(mut hooks) = self.hooks.lock() {
            hooks.last = entries.to_vec();
            for hook in &hooks.hooks {
                hook(entries);
            }
        }

        let live = client_settings(entries);
        if let Ok(callers) = self.callers.lock() {
            for (policies, file) in callers.iter() {
                policies.reconfigure(file.with(&live));
            }
        }

        let level = entries
            .iter()
            .find(|e| e.key == LOG_LEVEL)
            .map_or_else(|| self.file_log_level.clone(), |e| e.value.clone());
        if let Ok(mut applied) = self.log_level.lock()
            && applied.as_deref() != Some(level.as_str())
        {
            match emporium_telemetry::set_log_level(&level) {
                Ok(()) => {
                    tracing::info!(%level, "log level changed");
                    *applied = Some(level);
                }
                Err(error) => tracing::warn!(%level, %error, "log.level ignored"),
            }
        }
    }
}

/// Whether `value` is one the processes would apply for `key`: the check
/// `emporium config set` makes before writing.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    if key == LOG_LEVEL {
        return emporium_telemetry::valid_log_level(value);
    }
    if key.starts_with(FAULTS_PREFIX) {
        let rule: FaultRule = serde_json::from_str(value).map_err(|e| e.to_string())?;
        return rule.problem().map_or(Ok(()), Err);
    }
    if let Some(rest) = key.strip_prefix(CLIENT_PREFIX) {
        let (_, field) = rest
            .split_once('.')
            .ok_or("expected client.<target or default>.<field>")?;
        let value = serde_json::from_str(value).unwrap_or(Value::String(value.to_string()));
        let table = serde_json::Map::from_iter([(field.to_string(), value)]);
        return serde_json::from_value::<emporium_config::CallPolicyOverrides>(Value::Object(
            table,
        ))
        .map(|_| ())
        .map_err(|e| e.to_string());
    }
    Err(format!(
        "no process applies {key}: expected {LOG_LEVEL}, {CLIENT_PREFIX}<target>.<field> or {FAULTS_PREFIX}<id>"
    ))
}

/// The `client.<table>.<field>` entries as settings tables; a table with a value
/// that does not fit is left out whole, with a warning.
pub fn client_settings(entries: &[ConfigEntry]) -> ClientSettings {
    let mut tables: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for e in entries {
        let Some(rest) = e.key.strip_prefix(CLIENT_PREFIX) else {
            continue;
        };
        let Some((table, field)) = rest.split_once('.') else {
            tracing::warn!(key = %e.key, "ignored: expected client.<table>.<field>");
            continue;
        };
        let value = serde_json::from_str(&e.value).unwrap_or(Value::String(e.value.clone()));
        tables
            .entry(table.to_string())
            .or_default()
            .insert(field.to_string(), value);
    }
    let mut settings = BTreeMap::new();
    for (table, values) in tables {
        match serde_json::from_value(Value::Object(values)) {
            Ok(overrides) => {
                settings.insert(table, overrides);
            }
            Err(error) => tracing::warn!(%table, %error, "live client settings ignored"),
        }
    }
    ClientSettings(settings)
}

async fn watch(live: Weak<Live>, registry: RegistryClient) {
    let mut after: Option<(String, u64)> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let result = registry
            .config_list(
                "",
                after
                    .as_ref()
                    .map(|(epoch, index)| (epoch.as_str(), *index)),
                WATCH_WAIT,
            )
            .await;
        let Some(live) = live.upgrade() else { return };
        match result {
            Ok(snapshot) => {
                backoff = Duration::from_millis(250);
                let seen = Some((snapshot.epoch.clone(), snapshot.index));
                if seen != after {
                    live.apply(&snapshot.entries);
                    after = seen;
                }
            }
            Err(error) => {
                drop(live);
                tracing::debug!(%error, "config watch failed; keeping the last settings");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
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
    fn client_values_become_tables_and_a_bad_table_is_left_out() {
        let settings = client_settings(&[
            entry("client.payments.retries", "0"),
            entry("client.payments.max_concurrent", "8"),
            entry("client.default.attempt_timeout_ms", "500"),
            entry("client.cart.retriez", "1"),
            entry("log.level", "debug"),
        ]);
        let payments = settings.policy("payments");
        assert_eq!((payments.retries, payments.max_concurrent), (0, 8));
        assert_eq!(
            payments.attempt_timeout_ms, 500,
            "default table applies too"
        );
        assert!(!settings.0.contains_key("cart"), "misspelt: ignored");
    }

    #[test]
    fn values_are_checked_before_they_are_written() {
        assert!(check("client.payments.retries", "1").is_ok());
        assert!(check("client.payments.retries", "many").is_err());
        assert!(check("client.payments.retriez", "1").is_err());
        assert!(check("client.retries", "1").is_err());
        assert!(check("log.level", "info,emporium_orders=debug").is_ok());
        assert!(check("log.level", "info,,=[").is_err());
        assert!(check("colour", "blue").is_err());
    }

    #[test]
    fn fault_rules_in_force_are_applied_and_bad_or_expired_ones_ignored() {
        let live = Live::new(&Common::default());
        let far = emporium_client::faults::now_ms() + 60_000;
        let rule = |to: &str, expires: i64| {
            format!(
                r#"{{"to":"{to}","fault":{{"kind":"abort","status":503}},"percent":100.0,"expires_at_ms":{expires}}}"#
            )
        };
        live.apply(&[
            entry("faults/a", &rule("payments", far)),
            entry("faults/b", &rule("cart", 1)),
            entry("faults/c", "{not json"),
        ]);
        let rules = live.faults.rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].to, "payments");
        live.apply(&[]);
        assert!(live.faults.rules().is_empty(), "deleted: gone");
    }
}
