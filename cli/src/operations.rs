//! Operator commands on running services: `emporium search reindex` (every search
//! instance builds a new index beside the one it serves, then swaps to it) and
//! `emporium reviews rebuild` (reviews' projections made again from its event store).

use anyhow::{Context, bail};
use clap::Subcommand;
use std::sync::Arc;
use std::time::Duration;

use emporium_client::{Direct, RegistryClient, ServiceClient};
use http::Method;
use serde_json::Value;

#[derive(Subcommand)]
pub enum SearchCommand {
    /// Rebuild the index of every search instance without downtime.
    Reindex,
}

#[derive(Subcommand)]
pub enum ReviewsCommand {
    /// Rebuild the reviews and rating summaries from the event store.
    Rebuild,
}

pub async fn search(command: SearchCommand, registry: &RegistryClient) -> anyhow::Result<()> {
    let SearchCommand::Reindex = command;
    for (instance, r) in
        on_each(registry, emporium_search::NAME, "/internal/search/reindex").await?
    {
        println!(
            "{instance}: {} documents reindexed in {} ms ({} KiB)",
            r["documents"],
            r["ms"],
            r["bytes"].as_u64().unwrap_or(0) / 1024
        );
    }
    Ok(())
}

pub async fn reviews(command: ReviewsCommand, registry: &RegistryClient) -> anyhow::Result<()> {
    let ReviewsCommand::Rebuild = command;
    // The instances share one database: one rebuild is enough.
    let done = on_each(
        registry,
        emporium_reviews::NAME,
        "/internal/reviews/rebuild",
    )
    .await?;
    if let Some((instance, r)) = done.first() {
        println!(
            "{instance}: {} events replayed into the projections in {} ms",
            r["events"], r["ms"]
        );
    }
    Ok(())
}

/// POSTs `path` to every healthy instance of `service` (the first only when `path`
/// acts on a shared database is the caller's choice), in turn, as the operator;
/// their answers.
async fn on_each(
    registry: &RegistryClient,
    service: &str,
    path: &str,
) -> anyhow::Result<Vec<(String, Value)>> {
    let snapshot = registry
        .instances()
        .await
        .with_context(|| format!("asking the registry at {}", registry.base_url()))?;
    let mut answers = Vec::new();
    for i in snapshot
        .instances
        .iter()
        .filter(|i| i.service == service && i.healthy)
    {
        let direct = Direct::new(&i.address, registry.clients().clone());
        let client = ServiceClient::new(service, Arc::new(direct), Duration::from_secs(300));
        match client.call_json::<Value>(Method::POST, path).await {
            Ok(body) => answers.push((i.instance_id.clone(), body)),
            Err(e) => bail!(
                "{}: {e}: {}",
                i.instance_id,
                e.problem_detail().unwrap_or("no detail")
            ),
        }
    }
    if answers.is_empty() {
        bail!("no {service} instance is running (see `emporium status`)");
    }
    Ok(answers)
}
