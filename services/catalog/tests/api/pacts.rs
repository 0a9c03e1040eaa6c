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
    let state = |given: String, _: BTreeMap<String, String>| async move {
        let subs: Substitutions = match given.as_str() {
            "a product is on sale" => {
                let product = page(app, "?limit=1").await.items.remove(0);
                vec![("sku", product.sku), ("product_id", product.id)]
            }
            "products are on sale" => vec![],
            // The example SKU is one no seeded product has.
            "no product has a SKU" => vec![],
            other => panic!("catalog knows no provider state `{other}`"),
        };
        subs
    };
    verify("catalog", &app.url, state).await;
}
