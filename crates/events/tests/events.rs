//! The events chassis end to end in one process: a producer's outbox served as a
//! feed, a consumer applying it through a real transport stack (in-process router),
//! redelivery, retries, dead letters and replay.

use std::sync::Arc;
use std::time::Duration;

use emporium_client::Host;
use emporium_client::LocalTransport;
use emporium_config::Common;
use emporium_contracts::events::{EventData, OrderConfirmed, PriceChanged, ProductCreated};
use emporium_events::{
    DeadLetters, Events, FeedPage, Handler, Outbox, Received, RunningEvents, SnapshotItem,
    SnapshotPage, Status, retention,
};
use emporium_store::{Db, Tx};
use futures::future::BoxFuture;
use tower::ServiceExt;

fn product(n: u32) -> ProductCreated {
    ProductCreated {
        product_id: format!("p-{n}"),
        sku: format!("SKU-{n}"),
        name: format!("Product {n}"),
        category: "tools".into(),
        price: 100 + i64::from(n),
        currency: "USD".into(),
        description: String::new(),
        image_url: String::new(),
        attributes: Default::default(),
        created_ms: 0,
        version: 1,
    }
}

/// Records each product once per delivery; fails while the SKU is listed in `failing`.
fn record<'a>(
    tx: &'a mut Tx,
    event: Received<ProductCreated>,
) -> BoxFuture<'a, anyhow::Result<()>> {
    Box::pin(async move {
        let (failing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM failing WHERE sku = $1")
            .bind(&event.data.sku)
            .fetch_one(&mut **tx)
            .await?;
        anyhow::ensure!(failing == 0, "{} is marked failing", event.data.sku);
        sqlx::query("INSERT INTO effects (event_id, sku) VALUES ($1, $2)")
            .bind(&event.id)
            .bind(&event.data.sku)
            .execute(&mut **tx)
            .await?;
        Ok(())
    })
}

struct World {
    _dir: tempfile::TempDir,
    producer_db: Db,
    outbox: Outbox,
    consumer_db: Db,
    consumer_host: Host,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn world() -> (World, RunningEvents) {
    world_with(|_| {}).await
}

/// A world whose settings `tune` changes first.
async fn world_with(tune: impl FnOnce(&mut Common)) -> (World, RunningEvents) {
    emporium_telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut common = Common {
        registry_url: None,
        data_dir: dir.path().to_path_buf(),
        ..Common::default()
    };
    common.events.retry_base_ms = 10;
    common.events.retry_max_ms = 20;
    common.events.max_attempts = 3;
    common.events.feed_wait_ms = 1_000;
    tune(&mut common);
    let producer_host = Host::new("catalog", &common, emporium_client::Clients::plain());
    let producer_db = Db::open_service("catalog", &dir.path().join("catalog"), None)
        .await
        .expect("producer db");
    // One producer: what it publishes through its outbox wakes its own feed. Its
    // state is the products it announced; its snapshot serves them.
    sqlx::query("CREATE TABLE products (n BIGINT PRIMARY KEY)")
        .execute(producer_db.pool())
        .await
        .expect("ddl");
    let producer = Events::open(&producer_host, &producer_db)
        .await
        .expect("open")
        .snapshot(snapshot);
    let outbox = producer.outbox();
    let running_producer = producer.start();
    // Every request the consumer makes of the producer, by path and query.
    let requests: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = requests.clone();
    let logged = running_producer.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            seen.lock()
                .expect("requests")
                .push(request.uri().to_string());
            next.run(request)
        },
    ));
    let transport = LocalTransport::new().with("catalog", logged);
    let consumer_host = Host::new("inventory", &common, emporium_client::Clients::plain())
        .with_transport(Arc::new(transport));
    let consumer_db = Db::open_service("inventory", &dir.path().join("inventory"), None)
        .await
        .expect("consumer db");
    for ddl in [
        "CREATE TABLE effects (event_id TEXT NOT NULL, sku TEXT NOT NULL)",
        "CREATE TABLE failing (sku TEXT PRIMARY KEY)",
    ] {
        sqlx::query(ddl)
            .execute(consumer_db.pool())
            .await
            .expect("ddl");
    }
    (
        World {
            _dir: dir,
            producer_db,
            outbox,
            consumer_db,
            consumer_host,
            requests,
        },
        running_producer,
    )
}

