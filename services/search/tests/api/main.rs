//! search's API, over HTTP, as a read model of a real catalog, inventory and reviews
//! (through a registry and their feeds): built from their snapshots at start,
//! kept fresh by their events, rebuilt from nothing, and never a 5xx for any query.

mod pacts;

use std::time::{Duration, Instant};

use emporium_catalog::{Catalog, CatalogSettings};
use emporium_inventory::{Inventory, InventorySettings};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_reviews::{Reviews, ReviewsSettings};
use emporium_search::{Search, SearchSettings};
use emporium_testkit::{Spawned, TestEnv, as_user, client, eventually, get_problem, stocked};
use serde_json::{Value, json};

struct World {
    registry: Spawned,
    catalog: Spawned,
    inventory: Spawned,
    _reviews: Spawned,
    search: Option<Spawned>,
    env: TestEnv,
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
    let reviews = env
        .spawn(Reviews, env.settings::<ReviewsSettings>(Some(&registry)))
        .await;
    // Inventory has learnt every product (its stock rows come from catalog's events).
    let mut w = World {
        registry,
        catalog,
        inventory,
        _reviews: reviews,
        search: None,
        env,
    };
    stocked(&w.catalog.url, &w.inventory.url, 1).await;
    w.start_search().await;
    w
}

impl World {
    async fn start_search(&mut self) {
        let mut settings = self.env.settings::<SearchSettings>(Some(&self.registry));
        // As under `emporium up`, a restarted instance keeps its id (and so takes
        // back its own feed leases at once).
        settings.common.instance_id = Some("search-1".into());
        self.search = Some(self.env.spawn(Search, settings).await);
    }

    fn search(&self) -> &Spawned {
        self.search.as_ref().expect("search is running")
    }

    async fn find(&self, query: &str) -> Value {
        let r = client()
            .get(self.search().at(&format!("/api/search?{query}")))
            .send()
            .await
            .expect("search");
        assert_eq!(r.status(), 200, "{query}");
        r.json().await.expect("page")
    }

    async fn patch(&self, id: &str, body: Value) {
        let r = as_user(
            client().patch(self.catalog.at(&format!("/api/catalog/products/{id}"))),
            "admin",
            "admin",
        )
        .json(&body)
        .send()
        .await
        .expect("patch");
        assert_eq!(r.status(), 200);
    }

    async fn set_stock(&self, sku: &str, available: i64) {
        let r = as_user(
            client().put(self.inventory.at(&format!("/api/inventory/{sku}"))),
            "admin",
            "admin",
        )
        .json(&json!({ "available": available }))
        .send()
        .await
        .expect("stock");
        assert_eq!(r.status(), 200);
    }

