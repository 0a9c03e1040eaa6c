//! `emporium events`: dead letters and consumer lag, across every running instance.
//!
//! - `emporium events dead` lists the events parked after their handler kept failing;
//! - `emporium events replay ID` runs the handler of one parked event again (it
//!   leaves the dead letters when it succeeds);
//! - `emporium events lag` shows each subscription's cursor, the producer's head, the
//!   lag between them, and any events the producer pruned before it read them.

use anyhow::{Context, bail};
use clap::Subcommand;
use emporium_client::RegistryClient;
use emporium_contracts::registry::Instance;
use emporium_events::{DeadLetters, Status};

#[derive(Subcommand)]
pub enum EventsCommand {
    /// List parked (dead-letter) events.
    Dead,
    /// Retry one parked event by id.
    Replay { id: String },
    /// Show consumer lag per subscription.
    Lag,
}

pub async fn run(command: EventsCommand, registry: &str) -> anyhow::Result<()> {
    let snapshot = RegistryClient::new(registry)
        .instances()
        .await
        .with_context(|| format!("asking the registry at {registry}"))?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let instances: Vec<&Instance> = snapshot.instances.iter().filter(|i| i.healthy).collect();
    match command {
        EventsCommand::Dead => {
            println!(
                "  {:<14} {:<36} {:<42} {:>8}  {:<24} ERROR",
                "SERVICE", "EVENT ID", "TYPE", "ATTEMPTS", "PARKED AT"
            );
            let mut total = 0;
            for i in &instances {
                let Some(dead) = get::<DeadLetters>(&http, i, "/internal/events/dead").await else {
                    continue;
                };
                for d in dead.items {
                    total += 1;
                    println!(
                        "  {:<14} {:<36} {:<42} {:>8}  {:<24} {}",
                        i.service, d.event_id, d.kind, d.attempts, d.parked_at, d.error
                    );
                }
            }
            if total == 0 {
                println!("  (no dead letters)");
            }
        }
        EventsCommand::Replay { id } => {
            for i in &instances {
                let url = format!("http://{}/internal/events/dead/{id}/replay", i.address);
                let Ok(response) = http.post(&url).send().await else {
                    continue;
                };
                match response.status().as_u16() {
                    200 => {
                        println!("{id}: replayed by {} ({})", i.service, i.instance_id);
                        return Ok(());
                    }
                    404 => continue,
                    status => {
                        let problem: serde_json::Value = response.json().await.unwrap_or_default();
                        bail!(
                            "{id}: {} answered {status}: {}",
                            i.service,
                            problem["detail"].as_str().unwrap_or("no detail")
                        );
                    }
                }
            }
            bail!("{id}: no running service has this dead letter (see `emporium events dead`)");
        }
        EventsCommand::Lag => {
            println!(
                "  {:<14} {:<28} {:>8} {:>8} {:>6} {:>6} {:>7}  CONNECTED",
                "SERVICE", "SUBSCRIPTION", "CURSOR", "HEAD", "LAG", "DEAD", "MISSED"
            );
            let mut missed = Vec::new();
            for i in &instances {
                let Some(status) = get::<Status>(&http, i, "/internal/status").await else {
                    continue;
                };
                for s in status.subscriptions {
                    println!(
                        "  {:<14} {:<28} {:>8} {:>8} {:>6} {:>6} {:>7}  {}",
                        i.service,
                        s.name,
                        s.cursor,
                        s.head,
                        s.lag,
                        s.dead_letters,
                        s.missed,
                        s.connected
                    );
                    if s.missed > 0 {
                        missed.push(format!("{} ({} events)", s.name, s.missed));
                    }
                }
            }
            if !missed.is_empty() {
                println!(
                    "\n  MISSED: the producer pruned events these consumers had not read \
                     (raise events.retention_ms): {}",
                    missed.join(", ")
                );
            }
        }
    }
    Ok(())
}

async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    i: &Instance,
    path: &str,
) -> Option<T> {
    let response = http
        .get(format!("http://{}{path}", i.address))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}
