//! The registry's state: instances with TTLs, config values, change indexes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use emporium_contracts::registry::{ConfigEntry, ConfigSnapshot, Instance, Registration, Snapshot};
use emporium_store::Db;
use tokio::sync::watch;

use crate::store;

/// How often expired instances are swept out.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

struct Entry {
    registration: Registration,
    registered_at_ms: u64,
    last_heartbeat: Instant,
    last_heartbeat_ms: u64,
    ready: bool,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last_heartbeat) > Duration::from_millis(self.registration.ttl_ms)
    }

    fn instance(&self) -> Instance {
        let r = &self.registration;
        Instance {
            service: r.service.clone(),
            instance_id: r.instance_id.clone(),
            address: r.address.clone(),
            version: r.version.clone(),
            metadata: r.metadata.clone(),
            healthy: self.ready,
            registered_at_ms: self.registered_at_ms,
            last_heartbeat_ms: self.last_heartbeat_ms,
        }
    }
}

#[derive(Default)]
struct Inner {
    index: u64,
    instances: HashMap<String, Entry>,
    /// The index of the last change to each service's healthy set.
    service_index: HashMap<String, u64>,
    config_index: u64,
}

impl Inner {
    fn bump(&mut self, service: &str) -> u64 {
        self.index += 1;
        self.service_index.insert(service.to_string(), self.index);
        self.index
    }
}

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    epoch: Arc<str>,
    inner: Arc<Mutex<Inner>>,
    changes: watch::Sender<u64>,
    db: Db,
    /// Config writes one at a time, so the stored value always has the highest index.
    config_writes: Arc<tokio::sync::Mutex<()>>,
}

/// The result of a heartbeat.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    Ok,
    Unknown,
}

/// Now in milliseconds since the epoch, as the registry's API reports times.
fn now_ms() -> u64 {
    emporium_store::now_ms().max(0) as u64
}

