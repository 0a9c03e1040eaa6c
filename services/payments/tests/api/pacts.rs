//! payments honours what its consumers rely on: every pact naming it
//! (`crates/contracts/pacts/*-payments.json`), replayed against a real instance.

use std::collections::BTreeMap;

use emporium_testkit::TestEnv;
use emporium_testkit::pact::{Substitutions, verify};

use super::{APPROVE, authorization, authorize, call, spawn};

#[tokio::test]
async fn honours_the_pacts_of_its_consumers() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let app = &app;
    let state = |given: String, params: BTreeMap<String, String>| async move {
        let order = params.get("order_id").cloned().expect("order_id");
        let authorized = authorize(app, &order, &authorization(APPROVE, 1999)).await;
        assert_eq!(authorized.status(), 200, "{given}");
        match given.as_str() {
            "an order has an authorized payment" => {}
            "an order has a voided payment" => {
                assert_eq!(call(app, &order, "cancel").await.status(), 200);
            }
            other => panic!("payments knows no provider state `{other}`"),
        }
        Substitutions::new()
    };
    verify("payments", &app.url, state).await;
}
