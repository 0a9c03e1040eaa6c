//! Live settings and fault injection, through the registry's config store:
//! `emporium config get|set|delete|list|watch` and `emporium chaos
//! delay|abort|reset|list|clear`. Every process watches the store and applies
//! what it holds (see `emporium_runtime::live`). `emporium chaos kill|pause`
//! signal the processes themselves (their PIDs from the registry), on this
//! machine only.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use emporium_client::RegistryClient;
use emporium_client::faults::now_ms;
use emporium_contracts::chaos::{FAULTS_PREFIX, Fault, FaultRule};
use emporium_runtime::live;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print a key's value.
    Get { key: String },
    /// Set a key every process applies at once: `log.level`,
    /// `client.<target|default>.<field>` (e.g. `client.payments.retries 0`).
    Set { key: String, value: String },
    /// Delete a key: the file's or the default value applies again.
    Delete { key: String },
    /// Every key (under a prefix) with its value.
    List { prefix: Option<String> },
    /// Print each change (under a prefix) as it happens, until Ctrl-C.
    Watch { prefix: Option<String> },
}

#[derive(Subcommand)]
pub enum ChaosCommand {
    /// Delay a share of the calls to a service.
    Delay {
        #[command(flatten)]
        scope: Scope,
        /// How long each affected call waits before it is sent.
        #[arg(long)]
        ms: u64,
        /// Up to this much more, at random.
        #[arg(long, default_value_t = 0)]
        jitter_ms: u64,
    },
    /// Answer a share of the calls to a service with an error status at once.
    Abort {
        #[command(flatten)]
        scope: Scope,
        #[arg(long, default_value_t = 503)]
        status: u16,
    },
    /// Fail a share of the calls to a service as if the connection was reset.
    Reset {
        #[command(flatten)]
        scope: Scope,
    },
    /// SIGKILL a service's process, as a crash would (`emporium up` restarts it):
    /// once, or one every `--every` for `--for` (until Ctrl-C without it).
    Kill {
        /// A service, or `random`: any but the registry, each time.
        service: String,
        #[arg(long, value_parser = parse_duration)]
        every: Option<Duration>,
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<Duration>,
    },
    /// SIGSTOP a service's processes, then SIGCONT: hung for a while, not dead.
    Pause {
        service: String,
        #[arg(long = "for", value_parser = parse_duration, default_value = "5s")]
        duration: Duration,
    },
    /// The fault rules in force, with the time each has left.
    List,
    /// Remove one rule, or every rule.
    Clear { id: Option<String> },
}

/// Which calls a rule applies to, and for how long.
#[derive(clap::Args)]
pub struct Scope {
    /// The called service.
    #[arg(long)]
    to: String,
    /// Only calls from this service (default: from any).
    #[arg(long)]
    from: Option<String>,
    /// The share of the calls, in percent.
    #[arg(long, default_value_t = 100.0)]
    percent: f64,
    /// How long the rule lasts (`30s`, `2m`, `1h`): every rule expires.
    #[arg(long = "for", value_parser = parse_duration, default_value = "60s")]
    duration: Duration,
}

/// `500ms`, `30s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}`: give a unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a number and a unit, like 30s"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("`{unit}`: the unit is ms, s, m or h")),
    };
    if ms == 0 {
        return Err("a duration of zero".into());
    }
    Ok(Duration::from_millis(ms))
}

pub async fn config(command: ConfigCommand, registry: &RegistryClient) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Get { key } => match registry.config_get(&key).await? {
            Some(entry) => println!("{}", entry.value),
            None => bail!("{key} is not set"),
        },
        ConfigCommand::Set { key, value } => {
            emporium_gateway::share::check(&key, &value)
                .unwrap_or_else(|| {
                    live::check(&key, &value).map_err(|e| {
                        format!("{e}, or {}<field>", emporium_gateway::share::LIVE_PREFIX)
                    })
                })
                .map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
            registry.config_put(&key, &value).await?;
            println!("{key} = {value}");
        }
        ConfigCommand::Delete { key } => {
            if !registry.config_delete(&key).await? {
                bail!("{key} is not set");
            }
            println!("{key} deleted");
        }
        ConfigCommand::List { prefix } => {
            let snapshot = registry
                .config_list(prefix.as_deref().unwrap_or(""), None, Duration::ZERO)
                .await?;
            for e in snapshot.entries {
                println!("{} = {}", e.key, e.value);
            }
        }
        ConfigCommand::Watch { prefix } => {
            let prefix = prefix.unwrap_or_default();
            let mut seen = std::collections::BTreeMap::new();
            let mut after: Option<(String, u64)> = None;
            loop {
                let snapshot = registry
                    .config_list(
                        &prefix,
                        after.as_ref().map(|(e, i)| (e.as_str(), *i)),
                        Duration::from_secs(20),
                    )
                    .await
                    .context("watching the config store")?;
                let now: std::collections::BTreeMap<String, String> = snapshot
                    .entries
                    .into_iter()
                    .map(|e| (e.key, e.value))
                    .collect();
                for (key, value) in &now {
                    if seen.get(key) != Some(value) {
                        println!("{key} = {value}");
                    }
                }
                for key in seen.keys().filter(|k| !now.contains_key(*k)) {
                    println!("{key} deleted");
                }
                seen = now;
                after = Some((snapshot.epoch, snapshot.index));
            }
        }
    }
    Ok(())
}