impl Registry {
    /// Loads config values and starts the sweeper.
    pub async fn start(db: Db) -> Result<Self, emporium_store::StoreError> {
        let config_index = store::max_index(&db).await?;
        let registry = Self {
            epoch: uuid::Uuid::new_v4().simple().to_string().into(),
            inner: Arc::new(Mutex::new(Inner {
                index: config_index,
                config_index,
                ..Inner::default()
            })),
            changes: watch::channel(config_index).0,
            db,
            config_writes: Arc::new(tokio::sync::Mutex::new(())),
        };
        let weak = Arc::downgrade(&registry.inner);
        let sweeper = registry.clone_without_strong();
        emporium_telemetry::identity::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                sweeper.sweep(&inner, Instant::now());
            }
        });
        Ok(registry)
    }

    /// A handle for the sweeper that does not keep the state alive.
    fn clone_without_strong(&self) -> Sweeper {
        Sweeper {
            changes: self.changes.clone(),
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters more than losing the registry; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces an instance.
    pub fn register(&self, registration: Registration) -> u64 {
        let now = Instant::now();
        let mut inner = self.lock();
        let service = registration.service.clone();
        let previous = inner.instances.get(&registration.instance_id);
        let registered_at_ms = previous.map_or_else(now_ms, |e| e.registered_at_ms);
        // An instance id that moved to another service leaves its old service too.
        let moved_from = previous
            .map(|e| e.registration.service.clone())
            .filter(|old| *old != service);
        // Listed at once if it says it is ready (or does not say); a starting
        // instance is not, until a heartbeat says it is.
        let ready = registration.ready.unwrap_or(true);
        tracing::info!(service = %service, instance = %registration.instance_id, address = %registration.address, ready, "instance registered");
        inner.instances.insert(
            registration.instance_id.clone(),
            Entry {
                registration,
                registered_at_ms,
                last_heartbeat: now,
                last_heartbeat_ms: now_ms(),
                ready,
            },
        );
        if let Some(old) = moved_from {
            inner.bump(&old);
        }
        let index = inner.bump(&service);
        drop(inner);
        self.changes.send_replace(index);
        index
    }

    /// The service an instance id is registered under, if it is.
    pub fn service_of(&self, instance_id: &str) -> Option<String> {
        self.lock()
            .instances
            .get(instance_id)
            .map(|e| e.registration.service.clone())
    }

    pub fn heartbeat(&self, instance_id: &str, ready: bool) -> Beat {
        let mut inner = self.lock();
        let Some(entry) = inner.instances.get_mut(instance_id) else {
            return Beat::Unknown;
        };
        entry.last_heartbeat = Instant::now();
        entry.last_heartbeat_ms = now_ms();
        if entry.ready != ready {
            entry.ready = ready;
            let service = entry.registration.service.clone();
            let index = inner.bump(&service);
            drop(inner);
            self.changes.send_replace(index);
        }
        Beat::Ok
    }

    pub fn deregister(&self, instance_id: &str) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.instances.remove(instance_id) else {
            return false;
        };
        tracing::info!(service = %entry.registration.service, instance = %instance_id, "instance deregistered");
        let index = inner.bump(&entry.registration.service);
        drop(inner);
        self.changes.send_replace(index);
        true
    }

    /// Every instance, healthy or not.
    pub fn all(&self) -> Snapshot {
        let inner = self.lock();
        let mut instances: Vec<Instance> = inner.instances.values().map(Entry::instance).collect();
        instances.sort_by(|a, b| (&a.service, &a.instance_id).cmp(&(&b.service, &b.instance_id)));
        Snapshot {
            epoch: self.epoch.to_string(),
            index: inner.index,
            instances,
        }
    }

    /// The healthy instances of `service`.
    pub fn healthy(&self, service: &str) -> Snapshot {
        let inner = self.lock();
        let mut instances: Vec<Instance> = inner
            .instances
            .values()
            .filter(|e| e.registration.service == service && e.ready)
            .map(Entry::instance)
            .collect();
        instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Snapshot {
            epoch: self.epoch.to_string(),
            index: inner.service_index.get(service).copied().unwrap_or(0),
            instances,
        }
    }

    /// Waits until `changed()` says so or `wait` passes. A watcher from another epoch
    /// (the registry restarted since) is answered at once.
    pub async fn wait_for<T>(
        &self,
        epoch: &str,
        wait: Duration,
        mut current: impl FnMut(&Self) -> (u64, T),
        after: u64,
    ) -> T {
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = self.changes.subscribe();
        loop {
            let (index, value) = current(self);
            if epoch != &*self.epoch || index > after {
                return value;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return value },
                _ = tokio::time::sleep_until(deadline) => return current(self).1,
            }
        }
    }

    pub async fn config_get(&self, key: &str) -> Result<Option<ConfigEntry>, sqlx::Error> {
        store::get(&self.db, key).await
    }

    pub async fn config_list(&self, prefix: &str) -> Result<ConfigSnapshot, sqlx::Error> {
        let index = self.lock().config_index;
        let entries = store::list(&self.db, prefix).await?;
        Ok(ConfigSnapshot {
            epoch: self.epoch.to_string(),
            index,
            entries,
        })
    }

    pub fn config_index(&self) -> u64 {
        self.lock().config_index
    }

    /// Writes a config value; the change index orders writes. Watchers see the new
    /// index only once the value is committed.
    pub async fn config_put(&self, key: &str, value: &str) -> Result<ConfigEntry, sqlx::Error> {
        let _write = self.config_writes.lock().await;
        let index = self.reserve_index();
        store::put(&self.db, key, value, index, now_ms()).await?;
        self.publish_config(index);
        Ok(ConfigEntry::new(key, value, index))
    }

    pub async fn config_delete(&self, key: &str) -> Result<bool, sqlx::Error> {
        let _write = self.config_writes.lock().await;
        let index = self.reserve_index();
        let removed = store::delete(&self.db, key).await?;
        if removed {
            self.publish_config(index);
        }
        Ok(removed)
    }

    /// The next change index, not yet visible to config watchers.
    fn reserve_index(&self) -> u64 {
        let mut inner = self.lock();
        inner.index += 1;
        inner.index
    }

    fn publish_config(&self, index: u64) {
        self.lock().config_index = index;
        self.changes.send_replace(index);
    }
}

struct Sweeper {
    changes: watch::Sender<u64>,
}

