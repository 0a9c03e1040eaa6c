//! catalog's API, over HTTP, against a real SQLite database in a temp folder.

mod pacts;

use std::collections::HashSet;

use emporium_catalog::{Catalog, CatalogSettings, ProductPage, ProductView};
use emporium_contracts::headers;
use emporium_testkit::{Spawned, TestEnv, client, get_problem, problem};
use serde_json::{Value, json};

const ADMIN: &str = "0190c7a2-6f0e-7c3e-9a8b-1234567890ab";

async fn spawn(env: &TestEnv) -> Spawned {
    env.spawn(Catalog, env.settings::<CatalogSettings>(None))
        .await
}

/// A request as the gateway would forward it for a user with `roles`.
fn as_user(req: reqwest::RequestBuilder, roles: &str) -> reqwest::RequestBuilder {
    req.header(headers::USER_ID, ADMIN)
        .header(headers::USER_ROLES, roles)
}

async fn page(app: &Spawned, query: &str) -> ProductPage {
    let r = client()
        .get(app.at(&format!("/api/catalog/products{query}")))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "{query}");
    r.json().await.expect("page")
}

#[tokio::test]
async fn seeds_a_thousand_products_and_pages_through_all_of_them() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let first = page(&app, "").await;
    assert!(first.total >= 1000);
    assert_eq!(first.items.len(), 20, "default page size");
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut last_price = i64::MIN;
    loop {
        let q = match &cursor {
            Some(c) => format!("?sort=price&limit=100&cursor={c}"),
            None => "?sort=price&limit=100".into(),
        };
        let p = page(&app, &q).await;
        for item in &p.items {
            assert!(item.price.amount >= last_price, "sorted by price");
            last_price = item.price.amount;
            assert!(seen.insert(item.id.clone()), "no product twice");
        }
        match p.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, first.total, "every product exactly once");
}

#[tokio::test]
async fn filters_and_sorts() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let p = page(
        &app,
        "?category=books&min_price=1000&max_price=3000&sort=-price&limit=100",
    )
    .await;
    assert!(!p.items.is_empty());
    assert_eq!(p.items.len() as i64, p.total.min(100));
    let mut previous = i64::MAX;
    for item in &p.items {
        assert_eq!(item.category, "books");
        assert!((1000..=3000).contains(&item.price.amount));
        assert!(item.price.amount <= previous, "descending");
        previous = item.price.amount;
    }
    let by_name = page(&app, "?sort=name&limit=50").await;
    let names: Vec<_> = by_name.items.iter().map(|i| i.name.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let none = page(&app, "?category=no-such-category").await;
    assert_eq!(none.total, 0);
    assert!(none.items.is_empty() && none.next.is_none());

    let cats: Value = client()
        .get(app.at("/api/catalog/categories"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let items = cats["items"].as_array().expect("items");
    assert!(items.len() >= 10);
    let total: i64 = items
        .iter()
        .map(|c| c["product_count"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(total, page(&app, "").await.total);
}

#[tokio::test]
async fn bad_listing_parameters_are_400_problems() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=-1", "limit"),
        ("?min_price=-5", "min_price"),
        ("?max_price=99999999999", "max_price"),
        ("?sort=popularity", "sort"),
        ("?cursor=garbage", "cursor"),
        ("?category=Not%20A%20Slug", "category"),
        ("?colour=red", "colour"),
    ] {
        let r = client()
            .get(app.at(&format!("/api/catalog/products{query}")))
            .send()
            .await
            .expect("send");
        let p = problem(r, 400).await;
        assert_eq!(
            p.errors.first().map(|e| e.field.as_str()),
            Some(field),
            "{query}: {p:?}"
        );
    }
    let price_cursor = page(&app, "?sort=price&limit=1").await.next.expect("next");
    let r = client()
        .get(app.at(&format!(
            "/api/catalog/products?sort=name&cursor={price_cursor}"
        )))
        .send()
        .await
        .expect("send");
    problem(r, 400).await;
    // A price range nothing is in, or an empty cursor (a form's blank field),
    // is a listing like any other.
    let nothing = page(&app, "?min_price=500&max_price=100&cursor=").await;
    assert!(nothing.items.is_empty() && nothing.next.is_none());
}

#[tokio::test]
async fn products_by_id_and_sku() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let any = page(&app, "?limit=1").await.items.remove(0);
    let by_id: ProductView = client()
        .get(app.at(&format!("/api/catalog/products/{}", any.id)))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(by_id.sku, any.sku);
    let by_sku: ProductView = client()
        .get(app.at(&format!(
            "/api/catalog/products/sku/{}",
            any.sku.to_lowercase()
        )))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(by_sku.id, any.id);
    let missing = uuid::Uuid::now_v7();
    get_problem(&app.at(&format!("/api/catalog/products/{missing}")), 404).await;
    get_problem(&app.at("/api/catalog/products/not-a-uuid"), 400).await;
    get_problem(&app.at("/api/catalog/products/sku/ZZZ-99999"), 404).await;
    get_problem(&app.at("/api/catalog/products/sku/!!"), 400).await;
    let img = client()
        .get(app.at(&format!("/api/catalog/images/{}", any.sku)))
        .send()
        .await
        .expect("send");
    assert_eq!(img.status(), 200);
    assert_eq!(img.headers()["content-type"], "image/svg+xml");
    assert!(img.text().await.expect("svg").starts_with("<svg"));
}

fn new_product() -> Value {
    json!({
        "sku": "TST-00001",
        "name": "Test Lamp",
        "description": "A lamp for tests.",
        "category": "home-kitchen",
        "price": {"amount": 2599, "currency": "USD"},
        "attributes": {"color": "Red"}
    })
}

#[tokio::test]
async fn admins_create_and_update_products() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let url = app.at("/api/catalog/products");
    problem(
        client()
            .post(&url)
            .json(&new_product())
            .send()
            .await
            .expect("send"),
        401,
    )
    .await;
    problem(
        as_user(client().post(&url), "customer")
            .json(&new_product())
            .send()
            .await
            .expect("send"),
        403,
    )
    .await;

    let r = as_user(client().post(&url), "customer,admin")
        .json(&new_product())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let created: ProductView = r.json().await.expect("json");
    assert_eq!(location, format!("/api/catalog/products/{}", created.id));
    assert_eq!(created.price.amount, 2599);
    assert_eq!(created.image_url, "/api/catalog/images/TST-00001");

    let dup = as_user(client().post(&url), "admin")
        .json(&new_product())
        .send()
        .await
        .expect("send");
    problem(dup, 409).await;

    let patch = as_user(
        client().patch(app.at(&format!("/api/catalog/products/{}", created.id))),
        "admin",
    )
    .json(&json!({"price": {"amount": 1999, "currency": "USD"}, "name": "Test Lamp II"}))
    .send()
    .await
    .expect("send");
    assert_eq!(patch.status(), 200);
    let updated: ProductView = patch.json().await.expect("json");
    assert_eq!(
        (updated.price.amount, updated.name.as_str()),
        (1999, "Test Lamp II")
    );
    let fetched = page(
        &app,
        "?category=home-kitchen&limit=100&min_price=1999&max_price=1999",
    )
    .await;
    assert!(fetched.items.iter().any(|p| p.id == created.id));

    let missing = as_user(
        client().patch(app.at(&format!("/api/catalog/products/{}", uuid::Uuid::now_v7()))),
        "admin",
    )
    .json(&json!({"name": "x"}))
    .send()
    .await
    .expect("send");
    problem(missing, 404).await;
}

