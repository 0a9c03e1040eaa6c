//! cart's API, over HTTP, against real catalog prices: each shopper's own cart,
//! lines priced by catalog, quantities checked, and prices kept current by
//! catalog's PriceChanged events (through a registry and catalog's feed).

mod pacts;

use emporium_cart::{Cart, CartSettings};
use emporium_catalog::{Catalog, CatalogSettings};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_testkit::{Spawned, TestEnv, as_user, client, eventually, problem, user_id};
use serde_json::{Value, json};

struct World {
    _registry: Spawned,
    catalog: Spawned,
    cart: Spawned,
    _env: TestEnv,
}

async fn world(max_lines: usize) -> World {
    let env = TestEnv::new();
    let registry = env
        .spawn(RegistryService, env.settings::<RegistrySettings>(None))
        .await;
    let catalog = env
        .spawn(Catalog, env.settings::<CatalogSettings>(Some(&registry)))
        .await;
    let mut settings = env.settings::<CartSettings>(Some(&registry));
    settings.service.max_lines = max_lines;
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
