//! `emporium search reindex`: every running search instance builds a new index
//! beside the one it serves, then swaps to it (searches go on meanwhile).

use anyhow::{Context, bail};
use clap::Subcommand;
use emporium_client::RegistryClient;
use emporium_search::Reindexed;

#[derive(Subcommand)]
pub enum SearchCommand {
    /// Rebuild the index of every search instance without downtime.
    Reindex,
}

pub async fn run(command: SearchCommand, registry: &str) -> anyhow::Result<()> {
    let SearchCommand::Reindex = command;
    let snapshot = RegistryClient::new(registry)
        .instances()
        .await
        .with_context(|| format!("asking the registry at {registry}"))?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()?;
    let mut done = 0;
    for i in snapshot
        .instances
        .iter()
        .filter(|i| i.service == emporium_search::NAME && i.healthy)
    {
        let url = format!("http://{}/internal/search/reindex", i.address);
        let response = http
            .post(&url)
            .send()
            .await
            .with_context(|| format!("asking {} to reindex", i.instance_id))?;
        let status = response.status();
        if !status.is_success() {
            let problem: serde_json::Value = response.json().await.unwrap_or_default();
            bail!(
                "{}: reindex failed ({status}): {}",
                i.instance_id,
                problem["detail"].as_str().unwrap_or("no detail")
            );
        }
        let r: Reindexed = response.json().await?;
        println!(
            "{}: {} documents reindexed in {} ms ({} KiB)",
            i.instance_id,
            r.documents,
            r.ms,
            r.bytes / 1024
        );
        done += 1;
    }
    if done == 0 {
        bail!("no search instance is running (see `emporium status`)");
    }
    Ok(())
}
