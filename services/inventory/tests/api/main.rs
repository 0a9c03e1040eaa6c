//! inventory's API, over HTTP: stock created from catalog's real events (through a
//! registry and catalog's feed), public reads, admin restocks, and the internal
//! reservation calls the checkout saga makes.

mod pacts;

use emporium_catalog::{Catalog, CatalogSettings};
use emporium_inventory::{Inventory, InventorySettings};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_testkit::{
    Spawned, TestEnv, as_user, available, client, get_problem, problem, stocked,
};
use serde_json::{Value, json};

struct World {
    _registry: Spawned,
    catalog: Spawned,
    inventory: Spawned,
    _env: TestEnv,
}

async fn world() -> World {
    let env = TestEnv::new();
    let registry = env
        .spawn(RegistryService, env.settings::<RegistrySettings>(None))
        .await;
    let catalog = env
        .spawn(Catalog, env.settings::<CatalogSettings>(Some(&registry)))
        .await;
    let inventory = env
        .spawn(
            Inventory,
            env.settings::<InventorySettings>(Some(&registry)),
        )
        .await;
    World {
        _registry: registry,
        catalog,
        inventory,
        _env: env,
    }
}

impl World {
    async fn stocked(&self, min: i64) -> (String, i64) {
        stocked(&self.catalog.url, &self.inventory.url, min).await
    }

    async fn available(&self, sku: &str) -> i64 {
        available(&self.inventory.url, sku).await
    }

    async fn reserve(&self, order: &str, lines: Value) -> reqwest::Response {
        client()
            .put(
                self.inventory
                    .at(&format!("/internal/reservations/{order}")),
            )
            .json(&json!({ "lines": lines }))
            .send()
            .await
            .expect("reserve")
    }

    async fn post(&self, path: &str) -> reqwest::Response {
        client()
            .post(self.inventory.at(path))
            .send()
            .await
            .expect("send")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_comes_from_catalog_events_and_unknown_skus_are_404() {
    let w = world().await;
    let (sku, available) = w.stocked(1).await;
    assert!(available > 0);
    assert_eq!(w.available(&sku).await, available, "reads are stable");
    // A SKU is read in upper case, as catalog spells it.
    let lower: Value = client()
        .get(
            w.inventory
                .at(&format!("/api/inventory/{}", sku.to_lowercase())),
        )
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(lower["sku"], sku.as_str());
    let p = get_problem(&w.inventory.at("/api/inventory/NOPE-00000"), 404).await;
    assert_eq!(p.code, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_restock_and_counts_must_be_valid() {
    let w = world().await;
    let (sku, _) = w.stocked(1).await;
    let url = w.inventory.at(&format!("/api/inventory/{sku}"));
    let anonymous = client()
        .put(&url)
        .json(&json!({"available": 7}))
        .send()
        .await
        .expect("put");
    problem(anonymous, 401).await;
    let shopper = as_user(client().put(&url), "u-1", "")
        .json(&json!({"available": 7}))
        .send()
        .await
        .expect("put");
    problem(shopper, 403).await;
    let negative = as_user(client().put(&url), "u-admin", "admin")
        .json(&json!({"available": -1}))
        .send()
        .await
        .expect("put");
    let p = problem(negative, 422).await;
    assert_eq!(p.errors[0].field, "available");
    let ok = as_user(client().put(&url), "u-admin", "admin")
        .json(&json!({"available": 7}))
        .send()
        .await
        .expect("put");
    assert_eq!(ok.status(), 200);
    assert_eq!(w.available(&sku).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_holds_units_once_and_release_gives_them_back() {
    let w = world().await;
    let (sku, before) = w.stocked(3).await;
    let lines = json!([{"sku": sku, "quantity": 2}]);
    let r = w.reserve("order-1", lines.clone()).await;
    assert_eq!(r.status(), 200);
    let reservation: Value = r.json().await.expect("json");
    assert_eq!(reservation["status"], "reserved");
    assert_eq!(w.available(&sku).await, before - 2);
    // The saga retries: the same order reserves once.
    let again: Value = w
        .reserve("order-1", lines)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["status"], "reserved");
    assert_eq!(w.available(&sku).await, before - 2);
    let shown: Value = client()
        .get(w.inventory.at("/internal/reservations/order-1"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["order_id"], "order-1");
    assert_eq!(
        w.post("/internal/reservations/order-1/release")
            .await
            .status(),
        200
    );
    assert_eq!(w.available(&sku).await, before);
    // Released twice is still released once.
    assert_eq!(
        w.post("/internal/reservations/order-1/release")
            .await
            .status(),
        200
    );
    assert_eq!(w.available(&sku).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_units_reject_the_whole_order_and_commit_sells_until_released() {
    let w = world().await;
    let (sku, before) = w.stocked(2).await;
    let r = w
        .reserve("greedy", json!([{"sku": sku, "quantity": before + 1}]))
        .await;
    let rejected: Value = r.json().await.expect("json");
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["unavailable"], json!([sku]));
    assert_eq!(w.available(&sku).await, before, "nothing held");

    let r = w
        .reserve("buyer", json!([{"sku": sku, "quantity": 1}]))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        w.post("/internal/reservations/buyer/commit").await.status(),
        200
    );
    assert_eq!(w.available(&sku).await, before - 1, "sold");
    // Committing again changes nothing; a release after the commit (a refunded
    // order) returns the unit, once.
    assert_eq!(
        w.post("/internal/reservations/buyer/commit").await.status(),
        200
    );
    assert_eq!(w.available(&sku).await, before - 1);
    assert_eq!(
        w.post("/internal/reservations/buyer/release")
            .await
            .status(),
        200
    );
    assert_eq!(w.available(&sku).await, before);
    assert_eq!(
        w.post("/internal/reservations/buyer/release")
            .await
            .status(),
        200
    );
    assert_eq!(w.available(&sku).await, before);
    // A release that comes before its reservation (a saga compensating first)
    // refuses the late reservation.
    assert_eq!(
        w.post("/internal/reservations/late/release").await.status(),
        200
    );
    let late: Value = w
        .reserve("late", json!([{"sku": sku, "quantity": 1}]))
        .await
        .json()
        .await
        .expect("json");
    assert_ne!(late["status"], "reserved", "{late}");
    assert_eq!(w.available(&sku).await, before);
    let p = problem(w.post("/internal/reservations/nobody/commit").await, 404).await;
    assert_eq!(p.code, "not_found");
    let bad = w.reserve("bad", json!([{"sku": sku, "quantity": 0}])).await;
    problem(bad, 422).await;
}
