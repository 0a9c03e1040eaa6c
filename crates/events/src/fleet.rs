//! Event delivery across every running instance: each one's status (cursors, lag,
//! dead letters) and its parked events, found through the registry and asked one
//! by one, as the principal of the `Clients` given (the operator, the storefront).
//! What `emporium events` prints and the ops console shows.

use std::sync::Arc;
use std::time::Duration;

use emporium_client::{ClientError, Clients, Direct, RegistryClient, ServiceClient, path_segment};
use emporium_contracts::registry::Instance;
use http::{Method, StatusCode};

use crate::admin::{DeadLetter, DeadLetters, Replayed, Status};

/// How long one instance gets to answer.
const ASK: Duration = Duration::from_secs(5);

/// A client for `instance` alone, calling as `clients`' principal.
fn client(clients: &Clients, instance: &Instance) -> ServiceClient {
    ServiceClient::new(
        &instance.service,
        Arc::new(Direct::new(&instance.address, clients.clone())),
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

/// What every instance answered, and which could not be asked (so "none" is not
/// mistaken for "no answer").
#[derive(Debug)]
pub struct Asked<T> {
    pub answers: Vec<(Instance, T)>,
    pub unreachable: Vec<Instance>,
}

/// Asks every instance for `path`. An instance without events answers 404 and is
/// left out; one that does not answer is listed as unreachable.
async fn ask<T: serde::de::DeserializeOwned>(
    clients: &Clients,
    instances: &[Instance],
    path: &str,
) -> Asked<T> {
    let asked = instances.iter().map(|i| async move {
        match client(clients, i).get_json::<T>(path).await {
            Ok(answer) => (i, Some(Ok(answer))),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => (i, None),
            Err(e) => (i, Some(Err(e))),
        }
    });
    let mut out = Asked {
        answers: Vec::new(),
        unreachable: Vec::new(),
    };
    for (i, answer) in futures::future::join_all(asked).await {
        match answer {
            Some(Ok(a)) => out.answers.push((i.clone(), a)),
            Some(Err(_)) => out.unreachable.push(i.clone()),
            None => {}
        }
    }
    out
}

/// Every instance's event status.
pub async fn statuses(clients: &Clients, instances: &[Instance]) -> Asked<Status> {
    ask(clients, instances, "/internal/status").await
}

/// Every instance's parked events.
pub async fn dead_letters(clients: &Clients, instances: &[Instance]) -> Asked<DeadLetter> {
    let asked: Asked<DeadLetters> = ask(clients, instances, "/internal/events/dead").await;
    Asked {
        answers: asked
            .answers
            .into_iter()
            .flat_map(|(i, d)| d.items.into_iter().map(move |d| (i.clone(), d)))
            .collect(),
        unreachable: asked.unreachable,
    }
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
pub async fn replay(clients: &Clients, instances: &[Instance], id: &str) -> Replay {
    let path = format!("/internal/events/dead/{}/replay", path_segment(id));
    for i in instances {
        match client(clients, i)
            .call_json::<Replayed>(Method::POST, &path)
            .await
        {
            Ok(done) => return Replay::Done(i.clone(), done),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => continue,
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
