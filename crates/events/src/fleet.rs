//! Event delivery across every running instance: each one's status (cursors, lag,
//! dead letters) and its parked events, found through the registry and asked one
//! by one. What `emporium events` prints and the ops console shows.

use std::sync::Arc;
use std::time::Duration;

use emporium_client::{ClientError, Direct, RegistryClient, ServiceClient};
use emporium_contracts::registry::Instance;
use http::Method;

use crate::admin::{DeadLetter, DeadLetters, Replayed, Status};

/// How long one instance gets to answer.
const ASK: Duration = Duration::from_secs(5);

/// A client for `instance` alone.
fn client(instance: &Instance) -> ServiceClient {
    ServiceClient::new(
        &instance.service,
        Arc::new(Direct::new(&instance.address)),
        ASK,
    )
}

/// The healthy instances the registry lists.
pub async fn instances(registry: &RegistryClient) -> Result<Vec<Instance>, ClientError> {
    Ok(registry
        .instances()
        .await?
        .instances
        .into_iter()
        .filter(|i| i.healthy)
        .collect())
}

/// Every instance's event status; instances without events (or not answering)
/// are left out.
pub async fn statuses(instances: &[Instance]) -> Vec<(Instance, Status)> {
    let asked = instances.iter().map(|i| async move {
        let status = client(i).get_json::<Status>("/internal/status").await.ok();
        status.map(|s| (i.clone(), s))
    });
    futures::future::join_all(asked)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Every instance's parked events.
pub async fn dead_letters(instances: &[Instance]) -> Vec<(Instance, DeadLetter)> {
    let asked = instances.iter().map(|i| async move {
        let dead = client(i)
            .get_json::<DeadLetters>("/internal/events/dead")
            .await
            .map(|d| d.items)
            .unwrap_or_default();
        dead.into_iter().map(|d| (i.clone(), d)).collect::<Vec<_>>()
    });
    futures::future::join_all(asked)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// How a replay went.
#[derive(Debug)]
pub enum Replay {
    /// Applied by this instance.
    Done(Instance, Replayed),
    /// An instance has it, but its handler failed again.
    Failed(Instance, String),
    /// No running instance has it.
    Unknown,
}

/// Replays parked event `id` on whichever instance holds it.
pub async fn replay(instances: &[Instance], id: &str) -> Replay {
    for i in instances {
        let path = format!("/internal/events/dead/{id}/replay");
        match client(i).call_json::<Replayed>(Method::POST, &path).await {
            Ok(done) => return Replay::Done(i.clone(), done),
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => continue,
            Err(e) if e.status().is_some() => {
                let detail = e.problem_detail().unwrap_or("no detail").to_string();
                return Replay::Failed(i.clone(), detail);
            }
            // Not answering: another instance may hold it.
            Err(_) => continue,
        }
    }
    Replay::Unknown
}
