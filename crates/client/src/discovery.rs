//! Resolving service names to instances, with a local cache that survives the
//! registry going away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use emporium_config::CallPolicy;
use emporium_contracts::registry::Snapshot;

use crate::error::ClientError;
use crate::registry::RegistryClient;
use crate::resilience::outlier::{self, Change, Failure, Health, Standing};

/// How long one long poll waits for a change.
const WATCH_WAIT: Duration = Duration::from_secs(20);
/// After the registry restarted, how long the instances known before are still used:
/// the new registry learns of every instance within one heartbeat interval.
const AMNESIA_GRACE: Duration = Duration::from_secs(15);

/// Resolves service names to the addresses of their healthy instances.
///
/// The first lookup of a service asks the registry and starts a background long-poll
/// that keeps the cached list fresh; later lookups never wait on the registry, so a
/// registry outage only freezes the list.
///
/// Each call's first choice is the less busy of two instances picked at random
/// (power of two choices on calls in flight), so a slow or hung instance, whose
/// calls pile up, soon gets none; the others follow in rotation, then those that
/// refused a connection a moment ago, then the ejected ones
/// ([`outlier`](crate::resilience::outlier)), as a last resort.
pub struct Discovery {
    registry: Option<RegistryClient>,
    fixed: HashMap<String, Vec<Arc<str>>>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    /// Where the watches run: the runtime that made this cache (the process's),
    /// not whichever runtime a first lookup happens on (a serving thread of its
    /// own, see `emporium_http::server::serve_threaded`, whose runtime ends first).
    runtime: Option<tokio::runtime::Handle>,
}

#[derive(Default)]
struct Entry {
    state: RwLock<EntryState>,
    cursor: AtomicUsize,
    /// What the balancer knows of each instance, by address.
    health: RwLock<HashMap<Arc<str>, Arc<Health>>>,
    /// Held while deciding an ejection, so two cannot both take the last share.
    ejecting: Mutex<()>,
    /// Woken whenever the registry's list changes.
    changed: tokio::sync::Notify,
}

/// One instance a call may go to.
#[derive(Clone)]
pub struct Route {
    pub address: Arc<str>,
    pub health: Arc<Health>,
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

impl Entry {
    /// The health record of `address`, made on first sight.
    fn health_of(&self, address: &Arc<str>) -> Arc<Health> {
        if let Some(h) = self
            .health
            .read()
            .ok()
            .and_then(|h| h.get(address).cloned())
        {
            return h;
        }
        match self.health.write() {
            Ok(mut health) => health.entry(address.clone()).or_default().clone(),
            Err(_) => Arc::new(Health::default()),
        }
    }

    /// Takes the registry's new list, forgets the health of instances no longer
    /// on it, and wakes the callers waiting for an instance.
    fn update(&self, snapshot: Snapshot) {
        if let Ok(mut state) = self.state.write() {
            state.apply(snapshot);
        }
        self.prune();
        self.changed.notify_waiters();
    }

