//! Operator commands on running services: `emporium search reindex` (every search
//! instance builds a new index beside the one it serves, then swaps to it) and
//! `emporium reviews rebuild` (reviews' projections made again from its event store).

use anyhow::{Context, bail};
use clap::Subcommand;
use emporium_client::RegistryClient;
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

pub async fn search(command: SearchCommand, registry: &str) -> anyhow::Result<()> {
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

pub async fn reviews(command: ReviewsCommand, registry: &str) -> anyhow::Result<()> {
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
/// acts on a shared database is the caller's choice), in turn; their answers.
async fn on_each(
    registry: &str,
    service: &str,
    path: &str,
) -> anyhow::Result<Vec<(String, Value)>> {
    let snapshot = RegistryClient::new(registry)
        .instances()
        .await
        .with_context(|| format!("asking the registry at {registry}"))?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()?;
    let mut answers = Vec::new();
    for i in snapshot
        .instances
        .iter()
        .filter(|i| i.service == service && i.healthy)
    {
        let response = http
            .post(format!("http://{}{path}", i.address))
            .send()
            .await
            .with_context(|| format!("asking {}", i.instance_id))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "{}: {status}: {}",
                i.instance_id,
                body["detail"].as_str().unwrap_or("no detail")
            );
        }
        answers.push((i.instance_id.clone(), body));
    }
    if answers.is_empty() {
        bail!("no {service} instance is running (see `emporium status`)");
    }
    Ok(answers)
}