    async fn product(&self, sku: &str) -> Value {
        client()
            .get(self.catalog.at(&format!("/api/catalog/products/sku/{sku}")))
            .send()
            .await
            .expect("product")
            .json()
            .await
            .expect("json")
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_built_from_the_snapshots_and_kept_fresh_by_events() {
    let w = world().await;
    // Built from catalog's and inventory's snapshots before it said it was ready.
    let all = w.find("limit=5").await;
    assert_eq!(all["total"], 1200);
    let categories = all["facets"]["category"].as_object().expect("categories");
    assert_eq!(categories.len(), 12);
    assert!(categories.values().all(|n| n == 100));
    let bands: i64 = all["facets"]["price"]
        .as_array()
        .expect("bands")
        .iter()
        .map(|b| b["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(bands, 1200, "every product in one price band");
    assert!(all["facets"]["in_stock"].as_i64().expect("in stock") > 1000);
    assert!(all["next"].is_string());

    // A product PATCH shows within a second, found with typos and a partial word.
    let (sku, _) = stocked(&w.catalog.url, &w.inventory.url, 10).await;
    let product = w.product(&sku).await;
    let id = product["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    w.patch(
        &id,
        json!({"name": "Zephyrine Teakettle Deluxe", "description": "Whistles when the water boils."}),
    )
    .await;
    let found = eventually("the renamed product", || async {
        let page = w.find("q=zephyrin%20teakettl").await;
        (ids(&page).first() == Some(&id)).then_some(page)
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "fresh within a second: {:?}",
        started.elapsed()
    );
    let hit = &found["items"][0];
    assert_eq!(hit["name"], "Zephyrine Teakettle Deluxe");
    assert_eq!(hit["sku"], sku.as_str());
    assert_eq!(hit["stock"], "in_stock");
    assert_eq!(hit["price"], product["price"]);
    assert!(hit.get("description").is_none());
    // The description matched nothing, so the snippet is its start, unmarked.
    assert_eq!(hit["snippet"], "Whistles when the water boils.");
    let boiled = w.find("q=boils").await;
    assert!(
        boiled["items"][0]["snippet"]
            .as_str()
            .expect("snippet")
            .contains("<mark>boils</mark>")
    );
    // An exact SKU finds it first.
    let by_sku = w.find(&format!("q={}", sku.to_lowercase())).await;
    assert_eq!(ids(&by_sku).first(), Some(&id));
    // Suggestions complete the name.
    let suggested: Value = client()
        .get(w.search().at("/api/search/suggest?q=zephyr"))
        .send()
        .await
        .expect("suggest")
        .json()
        .await
        .expect("json");
    assert_eq!(suggested["items"], json!(["Zephyrine Teakettle Deluxe"]));

    // Sold out: within a second it leaves in_stock results, and says so.
    let started = Instant::now();
    w.set_stock(&sku, 0).await;
    eventually("sold out in search", || async {
        let page = w.find("q=zephyrine").await;
        (page["items"][0]["stock"] == "sold_out").then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(w.find("q=zephyrine&in_stock=true").await["total"], 0);
    // Units within the same level publish nothing new; back in stock shows again.
    w.set_stock(&sku, 3).await;
    eventually("low stock in search", || async {
        let page = w.find("q=zephyrine&in_stock=true").await;
        (page["items"][0]["stock"] == "low").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_filters_and_sorts_agree_with_the_catalog() {
    let w = world().await;
    // Every electronics product under 100.00, cheapest first, page by page.
    let mut seen: Vec<String> = Vec::new();
    let mut prices: Vec<i64> = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = w
            .find(&format!(
                "category=electronics&max_price=10000&sort=price&limit=7&cursor={cursor}"
            ))
            .await;
        for item in page["items"].as_array().expect("items") {
            assert_eq!(item["category"], "electronics");
            prices.push(item["price"]["amount"].as_i64().expect("amount"));
        }
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert!(prices.windows(2).all(|p| p[0] <= p[1]), "cheapest first");
    assert!(prices.iter().all(|&p| p <= 10_000));
    let catalog: Value = client()
        .get(
            w.catalog
                .at("/api/catalog/products?category=electronics&max_price=10000&limit=1"),
        )
        .send()
        .await
        .expect("catalog")
        .json()
        .await
        .expect("json");
    assert_eq!(seen.len() as i64, catalog["total"].as_i64().expect("total"));
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no item twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_4xx_and_syntax_is_plain_text() {
    let w = world().await;
    let url = |q: &str| w.search().at(&format!("/api/search?{q}"));
    for (query, field) in [
        ("min_price=-5", "min_price"),
        ("min_rating=0", "min_rating"),
        ("min_rating=6", "min_rating"),
        ("sort=cheapest", "sort"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("category=Not%20A%20Slug", "category"),
    ] {
        let problem = get_problem(&url(query), 400).await;
        let errors = problem.errors;
        assert!(
            errors.iter().any(|e| e.field == field),
            "{query}: {errors:?}"
        );
    }
    get_problem(&url("min_price=cheap"), 400).await;
    // A range or a category nothing is in finds nothing.
    for query in ["min_price=900&max_price=100", "category=no-such-category"] {
        let r = client().get(url(query)).send().await.expect("send");
        assert_eq!(r.status(), 200, "{query}");
        let page: serde_json::Value = r.json().await.expect("json");
        assert_eq!(page["total"], 0, "{query}: {page}");
    }
    get_problem(&url("colour=red"), 400).await;
    let long = "a".repeat(10_241);
    get_problem(&url(&format!("q={long}")), 400).await;
    // Query syntax, odd text and 10 kB of words are just text.
    for q in [
        "%22%22",
        "title%3A%22lamp%22",
        "lamp%20AND%20OR%20NOT",
        "(%5B%7B%7D%5D)",
        "*%3F~%5E2",
        "%F0%9F%98%80",
        "%20",
    ] {
        let r = client()
            .get(url(&format!("q={q}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "q={q}");
    }
    let words = "lamp%20".repeat(1_400);
    let r = client()
        .get(url(&format!("q={words}")))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // A cursor of one sort is refused by another.
    let page = w.find("sort=price&limit=1").await;
    let next = page["next"].as_str().expect("next");
    get_problem(&url(&format!("sort=-price&cursor={next}")), 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_data_folder_or_a_crash_rebuilds_with_nothing_lost() {
    let mut w = world().await;
    let before = w.find("limit=100&sort=price").await;
    w.search.take().expect("search").stop().await.expect("stop");
    // Changes made while search is down are picked up from the feeds.
    let products = emporium_testkit::products(&w.catalog.url, 3).await;
    let id = products[0]["id"].as_str().expect("id").to_string();
    w.patch(&id, json!({"name": "Quixotic Barometer"})).await;
    std::fs::remove_dir_all(w.env.dir.path().join("search")).expect("empty the data folder");
    w.start_search().await;
    // Ready means rebuilt: nothing to wait for.
    let after = w.find("limit=100&sort=price").await;
    assert_eq!(after["total"], before["total"]);
    assert_eq!(ids(&w.find("q=quixotic").await), std::slice::from_ref(&id));

    // Killed in the middle of indexing a burst of edits: it comes back consistent.
    let animals = ["Alpaca", "Walrus", "Pelican"];
    for (p, animal) in products.iter().zip(animals) {
        let pid = p["id"].as_str().expect("id");
        w.patch(pid, json!({"name": format!("Burst {animal}")}))
            .await;
    }
    w.search.take().expect("search").crash();
    w.start_search().await;
    for animal in animals {
        let page = eventually("every edit of the burst", || async {
            let page = w.find(&format!("q={animal}%20")).await;
            (page["total"] == 1).then_some(page)
        })
        .await;
        assert_eq!(page["items"][0]["name"], format!("Burst {animal}"));
    }
    assert_eq!(w.find("limit=1").await["total"], 1200);

    // Reindexing on a running instance keeps answering the same.
    let reindexed: Value = client()
        .post(w.search().at("/internal/search/reindex"))
        .send()
        .await
        .expect("reindex")
        .json()
        .await
        .expect("json");
    assert_eq!(reindexed["documents"], 1200);
    assert_eq!(w.find("limit=100&sort=price").await["total"], 1200);
    assert_eq!(ids(&w.find("q=burst%20alpaca").await).len(), 1);
}
