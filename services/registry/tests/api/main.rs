//! The registry's API, and the client side of discovery against a real registry:
//! registration, heartbeats, TTL expiry, re-registration after a registry restart,
//! long polls, the config store, and a discovery cache that outlives the registry.

mod identity;

use std::sync::Arc;
use std::time::Duration;

use emporium_catalog::CatalogSettings;
use emporium_client::{Discovery, RegistryClient};
use emporium_contracts::registry::{Registration, Snapshot};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_testkit::{Spawned, TestEnv, client, problem};
use serde_json::json;

async fn spawn_registry(env: &TestEnv, at: Option<std::net::SocketAddr>) -> Spawned {
    let mut settings = env.settings::<RegistrySettings>(None);
    if let Some(addr) = at {
        settings.listen = addr;
    }
    env.spawn(RegistryService, settings).await
}

async fn healthy(registry: &Spawned, service: &str) -> Snapshot {
    RegistryClient::new(
        &registry.url,
        emporium_testkit::identity::operator_clients(),
    )
    .resolve(service, None, Duration::ZERO)
    .await
    .expect("resolve")
}

fn names(list: Vec<std::sync::Arc<str>>) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

/// Polls until `check` holds (5 s at most).
async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn registration(id: &str, addr: &str) -> Registration {
    Registration {
        service: "demo".into(),
        instance_id: id.into(),
        address: addr.into(),
        version: "1.0.0".into(),
        metadata: Default::default(),
        ttl_ms: 400,
        ready: None,
    }
}

#[tokio::test]
async fn register_heartbeat_expire_and_deregister() {
    let env = TestEnv::new();
    let registry = spawn_registry(&env, None).await;
    let rc = RegistryClient::new(
        &registry.url,
        emporium_testkit::identity::operator_clients(),
    );
    rc.register(&registration("demo-1", "127.0.0.1:1111"))
        .await
        .expect("register");
    rc.register(&registration("demo-2", "127.0.0.1:2222"))
        .await
        .expect("register");
    assert_eq!(healthy(&registry, "demo").await.instances.len(), 2);

    // demo-1 keeps beating and says it is not ready; demo-2 goes silent.
    for _ in 0..8 {
        rc.heartbeat(
            "demo-1",
            emporium_contracts::registry::Heartbeat { ready: false },
        )
        .await
        .expect("beat");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        healthy(&registry, "demo").await.instances.is_empty(),
        "unready and expired are not listed"
    );
    let all = rc.instances().await.expect("all");
    let ids: Vec<_> = all
        .instances
        .iter()
        .map(|i| i.instance_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["demo-1"],
        "demo-2 missed its heartbeats and was dropped"
    );
    assert!(!all.instances[0].healthy);

    rc.deregister("demo-1").await.expect("deregister");
    assert!(rc.instances().await.expect("all").instances.is_empty());
}

#[tokio::test]
async fn bad_registrations_are_422() {
    let env = TestEnv::new();
    let registry = spawn_registry(&env, None).await;
    let url = registry.at("/internal/registry/instances/x-1");
    let bad = json!({"service": "bad name!", "instance_id": "x-2", "address": "nowhere", "version": "1", "ttl_ms": 5});
    let p = problem(
        client().put(&url).json(&bad).send().await.expect("send"),
        422,
    )
    .await;
    let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["instance_id", "service", "address", "ttl_ms"]);
    let beat = client()
        .put(registry.at("/internal/registry/instances/ghost/heartbeat"))
        .json(&json!({"ready": true}))
        .send()
        .await
        .expect("send");
    problem(beat, 404).await;
}