/// The producer's snapshot: every product it holds, as `ProductCreated`.
fn snapshot<'a>(
    db: &'a Db,
    after: &'a str,
    limit: u32,
) -> BoxFuture<'a, anyhow::Result<Vec<SnapshotItem>>> {
    Box::pin(async move {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT n FROM products ORDER BY n")
            .fetch_all(db.pool())
            .await?;
        rows.into_iter()
            .map(|(n,)| (format!("p-{n:06}"), n))
            .filter(|(key, _)| key.as_str() > after)
            .take(limit as usize)
            .map(|(key, n)| Ok(SnapshotItem::of(key, &product(n as u32))?))
            .collect()
    })
}

impl World {
    async fn publish(&self, n: u32) {
        let outbox = &self.outbox;
        let mut tx = self.producer_db.begin().await.expect("begin");
        sqlx::query("INSERT INTO products (n) VALUES ($1)")
            .bind(i64::from(n))
            .execute(&mut *tx)
            .await
            .expect("state");
        outbox.publish(&mut tx, &product(n)).await.expect("publish");
        outbox.commit(tx).await.expect("commit");
    }

    async fn consumer(&self) -> RunningEvents {
        Events::open(&self.consumer_host, &self.consumer_db)
            .await
            .expect("open")
            .on::<ProductCreated>(record)
            .start()
    }

    async fn effects(&self) -> Vec<String> {
        sqlx::query_as::<_, (String,)>("SELECT sku FROM effects ORDER BY rowid")
            .fetch_all(self.consumer_db.pool())
            .await
            .expect("effects")
            .into_iter()
            .map(|(s,)| s)
            .collect()
    }

    async fn wait_for_effects(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let effects = self.effects().await;
            if effects.len() >= n {
                return effects;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} effects, have {:?}", self.effects().await);
    }
}

async fn get<T: serde::de::DeserializeOwned>(router: axum::Router, uri: &str) -> (u16, T) {
    let response = router
        .oneshot(
            axum::http::Request::builder()
                .method(if uri.ends_with("/replay") {
                    "POST"
                } else {
                    "GET"
                })
                .uri(uri)
                // As the operator: the router is served bare, without the
                // chassis that would tell its peer.
                .extension(emporium_identity::Peer::Verified(
                    emporium_identity::Principal::Operator,
                ))
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("json"))
}

