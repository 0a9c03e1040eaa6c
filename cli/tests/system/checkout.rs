//! Checkout through real processes: cart, inventory, payments, orders and
//! notifications under `emporium up`, with bad input, contention, a crash of orders
//! in the middle of sagas, and notifications stopped while orders flow.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use sqlx::Row;

use super::{Shop, Up, http};

pub(crate) const APPROVE: &str = "4242424242424242";
pub(crate) const DECLINE: &str = "4000000000000002";
pub(crate) const TRANSIENT: &str = "4000000000000119";
pub(crate) const SLOW: &str = "4000000000003055";

pub(crate) struct Shopper {
    pub(crate) token: String,
}

/// A new account whose owner opened the link in the mail that confirms the
/// address (checking out needs it), signed in.
pub(crate) async fn shopper(up: &impl Shop, email: &str) -> Shopper {
    emporium_testkit::sign_up(up.base(), email).await;
    emporium_testkit::confirm_email(up.base(), &up.mail_dir(), email).await;
    Shopper {
        token: emporium_testkit::sign_in(up.base(), email).await,
    }
}

/// A new account, signed in, its address not confirmed.
pub(crate) async fn unconfirmed_shopper(up: &impl Shop, email: &str) -> Shopper {
    Shopper {
        token: emporium_testkit::sign_up(up.base(), email).await.1,
    }
}

pub(crate) fn body(card: &str, city: &str) -> Value {
    json!({
        "card": {"number": card, "exp_month": 12, "exp_year": 2035, "cvc": "123"},
        "shipping_address": {"name": "Ada Lovelace", "line1": "1 Analytical Way",
                             "city": city, "postal_code": "10001", "country": "US"},
    })
}

