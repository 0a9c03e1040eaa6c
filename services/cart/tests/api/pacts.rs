//! cart's contracts: as a provider, it honours what its consumers rely on (every
//! pact naming it, `crates/contracts/pacts/*-cart.json`, replayed against a real
//! instance); as a consumer, what it relies on from catalog, stated by running
//! cart with its calls answered from the pact (`cart-catalog.json`).

use std::collections::BTreeMap;

use emporium_cart::{Cart, CartSettings};
use emporium_testkit::pact::{Interaction, Pacts, Substitutions, verify};
use emporium_testkit::{TestEnv, as_user, client, problem, user_id};
use serde_json::{Value, json};

use super::world;

/// A shopper no interaction has used yet (each starts with an empty cart).
fn fresh_shopper() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("pact-shopper-{n}")
}

const SKU: &str = "TEA-EARL-GREY";
const PRODUCT_ID: &str = "0192f4a4-0000-7000-8000-00000000c0de";
const UNKNOWN_SKU: &str = "NO-SUCH-SKU";

/// An add prices its line from catalog's product (id, SKU, name, price), and an
/// SKU catalog does not know is the shopper's mistake (422), not an outage.
#[tokio::test]
async fn adding_a_line_relies_on_catalog_for_the_product() {
    let env = TestEnv::new();
    let mut pacts = Pacts::declare("cart", &["catalog"]);
    let cart = env
        .spawn_calling(Cart, env.settings::<CartSettings>(None), pacts.transport())
        .await;
    pacts.interaction(
        "catalog",
        Interaction::new("a product by its SKU")
            .given("a product is on sale")
            .param("sku", SKU)
            .param("product_id", PRODUCT_ID)
            .request("GET", &format!("/api/catalog/products/sku/{SKU}"), None)
            .responds(
                200,
                json!({
                    "id": PRODUCT_ID,
                    "sku": SKU,
                    "name": "Earl Grey, loose leaf",
                    "price": { "amount": 1250, "currency": "EUR" },
                }),
                &["/id", "/sku"],
            ),
    );
    pacts.interaction(
        "catalog",
        Interaction::new("a SKU no product has")
            .given("no product has a SKU")
            .param("sku", UNKNOWN_SKU)
            .request(
                "GET",
                &format!("/api/catalog/products/sku/{UNKNOWN_SKU}"),
                None,
            )
            .responds(404, json!({ "status": 404 }), &[]),
    );
    let add = |sku: &'static str| {
        as_user(
            client().post(cart.at("/api/cart/items")),
            "pact-shopper",
            "",
        )
        .json(&json!({ "sku": sku, "quantity": 2 }))
        .send()
    };
    let r = add(SKU).await.expect("add");
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.expect("cart");
    let line = &view["items"][0];
    assert_eq!(line["sku"], SKU, "{view}");
    assert_eq!(line["name"], "Earl Grey, loose leaf", "{view}");
    assert_eq!(line["unit_price"]["amount"], 1250, "{view}");
    assert_eq!(line["line_total"]["amount"], 2500, "{view}");
    let refused = problem(add(UNKNOWN_SKU).await.expect("add"), 422).await;
    assert_eq!(refused.errors[0].field, "sku", "{refused:?}");
    pacts.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_the_pacts_of_its_consumers() {
    let w = world(50).await;
    let w = &w;
    let state = |given: String, params: BTreeMap<String, String>| async move {
        let subs: Substitutions = match given.as_str() {
            "a shopper has 2 of a SKU in the cart" => {
                let product = w.products(1).await.remove(0);
                let sku = product["sku"].as_str().expect("sku").to_string();
                let shopper = fresh_shopper();
                assert_eq!(w.add(&shopper, &sku, 2).await.status(), 200);
                vec![("user_id", user_id(&shopper)), ("sku", sku)]
            }
            "a SKU is on sale" => {
                let product = w.products(1).await.remove(0);
                let sku = product["sku"].as_str().expect("sku").to_string();
                let shopper = fresh_shopper();
                let mut subs = vec![("sku", sku)];
                if params.contains_key("user_id") {
                    subs.push(("user_id", user_id(&shopper)));
                }
                subs
            }
            "an order took a shopper's cart" => {
                let order_id = params.get("order_id").expect("order_id").clone();
                let product = w.products(1).await.remove(0);
                let sku = product["sku"].as_str().expect("sku").to_string();
                let shopper = fresh_shopper();
                assert_eq!(w.add(&shopper, &sku, 1).await.status(), 200);
                let taken = w.take(&shopper, &order_id, &order_id).await;
                assert_eq!(taken["lines"][0]["quantity"], 1, "{taken}");
                vec![("order_id", order_id)]
            }
            other => panic!("cart knows no provider state `{other}`"),
        };
        subs
    };
    verify("cart", &w.cart.url, state).await;
}
