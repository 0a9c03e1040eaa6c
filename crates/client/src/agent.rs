//! Keeps a running instance registered.
//!
//! Registers at start (retrying until the registry answers), heartbeats every third
//! of the TTL with the instance's readiness (and at once when an unready instance
//! becomes ready, so a slow starter is used as soon as it can be), registers again when a heartbeat finds
//! that the registry forgot the instance (it restarted), and deregisters on shutdown.

use std::time::Duration;

use emporium_contracts::registry::{Heartbeat, Registration};
use emporium_http::Readiness;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::registry::{HeartbeatOutcome, RegistryClient};

/// A running agent; [`AgentHandle::stop`] deregisters.
pub struct AgentHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    registry: RegistryClient,
    instance_id: String,
}

impl AgentHandle {
    /// Stops heartbeating and removes the instance from the registry.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        match self.registry.deregister(&self.instance_id).await {
            Ok(()) => tracing::info!("deregistered"),
            Err(error) => {
                tracing::warn!(%error, "could not deregister; the TTL will drop the instance")
            }
        }
    }
}

/// How often an instance that is not ready checks whether it has become so.
const UNREADY_CHECK: Duration = Duration::from_millis(50);

/// Starts registering `registration` with `registry`.
pub fn start(
    registry: RegistryClient,
    registration: Registration,
    readiness: Readiness,
) -> AgentHandle {
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let instance_id = registration.instance_id.clone();
    let client = registry.clone();
    let task = emporium_telemetry::identity::spawn(async move {
        let interval = Duration::from_millis((registration.ttl_ms / 3).max(100));
        let mut registered = false;
        let mut failures = 0u32;
        // What the registry was last told, and when: while unready, readiness is
        // checked here often and a heartbeat goes out as soon as it turns, so callers
        // see a ready instance at once rather than at the next heartbeat.
        let mut reported: Option<bool> = None;
        let mut sent = tokio::time::Instant::now();
        loop {
            let ready = if registered {
                Some(readiness.is_ready().await)
            } else {
                None
            };
            let due = !registered || ready != reported || sent.elapsed() >= interval;
            let step = async {
                if !due {
                    return Ok(false);
                }
                // A registration says whether the instance is ready, so a
                // starting one is never listed before it can answer.
                let register = |ready: bool| {
                    let mut registration = registration.clone();
                    registration.ready = Some(ready);
                    let client = client.clone();
                    async move { client.register(&registration).await.map(|()| true) }
                };
                match ready {
                    None => register(readiness.is_ready().await).await,
                    Some(ready) => match client
                        .heartbeat(&registration.instance_id, Heartbeat { ready })
                        .await
                    {
                        Ok(HeartbeatOutcome::Known) => Ok(true),
                        Ok(HeartbeatOutcome::Unknown) => {
                            tracing::info!("the registry forgot this instance; registering again");
                            register(ready).await
                        }
                        Err(e) => Err(e),
                    },
                }
            };
            let delay = match step.await {
                Ok(false) => UNREADY_CHECK,
                Ok(true) => {
                    if !registered || failures > 0 {
                        tracing::info!(registry = %client.base_url(), "registered");
                    }
                    registered = true;
                    failures = 0;
                    sent = tokio::time::Instant::now();
                    reported = ready;
                    if ready == Some(true) {
                        interval
                    } else {
                        UNREADY_CHECK.min(interval)
                    }
                }
                Err(error) => {
                    failures += 1;
                    reported = None;
                    if failures == 1 {
                        tracing::warn!(%error, registry = %client.base_url(), "registry unreachable; retrying");
                    }
                    // Quick retries first, so a fresh start finds a registry that is
                    // still starting; never slower than the heartbeat.
                    Duration::from_millis(50u64 << failures.min(6)).min(interval)
                }
            };
            tokio::select! {
                _ = &mut stop_rx => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    });
    AgentHandle {
        stop: Some(stop_tx),
        task,
        registry,
        instance_id,
    }
}
