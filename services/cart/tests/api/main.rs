//! cart's API, over HTTP, against real catalog prices: each shopper's own cart,
//! lines priced by catalog, quantities checked, and prices kept current by
//! catalog's PriceChanged events (through a registry and catalog's feed).

mod pacts;

use emporium_cart::{Cart, CartSettings};
use emporium_catalog::{Catalog, CatalogSettings};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_store::now_ms;
use emporium_testkit::identity::client_as;
use emporium_testkit::{Spawned, TestEnv, as_user, client, eventually, problem, user_id};
use serde_json::{Value, json};

struct World {
    _registry: Spawned,
    catalog: Spawned,
    cart: Spawned,
    _env: TestEnv,
}

async fn world(max_lines: usize) -> World {
    world_with(max_lines, CartSettings::default().checkout_sweep_ms).await
}

async fn world_with(max_lines: usize, checkout_sweep_ms: u64) -> World {
    let env = TestEnv::new();
    let registry = env
        .spawn(RegistryService, env.settings::<RegistrySettings>(None))
        .await;
    let catalog = env
        .spawn(Catalog, env.settings::<CatalogSettings>(Some(&registry)))
        .await;
    let mut settings = env.settings::<CartSettings>(Some(&registry));
    settings.service.max_lines = max_lines;
    settings.service.checkout_sweep_ms = checkout_sweep_ms;
    let cart = env.spawn(Cart, settings).await;
    World {
        _registry: registry,
        catalog,
        cart,
        _env: env,
    }
}

impl World {
    /// The first `n` products of the seeded catalog.
    async fn products(&self, n: usize) -> Vec<Value> {
        emporium_testkit::products(&self.catalog.url, n).await
    }

    async fn add(&self, user: &str, sku: &str, quantity: i64) -> reqwest::Response {
        as_user(client().post(self.cart.at("/api/cart/items")), user, "")
            .json(&json!({"sku": sku, "quantity": quantity}))
            .send()
            .await
            .expect("add")
    }

    /// An add carrying `key` as its Idempotency-Key.
    async fn add_keyed(
        &self,
        user: &str,
        key: &str,
        sku: &str,
        quantity: i64,
    ) -> reqwest::Response {
        as_user(client().post(self.cart.at("/api/cart/items")), user, "")
            .header("idempotency-key", key)
            .json(&json!({"sku": sku, "quantity": quantity}))
            .send()
            .await
            .expect("add")
    }

    /// orders' take of `user`'s cart for `order_id` under `key`, expiring in an hour.
    async fn take(&self, user: &str, key: &str, order_id: &str) -> Value {
        self.take_until(user, key, order_id, now_ms() + 3_600_000)
            .await
    }

    async fn take_until(&self, user: &str, key: &str, order_id: &str, expires_ms: i64) -> Value {
        let r = client_as("orders")
            .post(
                self.cart
                    .at(&format!("/internal/carts/{}/checkouts", user_id(user))),
            )
            .json(&json!({"order_id": order_id, "idempotency_key": key, "expires_ms": expires_ms}))
            .send()
            .await
            .expect("take");
        assert_eq!(r.status(), 200);
        r.json().await.expect("taken")
    }

    /// orders giving back what `order_id` took: whether this call did.
    async fn give_back(&self, order_id: &str) -> bool {
        let r = client_as("orders")
            .post(
                self.cart
                    .at(&format!("/internal/cart-checkouts/{order_id}/return")),
            )
            .send()
            .await
            .expect("give back");
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.expect("answer");
        answer["returned"].as_bool().expect("returned")
    }