impl Sweeper {
    /// Drops instances whose TTL lapsed.
    fn sweep(&self, inner: &Mutex<Inner>, now: Instant) {
        let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<(String, String)> = inner
            .instances
            .iter()
            .filter(|(_, e)| e.expired(now))
            .map(|(id, e)| (id.clone(), e.registration.service.clone()))
            .collect();
        if expired.is_empty() {
            return;
        }
        let mut index = 0;
        for (id, service) in expired {
            tracing::warn!(%service, instance = %id, "instance missed its heartbeats; dropped");
            inner.instances.remove(&id);
            index = inner.bump(&service);
        }
        drop(inner);
        self.changes.send_replace(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().expect("dir");
        let db = Db::open_service("registry", dir.path(), None)
            .await
            .expect("db");
        db.migrate_all(&crate::MIGRATIONS).await.expect("migrate");
        (dir, Registry::start(db).await.expect("start"))
    }

    fn reg(service: &str, id: &str, ttl_ms: u64) -> Registration {
        Registration {
            service: service.into(),
            instance_id: id.into(),
            address: format!("127.0.0.1:{}", 1000 + id.len()),
            version: "1".into(),
            metadata: Default::default(),
            ttl_ms,
            ready: None,
        }
    }

    #[tokio::test]
    async fn register_heartbeat_and_readiness() {
        let (_d, r) = registry().await;
        r.register(reg("catalog", "c1", 10_000));
        r.register(reg("users", "u1", 10_000));
        assert_eq!(r.healthy("catalog").instances.len(), 1);
        let before = r.healthy("catalog").index;
        assert_eq!(r.heartbeat("c1", false), Beat::Ok);
        let after = r.healthy("catalog");
        assert!(after.instances.is_empty(), "not ready means not listed");
        assert!(after.index > before, "readiness flips are changes");
        assert_eq!(r.heartbeat("nope", true), Beat::Unknown);
        assert_eq!(r.all().instances.len(), 2, "all lists unhealthy ones too");
    }

    #[tokio::test]
    async fn an_instance_that_registers_unready_is_listed_only_once_ready() {
        let (_d, r) = registry().await;
        let mut starting = reg("search", "s1", 10_000);
        starting.ready = Some(false);
        r.register(starting);
        assert!(
            r.healthy("search").instances.is_empty(),
            "not before it can answer"
        );
        assert_eq!(r.all().instances.len(), 1, "known all the same");
        assert_eq!(r.heartbeat("s1", true), Beat::Ok);
        assert_eq!(r.healthy("search").instances.len(), 1);
    }

    #[tokio::test]
    async fn an_instance_moving_to_another_service_leaves_the_old_one() {
        let (_d, r) = registry().await;
        r.register(reg("catalog", "x1", 10_000));
        let before = r.healthy("catalog").index;
        r.register(reg("users", "x1", 10_000));
        let catalog = r.healthy("catalog");
        assert!(catalog.instances.is_empty());
        assert!(
            catalog.index > before,
            "watchers of the old service are woken"
        );
        assert_eq!(r.healthy("users").instances.len(), 1);
    }

    #[tokio::test]
    async fn missed_heartbeats_drop_the_instance() {
        let (_d, r) = registry().await;
        r.register(reg("catalog", "c1", 100));
        let sweeper = r.clone_without_strong();
        sweeper.sweep(&r.inner, Instant::now() + Duration::from_millis(50));
        assert_eq!(r.healthy("catalog").instances.len(), 1, "within the TTL");
        sweeper.sweep(&r.inner, Instant::now() + Duration::from_millis(200));
        assert!(r.healthy("catalog").instances.is_empty(), "past the TTL");
        assert_eq!(
            r.heartbeat("c1", true),
            Beat::Unknown,
            "it must register again"
        );
    }

    #[tokio::test]
    async fn long_poll_wakes_on_change_of_its_service_only() {
        let (_d, r) = registry().await;
        r.register(reg("catalog", "c1", 10_000));
        let index = r.healthy("catalog").index;
        let epoch = r.epoch().to_string();
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move {
                r.wait_for(
                    &epoch,
                    Duration::from_secs(5),
                    |r| {
                        let s = r.healthy("catalog");
                        (s.index, s)
                    },
                    index,
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        r.register(reg("users", "u1", 10_000));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "another service's change does not wake it"
        );
        r.register(reg("catalog", "c2", 10_000));
        let snap = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("join");
        assert_eq!(snap.instances.len(), 2);
    }

    #[tokio::test]
    async fn a_watcher_from_another_epoch_is_answered_at_once() {
        let (_d, r) = registry().await;
        let started = Instant::now();
        let snap = r
            .wait_for(
                "old-epoch",
                Duration::from_secs(5),
                |r| {
                    let s = r.healthy("catalog");
                    (s.index, s)
                },
                999,
            )
            .await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(snap.epoch, r.epoch());
    }

    #[tokio::test]
    async fn config_survives_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let db = Db::open_service("registry", dir.path(), None)
            .await
            .expect("db");
        db.migrate_all(&crate::MIGRATIONS).await.expect("migrate");
        let r = Registry::start(db.clone()).await.expect("start");
        let e = r.config_put("catalog/page_size", "40").await.expect("put");
        assert!(e.index > 0);
        let r2 = Registry::start(db).await.expect("restart");
        assert_ne!(r.epoch(), r2.epoch());
        let got = r2
            .config_get("catalog/page_size")
            .await
            .expect("get")
            .expect("present");
        assert_eq!(got.value, "40");
        assert!(r2.config_index() >= e.index, "the index never goes back");
    }
}