#[tokio::test]
async fn feed_serves_the_outbox_in_order_as_cloudevents() {
    let (w, running) = world().await;
    for n in 1..=3 {
        w.publish(n).await;
    }
    let (status, page): (u16, FeedPage) =
        get(running.router(), "/internal/events?after=1&limit=10").await;
    assert_eq!(status, 200);
    assert_eq!(page.head, 3);
    let seqs: Vec<i64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [2, 3]);
    let first = &page.events[0].event;
    assert_eq!(first.specversion, "1.0");
    assert_eq!(first.kind, ProductCreated::TYPE);
    assert_eq!(first.source, "/emporium/catalog");
    assert_eq!(first.subject, "p-2");
    assert_eq!(first.data["sku"], "SKU-2");
    assert_eq!(
        uuid::Uuid::parse_str(&first.id)
            .expect("uuid")
            .get_version_num(),
        7
    );

    // A long poll returns as soon as a commit lands, not at its next re-read (1 s).
    let router = running.router();
    let waiting = tokio::spawn(async move {
        let (_, page): (u16, FeedPage) = get(router, "/internal/events?after=3&wait=5000").await;
        (page, std::time::Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the poll is waiting");
    let published = std::time::Instant::now();
    w.publish(4).await;
    let (page, answered) = waiting.await.expect("join");
    assert_eq!(page.events.len(), 1, "woken with the new event");
    let took = answered.duration_since(published);
    assert!(
        took < Duration::from_millis(500),
        "woken by the commit, not by the periodic re-read: {took:?}"
    );

    // Bad parameters are a 400, not an empty page.
    let (status, _): (u16, serde_json::Value) =
        get(running.router(), "/internal/events?limit=0").await;
    assert_eq!(status, 400);
    running.stop().await;
}

impl World {
    /// Publishes a `PriceChanged` of product `n` (a type the test consumer ignores).
    async fn reprice(&self, n: u32) {
        let mut tx = self.producer_db.begin().await.expect("begin");
        let event = PriceChanged {
            product_id: format!("p-{n}"),
            sku: format!("SKU-{n}"),
            old_price: 100,
            new_price: 90,
            currency: "USD".into(),
        };
        self.outbox.publish(&mut tx, &event).await.expect("publish");
        self.outbox.commit(tx).await.expect("commit");
    }
}

#[tokio::test]
async fn a_filtered_feed_sends_only_the_types_asked_and_says_how_far_it_covers() {
    let (w, running) = world().await;
    w.publish(1).await; // 1
    w.reprice(1).await; // 2
    w.publish(2).await; // 3
    let prices = format!("/internal/events?types={}", PriceChanged::TYPE);
    let (status, page): (u16, FeedPage) = get(running.router(), &prices).await;
    assert_eq!(status, 200);
    let seqs: Vec<i64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [2], "only the price change");
    assert_eq!(
        (page.head, page.through),
        (3, Some(3)),
        "covers up to the head"
    );
    // Unfiltered pages say nothing of coverage, as before.
    let (_, page): (u16, FeedPage) = get(running.router(), "/internal/events").await;
    assert_eq!((page.events.len(), page.through), (3, None));
    // A full page covers only as far as its last event.
    let created = format!("/internal/events?limit=1&types={}", ProductCreated::TYPE);
    let (_, page): (u16, FeedPage) = get(running.router(), &created).await;
    let seqs: Vec<i64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!((seqs, page.through), (vec![1], Some(1)));

    // A long poll is not answered for an event of another type, only for its own.
    let router = running.router();
    let poll = format!("{prices}&after=3&wait=3000");
    let waiting = tokio::spawn(async move {
        let (_, page): (u16, FeedPage) = get(router, &poll).await;
        page
    });
    w.publish(3).await; // 4
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "still waiting after a ProductCreated"
    );
    w.reprice(3).await; // 5
    let page = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("answered for the price change")
        .expect("join");
    let seqs: Vec<i64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!((seqs, page.through), (vec![5], Some(5)));

    for bad in ["", ",", "a%20b", "a!b"] {
        let (status, _): (u16, serde_json::Value) =
            get(running.router(), &format!("/internal/events?types={bad}")).await;
        assert_eq!(status, 400, "types={bad}");
    }
    running.stop().await;
}

#[tokio::test]
async fn a_consumer_reads_only_what_it_handles_and_misses_nothing() {
    let (w, running) = world().await;
    let consumer = w.consumer().await;
    for n in 1..=20 {
        w.publish(n).await;
        w.reprice(n).await;
    }
    let effects = w.wait_for_effects(20).await;
    let expected: Vec<String> = (1..=20).map(|n| format!("SKU-{n}")).collect();
    assert_eq!(effects, expected, "every product once, in order");
    // It asked for products only, so the price changes were never sent.
    let polls: Vec<String> = w
        .requests
        .lock()
        .expect("requests")
        .iter()
        .filter(|uri| uri.starts_with("/internal/events?"))
        .cloned()
        .collect();
    assert!(!polls.is_empty());
    let only_products = format!("types={}", ProductCreated::TYPE);
    assert!(
        polls.iter().all(|uri| uri.ends_with(&only_products)),
        "{polls:?}"
    );
    // Passing events it was not sent leaves no lag: it has read up to the head.
    for n in 21..=25 {
        w.reprice(n).await;
    }
    let mut lag = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, status): (u16, serde_json::Value) =
            get(consumer.router(), "/internal/status").await;
        lag = status["subscriptions"][0].clone();
        if lag["head"] == 45 && lag["lag"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (&lag["head"], &lag["lag"]),
        (&45.into(), &0.into()),
        "{lag}"
    );
    consumer.stop().await;
    running.stop().await;
}