#[tokio::test]
async fn bad_products_are_refused_with_the_field() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let url = app.at("/api/catalog/products");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"price": {"amount": -100, "currency": "USD"}}),
            "price.amount",
        ),
        (
            json!({"price": {"amount": 0, "currency": "USD"}}),
            "price.amount",
        ),
        (
            json!({"price": {"amount": 100_000_000_000_i64, "currency": "USD"}}),
            "price.amount",
        ),
        (
            json!({"price": {"amount": 100, "currency": "EUR"}}),
            "price.currency",
        ),
        (
            json!({"price": {"amount": "ten", "currency": "USD"}}),
            "price.amount",
        ),
        (
            json!({"price": {"amount": 1.5, "currency": "USD"}}),
            "price.amount",
        ),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"description": "d".repeat(5001)}), "description"),
        (json!({"sku": "no spaces"}), "sku"),
        (json!({"category": "no-such-category"}), "category"),
        (json!({"image_url": "javascript:alert(1)"}), "image_url"),
        (json!({"is_featured": true}), "is_featured"),
        (json!({"name": 42}), "name"),
    ];
    for (change, field) in cases {
        let mut body = new_product();
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let r = as_user(client().post(&url), "admin")
            .json(&body)
            .send()
            .await
            .expect("send");
        let p = problem(r, 422).await;
        assert_eq!(
            p.errors.first().map(|e| e.field.as_str()),
            Some(field),
            "{change}: {p:?}"
        );
    }
    let malformed = as_user(client().post(&url), "admin")
        .header("content-type", "application/json")
        .body("{\"sku\": ")
        .send()
        .await
        .expect("send");
    problem(malformed, 400).await;
    let not_json = as_user(client().post(&url), "admin")
        .body("sku=x")
        .send()
        .await
        .expect("send");
    problem(not_json, 415).await;
    let huge = as_user(client().post(&url), "admin")
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "x".repeat(100_000)))
        .send()
        .await
        .expect("send");
    problem(huge, 413).await;
    let wrong_method = client()
        .delete(app.at("/api/catalog/categories"))
        .send()
        .await
        .expect("send");
    problem(wrong_method, 405).await;
    get_problem(&app.at("/nothing/here"), 404).await;
}

#[tokio::test]
async fn data_survives_a_restart_and_is_not_seeded_twice() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let total = page(&app, "").await.total;
    let r = as_user(client().post(app.at("/api/catalog/products")), "admin")
        .json(&new_product())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    app.stop().await.expect("clean stop");
    let again = spawn(&env).await;
    assert_eq!(page(&again, "").await.total, total + 1);
}

#[tokio::test]
async fn concurrent_edits_of_different_fields_both_survive() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let r = as_user(client().post(app.at("/api/catalog/products")), "admin")
        .json(&new_product())
        .send()
        .await
        .expect("send");
    let created: ProductView = r.json().await.expect("json");
    let url = app.at(&format!("/api/catalog/products/{}", created.id));
    for i in 1..=10_i64 {
        let name = as_user(client().patch(&url), "admin")
            .json(&json!({"name": format!("Lamp {i}")}))
            .send();
        let price = as_user(client().patch(&url), "admin")
            .json(&json!({"price": {"amount": 1000 + i, "currency": "USD"}}))
            .send();
        let (a, b) = tokio::join!(name, price);
        assert_eq!(a.expect("send").status(), 200);
        assert_eq!(b.expect("send").status(), 200);
        let now: ProductView = client()
            .get(&url)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(
            (now.name.as_str(), now.price.amount),
            (format!("Lamp {i}").as_str(), 1000 + i)
        );
    }
}