    /// Forgets the health of instances no longer listed.
    fn prune(&self) {
        let current = self.state.read().map(|s| s.current()).unwrap_or_default();
        if let Ok(mut health) = self.health.write() {
            health.retain(|address, _| current.contains(address));
        }
    }
}

impl Discovery {
    /// Discovery through `registry`; `None` resolves only fixed addresses.
    pub fn new(registry: Option<RegistryClient>) -> Self {
        Self {
            registry,
            fixed: HashMap::new(),
            entries: RwLock::new(HashMap::new()),
            runtime: tokio::runtime::Handle::try_current().ok(),
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
        Ok(self
            .routes(service)
            .await?
            .into_iter()
            .map(|r| r.address)
            .collect())
    }

    /// The instances to try for one call, in order: the first by power of two
    /// choices among those in good standing, then the others in rotation, then
    /// those that refused a connection lately, then the ejected.
    pub async fn routes(self: &Arc<Self>, service: &str) -> Result<Vec<Route>, ClientError> {
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
        let now = Instant::now();
        let mut routes: Vec<(Standing, Route)> = addresses[start..]
            .iter()
            .chain(&addresses[..start])
            .map(|address| {
                let health = entry.health_of(address);
                (
                    health.standing(now),
                    Route {
                        address: address.clone(),
                        health,
                    },
                )
            })
            .collect();
        // Stable: rotation order within each standing.
        routes.sort_by_key(|(standing, _)| *standing);
        let good = routes
            .iter()
            .take_while(|(s, _)| *s == Standing::Available)
            .count();
        if good >= 2 {
            let a = fastrand::usize(..good);
            let b = (a + 1 + fastrand::usize(..good - 1)) % good;
            let pick = if routes[b].1.health.in_flight() < routes[a].1.health.in_flight() {
                b
            } else {
                a
            };
            routes[..=pick].rotate_right(1);
        }
        Ok(routes.into_iter().map(|(_, r)| r).collect())
    }

    /// Returns once `service` has an instance listed, or after `at_most`: at
    /// once if it has one, as soon as the registry lists one if not. For a
    /// caller that found none and would retry after `at_most` anyway (an
    /// event reader whose producer is still starting): it retries the moment
    /// there is somewhere to go. Without a registry to ask, it waits `at_most`.
    pub async fn until_listed(self: &Arc<Self>, service: &str, at_most: Duration) {
        let deadline = tokio::time::Instant::now() + at_most;
        if self.fixed.get(service).is_some_and(|a| !a.is_empty()) {
            return;
        }
        let Ok(entry) = self.entry(service).await else {
            tokio::time::sleep_until(deadline).await;
            return;
        };
        loop {
            let changed = entry.changed.notified();
            tokio::pin!(changed);
            // Registered before the list is read, so a change in between wakes it.
            changed.as_mut().enable();
            let listed = entry.state.read().is_ok_and(|s| !s.current().is_empty());
            if listed || tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// Records how a call to `route` went: a failure counts towards its ejection
    /// under `policy`, an answer ends the streak. Returns the change in its
    /// standing, if any.
    pub fn record(
        &self,
        service: &str,
        route: &Route,
        failure: Option<Failure>,
        policy: &CallPolicy,
    ) -> Option<Change> {
        let Some(failure) = failure else {
            return route.health.succeeded();
        };
        let entry = self
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(service).cloned())?;
        // Held until the ejection is recorded, so two cannot both take the last share.
        let _deciding = entry.ejecting.lock().ok()?;
        route.health.failed(failure, policy, || {
            let instances = match self.fixed.get(service) {
                Some(fixed) => fixed.len(),
                None => entry.state.read().map(|s| s.current().len()).unwrap_or(0),
            };
            // The others out: this one may be out already, awaiting its probe.
            let out = entry
                .health
                .read()
                .map(|h| {
                    h.values()
                        .filter(|h| !Arc::ptr_eq(h, &route.health) && h.out())
                        .count()
                })
                .unwrap_or(0);
            outlier::may_eject(instances, out, policy.eject_max_percent)
        })
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
        let watching = watch(
            Arc::downgrade(self),
            registry,
            service.to_string(),
            epoch,
            index,
        );
        match &self.runtime {
            Some(runtime) => runtime.spawn(watching),
            None => tokio::spawn(watching),
        };
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
                if let Some(entry) = entry {
                    tracing::debug!(%service, instances = snapshot.instances.len(), "instances changed");
                    entry.update(snapshot);
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

    fn three() -> Arc<Discovery> {
        Arc::new(
            Discovery::new(None)
                .with_fixed("catalog", vec!["a:1".into(), "b:1".into(), "c:1".into()]),
        )
    }

    async fn route_to(d: &Arc<Discovery>, address: &str) -> Route {
        d.routes("catalog")
            .await
            .expect("routes")
            .into_iter()
            .find(|r| &*r.address == address)
            .expect("listed")
    }

    #[tokio::test]
    async fn spreads_calls_and_avoids_the_busy_instance() {
        let d = three();
        let mut firsts = HashMap::<String, usize>::new();
        for _ in 0..300 {
            let routes = d.routes("catalog").await.expect("routes");
            assert_eq!(routes.len(), 3, "every instance stays a fallback");
            *firsts.entry(routes[0].address.to_string()).or_default() += 1;
        }
        assert!(
            firsts.values().all(|n| *n > 50),
            "idle instances share calls: {firsts:?}"
        );

        // "a" has calls piling up (hung): with two choices it is picked first only
        // when both picks are... never, as one of the two is always idle.
        let a = route_to(&d, "a:1").await;
        let _stuck: Vec<_> = (0..5).map(|_| a.health.start()).collect();
        for _ in 0..100 {
            let routes = d.routes("catalog").await.expect("routes");
            assert_ne!(
                &*routes[0].address, "a:1",
                "the busy instance is not chosen first"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_probe_ejects_again() {
        let d =
            Arc::new(Discovery::new(None).with_fixed("catalog", vec!["a:1".into(), "b:1".into()]));
        let policy = CallPolicy {
            eject_after: 1,
            eject_base_ms: 50,
            ..CallPolicy::default()
        };
        let b = route_to(&d, "b:1").await;
        assert!(matches!(
            d.record("catalog", &b, Some(Failure::Failed), &policy),
            Some(Change::Ejected(_))
        ));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            matches!(
                d.record("catalog", &b, Some(Failure::Failed), &policy),
                Some(Change::Ejected(_))
            ),
            "its failed probe ejects it again: it does not count against its own share"
        );
    }

    #[tokio::test]
    async fn refused_and_ejected_instances_go_last() {
        let d = three();
        let policy = CallPolicy {
            eject_after: 2,
            eject_max_percent: 50,
            ..CallPolicy::default()
        };
        let a = route_to(&d, "a:1").await;
        assert_eq!(
            d.record("catalog", &a, Some(Failure::Refused), &policy),
            None
        );
        for _ in 0..10 {
            let c = d.candidates("catalog").await.expect("candidates");
            assert_eq!(c.len(), 3, "a refusing instance is still tried, last");
            assert_eq!(&*c[2], "a:1");
        }
        let b = route_to(&d, "b:1").await;
        d.record("catalog", &b, Some(Failure::Failed), &policy);
        assert!(matches!(
            d.record("catalog", &b, Some(Failure::Failed), &policy),
            Some(Change::Ejected(_))
        ));
        let c = d.candidates("catalog").await.expect("candidates");
        assert_eq!(
            names(c),
            ["c:1", "a:1", "b:1"],
            "good, then refused, then ejected"
        );
        assert_eq!(
            d.record("catalog", &a, Some(Failure::Failed), &policy),
            None,
            "a second ejection would pass 50% of three"
        );
    }

    #[tokio::test]
    async fn a_caller_waiting_for_an_instance_goes_the_moment_one_is_listed() {
        let d = Arc::new(Discovery::new(None));
        let entry = d.entry_for_fixed("catalog");
        let waiting = {
            let d = d.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                d.until_listed("catalog", Duration::from_secs(30)).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A change without an instance: still waiting.
        entry.update(snapshot("e1", 0, &[]));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        entry.update(snapshot("e1", 1, &["c:1"]));
        let waited = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("went before the 30 s were up")
            .expect("joined");
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        // Listed already: at once; never listed, with nobody to ask: the whole wait.
        let started = Instant::now();
        d.until_listed("catalog", Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        d.until_listed("orders", Duration::from_millis(300)).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
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