/// Events committed one by one while a reader is busy come to it as pages: after a
/// short page it lingers before asking again. Without that, each commit wakes its
/// waiting long poll and goes alone: a request and a transaction per event.
#[tokio::test]
async fn a_stream_of_commits_reaches_a_reader_in_pages() {
    let (w, running) = world_with(|common| common.events.batch_linger_ms = 100).await;
    let consumer = w.consumer().await;
    w.publish(1).await;
    w.wait_for_effects(1).await;
    w.requests.lock().expect("requests").clear();
    // Twenty commits over about 200 ms (longer on a slow machine), each its own
    // transaction.
    let started = std::time::Instant::now();
    for n in 2..=21 {
        w.publish(n).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let spread = started.elapsed();
    let effects = w.wait_for_effects(21).await;
    let expected: Vec<String> = (1..=21).map(|n| format!("SKU-{n}")).collect();
    assert_eq!(effects, expected, "every product once, in order");
    let polls = w
        .requests
        .lock()
        .expect("requests")
        .iter()
        .filter(|uri| uri.starts_with("/internal/events?"))
        .count();
    // About one page per linger (100 ms) while they came, and the poll waiting
    // now; never near one request per event.
    let most = (spread.as_millis() / 100 + 3).min(12) as usize;
    assert!(
        (2..=most).contains(&polls),
        "{polls} feed requests for 20 events committed over {spread:?}"
    );
    consumer.stop().await;
    running.stop().await;
}

#[tokio::test]
async fn publishing_is_transactional_and_only_for_own_events() {
    let (w, running) = world().await;
    let outbox = &w.outbox;
    let mut tx = w.producer_db.begin().await.expect("begin");
    outbox.publish(&mut tx, &product(1)).await.expect("publish");
    tx.rollback().await.expect("rollback");
    let (_, page): (u16, FeedPage) = get(running.router(), "/internal/events").await;
    assert!(
        page.events.is_empty(),
        "a rolled back event was never published"
    );

    let foreign = OrderConfirmed {
        order_id: "o".into(),
        user_id: "u".into(),
        total: 1,
        currency: "USD".into(),
        lines: vec![],
    };
    let mut tx = w.producer_db.begin().await.expect("begin");
    let err = outbox
        .publish(&mut tx, &foreign)
        .await
        .expect_err("foreign");
    assert!(err.to_string().contains("only their own"), "{err}");
    running.stop().await;
}

#[tokio::test]
async fn consumer_applies_each_event_once_even_when_redelivered() {
    let (w, producer) = world().await;
    for n in 1..=5 {
        w.publish(n).await;
    }
    let consumer = w.consumer().await;
    let effects = w.wait_for_effects(5).await;
    assert_eq!(effects, ["SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5"]);
    let (_, status): (u16, Status) = get(consumer.router(), "/internal/status").await;
    let sub = &status.subscriptions[0];
    assert_eq!(sub.name, "inventory.catalog");
    assert_eq!((sub.cursor, sub.head, sub.lag), (5, 5, 0));
    consumer.stop().await;

    // Rewind the cursor: the feed delivers all five again, none has a second effect.
    sqlx::query("UPDATE event_cursors SET position = 0")
        .execute(w.consumer_db.pool())
        .await
        .expect("rewind");
    let consumer = w.consumer().await;
    w.publish(6).await;
    let effects = w.wait_for_effects(6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.effects().await, effects, "nothing after the sixth");
    assert_eq!(
        effects.len(),
        6,
        "redelivered events had no second effect: {effects:?}"
    );

    // The producer's database is replaced (sequence numbers start again): the
    // consumer notices its cursor is past the head and reads from the start.
    for sql in [
        "DELETE FROM outbox",
        "DELETE FROM sqlite_sequence WHERE name = 'outbox'",
    ] {
        sqlx::query(sql)
            .execute(w.producer_db.pool())
            .await
            .expect("reset the producer");
    }
    w.publish(7).await;
    let effects = w.wait_for_effects(7).await;
    assert_eq!(effects.last().map(String::as_str), Some("SKU-7"));
    consumer.stop().await;
    producer.stop().await;
}

#[tokio::test]
async fn a_failing_handler_is_retried_then_parked_and_replayed() {
    let (w, producer) = world().await;
    sqlx::query("INSERT INTO failing (sku) VALUES ('SKU-2')")
        .execute(w.consumer_db.pool())
        .await
        .expect("mark");
    for n in 1..=3 {
        w.publish(n).await;
    }
    let consumer = w.consumer().await;
    let effects = w.wait_for_effects(2).await;
    assert_eq!(
        effects,
        ["SKU-1", "SKU-3"],
        "the poison event did not block the rest"
    );
    let (_, dead): (u16, DeadLetters) = get(consumer.router(), "/internal/events/dead").await;
    assert_eq!(dead.items.len(), 1);
    let parked = &dead.items[0];
    assert_eq!(parked.subject, "p-2");
    assert_eq!(parked.attempts, 3, "max_attempts tries before parking");
    assert!(parked.error.contains("marked failing"), "{}", parked.error);
    let (_, status): (u16, Status) = get(consumer.router(), "/internal/status").await;
    assert_eq!(status.subscriptions[0].dead_letters, 1);
    assert_eq!(status.subscriptions[0].lag, 0);

    // Replaying while it still fails keeps it parked, with one more attempt.
    let uri = format!("/internal/events/dead/{}/replay", parked.event_id);
    let (code, problem): (u16, serde_json::Value) = get(consumer.router(), &uri).await;
    assert_eq!(code, 409);
    assert_eq!(problem["code"], "replay_failed");
    let (_, dead): (u16, DeadLetters) = get(consumer.router(), "/internal/events/dead").await;
    assert_eq!(dead.items[0].attempts, 4);

    // Fixed: the replay applies it once and unparks it; a second replay finds nothing.
    sqlx::query("DELETE FROM failing")
        .execute(w.consumer_db.pool())
        .await
        .expect("fix");
    let (code, _): (u16, serde_json::Value) = get(consumer.router(), &uri).await;
    assert_eq!(code, 200);
    assert_eq!(w.effects().await, ["SKU-1", "SKU-3", "SKU-2"]);
    let (code, _): (u16, serde_json::Value) = get(consumer.router(), &uri).await;
    assert_eq!(code, 404);
    let (_, dead): (u16, DeadLetters) = get(consumer.router(), "/internal/events/dead").await;
    assert!(dead.items.is_empty());
    consumer.stop().await;
    producer.stop().await;
}

/// Handlers may be values too, not only functions.
struct Counting;

impl Handler<ProductCreated> for Counting {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: Received<ProductCreated>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        record(tx, event)
    }
}