pub(crate) fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Shopper {
    pub(crate) async fn add(&self, up: &impl Shop, sku: &str, quantity: i64) -> reqwest::Response {
        http()
            .post(up.at("/api/cart/items"))
            .bearer_auth(&self.token)
            .json(&json!({"sku": sku, "quantity": quantity}))
            .send()
            .await
            .expect("add to cart")
    }

    pub(crate) async fn cart(&self, up: &impl Shop) -> Value {
        http()
            .get(up.at("/api/cart"))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("cart")
            .json()
            .await
            .expect("json")
    }

    pub(crate) async fn checkout(
        &self,
        up: &impl Shop,
        key: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut req = http()
            .post(up.at("/api/orders"))
            .bearer_auth(&self.token)
            .json(body);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req.send().await.expect("checkout")
    }

    /// `GET /api/notifications`.
    pub(crate) async fn inbox(&self, up: &impl Shop) -> Value {
        http()
            .get(up.at("/api/notifications"))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("inbox")
            .json()
            .await
            .expect("json")
    }

    pub(crate) async fn order(&self, up: &impl Shop, id: &str) -> reqwest::Response {
        http()
            .get(up.at(&format!("/api/orders/{id}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("order")
    }

    /// Checks out with a fresh key and `card`, and waits until the order settled.
    pub(crate) async fn check_out(&self, up: &impl Shop, card: &str, timeout: Duration) -> Value {
        let r = self
            .checkout(up, Some(&key()), &body(card, "Springfield"))
            .await;
        let status = r.status();
        let answer = r.text().await.unwrap_or_default();
        assert_eq!(status, 202, "{answer}");
        let order: Value = serde_json::from_str(&answer).expect("json");
        self.settled(up, order["id"].as_str().expect("id"), timeout)
            .await
    }

    /// Polls the order until its saga finished (through restarts of orders).
    pub(crate) async fn settled(&self, up: &impl Shop, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = http()
                .get(up.at(&format!("/api/orders/{id}")))
                .bearer_auth(&self.token)
                .send()
                .await
                && r.status() == 200
            {
                let order: Value = r.json().await.expect("json");
                if order["status"] != "PENDING" {
                    return order;
                }
            }
            assert!(Instant::now() < deadline, "order {id} did not settle");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A SKU with stock, once inventory has learnt the catalog.
pub(crate) async fn stocked_sku(up: &impl Shop, skip: usize) -> String {
    let page: Value = http()
        .get(up.at("/api/catalog/products?limit=100&sort=price"))
        .send()
        .await
        .expect("products")
        .json()
        .await
        .expect("json");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = 0;
    for p in page["items"].as_array().expect("items") {
        let sku = p["sku"].as_str().expect("sku");
        loop {
            let r = http()
                .get(up.at(&format!("/api/inventory/{sku}")))
                .send()
                .await
                .expect("stock");
            if r.status() == 200 {
                let stock: Value = r.json().await.expect("json");
                if stock["available"].as_i64().expect("available") >= 20 {
                    if found == skip {
                        return sku.to_string();
                    }
                    found += 1;
                }
                break;
            }
            assert!(Instant::now() < deadline, "inventory never learnt {sku}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("no stocked SKU");
}

pub(crate) async fn set_stock(up: &Up, admin: &Shopper, sku: &str, available: i64) {
    let r = http()
        .put(up.at(&format!("/api/inventory/{sku}")))
        .bearer_auth(&admin.token)
        .json(&json!({"available": available}))
        .send()
        .await
        .expect("restock");
    assert_eq!(r.status(), 200, "admin sets stock");
}

pub(crate) async fn available(up: &Up, sku: &str) -> i64 {
    let stock: Value = http()
        .get(up.at(&format!("/api/inventory/{sku}")))
        .send()
        .await
        .expect("stock")
        .json()
        .await
        .expect("json");
    stock["available"].as_i64().expect("available")
}

/// How many orders ended how: `CONFIRMED`, `CANCELLED <reason>`.
pub(crate) fn tally(orders: &[Value]) -> HashMap<String, usize> {
    let mut outcomes = HashMap::new();
    for order in orders {
        let key = format!(
            "{} {}",
            order["status"].as_str().expect("status"),
            order["reason"].as_str().unwrap_or("")
        );
        *outcomes.entry(key.trim().to_string()).or_default() += 1;
    }
    outcomes
}

/// The checkout invariants, read from each service's own database once every saga
/// is terminal. Returns `(confirmed, cancelled)`.
pub(crate) async fn assert_invariants(up: &Up) -> (usize, usize) {
    let orders = up.db("orders").await;
    let payments = up.db("payments").await;
    let inventory = up.db("inventory").await;
    let rows = sqlx::query("SELECT id, status, step, reason FROM orders")
        .fetch_all(orders.pool())
        .await
        .expect("orders");
    let payment: HashMap<String, String> = sqlx::query("SELECT order_id, status FROM payments")
        .fetch_all(payments.pool())
        .await
        .expect("payments")
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let reservation: HashMap<String, String> =
        sqlx::query("SELECT order_id, status FROM reservations")
            .fetch_all(inventory.pool())
            .await
            .expect("reservations")
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let (mut confirmed, mut cancelled) = (0, 0);
    for r in rows {
        let id: String = r.get(0);
        let status: String = r.get(1);
        let step: String = r.get(2);
        assert_eq!(step, "done", "order {id} is terminal");
        let paid = payment.get(&id).map(String::as_str);
        let held = reservation.get(&id).map(String::as_str);
        match status.as_str() {
            "CONFIRMED" => {
                confirmed += 1;
                assert_eq!(
                    paid,
                    Some("captured"),
                    "confirmed {id} has a captured payment"
                );
                assert_eq!(
                    held,
                    Some("committed"),
                    "confirmed {id} has committed stock"
                );
            }
            "CANCELLED" => {
                cancelled += 1;
                assert!(
                    !matches!(paid, Some("captured" | "authorized" | "authorizing")),
                    "cancelled {id} holds no money: payment {paid:?}"
                );
                assert!(
                    !matches!(held, Some("reserved" | "committed")),
                    "cancelled {id} holds no stock: {held:?}"
                );
            }
            other => panic!("order {id} is {other}"),
        }
    }
    // Stock is conserved and nothing stays reserved.
    let bad: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT sku, available, reserved, sold, initial, adjusted FROM stock \
         WHERE available < 0 OR reserved <> 0 OR available + reserved + sold <> initial + adjusted",
    )
    .fetch_all(inventory.pool())
    .await
    .expect("stock");
    assert!(bad.is_empty(), "stock not conserved: {bad:?}");
    let sold: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(sold), 0) AS BIGINT) FROM stock")
        .fetch_one(inventory.pool())
        .await
        .expect("sold");
    let ordered: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT) FROM order_lines l JOIN orders o ON o.id = l.order_id \
         WHERE o.status = 'CONFIRMED'",
    )
    .fetch_one(orders.pool())
    .await
    .expect("ordered");
    assert_eq!(
        sold, ordered,
        "every unit sold belongs to a confirmed order"
    );
    (confirmed, cancelled)
}

/// `(status, attempts)` of every message in notifications' database.
pub(crate) async fn message_states(up: &Up) -> Vec<(String, i64)> {
    let db = up.db("notifications").await;
    sqlx::query_as("SELECT status, attempts FROM messages ORDER BY created_ms")
        .fetch_all(db.pool())
        .await
        .expect("messages")
}

/// `.eml` files written for `order_id` (found by their subject line).
pub(crate) fn mails_for(data: &Path, order_id: &str) -> usize {
    let subject = format!(
        "Subject: Order {} confirmed",
        &order_id[order_id.len() - 8..]
    );
    std::fs::read_dir(data.join("notifications").join("mail"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&subject)))
                .count()
        })
        .unwrap_or(0)
}

