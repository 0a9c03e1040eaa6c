//! Search and reviews in the real shop: random catalog edits, stock changes and
//! reviews, a SIGKILL of search in the middle, a rebuild from an emptied data folder
//! after the producers pruned their outboxes, and then every product's search
//! document is what catalog, inventory and reviews say; a buyer's review end to end;
//! and the shop without search and reviews.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::{Backends, Frozen, Up, http, monolith, token};

/// A small deterministic generator (Knuth's MMIX LCG, high bits): the same edits
/// on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

const WORDS: [&str; 12] = [
    "Amber", "Basalt", "Cobalt", "Dune", "Ember", "Fjord", "Glacier", "Harbor", "Indigo",
    "Juniper", "Kestrel", "Lagoon",
];

/// GETs `path` through the gateway; its JSON (asserting success).
async fn get(up: &Up, path: &str) -> Value {
    json_of(http().get(up.at(path)).send().await.expect("send")).await
}

pub(crate) async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let url = response.url().to_string();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// Every product as `path` lists it (catalog or search), paged by `cursor`.
async fn all(up: &Up, path: &str) -> BTreeMap<String, Value> {
    match try_all(up, path).await {
        Ok(items) => items,
        Err(e) => panic!("{e}"),
    }
}

/// [`all`], or why not (a service restarting answers 503).
async fn try_all(up: &Up, path: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut items = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let after = if cursor.is_empty() {
            String::new()
        } else {
            format!("&cursor={cursor}")
        };
        let r = http()
            .get(up.at(&format!("{path}{sep}limit=100{after}")))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("{path}: {}", r.status()));
        }
        let page: Value = r.json().await.map_err(|e| e.to_string())?;
        for item in page["items"].as_array().expect("items") {
            items.insert(item["id"].as_str().expect("id").to_string(), item.clone());
        }
        match page["next"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return Ok(items),
        }
    }
}

fn level(available: i64) -> &'static str {
    match available {
        ..=0 => "sold_out",
        1..=5 => "low",
        _ => "in_stock",
    }
}

/// What the test changed: SKU → units set, and the products reviewed.
#[derive(Default)]
struct Changed {
    stock: BTreeMap<String, i64>,
    reviewed: Vec<String>,
}

/// The products whose search document differs from catalog, inventory and reviews,
/// described.
async fn differences(up: &Up, changed: &Changed) -> Vec<String> {
    let stock = &changed.stock;
    let catalog = all(up, "/api/catalog/products").await;
    let search = match try_all(up, "/api/search?sort=price").await {
        Ok(search) => search,
        Err(e) => return vec![e],
    };
    let mut wrong = Vec::new();
    if catalog.len() != search.len() {
        wrong.push(format!(
            "catalog {} products, search {}",
            catalog.len(),
            search.len()
        ));
    }
    for (id, p) in &catalog {
        let Some(s) = search.get(id) else {
            wrong.push(format!("{id}: not in search"));
            continue;
        };
        for field in ["sku", "name", "category", "price", "image_url"] {
            if p[field] != s[field] {
                wrong.push(format!("{id}: {field} {} vs {}", p[field], s[field]));
            }
        }
        let sku = p["sku"].as_str().expect("sku");
        if let Some(&units) = stock.get(sku)
            && s["stock"] != level(units)
        {
            wrong.push(format!("{sku}: stock {} vs {}", s["stock"], level(units)));
        }
    }
    for id in &changed.reviewed {
        let summary = get(up, &format!("/api/reviews/summary?product_id={id}")).await;
        let rating = search
            .get(id)
            .map(|s| s["rating"].clone())
            .unwrap_or_default();
        for field in ["count", "average", "histogram"] {
            if rating[field] != summary[field] {
                wrong.push(format!(
                    "{id}: rating {field} {} vs {}",
                    rating[field], summary[field]
                ));
            }
        }
    }
    wrong
}