#[tokio::test]
async fn handler_values_and_commit_hooks() {
    let (w, producer) = world().await;
    let notify = Arc::new(tokio::sync::Notify::new());
    let consumer = Events::open(&w.consumer_host, &w.consumer_db)
        .await
        .expect("open")
        .on::<ProductCreated>(Counting)
        .on_commit(notify.clone())
        .start();
    w.publish(1).await;
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("woken after the commit");
    assert_eq!(w.effects().await, ["SKU-1"]);
    consumer.stop().await;
    producer.stop().await;
}

#[tokio::test]
async fn the_snapshot_pages_every_item_with_the_position_read_first() {
    let (w, producer) = world().await;
    for n in 1..=5 {
        w.publish(n).await;
    }
    let (status, first): (u16, SnapshotPage) =
        get(producer.router(), "/internal/events/snapshot?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(first.position, 5);
    let keys: Vec<&str> = first.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["p-000001", "p-000002"]);
    assert_eq!(first.items[0].kind, ProductCreated::TYPE);
    assert_eq!(first.items[0].data["sku"], "SKU-1");
    let next = first.next.expect("more pages");
    let (_, last): (u16, SnapshotPage) = get(
        producer.router(),
        &format!("/internal/events/snapshot?after={next}&limit=10"),
    )
    .await;
    assert_eq!(last.items.len(), 3);
    assert_eq!(last.next, None);
    let (status, _): (u16, serde_json::Value) =
        get(producer.router(), "/internal/events/snapshot?limit=0").await;
    assert_eq!(status, 400);
    producer.stop().await;
}

