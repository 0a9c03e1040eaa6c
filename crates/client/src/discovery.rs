//! Resolving service names to instances, with a local cache that survives the
//! registry going away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use emporium_contracts::registry::Snapshot;

use crate::error::ClientError;
use crate::registry::RegistryClient;

/// How long one long poll waits for a change.
const WATCH_WAIT: Duration = Duration::from_secs(20);
/// How long an instance that refused a connection is tried last.
const EJECT_FOR: Duration = Duration::from_secs(5);
/// After the registry restarted, how long the instances known before are still used:
/// the new registry learns of every instance within one heartbeat interval.
const AMNESIA_GRACE: Duration = Duration::from_secs(15);

/// Resolves service names to the addresses of their healthy instances.
///
/// The first lookup of a service asks the registry and starts a background long-poll
/// that keeps the cached list fresh; later lookups never wait on the registry, so a
/// registry outage only freezes the list. Each lookup rotates the starting instance
/// (round-robin); instances that refused a connection recently go last.
pub struct Discovery {
    registry: Option<RegistryClient>,
    fixed: HashMap<String, Vec<Arc<str>>>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

#[derive(Default)]
struct Entry {
    state: RwLock<EntryState>,
    cursor: AtomicUsize,
    ejected: Mutex<HashMap<String, Instant>>,
}

#[derive(Default)]
struct EntryState {
    epoch: String,
    index: u64,
    addresses: Vec<Arc<str>>,
    /// Addresses known before the registry restarted, and until when to keep them.
    carried: Vec<Arc<str>>,
    carried_until: Option<Instant>,
}

impl EntryState {
    fn apply(&mut self, snapshot: Snapshot) {
        let addresses: Vec<Arc<str>> = snapshot
            .instances
            .into_iter()
            .map(|i| Arc::from(i.address))
            .collect();
        if !self.epoch.is_empty() && self.epoch != snapshot.epoch {
            self.carried = std::mem::take(&mut self.addresses);
            self.carried_until = Some(Instant::now() + AMNESIA_GRACE);
        }
        self.epoch = snapshot.epoch;
        self.index = snapshot.index;
        self.addresses = addresses;
    }

    fn current(&self) -> Vec<Arc<str>> {
        let mut all = self.addresses.clone();
        if self
            .carried_until
            .is_some_and(|until| Instant::now() < until)
        {
            for a in &self.carried {
                if !all.contains(a) {
                    all.push(a.clone());
                }
            }
        }
        all
    }
}

impl Discovery {
    /// Discovery through `registry`; `None` resolves only fixed addresses.
    pub fn new(registry: Option<RegistryClient>) -> Self {
        Self {
            registry,
            fixed: HashMap::new(),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// Pins `service` to fixed addresses, bypassing the registry.
    pub fn with_fixed(mut self, service: &str, addresses: Vec<String>) -> Self {
        self.fixed.insert(
            service.to_string(),
            addresses.into_iter().map(Arc::from).collect(),
        );
        self
    }

    pub fn registry(&self) -> Option<&RegistryClient> {
        self.registry.as_ref()
    }

    /// The addresses to try for one call, in order.
    pub async fn candidates(self: &Arc<Self>, service: &str) -> Result<Vec<Arc<str>>, ClientError> {
        let (entry, addresses) = match self.fixed.get(service) {
            Some(fixed) => (self.entry_for_fixed(service), fixed.clone()),
            None => {
                let entry = self.entry(service).await?;
                let addresses = entry.state.read().map(|s| s.current()).unwrap_or_default();
                (entry, addresses)
            }
        };
        if addresses.is_empty() {
            return Err(ClientError::NoInstances(service.to_string()));
        }
        let start = entry.cursor.fetch_add(1, Ordering::Relaxed) % addresses.len();
        let mut rotated: Vec<Arc<str>> = addresses[start..]
            .iter()
            .chain(&addresses[..start])
            .cloned()
            .collect();
        if let Ok(mut ejected) = entry.ejected.lock() {
            let now = Instant::now();
            ejected.retain(|_, until| *until > now);
            if !ejected.is_empty() {
                // Stable partition: healthy first, recently failed last.
                rotated.sort_by_key(|a| ejected.contains_key(&**a));
            }
        }
        Ok(rotated)
    }

    /// Records that `address` refused a connection: it goes last for a while.
    pub fn report_failure(&self, service: &str, address: &str) {
        let entry = self
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(service).cloned());
        if let Some(entry) = entry
            && let Ok(mut ejected) = entry.ejected.lock()
        {
            ejected.insert(address.to_string(), Instant::now() + EJECT_FOR);
        }
    }

    fn entry_for_fixed(&self, service: &str) -> Arc<Entry> {
        if let Some(e) = self
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(service).cloned())
        {
            return e;
        }
        match self.entries.write() {
            Ok(mut entries) => entries.entry(service.to_string()).or_default().clone(),
            Err(_) => Arc::new(Entry::default()),
        }
    }