async fn wait_converged(up: &Up, changed: &Changed, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let wrong = differences(up, changed).await;
        if wrong.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: search never agreed ({} differences): {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How many times the supervisor restarted search so far.
fn restarts(up: &Up) -> usize {
    up.lines
        .lock()
        .expect("lock")
        .iter()
        .filter(|l| l.contains("search restarted"))
        .count()
}

fn kill_search(up: &Up) {
    let pid = up.current_pid("search");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill search");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_converges_on_catalog_and_inventory_through_crashes_and_rebuilds() {
    let data = tempfile::tempdir().expect("data dir");
    // Search as a process of its own in every shape: it is killed alone. Events are
    // kept 3 s, so by the rebuild the producers have pruned the early ones and only
    // their snapshots can bring a new index up to date.
    let args: &[&str] = if monolith() {
        &["--except=search"]
    } else {
        &[]
    };
    let up = Up::start_on(
        data.path(),
        Backends::if_requested(),
        &[
            ("EMPORIUM__EVENTS__RETENTION_MS", "3000"),
            ("EMPORIUM__EVENTS__PRUNE_EVERY_MS", "500"),
        ],
        args,
    );
    let admin = token(&up, "boss@example.com").await;
    let products: Vec<Value> = all(&up, "/api/catalog/products?category=books")
        .await
        .into_values()
        .collect();
    assert_eq!(products.len(), 100);
    let mut rng = Rng(0x5EA2C4);
    let mut changed = Changed::default();
    let mut freshness: Vec<Duration> = Vec::new();
    // A shopper buys three books, to review them during the edits.
    let ada = crate::checkout::shopper(&up, "ada@example.com").await;
    let bought: Vec<&Value> = products.iter().take(3).collect();
    for p in &bought {
        let sku = p["sku"].as_str().expect("sku");
        json_of(
            http()
                .put(up.at(&format!("/api/inventory/{sku}")))
                .bearer_auth(&admin)
                .json(&json!({ "available": 1_000 }))
                .send()
                .await
                .expect("stock"),
        )
        .await;
        assert_eq!(ada.add(&up, sku, 1).await.status(), 200);
    }
    let order = ada
        .check_out(&up, crate::checkout::APPROVE, Duration::from_secs(30))
        .await;
    assert_eq!(order["status"], "CONFIRMED");
    // Review id and version per bought product, once written.
    let mut reviews: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for op in 0..200 {
        let p = &products[rng.below(products.len())];
        let id = p["id"].as_str().expect("id");
        let sku = p["sku"].as_str().expect("sku");
        if op == 120 {
            kill_search(&up);
        }
        let dice = rng.below(10);
        if dice == 9 {
            let product = bought[rng.below(bought.len())]["id"].as_str().expect("id");
            let rating = 1 + rng.below(5) as i64;
            let r = match reviews.get(product) {
                None => http()
                    .post(up.at("/api/reviews"))
                    .json(&json!({"product_id": product, "rating": rating, "title": format!("Take {op}")})),
                Some((review, version)) => http()
                    .put(up.at(&format!("/api/reviews/{review}")))
                    .json(&json!({"rating": rating, "title": format!("Take {op}"), "version": version})),
            };
            let r = r.bearer_auth(&ada.token).send().await.expect("review");
            match r.status().as_u16() {
                200 | 201 => {
                    let v: Value = r.json().await.expect("json");
                    let review = v["id"].as_str().expect("id").to_string();
                    reviews.insert(
                        product.to_string(),
                        (review, v["version"].as_i64().expect("version")),
                    );
                    if !changed.reviewed.iter().any(|p| p == product) {
                        changed.reviewed.push(product.to_string());
                    }
                }
                // The purchase has not reached reviews yet.
                403 => {}
                other => panic!("review: {other}"),
            }
            continue;
        }
        if dice < 6 {
            let name = format!(
                "{} {} {op}",
                WORDS[rng.below(WORDS.len())],
                WORDS[rng.below(WORDS.len())]
            );
            let body = json!({
                "name": name,
                "price": {"amount": 100 + rng.below(50_000) as i64, "currency": "USD"},
            });
            json_of(
                http()
                    .patch(up.at(&format!("/api/catalog/products/{id}")))
                    .bearer_auth(&admin)
                    .json(&body)
                    .send()
                    .await
                    .expect("patch"),
            )
            .await;
            // Freshness, while search runs undisturbed: the edit is searchable.
            if op < 100 && op % 5 == 0 {
                let started = Instant::now();
                let query = format!("/api/search?q={}", name.replace(' ', "%20"));
                loop {
                    let page = get(&up, &query).await;
                    if page["items"][0]["id"] == id {
                        break;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "{name} never showed"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                freshness.push(started.elapsed());
            }
        } else {
            let units = [0, 2, 40][rng.below(3)];
            changed.stock.insert(sku.to_string(), units);
            json_of(
                http()
                    .put(up.at(&format!("/api/inventory/{sku}")))
                    .bearer_auth(&admin)
                    .json(&json!({ "available": units }))
                    .send()
                    .await
                    .expect("stock"),
            )
            .await;
        }
    }
    freshness.sort();
    let worst = freshness.last().copied().unwrap_or_default();
    eprintln!(
        "search freshness over {} edits: median {:?}, worst {:?}",
        freshness.len(),
        freshness[freshness.len() / 2],
        worst
    );
    assert!(
        worst < Duration::from_secs(2),
        "an edit took {worst:?} to show"
    );
    assert!(!changed.reviewed.is_empty(), "some reviews were written");
    wait_converged(&up, &changed, "after 200 edits and a SIGKILL").await;

    // The producers have pruned what the first index was built from.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = json_of(
            up.operator()
                .get(up.service_url("catalog", "/internal/events?after=0&limit=1"))
                .send()
                .await
                .expect("feed"),
        )
        .await;
        if page["pruned"].as_i64().unwrap_or(0) >= 1_200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "catalog never pruned its outbox: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An emptied data folder: it rebuilds from the snapshots and events by itself.
    let before = restarts(&up);
    std::fs::remove_dir_all(data.path().join("search")).expect("empty search's folder");
    kill_search(&up);
    let deadline = Instant::now() + Duration::from_secs(30);
    while restarts(&up) == before {
        assert!(Instant::now() < deadline, "search was not restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_converged(&up, &changed, "after a rebuild from nothing").await;
    assert!(
        data.path()
            .join("search")
            .join("index")
            .join("CURRENT")
            .exists(),
        "a new index was built"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_reviews_and_search_shows_and_filters_by_the_rating() {
    use crate::checkout::{APPROVE, shopper};
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    let admin = token(&up, "boss@example.com").await;
    // A product with stock, bought through the whole checkout (search learns stock
    // from inventory's events, which may still be arriving).
    let deadline = Instant::now() + Duration::from_secs(30);
    let product = loop {
        let page = get(
            &up,
            "/api/search?category=books&in_stock=true&sort=price&limit=1",
        )
        .await;
        if page["items"][0].is_object() {
            break page["items"][0].clone();
        }
        assert!(Instant::now() < deadline, "no book in stock: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (id, sku) = (
        product["id"].as_str().expect("id"),
        product["sku"].as_str().expect("sku"),
    );
    assert_eq!(product["rating"]["count"], 0);
    let ada = shopper(&up, "ada@example.com").await;
    let review =
        json!({"product_id": id, "rating": 4, "title": "Good read", "text": "Kept me up."});
    // Not bought yet: refused.
    let refused = http()
        .post(up.at("/api/reviews"))
        .bearer_auth(&ada.token)
        .json(&review)
        .send()
        .await
        .expect("review");
    assert_eq!(refused.status(), 403);
    assert_eq!(ada.add(&up, sku, 1).await.status(), 200);
    let order = ada.check_out(&up, APPROVE, Duration::from_secs(30)).await;
    assert_eq!(order["status"], "CONFIRMED");
    // Reviews learns the purchase from OrderConfirmed; then the review goes in.
    let body = review_once_bought(&up, &ada.token, &review, |status| status == 403).await;
    assert!(!body.to_string().contains("ada@example.com"));
    let summary = get(&up, &format!("/api/reviews/summary?product_id={id}")).await;
    assert_eq!(
        (summary["count"].as_i64(), summary["average"].as_f64()),
        (Some(1), Some(4.0))
    );
    // Search shows the rating (within search_until's 5 s; how fast is a benchmark's
    // figure, bench/search.sh, not a timed assertion) and filters by it.
    let page = search_until(&up, "/api/search?category=books&min_rating=4", |p| {
        p["total"] == 1
    })
    .await;
    assert_eq!(page["items"][0]["id"], id);
    assert_eq!(page["items"][0]["rating"]["average"], 4.0);
    assert_eq!(
        page["facets"]["rating"][0]["count"], 1,
        "{}",
        page["facets"]
    );
    // Hidden by an admin: the rating goes, in search too.
    let review_id = get(&up, &format!("/api/reviews?product_id={id}")).await["items"][0]["id"]
        .as_str()
        .expect("review id")
        .to_string();
    json_of(
        http()
            .post(up.at(&format!("/api/reviews/{review_id}/hide")))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("hide"),
    )
    .await;
    search_until(&up, "/api/search?category=books&min_rating=1", |p| {
        p["total"] == 0
    })
    .await;
}

/// Posts `review` as the holder of `token` until it is accepted (201), 20 s at most:
/// reviews learns purchases from orders' events. Every other answer meanwhile must
/// pass `waiting`. The review as created.
pub(crate) async fn review_once_bought(
    up: &Up,
    token: &str,
    review: &Value,
    waiting: impl Fn(u16) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http()
            .post(up.at("/api/reviews"))
            .bearer_auth(token)
            .json(review)
            .send()
            .await
            .expect("review");
        let status = r.status().as_u16();
        if status == 201 {
            return r.json().await.expect("json");
        }
        assert!(waiting(status), "review answered {status}");
        assert!(
            Instant::now() < deadline,
            "reviews never learnt the purchase: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `path` (every 20 ms, 5 s at most) until `done` says yes; that page.
async fn search_until(up: &Up, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let page = get(up, path).await;
        if done(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: never as expected: {page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_search_and_reviews_down_product_pages_and_checkout_still_work() {
    use crate::checkout::{APPROVE, shopper};
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_apart(data.path(), &["search", "reviews"]);
    let product =
        get(&up, "/api/catalog/products?category=books&limit=1").await["items"][0].clone();
    let (id, sku) = (
        product["id"].as_str().expect("id"),
        product["sku"].as_str().expect("sku"),
    );
    let ada = shopper(&up, "ada@example.com").await;
    // Frozen, not stopped: their ports stay open and calls to them hang, the worst
    // kind of down; the supervisor does not restart a stopped process.
    let thaw = Frozen::services(&up, &["search", "reviews"]);
    {
        get(&up, &format!("/api/catalog/products/{id}")).await;
        assert_eq!(ada.add(&up, sku, 1).await.status(), 200);
        let order = ada.check_out(&up, APPROVE, Duration::from_secs(30)).await;
        assert_eq!(order["status"], "CONFIRMED", "{order}");
        // Once its heartbeats have lapsed (2 s here), the gateway answers for search
        // at once: 503, not a hang.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let started = Instant::now();
        let r = http()
            .get(up.at("/api/search?q=lamp"))
            .send()
            .await
            .expect("search");
        assert_eq!(r.status(), 503);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    drop(thaw);
    // Back: the purchase made while reviews was away counts.
    let review = json!({"product_id": id, "rating": 5, "title": "Worth the wait"});
    review_once_bought(&up, &ada.token, &review, |_| true).await;
}