    async fn view(&self, user: &str) -> Value {
        let r = as_user(client().get(self.cart.at("/api/cart")), user, "")
            .send()
            .await
            .expect("view");
        assert_eq!(r.status(), 200);
        r.json().await.expect("cart")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_priced_by_catalog_and_each_shopper_has_their_own_cart() {
    let w = world(50).await;
    let products = w.products(2).await;
    let (a, b) = (&products[0], &products[1]);
    let sku_a = a["sku"].as_str().expect("sku");
    let sku_b = b["sku"].as_str().expect("sku");
    assert_eq!(w.add("ada", sku_a, 2).await.status(), 200);
    assert_eq!(w.add("ada", sku_b, 1).await.status(), 200);
    // Adding again adds to the line.
    let cart: Value = w.add("ada", sku_a, 1).await.json().await.expect("cart");
    assert_eq!(cart["item_count"], 4);
    let line = cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|l| l["sku"] == sku_a)
        .expect("line");
    assert_eq!(line["quantity"], 3);
    assert_eq!(line["unit_price"], a["price"]);
    assert_eq!(line["name"], a["name"]);
    let price = |p: &Value| p["price"]["amount"].as_i64().expect("amount");
    assert_eq!(cart["total"]["amount"], price(a) * 3 + price(b));
    assert_eq!(cart["total"]["currency"], a["price"]["currency"]);

    // Another shopper sees an empty cart; nobody sees one without an identity.
    let other = w.view("bob").await;
    assert_eq!(other["items"], json!([]));
    assert_eq!(other["total"], Value::Null);
    problem(
        client()
            .get(w.cart.at("/api/cart"))
            .send()
            .await
            .expect("send"),
        401,
    )
    .await;

    // The internal snapshot orders takes at checkout.
    let snapshot: Value = client()
        .get(w.cart.at(&format!("/internal/carts/{}", user_id("ada"))))
        .send()
        .await
        .expect("snapshot")
        .json()
        .await
        .expect("json");
    assert_eq!(snapshot["user_id"], user_id("ada"));
    assert_eq!(snapshot["total"], cart["total"]["amount"]);
    assert_eq!(snapshot["lines"].as_array().expect("lines").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantities_change_lines_go_and_bad_input_is_refused() {
    let w = world(2).await;
    let products = w.products(3).await;
    let sku = products[0]["sku"].as_str().expect("sku");
    assert_eq!(w.add("cy", sku, 1).await.status(), 200);
    let url = w.cart.at(&format!("/api/cart/items/{sku}"));
    let changed = as_user(client().patch(&url), "cy", "")
        .json(&json!({"quantity": 5}))
        .send()
        .await
        .expect("patch");
    let changed: Value = changed.json().await.expect("cart");
    assert_eq!(changed["items"][0]["quantity"], 5);

    let zero = w.add("cy", sku, 0).await;
    assert_eq!(problem(zero, 422).await.errors[0].field, "quantity");
    let unknown = w.add("cy", "NOPE-00000", 1).await;
    assert_eq!(problem(unknown, 422).await.errors[0].field, "sku");
    let malformed = w.add("cy", "not a sku!", 1).await;
    assert_eq!(problem(malformed, 422).await.errors[0].field, "sku");
    // Two lines at most here: the third product does not fit.
    assert_eq!(
        w.add("cy", products[1]["sku"].as_str().expect("sku"), 1)
            .await
            .status(),
        200
    );
    let full = w
        .add("cy", products[2]["sku"].as_str().expect("sku"), 1)
        .await;
    assert!(problem(full, 422).await.errors[0].message.contains("full"));

    let removed = as_user(client().delete(&url), "cy", "")
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 200);
    assert_eq!(w.view("cy").await["item_count"], 1);
    let gone = as_user(client().delete(&url), "cy", "")
        .send()
        .await
        .expect("delete");
    problem(gone, 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_change_in_catalog_reprices_the_cart() {
    let w = world(50).await;
    let product = w.products(1).await.remove(0);
    let sku = product["sku"].as_str().expect("sku");
    assert_eq!(w.add("dee", sku, 2).await.status(), 200);
    let new_price = product["price"]["amount"].as_i64().expect("amount") + 100;
    let r = as_user(
        client().patch(w.catalog.at(&format!(
            "/api/catalog/products/{}",
            product["id"].as_str().expect("id")
        ))),
        "admin-1",
        "admin",
    )
    .json(&json!({"price": {"amount": new_price, "currency": product["price"]["currency"]}}))
    .send()
    .await
    .expect("patch");
    assert_eq!(r.status(), 200);
    eventually("the cart repriced", || async {
        let cart = w.view("dee").await;
        (cart["items"][0]["unit_price"]["amount"] == new_price
            && cart["total"]["amount"] == new_price * 2)
            .then_some(())
    })
    .await;
}

/// The quantity of each SKU in a cart view.
fn quantities(cart: &Value) -> Vec<(String, i64)> {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().expect("sku").to_string(),
                l["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_sent_again_with_its_key_adds_nothing_more() {
    let w = world(50).await;
    let products = w.products(2).await;
    let (sku, other) = (
        products[0]["sku"].as_str().expect("sku"),
        products[1]["sku"].as_str().expect("sku"),
    );
    let first = w.add_keyed("dee", "add-1", sku, 2).await;
    assert_eq!(first.status(), 200);
    // The repeat (a retry after a lost answer) answers with the cart as it is.
    let again: Value = w
        .add_keyed("dee", "add-1", sku, 2)
        .await
        .json()
        .await
        .expect("cart");
    assert_eq!(quantities(&again), vec![(sku.to_string(), 2)]);
    // Another key is another add; the same key is another shopper's own.
    assert_eq!(w.add_keyed("dee", "add-2", sku, 2).await.status(), 200);
    assert_eq!(w.add_keyed("eve", "add-1", sku, 2).await.status(), 200);
    assert_eq!(quantities(&w.view("dee").await), vec![(sku.to_string(), 4)]);
    assert_eq!(quantities(&w.view("eve").await), vec![(sku.to_string(), 2)]);
    // A key used for another add is refused rather than guessed at.
    let reused = w.add_keyed("dee", "add-1", other, 2).await;
    assert_eq!(problem(reused, 422).await.code, "idempotency_key_reused");
    let reused = w.add_keyed("dee", "add-1", sku, 3).await;
    assert_eq!(problem(reused, 422).await.code, "idempotency_key_reused");
    for bad in ["", &"k".repeat(65), "two words"] {
        let r = w.add_keyed("dee", bad, sku, 1).await;
        assert_eq!(
            problem(r, 400).await.code,
            "idempotency_key_invalid",
            "{bad:?}"
        );
    }
    // A refused add records no key: once it fits, the same key adds.
    let too_many = w.add_keyed("dee", "add-3", sku, 99).await;
    assert_eq!(problem(too_many, 422).await.errors[0].field, "quantity");
    assert_eq!(w.add_keyed("dee", "add-3", sku, 95).await.status(), 200);
    assert_eq!(
        quantities(&w.view("dee").await),
        vec![(sku.to_string(), 99)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_takes_the_lines_once_and_a_cancelled_one_gives_them_back() {
    let w = world(50).await;
    let products = w.products(2).await;
    let sku_a = products[0]["sku"].as_str().expect("sku");
    let sku_b = products[1]["sku"].as_str().expect("sku");
    assert_eq!(w.add("ida", sku_a, 2).await.status(), 200);
    assert_eq!(w.add("ida", sku_b, 1).await.status(), 200);
    let before = w.view("ida").await;

    // The checkout takes every line, priced; the cart is empty at once.
    let taken = w.take("ida", "key-1", "order-1").await;
    assert_eq!(taken["order_id"], "order-1");
    assert_eq!(taken["user_id"], user_id("ida"));
    assert_eq!(taken["total"], before["total"]["amount"]);
    let lines: Vec<(String, i64)> = taken["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().expect("sku").to_string(),
                l["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect();
    assert_eq!(lines, quantities(&before));
    assert_eq!(w.view("ida").await["item_count"], 0);

    // The same key again (a retry): what it took, for the order it took it for.
    let again = w.take("ida", "key-1", "order-1b").await;
    assert_eq!(again["order_id"], "order-1");
    assert_eq!(again["lines"], taken["lines"]);
    // Another key (a second checkout while the first is under way): nothing to buy.
    let second = w.take("ida", "key-2", "order-2").await;
    assert_eq!(second["lines"], json!([]));
    assert_eq!(second["total"], 0);

    // Something added since, then the order is cancelled: its lines come back,
    // merged with the new ones.
    assert_eq!(w.add("ida", sku_a, 1).await.status(), 200);
    assert!(w.give_back("order-1").await, "put back");
    let back = quantities(&w.view("ida").await);
    assert_eq!(
        back,
        vec![(sku_a.to_string(), 3), (sku_b.to_string(), 1)],
        "merged, in the order they were first added"
    );
    // Once only: a repeated return (the saga's and the event's) adds nothing.
    assert!(!w.give_back("order-1").await);
    assert!(!w.give_back("never-took").await);
    assert_eq!(quantities(&w.view("ida").await), back);
    // A key whose lines came back (its order never went through) takes again.
    let retaken = w.take("ida", "key-1", "order-1c").await;
    assert_eq!(retaken["order_id"], "order-1c");
    assert_eq!(retaken["lines"].as_array().expect("lines").len(), 2);
    assert!(w.give_back("order-1c").await);
    assert_eq!(quantities(&w.view("ida").await), back);

    // A line never goes over 99 when its units come back.
    let taken = w.take("ida", "key-3", "order-3").await;
    assert_eq!(taken["lines"].as_array().expect("lines").len(), 2);
    assert_eq!(w.add("ida", sku_a, 98).await.status(), 200);
    assert!(w.give_back("order-3").await);
    assert_eq!(quantities(&w.view("ida").await)[0], (sku_a.to_string(), 99));

    // Only orders takes carts.
    let r = client_as("payments")
        .post(
            w.cart
                .at(&format!("/internal/carts/{}/checkouts", user_id("ida"))),
        )
        .json(&json!({"order_id": "o", "idempotency_key": "k", "expires_ms": 0}))
        .send()
        .await
        .expect("take");
    assert_eq!(r.status(), 403);
    assert_eq!(w.view("ida").await["item_count"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_taken_for_an_order_that_never_came_are_given_back_when_the_take_expires() {
    let w = world_with(50, 50).await;
    let sku = w.products(1).await[0]["sku"]
        .as_str()
        .expect("sku")
        .to_string();
    assert_eq!(w.add("jo", &sku, 2).await.status(), 200);
    // Taken for an order that lasts: still out of the cart after several sweeps.
    let kept = w.take("jo", "key-1", "order-1").await;
    assert_eq!(kept["lines"][0]["quantity"], 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.view("jo").await["item_count"], 0);
    assert!(w.give_back("order-1").await);

    // Taken for an order whose deadline passed without an outcome: back by itself.
    let taken = w.take_until("jo", "key-2", "order-2", now_ms() - 1).await;
    assert_eq!(taken["lines"][0]["quantity"], 2);
    eventually("the expired take given back", || async {
        (w.view("jo").await["item_count"] == 2).then_some(())
    })
    .await;
    assert!(!w.give_back("order-2").await, "given back once");
    // Its key may take again (the order it was for was never placed).
    let retaken = w.take("jo", "key-2", "order-2b").await;
    assert_eq!(retaken["order_id"], "order-2b");
    assert_eq!(retaken["lines"][0]["quantity"], 2);
}
