//! catalog honours what its consumers rely on: every pact naming it
//! (`crates/contracts/pacts/*-catalog.json`), replayed against a real instance
//! with its seeded products.

use std::collections::BTreeMap;

use emporium_testkit::TestEnv;
use emporium_testkit::pact::{Substitutions, verify};

use super::{page, spawn};

#[tokio::test]
async fn honours_the_pacts_of_its_consumers() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let app = &app;
    let state = |given: String, params: BTreeMap<String, String>| async move {
        // The seeded product an interaction acts on, and the shop's category and
        // currency for a product it makes.
        let product = page(app, "?limit=1").await.items.remove(0);
        let mut subs: Substitutions = match given.as_str() {
            "a product is on sale" => vec![("sku", product.sku), ("product_id", product.id)],
            "products are on sale" => vec![],
            // The example SKU is one no seeded product has.
            "no product has a SKU" => vec![],
            other => panic!("catalog knows no provider state `{other}`"),
        };
        subs.extend([
            ("category", product.category),
            ("currency", product.price.currency),
        ]);
        subs.retain(|(name, _)| params.contains_key(*name));
        subs
    };
    verify("catalog", &app.url, state).await;
}