pub async fn chaos(command: ChaosCommand, registry: &RegistryClient) -> anyhow::Result<()> {
    let (scope, fault) = match command {
        ChaosCommand::Delay {
            scope,
            ms,
            jitter_ms,
        } => (scope, Fault::Delay { ms, jitter_ms }),
        ChaosCommand::Abort { scope, status } => (scope, Fault::Abort { status }),
        ChaosCommand::Reset { scope } => (scope, Fault::Reset),
        ChaosCommand::Kill {
            service,
            every,
            duration,
        } => return kill(registry, &service, every, duration).await,
        ChaosCommand::Pause { service, duration } => {
            return pause(registry, &service, duration).await;
        }
        ChaosCommand::List => return list(registry).await,
        ChaosCommand::Clear { id } => return clear(registry, id).await,
    };
    let rule = FaultRule {
        from: scope.from,
        to: scope.to,
        fault,
        percent: scope.percent,
        expires_at_ms: now_ms() + scope.duration.as_millis() as i64,
    };
    if let Some(problem) = rule.problem() {
        bail!("{problem}");
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    registry
        .config_put(
            &format!("{FAULTS_PREFIX}{id}"),
            &serde_json::to_string(&rule)?,
        )
        .await?;
    println!("{id}  {}", describe(&rule));
    Ok(())
}

async fn rules(registry: &RegistryClient) -> anyhow::Result<Vec<(String, FaultRule)>> {
    let snapshot = registry
        .config_list(FAULTS_PREFIX, None, Duration::ZERO)
        .await?;
    Ok(snapshot
        .entries
        .into_iter()
        .filter_map(|e| {
            let id = e.key.strip_prefix(FAULTS_PREFIX)?.to_string();
            Some((id, serde_json::from_str(&e.value).ok()?))
        })
        .collect())
}

async fn list(registry: &RegistryClient) -> anyhow::Result<()> {
    let now = now_ms();
    let rules = rules(registry).await?;
    if rules.iter().all(|(_, r)| r.expires_at_ms <= now) {
        println!("no fault rules in force");
    }
    for (id, rule) in rules.iter().filter(|(_, r)| r.expires_at_ms > now) {
        let left = (rule.expires_at_ms - now) / 1_000;
        println!("{id}  {}  ({left} s left)", describe(rule));
    }
    Ok(())
}

async fn clear(registry: &RegistryClient, id: Option<String>) -> anyhow::Result<()> {
    let ids: Vec<String> = match id {
        Some(id) => vec![id],
        None => rules(registry)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    };
    for id in &ids {
        if !registry
            .config_delete(&format!("{FAULTS_PREFIX}{id}"))
            .await?
        {
            bail!("no fault rule {id}");
        }
    }
    println!("{} fault rule(s) removed", ids.len());
    Ok(())
}

/// The processes on this machine hosting `service` (or, for `random`, any
/// service but the registry): service, pid. A process hosting several services
/// is listed once.
async fn processes(registry: &RegistryClient, service: &str) -> anyhow::Result<Vec<(String, i32)>> {
    let snapshot = registry.instances().await?;
    let mut found: Vec<(String, i32)> = Vec::new();
    for i in snapshot.instances {
        let wanted = match service {
            "random" => i.service != "registry",
            name => i.service == name,
        };
        let Some(pid) = i.metadata.get("pid").and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // Only Emporium's own processes, on this machine.
        let ours = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "emporium");
        if wanted && ours && !found.iter().any(|(_, p)| *p == pid) {
            found.push((i.service, pid));
        }
    }
    Ok(found)
}

/// SIGKILLs one process of `service` (or of any but the registry, for
/// `random`); what it did.
pub async fn kill_once(registry: &RegistryClient, service: &str) -> anyhow::Result<String> {
    use nix::sys::signal::{Signal, kill};
    let candidates = processes(registry, service).await?;
    if candidates.is_empty() {
        bail!("no process of {service} runs on this machine");
    }
    let (name, pid) = &candidates[fastrand::usize(..candidates.len())];
    kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL)
        .with_context(|| format!("killing {name} (pid {pid})"))?;
    Ok(format!("killed {name} (pid {pid})"))
}

async fn kill(
    registry: &RegistryClient,
    service: &str,
    every: Option<Duration>,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let until = duration.map(|d| std::time::Instant::now() + d);
    let mut kills = 0;
    loop {
        println!("{}", kill_once(registry, service).await?);
        kills += 1;
        let Some(every) = every else { return Ok(()) };
        if until.is_some_and(|u| std::time::Instant::now() + every > u) {
            println!("{kills} kill(s)");
            return Ok(());
        }
        tokio::time::sleep(every).await;
    }
}

async fn pause(registry: &RegistryClient, service: &str, duration: Duration) -> anyhow::Result<()> {
    use nix::sys::signal::{Signal, kill};
    let frozen = processes(registry, service).await?;
    if frozen.is_empty() {
        bail!("no process of {service} runs on this machine");
    }
    for (name, pid) in &frozen {
        kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGSTOP)
            .with_context(|| format!("stopping {name} (pid {pid})"))?;
        println!("paused {name} (pid {pid})");
    }
    // Ctrl-C ends the pause early: never leave a process stopped behind.
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = tokio::signal::ctrl_c() => println!("interrupted"),
    }
    for (name, pid) in &frozen {
        let _ = kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGCONT);
        println!("resumed {name} (pid {pid})");
    }
    Ok(())
}

fn describe(rule: &FaultRule) -> String {
    let what = match &rule.fault {
        Fault::Delay { ms, jitter_ms: 0 } => format!("delay {ms} ms"),
        Fault::Delay { ms, jitter_ms } => format!("delay {ms}-{} ms", ms + jitter_ms),
        Fault::Abort { status } => format!("abort with {status}"),
        Fault::Reset => "reset".to_string(),
    };
    let from = rule.from.as_deref().unwrap_or("any service");
    format!(
        "{what}: {}% of calls from {from} to {}",
        rule.percent, rule.to
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
