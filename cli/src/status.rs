//! `emporium status`: what the registry knows.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// The registry to ask: `registry`, or the one a running `emporium up` recorded.
pub fn registry_url(registry: Option<String>, data_dir: Option<PathBuf>) -> anyhow::Result<String> {
    Ok(match registry {
        Some(url) => url,
        None => {
            let dir = crate::running::data_dir(data_dir);
            let file = dir.join("run").join("registry.url");
            std::fs::read_to_string(&file)
                .with_context(|| {
                    format!(
                        "no registry URL given and none recorded in {} (is `emporium up` running?)",
                        file.display()
                    )
                })?
                .trim()
                .to_string()
        }
    })
}

pub async fn run(registry: Option<String>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let registry = crate::operator::registry(registry, data_dir)?;
    let url = registry.base_url();
    let snapshot = registry
        .instances()
        .await
        .with_context(|| format!("asking the registry at {url}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    println!(
        "registry {url} (epoch {}, index {})\n",
        snapshot.epoch, snapshot.index
    );
    // Wide enough for the longest name and id (`orders-monolith-1`).
    let width = |f: fn(&emporium_contracts::registry::Instance) -> usize, min: usize| {
        snapshot.instances.iter().map(f).max().unwrap_or(0).max(min)
    };
    let (sw, iw) = (
        width(|i| i.service.len(), 10),
        width(|i| i.instance_id.len(), 18),
    );
    println!(
        "  {:<sw$} {:<iw$} {:<22} {:<8} {:<8} {:>10} {:>10}",
        "SERVICE", "INSTANCE", "ADDRESS", "VERSION", "HEALTH", "UPTIME", "HEARTBEAT"
    );
    for i in &snapshot.instances {
        println!(
            "  {:<sw$} {:<iw$} {:<22} {:<8} {:<8} {:>10} {:>10}",
            i.service,
            i.instance_id,
            i.address,
            i.version,
            if i.healthy { "healthy" } else { "unready" },
            duration(now.saturating_sub(i.registered_at_ms)),
            format!("{} ago", duration(now.saturating_sub(i.last_heartbeat_ms))),
        );
    }
    if snapshot.instances.is_empty() {
        println!("  (no instances registered)");
    }
    Ok(())
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
