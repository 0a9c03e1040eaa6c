//! reviews' API, over HTTP: verified buyers only (purchases learnt from orders'
//! OrderConfirmed, here published by stand-ins for orders and users with real
//! outboxes and feeds, through a registry), one review per user
//! and product, edits checked against the version read, moderation that keeps the
//! summaries right, and projections that a rebuild from the event store reproduces.

mod pacts;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use emporium_contracts::events::{EventData, OrderConfirmed, OrderLine, UserRegistered};
use emporium_events::Outbox;
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_reviews::{Reviews, ReviewsSettings};
use emporium_runtime::{Build, Service};
use emporium_testkit::{
    Spawned, TestEnv, as_user, client, eventually, get_problem, problem, user_id,
};
use serde::Deserialize;
use serde_json::{Value, json};

static STAND_IN: emporium_store::Migrations = emporium_store::Migrations {
    sqlite: emporium_store::sqlx::migrate!("./tests/api/stand-in"),
    postgres: emporium_store::sqlx::migrate!("./tests/api/stand-in"),
};

#[derive(Debug, Default, Deserialize)]
struct NoSettings {}

/// A stand-in for a producer (orders, users): `POST /publish` publishes the event
/// in the body through its outbox, and its feed serves it like the real one's.
struct StandIn<E>(std::marker::PhantomData<fn() -> E>);

impl<E: EventData> Service for StandIn<E> {
    type Settings = NoSettings;
    const NAME: &'static str = E::SOURCE;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&STAND_IN);

    async fn build(&self, cx: &mut Build<NoSettings>) -> anyhow::Result<Router> {
        async fn publish<E: EventData>(
            State((db, outbox)): State<(emporium_store::Db, Outbox)>,
            Json(event): Json<E>,
        ) -> Json<Value> {
            let mut tx = db.begin().await.expect("begin");
            outbox.publish(&mut tx, &event).await.expect("publish");
            outbox.commit(tx).await.expect("commit");
            Json(json!({}))
        }
        Ok(Router::new()
            .route("/publish", post(publish::<E>))
            .with_state((cx.db().clone(), cx.outbox())))
    }
}

struct World {
    reviews: Spawned,
    orders: Spawned,
    users: Spawned,
    _registry: Spawned,
    _env: TestEnv,
}

async fn world() -> World {
    let env = TestEnv::new();
    let registry = env
        .spawn(RegistryService, env.settings::<RegistrySettings>(None))
        .await;
    let orders = env
        .spawn(
            StandIn::<OrderConfirmed>(Default::default()),
            env.settings::<NoSettings>(Some(&registry)),
        )
        .await;
    let users = env
        .spawn(
            StandIn::<UserRegistered>(Default::default()),
            env.settings::<NoSettings>(Some(&registry)),
        )
        .await;
    let reviews = env
        .spawn(Reviews, env.settings::<ReviewsSettings>(Some(&registry)))
        .await;
    World {
        reviews,
        orders,
        users,
        _registry: registry,
        _env: env,
    }
}

const PRODUCT: &str = "0191f000-0000-7000-8000-000000000001";
const OTHER: &str = "0191f000-0000-7000-8000-000000000002";

impl World {
    /// `name` registers and buys `product`; waits until reviews knows.
    async fn buyer(&self, name: &str, product: &str) {
        let user = UserRegistered {
            user_id: user_id(name),
            email: format!("{name}@example.com"),
            name: format!("{name} Lovelace"),
        };
        let r = client()
            .post(self.users.at("/publish"))
            .json(&user)
            .send()
            .await;
        assert_eq!(r.expect("publish").status(), 200);
        let order = OrderConfirmed {
            order_id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id(name),
            total: 100,
            currency: "USD".into(),
            lines: vec![OrderLine {
                sku: "SKU-1".into(),
                product_id: product.into(),
                name: "Thing".into(),
                unit_price: 100,
                quantity: 1,
            }],
        };
        let r = client()
            .post(self.orders.at("/publish"))
            .json(&order)
            .send()
            .await;
        assert_eq!(r.expect("publish").status(), 200);
        self.settled().await;
    }