pub(crate) async fn wait_for_mails(data: &Path, order_ids: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<&String> = order_ids
            .iter()
            .filter(|id| mails_for(data, id) == 0)
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no mail for {missing:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in order_ids {
        assert_eq!(mails_for(data, id), 1, "exactly one mail for {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_checks_out_and_bad_input_is_refused_clearly() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    let ada = shopper(&up, "ada@example.com").await;
    let sku = stocked_sku(&up, 0).await;
    let before = available(&up, &sku).await;

    // Cart: bad input is a 4xx problem, never a 5xx.
    for (sku, quantity, field) in [
        (sku.as_str(), 0, "quantity"),
        (sku.as_str(), 100, "quantity"),
        ("NOPE-404", 1, "sku"),
        ("not a sku!", 1, "sku"),
    ] {
        let r = ada.add(&up, sku, quantity).await;
        let p = emporium_testkit::problem(r, 422).await;
        assert_eq!(p.errors[0].field, field, "{sku} x {quantity}");
    }
    let big = "x".repeat(100_000);
    let r = http()
        .post(up.at("/api/cart/items"))
        .bearer_auth(&ada.token)
        .json(&json!({"sku": big, "quantity": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413, "oversized body");
    assert_eq!(
        http()
            .get(up.at("/api/cart"))
            .send()
            .await
            .expect("send")
            .status(),
        401
    );

    // An empty cart cannot be checked out.
    let r = ada
        .checkout(&up, Some(&key()), &body(APPROVE, "Springfield"))
        .await;
    assert_eq!(emporium_testkit::problem(r, 422).await.code, "cart_empty");

    // Fill the cart: add, add more, change, price from catalog, totals in minor units.
    assert_eq!(ada.add(&up, &sku, 1).await.status(), 200);
    assert_eq!(ada.add(&up, &sku, 2).await.status(), 200);
    let cart = ada.cart(&up).await;
    assert_eq!(cart["items"][0]["quantity"], 3);
    let unit = cart["items"][0]["unit_price"]["amount"]
        .as_i64()
        .expect("price");
    assert_eq!(cart["total"]["amount"].as_i64(), Some(unit * 3));
    let r = http()
        .patch(up.at(&format!("/api/cart/items/{sku}")))
        .bearer_auth(&ada.token)
        .json(&json!({"quantity": 2}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(
        ada.add(&up, &sku, 98).await.status(),
        422,
        "a line holds 99 at most"
    );

    // Checkout refusals.
    let good = body(APPROVE, "Springfield");
    let r = ada.checkout(&up, None, &good).await;
    assert_eq!(
        emporium_testkit::problem(r, 400).await.code,
        "idempotency_key_missing"
    );
    let r = ada.checkout(&up, Some("not-a-uuid"), &good).await;
    assert_eq!(
        emporium_testkit::problem(r, 400).await.code,
        "idempotency_key_invalid"
    );
    let r = ada
        .checkout(&up, Some(&key()), &body("4242424242424241", "Springfield"))
        .await;
    assert_eq!(
        emporium_testkit::problem(r, 422).await.errors[0].field,
        "card.number"
    );
    let mut expired = good.clone();
    expired["card"]["exp_year"] = json!(2020);
    let r = ada.checkout(&up, Some(&key()), &expired).await;
    assert_eq!(
        emporium_testkit::problem(r, 422).await.errors[0].field,
        "card.exp_year"
    );

    // Checkout.
    let k = key();
    let r = ada.checkout(&up, Some(&k), &good).await;
    assert_eq!(r.status(), 202);
    let order: Value = r.json().await.expect("order");
    let id = order["id"].as_str().expect("id").to_string();
    let order = ada.settled(&up, &id, Duration::from_secs(20)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["total"]["amount"].as_i64(), Some(unit * 2));
    assert_eq!(order["card"]["last4"], "4242");
    let events: Vec<&str> = order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|t| t["event"].as_str().expect("event"))
        .collect();
    assert_eq!(
        events,
        [
            "placed",
            "stock_reserved",
            "payment_authorized",
            "confirmed"
        ]
    );
    assert_eq!(available(&up, &sku).await, before - 2, "stock taken");

    // The same key and body: the same order. A different body: 422.
    let again = ada.checkout(&up, Some(&k), &good).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], id.as_str());
    let r = ada
        .checkout(&up, Some(&k), &body(APPROVE, "Shelbyville"))
        .await;
    assert_eq!(
        emporium_testkit::problem(r, 422).await.code,
        "idempotency_key_reused"
    );

    // The cart empties on OrderConfirmed; the email is written once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ada.cart(&up).await["items"]
        .as_array()
        .is_some_and(|i| !i.is_empty())
    {
        assert!(Instant::now() < deadline, "cart not cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_mails(
        data.path(),
        std::slice::from_ref(&id),
        Duration::from_secs(10),
    )
    .await;
    let inbox = ada.inbox(&up).await;
    let kinds: Vec<&str> = inbox["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["kind"].as_str().expect("kind"))
        .collect();
    assert!(
        kinds.contains(&"order_confirmed") && kinds.contains(&"welcome"),
        "{kinds:?}"
    );

    // History: own orders only; another shopper's order is a 404.
    let list: Value = http()
        .get(up.at("/api/orders"))
        .bearer_auth(&ada.token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id.as_str());
    let eve = shopper(&up, "eve@example.com").await;
    let p = emporium_testkit::problem(eve.order(&up, &id).await, 404).await;
    assert_eq!(p.code, "not_found");

    // A declined card: stock released, order cancelled, nothing captured.
    assert_eq!(eve.add(&up, &sku, 3).await.status(), 200);
    let stock = available(&up, &sku).await;
    let declined = eve.check_out(&up, DECLINE, Duration::from_secs(20)).await;
    assert_eq!(declined["status"], "CANCELLED");
    assert_eq!(declined["reason"], "payment_declined");
    assert_eq!(
        available(&up, &sku).await,
        stock,
        "the reserved units came back"
    );

    // A card the processor fails on twice: retried, then confirmed.
    let retried = eve.check_out(&up, TRANSIENT, Duration::from_secs(20)).await;
    assert_eq!(retried["status"], "CONFIRMED", "{retried}");
    let retries = retried["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|t| t["event"] == "payment_retry")
        .count();
    assert_eq!(retries, 2);
    let (confirmed, cancelled) = assert_invariants(&up).await;
    assert_eq!((confirmed, cancelled), (2, 1));

    // A price change at catalog reaches the carts holding the product.
    let boss = shopper(&up, "boss@example.com").await;
    assert_eq!(eve.add(&up, &sku, 1).await.status(), 200);
    let product_id = eve.cart(&up).await["items"][0]["product_id"]
        .as_str()
        .expect("product id")
        .to_string();
    let r = http()
        .patch(up.at(&format!("/api/catalog/products/{product_id}")))
        .bearer_auth(&boss.token)
        .json(&json!({"price": {"amount": unit + 100, "currency": "USD"}}))
        .send()
        .await
        .expect("patch price");
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while eve.cart(&up).await["items"][0]["unit_price"]["amount"].as_i64() != Some(unit + 100) {
        assert!(Instant::now() < deadline, "the cart was not repriced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // No card number in any log line of any service.
    let lines = up.lines.lock().expect("lock");
    for number in [APPROVE, DECLINE, TRANSIENT] {
        assert!(
            !lines.iter().any(|l| l.contains(number)),
            "{number} was logged"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("order confirmed")),
        "the logs were captured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_checkouts_race_for_the_last_ten_units() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    let admin = shopper(&up, "boss@example.com").await;
    let sku = stocked_sku(&up, 1).await;
    let mut shoppers = Vec::new();
    for i in 0..50 {
        let s = shopper(&up, &format!("racer{i}@example.com")).await;
        assert_eq!(s.add(&up, &sku, 1).await.status(), 200);
        shoppers.push(s);
    }
    set_stock(&up, &admin, &sku, 10).await;
    let up = std::sync::Arc::new(up);
    let mut tasks = Vec::new();
    for s in shoppers {
        let up = up.clone();
        tasks.push(tokio::spawn(async move {
            s.check_out(&up, APPROVE, Duration::from_secs(60)).await
        }));
    }
    let mut orders = Vec::new();
    for t in tasks {
        orders.push(t.await.expect("join"));
    }
    let outcomes = tally(&orders);
    assert_eq!(outcomes.get("CONFIRMED"), Some(&10), "{outcomes:?}");
    assert_eq!(
        outcomes.get("CANCELLED out_of_stock"),
        Some(&40),
        "{outcomes:?}"
    );
    assert_eq!(available(&up, &sku).await, 0);
    assert_eq!(assert_invariants(&up).await, (10, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_killed_mid_saga_recovers_every_saga_without_breaking_invariants() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_with(
        data.path(),
        &[
            // Answer PENDING at once, so the kill lands while sagas are in flight.
            ("EMPORIUM__ORDERS__CHECKOUT_WAIT_MS", "50"),
            ("EMPORIUM__PAYMENTS__SLOW_CARD_DELAY_MS", "1500"),
        ],
    );
    let sku = stocked_sku(&up, 2).await;
    let mut placed = Vec::new();
    for i in 0..12 {
        let s = shopper(&up, &format!("crash{i}@example.com")).await;
        assert_eq!(s.add(&up, &sku, 1).await.status(), 200);
        let k = key();
        let card = if i % 3 == 0 { APPROVE } else { SLOW };
        let r = s.checkout(&up, Some(&k), &body(card, "Springfield")).await;
        assert_eq!(r.status(), 202);
        let order: Value = r.json().await.expect("json");
        placed.push((s, k, card, order["id"].as_str().expect("id").to_string()));
    }
    let orders = up.pid("orders");
    kill(Pid::from_raw(orders), Signal::SIGKILL).expect("kill orders");
    // In the monolith this is a crash of every service at once.
    up.wait_for_line(
        &format!("{} died", up.process_of("orders")),
        Duration::from_secs(10),
    );

    let mut terminal = 0;
    for (s, k, card, id) in &placed {
        let order = s.settled(&up, id, Duration::from_secs(60)).await;
        assert!(["CONFIRMED", "CANCELLED"].contains(&order["status"].as_str().expect("status")));
        terminal += 1;
        // One order per key, also after the crash.
        let again = s.checkout(&up, Some(k), &body(card, "Springfield")).await;
        assert_eq!(again.status(), 200);
        let again: Value = again.json().await.expect("json");
        assert_eq!(again["id"].as_str(), Some(id.as_str()));
    }
    assert_eq!(terminal, placed.len());
    let (confirmed, cancelled) = assert_invariants(&up).await;
    assert_eq!(confirmed + cancelled, placed.len());
    assert!(
        up.lines
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.contains("resuming a saga left in flight")),
        "recovery resumed sagas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_go_on_while_notifications_is_stopped_and_every_mail_arrives_once() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_apart(data.path(), &["notifications"]);
    let sku = stocked_sku(&up, 3).await;
    let mut shoppers = Vec::new();
    for i in 0..5 {
        let s = shopper(&up, &format!("mail{i}@example.com")).await;
        assert_eq!(s.add(&up, &sku, 1).await.status(), 200);
        shoppers.push(s);
    }
    let notifications = Pid::from_raw(up.pid("notifications"));
    kill(notifications, Signal::SIGSTOP).expect("stop notifications");
    let mut ids = Vec::new();
    for s in &shoppers {
        let order = s.check_out(&up, APPROVE, Duration::from_secs(20)).await;
        assert_eq!(
            order["status"], "CONFIRMED",
            "checkout does not wait for mail"
        );
        ids.push(order["id"].as_str().expect("id").to_string());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ids.iter().all(|id| mails_for(data.path(), id) == 0),
        "nothing sent while stopped"
    );
    kill(notifications, Signal::SIGCONT).expect("continue notifications");
    wait_for_mails(data.path(), &ids, Duration::from_secs(30)).await;
    // Each was sent exactly once (a file of the same name would hide a second send,
    // so count the delivery attempts).
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in &ids {
        assert_eq!(mails_for(data.path(), id), 1);
    }
    let db = up.db("notifications").await;
    let sends: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT subject, status, attempts FROM messages WHERE kind = 'order_confirmed'",
    )
    .fetch_all(db.pool())
    .await
    .expect("messages");
    assert_eq!(sends.len(), ids.len(), "{sends:?}");
    assert!(
        sends
            .iter()
            .all(|(_, status, attempts)| status == "sent" && *attempts == 1),
        "{sends:?}"
    );
}

/// A real SMTP server (aiosmtpd) delivering into a maildir; killed on drop.
struct SmtpSink {
    child: std::process::Child,
    maildir: std::path::PathBuf,
}

impl SmtpSink {
    fn start(port: u16, maildir: &Path) -> Self {
        let child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/test installs aiosmtpd)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}: is it installed? (scripts/test installs it: \
                 python3 -m pip install aiosmtpd)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            maildir: maildir.to_path_buf(),
        }
    }

    /// The messages delivered so far.
    fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 now, for a server started later.
///
/// Taken from below the kernel's ephemeral range (32768 and up here), which is
/// where a port 0 comes from and where every outgoing connection gets its local
/// port: a port from that range, given back before its user binds it (podman,
/// an SMTP server started later), can meanwhile be taken by any connection
/// another test opens ("address already in use").
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Where this test binary starts: apart from other binaries run at once.
    let start = std::process::id().wrapping_mul(2_654_435_761) % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start + n) % COUNT;
        let port = u16::try_from(port).expect("below 30000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_through_smtp_and_an_outage_delays_it_without_losing_it() {
    let data = tempfile::tempdir().expect("data dir");
    let port = free_port();
    let port_text = port.to_string();
    let up = Up::start_with(
        data.path(),
        &[
            ("EMPORIUM__NOTIFICATIONS__SMTP__HOST", "127.0.0.1"),
            ("EMPORIUM__NOTIFICATIONS__SMTP__PORT", &port_text),
            ("EMPORIUM__NOTIFICATIONS__SMTP__TLS", "none"),
            ("EMPORIUM__NOTIFICATIONS__RETRY_BASE_MS", "100"),
            ("EMPORIUM__NOTIFICATIONS__RETRY_MAX_MS", "500"),
            // The confirmation mail cannot arrive while the server is down: this
            // shop lets unconfirmed addresses check out.
            ("EMPORIUM__ORDERS__REQUIRE_VERIFIED_EMAIL", "false"),
        ],
    );
    // The SMTP server is down: checkout is not affected.
    let ada = unconfirmed_shopper(&up, "smtp@example.com").await;
    let sku = stocked_sku(&up, 4).await;
    assert_eq!(ada.add(&up, &sku, 1).await.status(), 200);
    let order = ada.check_out(&up, APPROVE, Duration::from_secs(20)).await;
    let id = order["id"].as_str().expect("id").to_string();
    assert_eq!(order["status"], "CONFIRMED");
    // The three mails (welcome, confirm your address, order confirmation) are
    // tried, fail, and stay queued.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = message_states(&up).await;
        if rows.len() == 3
            && rows
                .iter()
                .all(|(status, attempts)| status == "pending" && *attempts >= 1)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not queued after failed attempts: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let inbox = ada.inbox(&up).await;
    let statuses: Vec<&str> = inbox["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        ["pending", "pending", "pending"],
        "shown as pending while SMTP is down"
    );

    // The server comes up: the three mails arrive, once each.
    let maildir = data.path().join("maildir");
    let sink = SmtpSink::start(port, &maildir);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.messages().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "mail was not delivered after the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 3, "each mail once");
    let confirmation = messages
        .iter()
        .find(|m| m.contains(&format!("Subject: Order {} confirmed", &id[id.len() - 8..])))
        .expect("the order confirmation");
    assert!(
        confirmation.contains("smtp@example.com"),
        "addressed to the shopper"
    );
    assert!(
        confirmation.contains("multipart/alternative"),
        "plain text and HTML"
    );
    assert!(!confirmation.contains(APPROVE), "no card number in mail");

    // The link to confirm the address came through SMTP too, minted as it went out
    // after the outage, and it works.
    let token = emporium_testkit::mail::mailed_token(&maildir, "smtp@example.com", "/verify").await;
    let r = http()
        .post(up.at("/api/users/verify"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.expect("account");
    assert_eq!(me["email_verified"], true, "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_past_its_deadline_compensates() {
    let data = tempfile::tempdir().expect("data dir");
    // Stock is reserved at once; the processor fails the first authorization and the
    // retry comes after the deadline: the reservation must be released and the
    // payment voided.
    let up = Up::start_with(
        data.path(),
        &[
            ("EMPORIUM__ORDERS__SAGA_TIMEOUT_MS", "300"),
            ("EMPORIUM__ORDERS__RETRY_BASE_MS", "400"),
        ],
    );
    let ada = shopper(&up, "late@example.com").await;
    let sku = stocked_sku(&up, 5).await;
    let stock = available(&up, &sku).await;
    assert_eq!(ada.add(&up, &sku, 2).await.status(), 200);
    let order = ada.check_out(&up, TRANSIENT, Duration::from_secs(20)).await;
    let id = order["id"].as_str().expect("id").to_string();
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["reason"], "deadline_exceeded");
    let events: Vec<&str> = order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|t| t["event"].as_str().expect("event"))
        .collect();
    assert!(
        events.starts_with(&["placed", "stock_reserved", "payment_retry"]),
        "the deadline struck after the reservation: {events:?}"
    );
    assert_eq!(
        available(&up, &sku).await,
        stock,
        "the reservation was released"
    );
    let payments = up.db("payments").await;
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
        .bind(&id)
        .fetch_one(payments.pool())
        .await
        .expect("payment");
    assert_eq!(status, "voided");
    assert_eq!(assert_invariants(&up).await, (0, 1));
}

pub(crate) fn emporium(data: &Path, args: &[&str]) -> (bool, String) {
    emporium_with(data, args, Vec::new())
}

/// `emporium ARGS --data-dir DATA` with `env` (a shop's backend settings).
pub(crate) fn emporium_with(
    data: &Path,
    args: &[&str],
    env: Vec<(String, String)>,
) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("EMPORIUM__REGISTRY_URL")
        .env_remove("EMPORIUM__DATABASE_URL")
        .envs(env)
        .output()
        .expect("emporium runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_events_are_listed_and_replayed_from_the_cli() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    let _ada = shopper(&up, "parked@example.com").await;

    // Park an event in notifications' own database, as its consumer does when a
    // handler keeps failing: a UserRegistered for an account it never heard of.
    let id = uuid::Uuid::now_v7().to_string();
    let envelope = json!({
        "specversion": "1.0", "id": id, "source": "/emporium/users",
        "type": "emporium.users.UserRegistered.v1", "time": "2026-11-22T00:00:00Z",
        "subject": "ghost", "datacontenttype": "application/json",
        "data": {"user_id": "ghost", "email": "ghost@example.com", "name": "Ghost"},
    });
    let db = up.db("notifications").await;
    sqlx::query(
        "INSERT INTO dead_letters (event_id, subscription, type, subject, envelope, error, \
         attempts, parked_ms) VALUES ($1, 'notifications.users', \
         'emporium.users.UserRegistered.v1', 'ghost', $2, 'smtp exploded', 8, 0)",
    )
    .bind(&id)
    .bind(envelope.to_string())
    .execute(db.pool())
    .await
    .expect("park an event");

    let (ok, listed) = emporium(data.path(), &["events", "dead"]);
    assert!(ok, "{listed}");
    let row = listed
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("the parked event is listed:\n{listed}"));
    assert!(
        row.contains("notifications") && row.contains("smtp exploded"),
        "{row}"
    );

    let (ok, lag) = emporium(data.path(), &["events", "lag"]);
    assert!(ok, "{lag}");
    let sub = lag
        .lines()
        .find(|l| l.contains("notifications.users"))
        .unwrap_or_else(|| panic!("the subscription is shown:\n{lag}"));
    assert!(sub.contains("true"), "connected: {sub}");

    let (ok, replayed) = emporium(data.path(), &["events", "replay", &id]);
    assert!(ok, "{replayed}");
    assert!(replayed.contains("replayed by notifications"), "{replayed}");
    // Its effect: the welcome mail for the account it announced.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mail_dir = data.path().join("notifications").join("mail");
    loop {
        let ghost = std::fs::read_dir(&mail_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("ghost@example.com"))
            })
            .count();
        if ghost == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replayed event had no effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, after) = emporium(data.path(), &["events", "dead"]);
    assert!(after.contains("(no dead letters)"), "{after}");
    let (ok, again) = emporium(data.path(), &["events", "replay", &id]);
    assert!(!ok, "a second replay finds nothing: {again}");
    assert!(
        again.contains("no running service has this dead letter"),
        "{again}"
    );
}
