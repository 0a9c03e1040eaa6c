//! The shop on its production backends, PostgreSQL and NATS JetStream (started for
//! each test), under the failures they bring: several instances of a service, the
//! broker restarting, the database restarting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::checkout::{
    APPROVE, Shopper, assert_invariants, available, body, key, message_states, set_stock, shopper,
    stocked_sku, tally, wait_for_mails,
};
use crate::{Backends, Up, http};

/// Checks out every shopper at once; returns the settled orders.
async fn check_out_all(up: &Arc<Up>, shoppers: Vec<Shopper>, timeout: Duration) -> Vec<Value> {
    let mut tasks = Vec::new();
    for s in shoppers {
        let up = up.clone();
        tasks.push(tokio::spawn(async move {
            s.check_out(&up, APPROVE, timeout).await
        }));
    }
    let mut orders = Vec::new();
    for t in tasks {
        orders.push(t.await.expect("join"));
    }
    orders
}

/// Every event of `producer` applied by `consumer` exactly once: each outbox id
/// of the types it handles is recorded once in the consumer's processed events,
/// and nothing else is.
async fn assert_applied_once(up: &Up, producer: &str, consumer: &str, types: &[&str]) {
    let outbox = up.db(producer).await;
    let mut published: Vec<String> = Vec::new();
    for kind in types {
        let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM outbox WHERE type = $1")
            .bind(*kind)
            .fetch_all(outbox.pool())
            .await
            .expect("outbox");
        published.extend(ids.into_iter().map(|(id,)| id));
    }
    published.sort();
    let db = up.db(consumer).await;
    let subscription = format!("{consumer}.{producer}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut processed: Vec<String> = sqlx::query_as::<_, (String,)>(
            "SELECT event_id FROM processed_events WHERE subscription = $1",
        )
        .bind(&subscription)
        .fetch_all(db.pool())
        .await
        .expect("processed")
        .into_iter()
        .map(|(id,)| id)
        .filter(|id| published.binary_search(id).is_ok())
        .collect();
        processed.sort();
        if processed == published {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{subscription}: {} of {} events applied",
            processed.len(),
            published.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orders_and_two_inventory_sell_exactly_the_scarce_units() {
    let Some(backends) = Backends::start("two_orders_and_two_inventory") else {
        return;
    };
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_on(
        data.path(),
        Some(backends),
        &[],
        &["--replicas", "orders=2,inventory=2"],
    );
    for instance in ["orders-1", "orders-2", "inventory-1", "inventory-2"] {
        assert!(up.pid(instance) > 0, "{instance} runs");
    }
    let admin = shopper(&up, "boss@example.com").await;
    let sku = stocked_sku(&up, 1).await;
    let mut shoppers = Vec::new();
    for i in 0..100 {
        let s = shopper(&up, &format!("scarce{i}@example.com")).await;
        assert_eq!(s.add(&up, &sku, 1).await.status(), 200);
        shoppers.push(s);
    }
    set_stock(&up, &admin, &sku, 20).await;
    let up = Arc::new(up);
    let orders = check_out_all(&up, shoppers, Duration::from_secs(120)).await;
    let outcomes = tally(&orders);
    assert_eq!(outcomes.get("CONFIRMED"), Some(&20), "{outcomes:?}");
    assert_eq!(
        outcomes.get("CANCELLED out_of_stock"),
        Some(&80),
        "{outcomes:?}"
    );
    assert_eq!(available(&up, &sku).await, 0);
    assert_eq!(assert_invariants(&up).await, (20, 80));
    // Both instances of each took part: neither was idle behind the other.
    let lines = up.lines.lock().expect("lock").clone();
    for instance in ["orders-1", "orders-2"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(instance) && l.contains("order placed")),
            "{instance} placed orders"
        );
    }
    // Every order event reached notifications and cart once, whichever instance
    // of orders published it.
    let kinds = [
        "emporium.orders.OrderConfirmed.v1",
        "emporium.orders.OrderCancelled.v1",
    ];
    assert_applied_once(&up, "orders", "notifications", &kinds).await;
    let ids: Vec<String> = orders
        .iter()
        .filter(|o| o["status"] == "CONFIRMED")
        .map(|o| o["id"].as_str().expect("id").to_string())
        .collect();
    wait_for_mails(data.path(), &ids, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarting_during_checkouts_loses_no_event() {
    let Some(backends) = Backends::start("nats_restarting_during_checkouts") else {
        return;
    };
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_on(data.path(), Some(backends), &[], &[]);
    let admin = shopper(&up, "boss@example.com").await;
    let sku = stocked_sku(&up, 2).await;
    let mut before = Vec::new();
    let mut during = Vec::new();
    for i in 0..30 {
        let s = shopper(&up, &format!("broker{i}@example.com")).await;
        assert_eq!(s.add(&up, &sku, 1).await.status(), 200);
        if i < 10 {
            before.push(s);
        } else {
            during.push(s);
        }
    }
    set_stock(&up, &admin, &sku, 100).await;
    let up = Arc::new(up);
    let mut orders = check_out_all(&up, before, Duration::from_secs(60)).await;
    // The broker goes away while checkouts go on, and comes back with its data.
    up.nats().stop();
    let checkouts = {
        let up = up.clone();
        tokio::spawn(async move { check_out_all(&up, during, Duration::from_secs(120)).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    up.nats().restart();
    orders.extend(checkouts.await.expect("join"));
    assert_eq!(
        tally(&orders).get("CONFIRMED"),
        Some(&30),
        "every saga is terminal and confirmed: {:?}",
        tally(&orders)
    );
    let ids: Vec<String> = orders
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_string())
        .collect();
    // Every email once: the relay republished what JetStream had not acknowledged,
    // and duplicates had no second effect.
    wait_for_mails(data.path(), &ids, Duration::from_secs(60)).await;
    assert_applied_once(
        &up,
        "orders",
        "notifications",
        &["emporium.orders.OrderConfirmed.v1"],
    )
    .await;
    let messages = message_states(&up).await;
    assert!(
        messages
            .iter()
            .all(|(status, attempts)| status == "sent" && *attempts == 1),
        "{messages:?}"
    );
    assert_eq!(assert_invariants(&up).await, (30, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_not_ready_while_postgres_is_down_and_recover_by_themselves() {
    let Some(backends) = Backends::start("services_while_postgres_is_down") else {
        return;
    };
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_on(data.path(), Some(backends), &[], &[]);
    let ada = shopper(&up, "ada@example.com").await;
    let sku = stocked_sku(&up, 3).await;
    assert_eq!(ada.add(&up, &sku, 1).await.status(), 200);
    let order = ada.check_out(&up, APPROVE, Duration::from_secs(30)).await;
    assert_eq!(order["status"], "CONFIRMED");
    let pids: Vec<(&str, i32)> = ["orders", "inventory", "cart"]
        .into_iter()
        .map(|s| (s, up.pid(s)))
        .collect();
    let readyz = |service: &str| format!("http://{}/readyz", up.addr(service));

    up.backends.as_ref().expect("backends").pg.stop();
    for (service, _) in &pids {
        wait_for_status(&readyz(service), 503, Duration::from_secs(20)).await;
    }
    up.backends.as_ref().expect("backends").pg.restart();
    for (service, _) in &pids {
        wait_for_status(&readyz(service), 200, Duration::from_secs(30)).await;
    }
    // The same processes: they recovered without being restarted.
    for (service, pid) in &pids {
        assert!(crate::alive(*pid), "{service} kept running");
        assert_eq!(up.pid(service), *pid);
    }
    assert!(
        !up.lines
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.contains(" died (")),
        "no service died"
    );
    // Ready again, they are back in the registry within a heartbeat or two, and
    // the gateway routes to them.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = ada.add(&up, &sku, 1).await.status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "cart still answers {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Orders too: each service is back in the gateway's view at its own heartbeat.
    loop {
        let status = http()
            .get(up.at("/api/orders"))
            .bearer_auth(&ada.token)
            .send()
            .await
            .expect("orders")
            .status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "orders still answers {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Orders' own view of inventory and payments comes back at their heartbeats;
    // until then a checkout is refused at once (503, nothing reserved).
    let deadline = Instant::now() + Duration::from_secs(15);
    let order = loop {
        let r = ada
            .checkout(&up, Some(&key()), &body(APPROVE, "Springfield"))
            .await;
        if r.status() == 202 {
            let placed: Value = r.json().await.expect("order");
            let id = placed["id"].as_str().expect("id");
            break ada.settled(&up, id, Duration::from_secs(30)).await;
        }
        assert_eq!(r.status(), 503, "refused only while a dependency is away");
        assert!(Instant::now() < deadline, "checkout still refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(assert_invariants(&up).await, (2, 0));
}

async fn wait_for_status(url: &str, want: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = match http().get(url).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} answered {got}, not {want}, in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
