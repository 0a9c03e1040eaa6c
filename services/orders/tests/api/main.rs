//! orders' API, over HTTP, with the real services the checkout saga calls (catalog,
//! inventory, payments, cart behind a registry): one order per Idempotency-Key,
//! confirmed or cancelled with the reason, and each shopper sees only their own.

mod pacts;

use emporium_cart::{Cart, CartSettings};
use emporium_catalog::{Catalog, CatalogSettings};
use emporium_contracts::headers;
use emporium_inventory::{Inventory, InventorySettings};
use emporium_orders::{Orders, OrdersSettings};
use emporium_payments::{Payments, PaymentsSettings};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_runtime::{Build, Service};
use emporium_testkit::{
    Spawned, TestEnv, as_user, available, client, eventually, problem, stocked,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const APPROVE: &str = "4242424242424242";
const DECLINE: &str = "4000000000000002";

struct Shop {
    _services: Vec<Spawned>,
    registry: Spawned,
    payments: Option<Spawned>,
    catalog: String,
    inventory: String,
    cart: String,
    orders: String,
    env: TestEnv,
}

async fn shop() -> Shop {
    open_shop(Some(Payments), OrdersSettings::default()).await
}

/// The shop with `payments` (a stand-in, or none) and orders set up with `orders`.
async fn open_shop<P: Service>(payments: Option<P>, orders: OrdersSettings) -> Shop {
    let env = TestEnv::new();
    let registry = env
        .spawn(RegistryService, env.settings::<RegistrySettings>(None))
        .await;
    let r = Some(&registry);
    let catalog = env.spawn(Catalog, env.settings::<CatalogSettings>(r)).await;
    let inventory = env
        .spawn(Inventory, env.settings::<InventorySettings>(r))
        .await;
    let payments = match payments {
        Some(p) => Some(env.spawn(p, env.settings::<P::Settings>(r)).await),
        None => None,
    };
    let cart = env.spawn(Cart, env.settings::<CartSettings>(r)).await;
    let mut settings = env.settings::<OrdersSettings>(r);
    settings.service = orders;
    let orders = env.spawn(Orders, settings).await;
    Shop {
        catalog: catalog.url.clone(),
        inventory: inventory.url.clone(),
        cart: cart.url.clone(),
        orders: orders.url.clone(),
        _services: vec![catalog, inventory, cart, orders],
        registry,
        payments,
        env,
    }
}

fn checkout_body(card: &str) -> Value {
    json!({
        "card": {"number": card, "exp_month": 12, "exp_year": 2099, "cvc": "123"},
        "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "London",
                             "postal_code": "N1 1AA", "country": "GB"}
    })
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Shop {
    async fn stocked(&self, min: i64) -> (String, i64) {
        stocked(&self.catalog, &self.inventory, min).await
    }

    async fn available(&self, sku: &str) -> i64 {
        available(&self.inventory, sku).await
    }

    async fn add(&self, user: &str, sku: &str, quantity: i64) {
        let r = as_user(
            client().post(format!("{}/api/cart/items", self.cart)),
            user,
            "",
        )
        .json(&json!({"sku": sku, "quantity": quantity}))
        .send()
        .await
        .expect("add");
        assert_eq!(r.status(), 200);
    }

    /// A checkout by `user`, whose email address is confirmed.
    async fn checkout(&self, user: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut r = as_user(
            client().post(format!("{}/api/orders", self.orders)),
            user,
            "",
        )
        .header(headers::USER_EMAIL_VERIFIED, "true");
        if let Some(key) = key {
            r = r.header("idempotency-key", key);
        }
        r.json(body).send().await.expect("checkout")
    }

    async fn cart_view(&self, user: &str) -> Value {
        as_user(client().get(format!("{}/api/cart", self.cart)), user, "")
            .send()
            .await
            .expect("cart")
            .json()
            .await
            .expect("cart json")
    }

    async fn get(&self, user: &str, path: &str) -> reqwest::Response {
        as_user(client().get(format!("{}{path}", self.orders)), user, "")
            .send()
            .await
            .expect("get")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_confirms_once_per_key_and_empties_the_cart() {
    let shop = shop().await;
    let (sku, before) = shop.stocked(2).await;
    shop.add("ada", &sku, 2).await;
    let k = key();
    let r = shop
        .checkout("ada", Some(&k), &checkout_body(APPROVE))
        .await;
    assert_eq!(r.status(), 202);
    let order: Value = r.json().await.expect("order");
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let events: Vec<&str> = order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["event"].as_str())
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
    assert_eq!(order["lines"][0]["sku"], sku);
    assert_eq!(order["card"]["last4"], "4242");
    assert_eq!(shop.available(&sku).await, before - 2);

    // The same key and body: the same order, not a second one.
    let again = shop
        .checkout("ada", Some(&k), &checkout_body(APPROVE))
        .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.expect("order");
    // All of it as stored: the first answer came from the saga's memory.
    assert_eq!(again, order, "the answer is the order as it was written");
    assert_eq!(shop.available(&sku).await, before - 2);
    // The same key for another checkout is refused.
    let reused = shop
        .checkout("ada", Some(&k), &checkout_body(DECLINE))
        .await;
    assert_eq!(problem(reused, 422).await.code, "idempotency_key_reused");

    // The checkout took the lines out of the cart: it is empty at once (not only
    // when cart hears of OrderConfirmed), so nothing can be bought twice.
    assert_eq!(shop.cart_view("ada").await["item_count"], 0);
    let page: Value = shop
        .get("ada", "/api/orders")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], order["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_cancels_and_gives_the_stock_back() {
    let shop = shop().await;
    let (sku, before) = shop.stocked(1).await;
    shop.add("bo", &sku, 1).await;
    let order: Value = shop
        .checkout("bo", Some(&key()), &checkout_body(DECLINE))
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(order["status"], "CANCELLED", "{order}");
    assert_eq!(order["reason"], "payment_declined");
    assert_eq!(shop.available(&sku).await, before, "stock released");
    // The line is back in the cart by the time the answer says CANCELLED: another
    // card can be tried at once.
    assert_eq!(shop.cart_view("bo").await["items"][0]["quantity"], 1);
    let retried: Value = shop
        .checkout("bo", Some(&key()), &checkout_body(APPROVE))
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(retried["status"], "CONFIRMED", "{retried}");
    assert_eq!(retried["lines"][0]["quantity"], 1);
    // Another shopper cannot see it; its owner can.
    let id = order["id"].as_str().expect("id");
    problem(shop.get("cy", &format!("/api/orders/{id}")).await, 404).await;
    let own = shop.get("bo", &format!("/api/orders/{id}")).await;
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.expect("order");
    assert_eq!(own, order, "the answer is the order as it was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_checkouts_at_once_buy_the_cart_once() {
    let shop = shop().await;
    let (sku, before) = shop.stocked(4).await;
    shop.add("di", &sku, 2).await;
    // Two checkouts at once, each with its own key (two tabs): one buys the cart,
    // the other finds it empty; nothing is bought twice.
    let body = checkout_body(APPROVE);
    let (k1, k2) = (key(), key());
    let (a, b) = tokio::join!(
        shop.checkout("di", Some(&k1), &body),
        shop.checkout("di", Some(&k2), &body)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 422], "one order, one empty cart");
    let (placed, refused) = if a.status() == 202 { (a, b) } else { (b, a) };
    assert_eq!(problem(refused, 422).await.code, "cart_empty");
    let order: Value = placed.json().await.expect("order");
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(shop.available(&sku).await, before - 2);

    // One added right after the confirmation: the next checkout buys that one
    // alone, whether or not cart has heard of the first order yet.
    shop.add("di", &sku, 1).await;
    let next: Value = shop
        .checkout("di", Some(&key()), &body)
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(next["status"], "CONFIRMED", "{next}");
    assert_eq!(next["lines"][0]["quantity"], 1);
    assert_eq!(shop.available(&sku).await, before - 3);
    // And what the first order bought never comes back when cart hears of it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(shop.cart_view("di").await["item_count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_without_a_key_an_empty_cart_or_a_bad_card_are_refused() {
    let shop = shop().await;
    let body = checkout_body(APPROVE);
    let missing = shop.checkout("di", None, &body).await;
    assert_eq!(problem(missing, 400).await.code, "idempotency_key_missing");
    let invalid = shop.checkout("di", Some("not-a-uuid"), &body).await;
    assert_eq!(problem(invalid, 400).await.code, "idempotency_key_invalid");
    let empty = shop.checkout("di", Some(&key()), &body).await;
    assert_eq!(problem(empty, 422).await.code, "cart_empty");
    let (sku, _) = shop.stocked(1).await;
    shop.add("di", &sku, 1).await;
    let bad = shop
        .checkout("di", Some(&key()), &checkout_body("4242424242424241"))
        .await;
    let p = problem(bad, 422).await;
    assert!(p.errors.iter().any(|e| e.field == "card.number"), "{p:?}");
    // An account whose address is not confirmed cannot check out.
    let unconfirmed = as_user(
        client().post(format!("{}/api/orders", shop.orders)),
        "di",
        "",
    )
    .header("idempotency-key", key())
    .json(&body)
    .send()
    .await
    .expect("send");
    let p = problem(unconfirmed, 403).await;
    assert!(
        p.detail.contains("confirm your email address"),
        "{}",
        p.detail
    );
    problem(
        client()
            .post(format!("{}/api/orders", shop.orders))
            .header("idempotency-key", key())
            .json(&body)
            .send()
            .await
            .expect("send"),
        401,
    )
    .await;
    assert_eq!(
        shop.get("di", "/api/orders")
            .await
            .json::<Value>()
            .await
            .expect("page")["total"],
        0,
        "nothing was placed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_every_shoppers_orders_by_status_and_shoppers_only_their_own() {
    let shop = shop().await;
    let (sku, _) = shop.stocked(3).await;
    for (user, card) in [("ann", APPROVE), ("ben", DECLINE), ("ann", APPROVE)] {
        shop.add(user, &sku, 1).await;
        let r = shop
            .checkout(user, Some(&key()), &checkout_body(card))
            .await;
        assert_eq!(r.status(), 202);
    }
    let list = |user: &'static str, roles: &'static str, query: &'static str| {
        let url = format!("{}/api/orders{query}", shop.orders);
        async move {
            as_user(client().get(url), user, roles)
                .send()
                .await
                .expect("list")
        }
    };
    let page: Value = list("ann", "", "").await.json().await.expect("page");
    assert_eq!(page["total"], 2, "ann sees her own two");
    // Everyone's: admins only.
    problem(list("ann", "customer", "?scope=all").await, 403).await;
    let all: Value = list("boss", "admin", "?scope=all")
        .await
        .json()
        .await
        .expect("all");
    assert_eq!(all["total"], 3);
    let cancelled: Value = list("boss", "admin", "?scope=all&status=CANCELLED")
        .await
        .json()
        .await
        .expect("cancelled");
    assert_eq!(cancelled["total"], 1);
    assert_eq!(cancelled["items"][0]["reason"], "payment_declined");
    // Pages of everyone's orders follow the cursor to the end.
    let first: Value = list("boss", "admin", "?scope=all&limit=2")
        .await
        .json()
        .await
        .expect("first page");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let next = first["next"].as_str().expect("a next page");
    let url = format!("{}/api/orders?scope=all&limit=2&cursor={next}", shop.orders);
    let second: Value = as_user(client().get(url), "boss", "admin")
        .send()
        .await
        .expect("second page")
        .json()
        .await
        .expect("json");
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert!(second["next"].is_null());
    problem(list("boss", "admin", "?scope=everyone").await, 400).await;
    problem(list("boss", "admin", "?status=LOST").await, 400).await;
    // Someone else's order: unknown to a shopper, open to an admin.
    let bens = cancelled["items"][0]["id"].as_str().expect("id");
    problem(shop.get("ann", &format!("/api/orders/{bens}")).await, 404).await;
    let r = as_user(
        client().get(format!("{}/api/orders/{bens}", shop.orders)),
        "boss",
        "admin",
    )
    .send()
    .await
    .expect("get");
    assert_eq!(r.status(), 200);
    // The ops console's outcomes of the last hour.
    let outcomes: Value = client()
        .get(format!("{}/internal/orders/outcomes", shop.orders))
        .send()
        .await
        .expect("outcomes")
        .json()
        .await
        .expect("json");
    let count = |status: &str| {
        outcomes
            .as_array()
            .expect("rows")
            .iter()
            .filter(|o| o["status"] == status)
            .map(|o| o["orders"].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!(
        (count("CONFIRMED"), count("CANCELLED")),
        (2, 1),
        "{outcomes}"
    );
}

/// A payment of a stand-in payments, as payments answers it.
fn payment(order_id: String, status: &str) -> axum::Json<Value> {
    axum::Json(json!({"order_id": order_id, "status": status, "amount": 1,
        "currency": "EUR", "brand": "visa", "last4": "4242", "attempts": 1,
        "reason": null}))
}

/// A payments that authorizes every card and then refuses to capture, as payments
/// does for a payment that is no longer authorized (voided, refunded).
struct NoCapture;

impl Service for NoCapture {
    type Settings = PaymentsSettings;
    const NAME: &'static str = "payments";
    const EVENTS: bool = false;

    async fn build(&self, _cx: &mut Build<PaymentsSettings>) -> anyhow::Result<axum::Router> {
        use axum::extract::Path;
        use axum::routing::{post, put};
        Ok(axum::Router::new()
            .route(
                "/internal/payments/{id}/authorization",
                put(move |Path(id): Path<String>| async move { payment(id, "authorized") }),
            )
            .route(
                "/internal/payments/{id}/capture",
                post(|| async {
                    emporium_http::ApiError::new(
                        axum::http::StatusCode::CONFLICT,
                        "invalid_state",
                        "payment is voided",
                    )
                }),
            )
            .route(
                "/internal/payments/{id}/cancel",
                post(move |Path(id): Path<String>| async move { payment(id, "voided") }),
            ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_payments_refuses_for_good_undoes_the_sale() {
    let shop = open_shop(Some(NoCapture), OrdersSettings::default()).await;
    let (sku, before) = shop.stocked(1).await;
    shop.add("di", &sku, 1).await;
    let order: Value = shop
        .checkout("di", Some(&key()), &checkout_body(APPROVE))
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(order["status"], "CANCELLED", "not retried forever: {order}");
    assert_eq!(order["reason"], "payment_failed");
    assert!(
        order["detail"]
            .as_str()
            .is_some_and(|d| d.contains("voided")),
        "{order}"
    );
    assert_eq!(shop.available(&sku).await, before, "the sold unit is back");
}

/// A payments that sells when asked to (the money taken with the approval) and
/// counts what the saga asked of it.
#[derive(Clone, Default)]
struct Sells {
    sales: Arc<AtomicUsize>,
    captures: Arc<AtomicUsize>,
}

impl Service for Sells {
    type Settings = PaymentsSettings;
    const NAME: &'static str = "payments";
    const EVENTS: bool = false;

    async fn build(&self, _cx: &mut Build<PaymentsSettings>) -> anyhow::Result<axum::Router> {
        use axum::extract::Path;
        use axum::routing::{post, put};
        let (sales, captures) = (self.sales.clone(), self.captures.clone());
        Ok(axum::Router::new()
            .route(
                "/internal/payments/{id}/authorization",
                put(
                    move |Path(id): Path<String>, axum::Json(body): axum::Json<Value>| async move {
                        if body["capture"] == json!(true) {
                            sales.fetch_add(1, Ordering::SeqCst);
                            payment(id, "captured")
                        } else {
                            payment(id, "authorized")
                        }
                    },
                ),
            )
            .route(
                "/internal/payments/{id}/capture",
                post(move |Path(id): Path<String>| async move {
                    captures.fetch_add(1, Ordering::SeqCst);
                    payment(id, "captured")
                }),
            )
            .route(
                "/internal/payments/{id}/cancel",
                post(move |Path(id): Path<String>| async move { payment(id, "refunded") }),
            ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_one_sale_and_the_saga_asks_for_no_capture_after_it() {
    let payments = Sells::default();
    let shop = open_shop(Some(payments.clone()), OrdersSettings::default()).await;
    let (sku, before) = shop.stocked(2).await;
    shop.add("flo", &sku, 1).await;
    let order: Value = shop
        .checkout("flo", Some(&key()), &checkout_body(APPROVE))
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(
        payments.sales.load(Ordering::SeqCst),
        1,
        "the card was sold once"
    );
    assert_eq!(
        payments.captures.load(Ordering::SeqCst),
        0,
        "the money was taken with the approval"
    );
    assert_eq!(
        shop.available(&sku).await,
        before - 1,
        "the stock is committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_payments_down_checkouts_are_refused_at_once_and_those_in_flight_finish_when_it_is_back()
 {
    let mut shop = open_shop(
        Some(Payments),
        OrdersSettings {
            checkout_wait_ms: 1_000,
            ..OrdersSettings::default()
        },
    )
    .await;
    let (sku, before) = shop.stocked(3).await;
    shop.payments.take().expect("payments").crash();

    // Placed while payments is still listed: the saga keeps trying.
    shop.add("ed", &sku, 1).await;
    let in_flight: Value = shop
        .checkout("ed", Some(&key()), &checkout_body(APPROVE))
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(in_flight["status"], "PENDING", "{in_flight}");

    // Once the registry has dropped it, a checkout is refused before anything is
    // reserved (a shopper with an empty cart would otherwise get 422).
    eventually("payments known to be down", || async {
        let r = shop
            .checkout("fay", Some(&key()), &checkout_body(APPROVE))
            .await;
        (r.status() == 503).then_some(())
    })
    .await;
    shop.add("gus", &sku, 1).await;
    let started = std::time::Instant::now();
    let refused = shop
        .checkout("gus", Some(&key()), &checkout_body(APPROVE))
        .await;
    let took = started.elapsed();
    assert!(
        refused.headers().contains_key("retry-after"),
        "{:?}",
        refused.headers()
    );
    let p = problem(refused, 503).await;
    assert_eq!(p.code, "unavailable");
    assert!(p.detail.contains("payments"), "{}", p.detail);
    assert!(
        took < std::time::Duration::from_millis(500),
        "at once: {took:?}"
    );
    assert_eq!(
        shop.available(&sku).await,
        before - 1,
        "only the order in flight holds stock"
    );

    // Payments is back: the order in flight completes, and checkouts work again.
    let r = Some(&shop.registry);
    shop.payments = Some(
        shop.env
            .spawn(Payments, shop.env.settings::<PaymentsSettings>(r))
            .await,
    );
    let id = in_flight["id"].as_str().expect("id").to_string();
    eventually("the order in flight confirmed", || async {
        let o: Value = shop
            .get("ed", &format!("/api/orders/{id}"))
            .await
            .json()
            .await
            .ok()?;
        (o["status"] == "CONFIRMED").then_some(())
    })
    .await;
    let again: Value = shop
        .checkout("gus", Some(&key()), &checkout_body(APPROVE))
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(again["status"], "CONFIRMED", "{again}");
    assert_eq!(shop.available(&sku).await, before - 2);
}

/// A payments that authorizes every card, says of every payment it is asked about
/// what it was made to record (authorized, unless [`LosesFirst::recording`] says
/// otherwise), captures and voids; but holds the first call of one kind until the
/// request's deadline (10 s: as if the answer were lost, its caller waits).
#[derive(Clone)]
struct LosesFirst {
    /// The route whose first call is never answered: `authorization` or `capture`.
    call: &'static str,
    /// What `GET /internal/payments/{id}` says of the payment.
    recorded: &'static str,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LosesFirst {
    fn new(call: &'static str) -> Self {
        Self::recording(call, "authorized")
    }

    /// One that says the payment is `recorded` when asked.
    fn recording(call: &'static str, recorded: &'static str) -> Self {
        Self {
            call,
            recorded,
            calls: Default::default(),
        }
    }

    /// Waits until the call it holds has come.
    async fn holding(&self) {
        eventually("the held call", || async {
            (self.calls.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(())
        })
        .await;
    }

    /// Whether to hold this call of `call`.
    fn hold(&self, call: &'static str) -> impl Fn() -> bool + Clone + Send + 'static {
        let (this, calls) = (self.call == call, self.calls.clone());
        move || this && calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
    }
}

impl Service for LosesFirst {
    type Settings = PaymentsSettings;
    const NAME: &'static str = "payments";
    const EVENTS: bool = false;

    async fn build(&self, _cx: &mut Build<PaymentsSettings>) -> anyhow::Result<axum::Router> {
        use axum::extract::Path;
        use axum::routing::{get, post, put};
        async fn answer(id: String, status: &str, hold: bool) -> axum::Json<Value> {
            if hold {
                std::future::pending::<()>().await;
            }
            payment(id, status)
        }
        let (authorization, capture) = (self.hold("authorization"), self.hold("capture"));
        let recorded = self.recorded;
        Ok(axum::Router::new()
            .route(
                "/internal/payments/{id}/authorization",
                put(move |Path(id): Path<String>| answer(id, "authorized", authorization())),
            )
            .route(
                "/internal/payments/{id}",
                get(move |Path(id): Path<String>| answer(id, recorded, false)),
            )
            .route(
                "/internal/payments/{id}/capture",
                post(move |Path(id): Path<String>| answer(id, "captured", capture())),
            )
            .route(
                "/internal/payments/{id}/cancel",
                post(|Path(id): Path<String>| answer(id, "voided", false)),
            ))
    }
}

/// A shop whose payments is `payments`, and an orders whose sagas are resumed
/// elsewhere `lease_ms` after their last renewal and whose calls wait as long as
/// it takes (no attempt timeout, no retry); that orders, and the order a shopper
/// with one unit of a stocked product in the cart placed there, still pending.
async fn stuck_checkout(
    payments: &LosesFirst,
    lease_ms: u64,
) -> (Shop, Spawned, Value, String, i64) {
    let resumable = OrdersSettings {
        checkout_wait_ms: 500,
        saga_lease_ms: lease_ms,
        recovery_interval_ms: 200,
        call_timeout_ms: 60_000,
        ..OrdersSettings::default()
    };
    let mut shop = open_shop(Some(payments.clone()), resumable.clone()).await;
    let stuck = orders_without_retries(&shop, resumable).await;
    let shop_orders = std::mem::replace(&mut shop.orders, stuck.url.clone());
    let (sku, before) = shop.stocked(1).await;
    shop.add("hal", &sku, 1).await;
    let placed: Value = shop
        .checkout("hal", Some(&key()), &checkout_body(APPROVE))
        .await
        .json()
        .await
        .expect("order");
    assert_eq!(placed["status"], "PENDING", "held: {placed}");
    payments.holding().await;
    shop.orders = shop_orders;
    (shop, stuck, placed, sku, before)
}

/// Another orders in `shop`, set up with `service`, whose calls are neither
/// retried nor cut short by an attempt timeout: each waits up to its call timeout.
async fn orders_without_retries(shop: &Shop, service: OrdersSettings) -> Spawned {
    let mut settings = shop.env.settings::<OrdersSettings>(Some(&shop.registry));
    settings.service = service;
    settings.common.client.0.insert(
        emporium_config::ClientSettings::DEFAULT.into(),
        emporium_config::CallPolicyOverrides {
            retries: Some(0),
            attempt_timeout_ms: Some(0),
            ..Default::default()
        },
    );
    shop.env.spawn(Orders, settings).await
}

/// `placed` as hal sees it once it is no longer pending.
async fn finished(shop: &Shop, placed: &Value) -> Value {
    let id = placed["id"].as_str().expect("id");
    eventually("the order resumed and finished", || async {
        let o: Value = shop
            .get("hal", &format!("/api/orders/{id}"))
            .await
            .json()
            .await
            .ok()?;
        (o["status"] != "PENDING").then_some(o)
    })
    .await
}

/// The events of an order's timeline.
fn events(order: &Value) -> Vec<&str> {
    order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_stopped_after_the_payment_rolls_forward_when_resumed_without_the_card() {
    // Stuck in the authorization when its orders dies, the order still showing the
    // step it was placed at: the reservation made since moved straight on, unwritten.
    let payments = LosesFirst::new("authorization");
    let (shop, stuck, placed, sku, before) = stuck_checkout(&payments, 1_000).await;
    stuck.crash();

    // The shop's other orders resumes it: payments recorded the authorization, so
    // the sale goes on.
    let order = finished(&shop, &placed).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(shop.available(&sku).await, before - 1, "the unit is sold");
    assert_eq!(
        events(&order),
        [
            "placed",
            "stock_reserved",
            "payment_authorized",
            "confirmed"
        ],
        "{order}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_stopped_in_a_declined_payment_is_cancelled_when_resumed_without_the_card() {
    // As above, but payments declined the card it was stuck on.
    let payments = LosesFirst::recording("authorization", "declined");
    let (shop, stuck, placed, sku, before) = stuck_checkout(&payments, 1_000).await;
    stuck.crash();

    let order = finished(&shop, &placed).await;
    assert_eq!(order["status"], "CANCELLED", "{order}");
    assert_eq!(order["reason"], "payment_declined", "{order}");
    // The reservation made before the card was tried is released.
    assert_eq!(shop.available(&sku).await, before, "stock released");
    assert_eq!(
        events(&order),
        ["placed", "stock_reserved", "payment_declined", "cancelled"],
        "{order}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_answered_after_the_deadline_rolls_forward_rather_than_being_refunded() {
    // The sale's answer never comes (its call times out at 3 s, past the order's
    // 2 s deadline), but payments took the money: the saga asks before it
    // compensates.
    let payments = LosesFirst::recording("authorization", "captured");
    let mut shop = open_shop(Some(payments.clone()), OrdersSettings::default()).await;
    let late = orders_without_retries(
        &shop,
        OrdersSettings {
            saga_timeout_ms: 2_000,
            call_timeout_ms: 3_000,
            checkout_wait_ms: 100,
            ..OrdersSettings::default()
        },
    )
    .await;
    shop.orders = late.url.clone();
    let (sku, before) = shop.stocked(1).await;
    shop.add("hal", &sku, 1).await;
    let placed: Value = shop
        .checkout("hal", Some(&key()), &checkout_body(APPROVE))
        .await
        .json()
        .await
        .expect("order");
    let order = finished(&shop, &placed).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(shop.available(&sku).await, before - 1, "the unit is sold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pivot_is_written_before_anything_is_sold() {
    // Stuck in the capture: the stock is committed, the money not yet taken (and
    // nobody takes the order over meanwhile).
    let payments = LosesFirst::new("capture");
    let (shop, _stuck, placed, _, _) = stuck_checkout(&payments, 60_000).await;
    let id = placed["id"].as_str().expect("id");
    let order: Value = shop
        .get("hal", &format!("/api/orders/{id}"))
        .await
        .json()
        .await
        .expect("order");
    // Written: another orders taking it over can only roll it forward.
    assert_eq!(
        events(&order),
        ["placed", "stock_reserved", "payment_authorized"],
        "{order}"
    );
}
