//! inventory honours what its consumers rely on: every pact naming it
//! (`crates/contracts/pacts/*-inventory.json`), replayed against a real instance.

use std::collections::BTreeMap;

use emporium_testkit::pact::{Substitutions, verify};
use emporium_testkit::{as_user, client};
use serde_json::json;

use super::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_the_pacts_of_its_consumers() {
    let w = world().await;
    let w = &w;
    let state = |given: String, params: BTreeMap<String, String>| async move {
        let order = || params.get("order_id").cloned().expect("order_id");
        let subs: Substitutions = match given.as_str() {
            "a SKU has 2 units or more" => vec![("sku", w.stocked(2).await.0)],
            "a SKU has fewer than 99 units" => {
                let (sku, _) = w.stocked(1).await;
                let url = w.inventory.at(&format!("/api/inventory/{sku}"));
                let r = as_user(client().put(&url), "u-admin", "admin")
                    .json(&json!({ "available": 5 }))
                    .send()
                    .await
                    .expect("restock");
                assert_eq!(r.status(), 200);
                vec![("sku", sku)]
            }
            "an order holds units" => {
                let (sku, _) = w.stocked(1).await;
                let r = w
                    .reserve(&order(), json!([{ "sku": sku, "quantity": 1 }]))
                    .await;
                assert_eq!(r.status(), 200);
                vec![]
            }
            other => panic!("inventory knows no provider state `{other}`"),
        };
        subs
    };
    verify("inventory", &w.inventory.url, state).await;
}
