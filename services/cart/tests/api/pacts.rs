//! cart honours what its consumers rely on: every pact naming it
//! (`crates/contracts/pacts/*-cart.json`), replayed against a real instance.

use std::collections::BTreeMap;

use emporium_testkit::pact::{Substitutions, verify};
use emporium_testkit::user_id;

use super::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_the_pacts_of_its_consumers() {
    let w = world(50).await;
    let w = &w;
    let state = |given: String, params: BTreeMap<String, String>| async move {
        let subs: Substitutions = match given.as_str() {
            "a shopper has 2 of a SKU in the cart" => {
                let product = w.products(1).await.remove(0);
                let sku = product["sku"].as_str().expect("sku").to_string();
                assert_eq!(w.add("pact-shopper", &sku, 2).await.status(), 200);
                vec![("user_id", user_id("pact-shopper")), ("sku", sku)]
            }
            "an order took a shopper's cart" => {
                let order_id = params.get("order_id").expect("order_id").clone();
                let product = w.products(1).await.remove(0);
                let sku = product["sku"].as_str().expect("sku").to_string();
                assert_eq!(w.add("pact-taker", &sku, 1).await.status(), 200);
                let taken = w.take("pact-taker", &order_id, &order_id).await;
                assert_eq!(taken["lines"][0]["quantity"], 1, "{taken}");
                vec![("order_id", order_id)]
            }
            other => panic!("cart knows no provider state `{other}`"),
        };
        subs
    };
    verify("cart", &w.cart.url, state).await;
}