    /// Waits until reviews has applied everything the stand-ins published.
    async fn settled(&self) {
        let head = |producer: &Spawned| {
            let url = producer.at("/internal/status");
            async move {
                let s: Value = client().get(url).send().await.ok()?.json().await.ok()?;
                s["outbox_head"].as_i64()
            }
        };
        let orders = head(&self.orders).await.expect("orders head");
        let users = head(&self.users).await.expect("users head");
        eventually(
            "reviews applies what orders and users published",
            || async {
                let s: Value = client()
                    .get(self.reviews.at("/internal/status"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let cursor = |name: &str| {
                    s["subscriptions"]
                        .as_array()?
                        .iter()
                        .find(|sub| sub["name"] == name)?["cursor"]
                        .as_i64()
                };
                (cursor("reviews.orders")? >= orders && cursor("reviews.users")? >= users)
                    .then_some(())
            },
        )
        .await;
    }

    async fn post(&self, name: &str, product: &str, rating: i64, title: &str) -> reqwest::Response {
        let body =
            json!({"product_id": product, "rating": rating, "title": title, "text": "Works well."});
        as_user(client().post(self.reviews.at("/api/reviews")), name, "")
            .json(&body)
            .send()
            .await
            .expect("post")
    }

    async fn summary(&self, product: &str) -> Value {
        client()
            .get(
                self.reviews
                    .at(&format!("/api/reviews/summary?product_id={product}")),
            )
            .send()
            .await
            .expect("summary")
            .json()
            .await
            .expect("json")
    }

    async fn list(&self, query: &str) -> Value {
        let r = client()
            .get(self.reviews.at(&format!("/api/reviews?{query}")))
            .send()
            .await
            .expect("list");
        assert_eq!(r.status(), 200, "{query}");
        r.json().await.expect("json")
    }

    async fn edit(&self, name: &str, id: &str, rating: i64, version: i64) -> reqwest::Response {
        as_user(
            client().put(self.reviews.at(&format!("/api/reviews/{id}"))),
            name,
            "",
        )
        .json(&json!({"rating": rating, "title": "Edited", "text": "Changed my mind.", "version": version}))
        .send()
        .await
        .expect("edit")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_review_once_edit_their_own_and_admins_hide() {
    let w = world().await;
    // Not a buyer: 403.
    let p = problem(w.post("eve", PRODUCT, 5, "Great").await, 403).await;
    assert!(p.detail.contains("buyer"), "{}", p.detail);

    w.buyer("ada", PRODUCT).await;
    let r = w.post("ada", PRODUCT, 4, "<b>Solid</b> kettle").await;
    assert_eq!(r.status(), 201);
    let review: Value = r.json().await.expect("json");
    assert_eq!(review["author"], "ada Lovelace", "by display name");
    assert!(
        !review.to_string().contains("example.com"),
        "never the email"
    );
    assert_eq!(review["title"], "<b>Solid</b> kettle", "stored as text");
    assert_eq!(review["version"], 1);
    let id = review["id"].as_str().expect("id").to_string();
    // One review per user and product.
    let p = problem(w.post("ada", PRODUCT, 2, "Again").await, 409).await;
    assert!(p.detail.contains(&id));

    w.buyer("bob", PRODUCT).await;
    assert_eq!(w.post("bob", PRODUCT, 5, "Love it").await.status(), 201);
    let s = w.summary(PRODUCT).await;
    assert_eq!(s["count"], 2);
    assert_eq!(s["average"], 4.5);
    assert_eq!(s["histogram"], json!([0, 0, 0, 1, 1]));

    // Moderators list every product's reviews at once; shoppers name a product.
    let every = |roles: &'static str, query: &'static str| {
        as_user(
            client().get(w.reviews.at(&format!("/api/reviews{query}"))),
            "mod",
            roles,
        )
        .send()
    };
    let all: Value = every("admin", "?sort=rating")
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ratings: Vec<i64> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["rating"].as_i64())
        .collect();
    assert_eq!(ratings, [5, 4], "best first, every product");
    let newest: Value = every("admin", "?limit=1")
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(newest["items"][0]["title"], "Love it", "newest first");
    assert!(newest["next"].is_string(), "one more page");
    problem(every("customer", "").await.expect("list"), 400).await;

    // Editing: yours only (someone else's is 404), at the version you read.
    assert_eq!(w.edit("bob", &id, 1, 1).await.status(), 404);
    let edited: Value = w.edit("ada", &id, 2, 1).await.json().await.expect("json");
    assert_eq!(
        (edited["rating"].as_i64(), edited["version"].as_i64()),
        (Some(2), Some(2))
    );
    problem(w.edit("ada", &id, 3, 1).await, 409).await;
    assert_eq!(w.summary(PRODUCT).await["average"], 3.5);

    // Two edits of the same version at once: exactly one wins.
    let (a, b) = tokio::join!(w.edit("ada", &id, 5, 2), w.edit("ada", &id, 1, 2));
    let mut codes = [a.status().as_u16(), b.status().as_u16()];
    codes.sort();
    assert_eq!(codes, [200, 409]);

    // Hiding: admins only; the summary stops counting it; it cannot be edited.
    let hide = |roles: &'static str| {
        as_user(
            client().post(w.reviews.at(&format!("/api/reviews/{id}/hide"))),
            "mod",
            roles,
        )
        .send()
    };
    problem(hide("").await.expect("hide"), 403).await;
    let after: Value = hide("admin")
        .await
        .expect("hide")
        .json()
        .await
        .expect("json");
    assert_eq!(after["count"], 1);
    assert_eq!(after["average"], 5.0);
    assert_eq!(
        w.summary(PRODUCT).await["histogram"],
        json!([0, 0, 0, 0, 1])
    );
    let listed = w.list(&format!("product_id={PRODUCT}")).await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);
    let p = problem(w.edit("ada", &id, 4, 3).await, 409).await;
    assert!(p.detail.contains("hidden"));
    // Hiding again changes nothing.
    let again: Value = hide("admin")
        .await
        .expect("hide")
        .json()
        .await
        .expect("json");
    assert_eq!(again["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_4xx() {
    let w = world().await;
    w.buyer("ada", PRODUCT).await;
    for (rating, title, text, field) in [
        (0, "t", "", "rating"),
        (6, "t", "", "rating"),
        (3, "", "", "title"),
        (3, &*"t".repeat(121), "", "title"),
        (3, "t", &*"x".repeat(4_001), "text"),
    ] {
        let r = as_user(client().post(w.reviews.at("/api/reviews")), "ada", "")
            .json(&json!({"product_id": PRODUCT, "rating": rating, "title": title, "text": text}))
            .send()
            .await
            .expect("post");
        let p = problem(r, 422).await;
        assert!(
            p.errors.iter().any(|e| e.field == field),
            "{field}: {:?}",
            p.errors
        );
    }
    let r = as_user(client().post(w.reviews.at("/api/reviews")), "ada", "")
        .json(&json!({"product_id": "nope", "rating": 3, "title": "t"}))
        .send()
        .await
        .expect("post");
    problem(r, 422).await;
    // Anonymous writes are refused.
    let r = client()
        .post(w.reviews.at("/api/reviews"))
        .json(&json!({"product_id": PRODUCT, "rating": 3, "title": "t"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let base = w.reviews.at("/api/reviews");
    get_problem(&base, 400).await;
    get_problem(&format!("{base}?product_id=x"), 400).await;
    get_problem(&format!("{base}?product_id={PRODUCT}&sort=best"), 400).await;
    get_problem(&format!("{base}?product_id={PRODUCT}&limit=0"), 400).await;
    get_problem(&format!("{base}?product_id={PRODUCT}&cursor=zzz"), 400).await;
    get_problem(&format!("{base}/summary?product_id=x"), 400).await;
    let missing = "0191f000-0000-7000-8000-0000000000ff";
    let r = as_user(
        client().put(w.reviews.at(&format!("/api/reviews/{missing}"))),
        "ada",
        "",
    )
    .json(&json!({"rating": 3, "title": "t", "version": 1}))
    .send()
    .await
    .expect("put");
    problem(r, 404).await;
    // A product never reviewed has an empty summary.
    let s = w.summary(OTHER).await;
    assert_eq!(
        (s["count"].as_i64(), s["average"].as_f64()),
        (Some(0), Some(0.0))
    );
}

/// A small deterministic generator (xorshift64).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_projection_equals_the_live_one() {
    let w = world().await;
    let products = [PRODUCT, OTHER];
    let names: Vec<String> = (0..6).map(|i| format!("user{i}")).collect();
    for name in &names {
        for p in products {
            w.buyer(name, p).await;
        }
    }
    let mut rng = 0x00C0_FFEE_u64;
    let mut written: Vec<(String, String, i64)> = Vec::new(); // (user, id, version)
    for _ in 0..60 {
        let name = &names[next(&mut rng) as usize % names.len()];
        let product = products[next(&mut rng) as usize % 2];
        let rating = 1 + (next(&mut rng) % 5) as i64;
        match next(&mut rng) % 4 {
            0 | 1 => {
                let r = w.post(name, product, rating, "Random").await;
                if r.status() == 201 {
                    let v: Value = r.json().await.expect("json");
                    written.push((name.clone(), v["id"].as_str().expect("id").into(), 1));
                }
            }
            2 if !written.is_empty() => {
                let i = next(&mut rng) as usize % written.len();
                let (user, id, version) = written[i].clone();
                let r = w.edit(&user, &id, rating, version).await;
                if r.status() == 200 {
                    written[i].2 += 1;
                }
            }
            3 if !written.is_empty() => {
                let (_, id, _) = &written[next(&mut rng) as usize % written.len()];
                as_user(
                    client().post(w.reviews.at(&format!("/api/reviews/{id}/hide"))),
                    "mod",
                    "admin",
                )
                .send()
                .await
                .expect("hide");
            }
            _ => {}
        }
    }
    let live = snapshot(&w).await;
    let rebuilt: Value = client()
        .post(w.reviews.at("/internal/reviews/rebuild"))
        .send()
        .await
        .expect("rebuild")
        .json()
        .await
        .expect("json");
    assert!(rebuilt["events"].as_u64().expect("events") >= written.len() as u64);
    assert_eq!(
        snapshot(&w).await,
        live,
        "the rebuild reproduces the live projections"
    );
}

/// Every review and summary as the API shows them.
async fn snapshot(w: &World) -> Vec<Value> {
    let mut out = Vec::new();
    for p in [PRODUCT, OTHER] {
        out.push(w.summary(p).await);
        out.push(w.list(&format!("product_id={p}&limit=100")).await);
        out.push(
            w.list(&format!("product_id={p}&limit=100&sort=rating"))
                .await,
        );
    }
    out
}