#[tokio::test]
async fn long_poll_returns_on_change() {
    let env = TestEnv::new();
    let registry = spawn_registry(&env, None).await;
    let rc = RegistryClient::new(
        &registry.url,
        emporium_testkit::identity::operator_clients(),
    );
    let first = healthy(&registry, "demo").await;
    let watcher = {
        let rc = rc.clone();
        let epoch = first.epoch.clone();
        tokio::spawn(async move {
            rc.resolve("demo", Some((&epoch, first.index)), Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!watcher.is_finished(), "nothing changed yet");
    rc.register(&registration("demo-1", "127.0.0.1:1111"))
        .await
        .expect("register");
    let snap = tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .expect("woken")
        .expect("join")
        .expect("ok");
    assert_eq!(snap.instances.len(), 1);
}

#[tokio::test]
async fn a_long_poll_ends_before_the_request_deadline() {
    let env = TestEnv::new();
    let mut settings = env.settings::<RegistrySettings>(None);
    settings.common.http.request_timeout_ms = 1_000;
    let registry = env.spawn(RegistryService, settings).await;
    let rc = RegistryClient::new(
        &registry.url,
        emporium_testkit::identity::operator_clients(),
    );
    let first = healthy(&registry, "demo").await;
    let started = std::time::Instant::now();
    let snap = rc
        .resolve(
            "demo",
            Some((&first.epoch, first.index)),
            Duration::from_secs(5),
        )
        .await
        .expect("an unchanged answer, not a 504");
    assert_eq!(snap.index, first.index);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn config_values_persist_and_can_be_watched() {
    let env = TestEnv::new();
    let registry = spawn_registry(&env, None).await;
    let rc = RegistryClient::new(
        &registry.url,
        emporium_testkit::identity::operator_clients(),
    );
    let before = rc
        .config_list("catalog/", None, Duration::ZERO)
        .await
        .expect("list");
    let watcher = {
        let rc = rc.clone();
        let epoch = before.epoch.clone();
        tokio::spawn(async move {
            rc.config_list(
                "catalog/",
                Some((&epoch, before.index)),
                Duration::from_secs(10),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    rc.config_put("catalog/page_size", "40").await.expect("put");
    let seen = tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .expect("woken")
        .expect("join")
        .expect("ok");
    assert_eq!(seen.entries.len(), 1);
    assert_eq!(seen.entries[0].value, "40");
    let addr = registry.addr;
    registry.stop().await.expect("stop");
    let again = spawn_registry(&env, Some(addr)).await;
    let rc = RegistryClient::new(&again.url, emporium_testkit::identity::operator_clients());
    assert_eq!(
        rc.config_get("catalog/page_size")
            .await
            .expect("get")
            .map(|e| e.value),
        Some("40".into())
    );
    assert_eq!(rc.config_get("catalog/missing").await.expect("get"), None);
    let bad = client()
        .put(again.at("/internal/registry/config/bad key"))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .expect("send");
    assert!(bad.status().is_client_error());
}

#[tokio::test]
async fn services_register_reregister_after_a_registry_restart_and_deregister_on_shutdown() {
    let env = TestEnv::new();
    let registry = spawn_registry(&env, None).await;
    let catalog = env
        .spawn(
            emporium_catalog::Catalog,
            env.settings::<CatalogSettings>(Some(&registry)),
        )
        .await;
    let catalog_addr = catalog.addr.to_string();
    eventually("catalog registered", async || {
        healthy(&registry, "catalog")
            .await
            .instances
            .iter()
            .any(|i| i.address == catalog_addr)
    })
    .await;

    // Discovery through the registry, then the registry dies: the cache keeps working.
    let discovery = Arc::new(Discovery::new(Some(RegistryClient::new(
        &registry.url,
        emporium_testkit::identity::operator_clients(),
    ))));
    assert_eq!(
        names(discovery.candidates("catalog").await.expect("resolve")),
        vec![catalog_addr.clone()]
    );
    let registry_addr = registry.addr;
    registry.crash();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        names(discovery.candidates("catalog").await.expect("from cache")),
        vec![catalog_addr.clone()]
    );

    // A new registry on the same address knows nothing; catalog's heartbeat finds out
    // and registers again.
    let registry = spawn_registry(&env, Some(registry_addr)).await;
    eventually("catalog registered again", async || {
        healthy(&registry, "catalog")
            .await
            .instances
            .iter()
            .any(|i| i.address == catalog_addr)
    })
    .await;
    assert_eq!(
        names(
            discovery
                .candidates("catalog")
                .await
                .expect("still resolves")
        ),
        vec![catalog_addr.clone()]
    );

    catalog.stop().await.expect("clean stop");
    assert!(
        healthy(&registry, "catalog").await.instances.is_empty(),
        "deregistered on shutdown"
    );
}
