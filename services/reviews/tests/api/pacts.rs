//! reviews honours what its consumers rely on: every pact naming it
//! (`crates/contracts/pacts/*-reviews.json`), replayed against a real instance.

use std::collections::BTreeMap;

use emporium_testkit::pact::{Substitutions, verify};
use emporium_testkit::user_id;

use super::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_the_pacts_of_its_consumers() {
    let w = world().await;
    let w = &w;
    let state = |given: String, params: BTreeMap<String, String>| async move {
        let subs: Substitutions = match given.as_str() {
            "a product has a review" => {
                // A product of this interaction's own, reviewed by a buyer.
                let product = uuid::Uuid::now_v7().to_string();
                let buyer = format!("pact-buyer-{}", &product[24..]);
                w.buyer(&buyer, &product).await;
                let posted = w.post(&buyer, &product, 4, "A proper cup").await;
                assert_eq!(posted.status(), 201);
                let review: serde_json::Value = posted.json().await.expect("the review");
                let id = review["id"].as_str().expect("its id").to_string();
                let mut subs = vec![("product_id", product), ("review_id", id)];
                subs.retain(|(name, _)| params.contains_key(*name));
                subs
            }
            "a shopper bought a product" => {
                let product = uuid::Uuid::now_v7().to_string();
                let buyer = format!("pact-buyer-{}", &product[24..]);
                w.buyer(&buyer, &product).await;
                vec![("user_id", user_id(&buyer)), ("product_id", product)]
            }
            other => panic!("reviews knows no provider state `{other}`"),
        };
        subs
    };
    verify("reviews", &w.reviews.url, state).await;
}