#[tokio::test]
async fn pruned_events_are_a_loud_gap_for_a_consumer_and_a_snapshot_for_a_projection() {
    let (w, producer) = world().await;
    for n in 1..=3 {
        w.publish(n).await;
    }
    // Nothing is pruned within the retention; past it, the whole prefix goes.
    let kept = retention::prune(&w.producer_db, Duration::from_secs(3_600), false)
        .await
        .expect("prune");
    assert_eq!((kept.outbox, kept.through), (0, 0));
    // Past a zero retention means older than now: not the millisecond they were
    // written in.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let pruned = retention::prune(&w.producer_db, Duration::ZERO, false)
        .await
        .expect("prune");
    assert_eq!((pruned.outbox, pruned.through), (3, 3));
    let (_, page): (u16, FeedPage) = get(producer.router(), "/internal/events?after=0").await;
    assert!(page.events.is_empty());
    assert_eq!(
        (page.head, page.pruned),
        (3, 3),
        "the head stays where it was"
    );

    // A consumer that never read them records the gap and goes on after it.
    let consumer = w.consumer().await;
    w.publish(4).await;
    assert_eq!(w.wait_for_effects(1).await, ["SKU-4"]);
    let (_, status): (u16, Status) = get(consumer.router(), "/internal/status").await;
    assert_eq!(status.subscriptions[0].missed, 3);
    assert_eq!(status.subscriptions[0].cursor, 4);
    consumer.stop().await;

    // A projection with an empty database loads the snapshot instead: nothing missed.
    let fresh = Db::open_service("search", &w._dir.path().join("search"), None)
        .await
        .expect("db");
    sqlx::query("CREATE TABLE effects (event_id TEXT NOT NULL, sku TEXT NOT NULL)")
        .execute(fresh.pool())
        .await
        .expect("ddl");
    sqlx::query("CREATE TABLE failing (sku TEXT PRIMARY KEY)")
        .execute(fresh.pool())
        .await
        .expect("ddl");
    let host = w.consumer_host.clone();
    let projection = project(&host, &fresh).await;
    let skus = distinct_effects(&fresh, 4).await;
    for _ in 0..200 {
        if host.readiness.is_ready().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(skus, ["SKU-1", "SKU-2", "SKU-3", "SKU-4"]);
    let (applied,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM effects")
        .fetch_one(fresh.pool())
        .await
        .expect("count");
    assert_eq!(applied, 4, "each snapshot item applied once");
    assert!(host.readiness.is_ready().await, "caught up");
    let (_, status): (u16, Status) = get(projection.router(), "/internal/status").await;
    assert_eq!(status.subscriptions[0].missed, 0);
    projection.stop().await;

    // Away while the producer published and pruned again: its cursor (4) is below
    // what was pruned (6), so it loads the snapshot again rather than missing 5 and 6.
    w.publish(5).await;
    w.publish(6).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    retention::prune(&w.producer_db, Duration::ZERO, false)
        .await
        .expect("prune");
    w.publish(7).await;
    let projection = project(&host, &fresh).await;
    let distinct = distinct_effects(&fresh, 7).await;
    assert_eq!(
        distinct,
        [
            "SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5", "SKU-6", "SKU-7"
        ]
    );
    let (_, status): (u16, Status) = get(projection.router(), "/internal/status").await;
    assert_eq!(status.subscriptions[0].missed, 0);
    projection.stop().await;
    producer.stop().await;
}

/// A projection of catalog into `db`, recording effects.
async fn project(host: &Host, db: &Db) -> RunningEvents {
    Events::open(host, db)
        .await
        .expect("open")
        .on::<ProductCreated>(record)
        .projection("catalog")
        .start()
}

/// The distinct SKUs `db` has effects of, once there are `n` (or after 4 s).
async fn distinct_effects(db: &Db, n: usize) -> Vec<String> {
    let mut skus = Vec::new();
    for _ in 0..200 {
        skus = sqlx::query_as::<_, (String,)>("SELECT DISTINCT sku FROM effects ORDER BY sku")
            .fetch_all(db.pool())
            .await
            .expect("effects")
            .into_iter()
            .map(|(s,)| s)
            .collect();
        if skus.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    skus
}
