//! Operator commands on running services: `emporium search reindex` (every search
//! instance builds a new index beside the one it serves, then swaps to it),
//! `emporium reviews rebuild` (reviews' projections made again from its event
//! store), `emporium admin grant|revoke|list` (the admin role, by email) and
//! `emporium keys rotate|list` (users' token signing keys).

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

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Make the account with this email an admin (now, or once it registers).
    Grant { email: String },
    /// Take the admin role away (from the account's next access token on).
    Revoke { email: String },
    /// The emails granted the admin role.
    List,
    /// Mark an account's email address confirmed (you checked it another way).
    Verify { email: String },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Sign access tokens with a new key from now on; the old one verifies the
    /// tokens it signed until they expire, then is withdrawn.
    Rotate,
    /// The published signing keys.
    List,
}

pub async fn admin(command: AdminCommand, registry: &RegistryClient) -> anyhow::Result<()> {
    let segment = emporium_client::path_segment;
    let (method, path) = match &command {
        AdminCommand::Grant { email } => (
            Method::PUT,
            format!("/internal/users/admins/{}", segment(email)),
        ),
        AdminCommand::Revoke { email } => (
            Method::DELETE,
            format!("/internal/users/admins/{}", segment(email)),
        ),
        AdminCommand::List => (Method::GET, "/internal/users/admins".to_string()),
        AdminCommand::Verify { email } => (
            Method::PUT,
            format!("/internal/users/verified/{}", segment(email)),
        ),
    };
    let (_, answer) = on_one(registry, emporium_users::NAME, method, &path).await?;
    match command {
        AdminCommand::Grant { .. } if answer["account"] == true => {
            println!(
                "{} is an admin from its next sign-in",
                answer["email"].as_str().unwrap_or_default()
            );
        }
        AdminCommand::Grant { .. } => println!(
            "{} will be an admin once it registers",
            answer["email"].as_str().unwrap_or_default()
        ),
        AdminCommand::Revoke { email } => println!(
            "{email} is no longer an admin (access tokens already issued keep the role until they expire)"
        ),
        AdminCommand::Verify { email } => {
            println!("{email} is confirmed: checkouts work from its next access token");
        }
        AdminCommand::List => {
            for g in answer.as_array().into_iter().flatten() {
                let waiting = if g["account"] == true {
                    ""
                } else {
                    "  (not registered yet)"
                };
                println!(
                    "{}  granted {}{waiting}",
                    g["email"].as_str().unwrap_or_default(),
                    g["granted_at"].as_str().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// Marks `email`'s address confirmed, as the operator.
pub async fn vouch(registry: &RegistryClient, email: &str) -> anyhow::Result<()> {
    let path = format!(
        "/internal/users/verified/{}",
        emporium_client::path_segment(email)
    );
    on_one(registry, emporium_users::NAME, Method::PUT, &path).await?;
    Ok(())
}

pub async fn keys(command: KeysCommand, registry: &RegistryClient) -> anyhow::Result<()> {
    let method = match command {
        KeysCommand::Rotate => Method::POST,
        KeysCommand::List => Method::GET,
    };
    let (_, answer) = on_one(
        registry,
        emporium_users::NAME,
        method,
        "/internal/users/keys",
    )
    .await?;
    for k in answer.as_array().into_iter().flatten() {
        let state = match (k["withdrawn_at"].as_str(), k["activates_at"].as_str()) {
            _ if k["signing"] == true => "signing".to_string(),
            (Some(at), _) => format!("retired, published until {at}"),
            (None, Some(at)) => format!("published, signs from {at}"),
            (None, None) => "published".to_string(),
        };
        println!(
            "{}  created {}  {state}",
            k["kid"].as_str().unwrap_or_default(),
            k["created_at"].as_str().unwrap_or_default()
        );
    }
    Ok(())
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

/// Sends `method path` to one healthy instance of `service` (the instances share
/// one database), as the operator; its id and answer.
pub(crate) async fn on_one(
    registry: &RegistryClient,
    service: &str,
    method: Method,
    path: &str,
) -> anyhow::Result<(String, Value)> {
    let mut answers = ask(registry, service, method, path, 1).await?;
    Ok(answers.remove(0))
}

/// POSTs `path` to every healthy instance of `service`, in turn, as the operator;
/// their answers.
async fn on_each(
    registry: &RegistryClient,
    service: &str,
    path: &str,
) -> anyhow::Result<Vec<(String, Value)>> {
    ask(registry, service, Method::POST, path, usize::MAX).await
}

/// Sends `method path` to at most `limit` healthy instances of `service`, in
/// turn, as the operator; their answers (at least one, else an error).
async fn ask(
    registry: &RegistryClient,
    service: &str,
    method: Method,
    path: &str,
    limit: usize,
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
        .take(limit)
    {
        let direct = Direct::new(&i.address, registry.clients().clone());
        let client = ServiceClient::new(service, Arc::new(direct), Duration::from_secs(300));
        match client.call_json::<Value>(method.clone(), path).await {
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
