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
use emporium_events::fleet::{self, Replay};

#[derive(Subcommand)]
pub enum EventsCommand {
    /// List parked (dead-letter) events.
    Dead,
    /// Retry one parked event by id.
    Replay { id: String },
    /// Show consumer lag per subscription.
    Lag,
}

pub async fn run(command: EventsCommand, registry: &RegistryClient) -> anyhow::Result<()> {
    let instances = fleet::instances(registry)
        .await
        .with_context(|| format!("asking the registry at {}", registry.base_url()))?;
    let clients = registry.clients();
    match command {
        EventsCommand::Dead => {
            println!(
                "  {:<14} {:<36} {:<42} {:>8}  {:<24} ERROR",
                "SERVICE", "EVENT ID", "TYPE", "ATTEMPTS", "PARKED AT"
            );
            let dead = fleet::dead_letters(clients, &instances).await;
            for (i, d) in &dead.answers {
                println!(
                    "  {:<14} {:<36} {:<42} {:>8}  {:<24} {}",
                    i.service, d.event_id, d.kind, d.attempts, d.parked_at, d.error
                );
            }
            if dead.answers.is_empty() {
                println!("  (no dead letters)");
            }
            unreachable(&dead.unreachable);
        }
        EventsCommand::Replay { id } => match fleet::replay(clients, &instances, &id).await {
            Replay::Done(i, _) => println!("{id}: replayed by {} ({})", i.service, i.instance_id),
            Replay::Failed(i, detail) => bail!("{id}: {} answered: {detail}", i.service),
            Replay::Unknown => {
                bail!("{id}: no running service has this dead letter (see `emporium events dead`)")
            }
        },
        EventsCommand::Lag => {
            println!(
                "  {:<14} {:<28} {:>8} {:>8} {:>6} {:>6} {:>7}  CONNECTED",
                "SERVICE", "SUBSCRIPTION", "CURSOR", "HEAD", "LAG", "DEAD", "MISSED"
            );
            let mut missed = Vec::new();
            let statuses = fleet::statuses(clients, &instances).await;
            for (i, status) in &statuses.answers {
                for s in &status.subscriptions {
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
            unreachable(&statuses.unreachable);
        }
    }
    Ok(())
}

/// Says which instances could not be asked, so their silence is not read as "none".
fn unreachable(instances: &[emporium_contracts::registry::Instance]) {
    if !instances.is_empty() {
        let names: Vec<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
        println!("\n  NOT ASKED (did not answer): {}", names.join(", "));
    }
}