    async fn entry(self: &Arc<Self>, service: &str) -> Result<Arc<Entry>, ClientError> {
        if let Some(e) = self
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(service).cloned())
        {
            return Ok(e);
        }
        let Some(registry) = self.registry.clone() else {
            return Err(ClientError::NoInstances(service.to_string()));
        };
        let snapshot = registry.resolve(service, None, Duration::ZERO).await?;
        let mut entries = self
            .entries
            .write()
            .map_err(|_| ClientError::NoInstances(service.to_string()))?;
        if let Some(e) = entries.get(service) {
            return Ok(e.clone());
        }
        let entry = Arc::new(Entry::default());
        let (epoch, index) = (snapshot.epoch.clone(), snapshot.index);
        if let Ok(mut state) = entry.state.write() {
            state.apply(snapshot);
        }
        entries.insert(service.to_string(), entry.clone());
        tokio::spawn(watch(
            Arc::downgrade(self),
            registry,
            service.to_string(),
            epoch,
            index,
        ));
        Ok(entry)
    }
}

/// Keeps one service's entry fresh until the `Discovery` is dropped.
async fn watch(
    discovery: Weak<Discovery>,
    registry: RegistryClient,
    service: String,
    mut epoch: String,
    mut index: u64,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let result = registry
            .resolve(&service, Some((&epoch, index)), WATCH_WAIT)
            .await;
        let Some(discovery) = discovery.upgrade() else {
            return;
        };
        match result {
            Ok(snapshot) => {
                backoff = Duration::from_millis(250);
                if snapshot.epoch == epoch && snapshot.index == index {
                    continue;
                }
                epoch = snapshot.epoch.clone();
                index = snapshot.index;
                let entry = discovery
                    .entries
                    .read()
                    .ok()
                    .and_then(|e| e.get(&service).cloned());
                if let Some(entry) = entry
                    && let Ok(mut state) = entry.state.write()
                {
                    tracing::debug!(%service, instances = snapshot.instances.len(), "instances changed");
                    state.apply(snapshot);
                }
            }
            Err(error) => {
                drop(discovery);
                tracing::debug!(%service, %error, "registry watch failed; serving from cache");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emporium_contracts::registry::Instance;

    fn snapshot(epoch: &str, index: u64, addrs: &[&str]) -> Snapshot {
        Snapshot {
            epoch: epoch.into(),
            index,
            instances: addrs
                .iter()
                .map(|a| Instance {
                    service: "catalog".into(),
                    instance_id: a.to_string(),
                    address: a.to_string(),
                    version: "0".into(),
                    metadata: Default::default(),
                    healthy: true,
                    registered_at_ms: 0,
                    last_heartbeat_ms: 0,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn round_robin_and_ejection() {
        let d = Arc::new(
            Discovery::new(None)
                .with_fixed("catalog", vec!["a:1".into(), "b:1".into(), "c:1".into()]),
        );
        let firsts: Vec<String> =
            futures::future::join_all((0..6).map(|_| d.candidates("catalog")))
                .await
                .into_iter()
                .map(|c| c.expect("candidates")[0].to_string())
                .collect();
        assert_eq!(firsts, ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1"]);
        d.report_failure("catalog", "a:1");
        for _ in 0..3 {
            let c = d.candidates("catalog").await.expect("candidates");
            assert_eq!(c.len(), 3, "a failed instance is still tried, last");
            assert_eq!(&*c[2], "a:1");
        }
    }

    #[tokio::test]
    async fn unknown_service_without_registry_has_no_instances() {
        let d = Arc::new(Discovery::new(None));
        assert!(matches!(
            d.candidates("nope").await,
            Err(ClientError::NoInstances(_))
        ));
    }

    fn names(list: Vec<Arc<str>>) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn a_restarted_registry_does_not_empty_the_cache() {
        let mut s = EntryState::default();
        s.apply(snapshot("e1", 5, &["a:1", "b:1"]));
        assert_eq!(names(s.current()), ["a:1", "b:1"]);
        s.apply(snapshot("e2", 1, &[]));
        assert_eq!(
            names(s.current()),
            ["a:1", "b:1"],
            "amnesia grace keeps the old view"
        );
        s.apply(snapshot("e2", 2, &["b:1"]));
        assert_eq!(names(s.current()), ["b:1", "a:1"]);
        s.carried_until = Some(Instant::now());
        assert_eq!(
            names(s.current()),
            ["b:1"],
            "after the grace only the new view counts"
        );
    }
}
