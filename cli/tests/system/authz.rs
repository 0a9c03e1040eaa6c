//! The authorization matrix: every public route × {anonymous, shopper A, shopper B,
//! admin}, in one table, against the running shop; and object-level checks: B
//! never reads or changes what is A's (cart, orders, reviews, notifications,
//! account). The table must name every operation of the published API document.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::checkout::{APPROVE, body, key, shopper};
use super::search::json_of;
use super::{Up, http, token};

/// Who calls.
const WHO: [&str; 4] = ["anonymous", "A", "B", "admin"];

/// One route: its method, its template in the API document, the path and body
/// sent, and the status expected for each of [`WHO`].
struct Row {
    method: &'static str,
    template: &'static str,
    path: String,
    body: Option<Value>,
    expect: [u16; 4],
}

fn row(method: &'static str, template: &'static str, path: String, expect: [u16; 4]) -> Row {
    Row {
        method,
        template,
        path,
        body: None,
        expect,
    }
}

impl Row {
    fn with(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_kind_of_caller_as_the_table_says() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    let admin = token(&up, "boss@example.com").await;
    let a = shopper(&up, "a@example.com").await;
    let b = shopper(&up, "b@example.com").await;

    // A buys a book and reviews it; B buys nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (product, sku) = loop {
        let page = json_of(
            http()
                .get(up.at("/api/search?category=books&in_stock=true&sort=price&limit=2"))
                .send()
                .await
                .expect("search"),
        )
        .await;
        if page["items"][1].is_object() {
            let p = &page["items"][0];
            break (
                p["id"].as_str().expect("id").to_string(),
                p["sku"].as_str().expect("sku").to_string(),
            );
        }
        assert!(Instant::now() < deadline, "no books in stock: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(a.add(&up, &sku, 1).await.status(), 200);
    let order = a.check_out(&up, APPROVE, Duration::from_secs(30)).await;
    assert_eq!(order["status"], "CONFIRMED");
    let order = order["id"].as_str().expect("order id").to_string();
    let review =
        json!({"product_id": product, "rating": 4, "title": "Fine", "text": "Read it twice."});
    let written = super::search::review_once_bought(&up, &a.token, &review, |s| s == 403).await;
    let review_id = written["id"].as_str().expect("review id").to_string();

    // Object-level: what is A's stays A's.
    assert_eq!(a.add(&up, &sku, 2).await.status(), 200);
    let b_cart = b.cart(&up).await;
    assert!(
        !b_cart.to_string().contains(&sku),
        "B sees A's cart: {b_cart}"
    );
    let r = send(
        &up,
        Some(&b.token),
        "PATCH",
        &format!("/api/cart/items/{sku}"),
        Some(&json!({"quantity": 9})),
    )
    .await;
    assert_eq!(r.0, 404, "B changed a line of A's cart: {}", r.1);
    let a_cart = a.cart(&up).await;
    assert_eq!(a_cart["items"][0]["quantity"], 2, "{a_cart}");
    let b_orders = send(&up, Some(&b.token), "GET", "/api/orders", None).await;
    assert!(!b_orders.1.contains(&order), "B lists A's order");
    let b_mail = send(&up, Some(&b.token), "GET", "/api/notifications", None).await;
    assert!(
        !b_mail.1.contains("a@example.com") && !b_mail.1.contains(&order),
        "B reads A's notifications: {}",
        b_mail.1
    );
    let b_me = send(&up, Some(&b.token), "GET", "/api/users/me", None).await;
    assert!(b_me.1.contains("b@example.com") && !b_me.1.contains("a@example.com"));
    let a_sessions = send(&up, Some(&a.token), "GET", "/api/users/me/sessions", None).await;
    let a_session = serde_json::from_str::<Value>(&a_sessions.1).expect("sessions")[0]["id"]
        .as_str()
        .expect("A has a session")
        .to_string();
    let b_sessions = send(&up, Some(&b.token), "GET", "/api/users/me/sessions", None).await;
    assert!(!b_sessions.1.contains(&a_session), "B lists A's session");
    let r = send(
        &up,
        Some(&b.token),
        "DELETE",
        &format!("/api/users/me/sessions/{a_session}"),
        None,
    )
    .await;
    assert_eq!(r.0, 404, "B ended A's session: {}", r.1);
    let still = send(&up, Some(&a.token), "GET", "/api/users/me/sessions", None).await;
    assert!(still.1.contains(&a_session), "A's session survives B");

    let emails = AtomicUsize::new(0);
    let fresh_email = || format!("new-{}@example.com", emails.fetch_add(1, Ordering::SeqCst));
    let new_sku = || format!("AZ-{:05}", emails.fetch_add(1, Ordering::SeqCst));
    let o = [401, 200, 200, 200]; // signed in: anyone
    let open = [200; 4];
    let admin_only = [401, 403, 403, 200];
    let rows = vec![
        row("GET", "/api/cart", "/api/cart".into(), o),
        row("POST", "/api/cart/items", "/api/cart/items".into(), o)
            .with(json!({"sku": sku, "quantity": 1})),
        row(
            "PATCH",
            "/api/cart/items/{sku}",
            format!("/api/cart/items/{sku}"),
            o,
        )
        .with(json!({"quantity": 1})),
        row(
            "DELETE",
            "/api/cart/items/{sku}",
            format!("/api/cart/items/{sku}"),
            o,
        ),
        row(
            "GET",
            "/api/catalog/products",
            "/api/catalog/products?limit=2".into(),
            open,
        ),
        row(
            "GET",
            "/api/catalog/products/{id}",
            format!("/api/catalog/products/{product}"),
            open,
        ),
        row(
            "GET",
            "/api/catalog/products/sku/{sku}",
            format!("/api/catalog/products/sku/{sku}"),
            open,
        ),
        row(
            "GET",
            "/api/catalog/categories",
            "/api/catalog/categories".into(),
            open,
        ),
        row(
            "POST",
            "/api/catalog/products",
            "/api/catalog/products".into(),
            [401, 403, 403, 201],
        )
        .with(
            json!({"sku": new_sku(), "name": "Matrix Mug", "description": "Holds coffee.",
                         "category": "home-kitchen", "price": {"amount": 1200, "currency": "USD"}}),
        ),
        row(
            "PATCH",
            "/api/catalog/products/{id}",
            format!("/api/catalog/products/{product}"),
            admin_only,
        )
        .with(json!({"description": "Read it twice, then once more."})),
        row(
            "GET",
            "/api/catalog/images/{sku}",
            format!("/api/catalog/images/{sku}"),
            open,
        ),
        row(
            "GET",
            "/api/inventory/{sku}",
            format!("/api/inventory/{sku}"),
            open,
        ),
        row(
            "PUT",
            "/api/inventory/{sku}",
            format!("/api/inventory/{sku}"),
            admin_only,
        )
        .with(json!({"available": 40})),
        row("GET", "/api/notifications", "/api/notifications".into(), o),
        // Carts are empty again (the DELETE above): checkout has nothing to buy.
        row(
            "POST",
            "/api/orders",
            "/api/orders".into(),
            [401, 422, 422, 422],
        )
        .with(body(APPROVE, "Springfield")),
        row("GET", "/api/orders", "/api/orders".into(), o),
        row(
            "GET",
            "/api/orders",
            "/api/orders?scope=all".into(),
            admin_only,
        ),
        row(
            "GET",
            "/api/orders/{id}",
            format!("/api/orders/{order}"),
            [401, 200, 404, 200],
        ),
        row(
            "POST",
            "/api/reviews",
            "/api/reviews".into(),
            [401, 409, 403, 403],
        )
        .with(review.clone()),
        row(
            "PUT",
            "/api/reviews/{id}",
            format!("/api/reviews/{review_id}"),
            [401, 200, 404, 404],
        )
        .with(
            json!({"rating": 5, "title": "Better", "text": "Read it three times.",
                     "version": written["version"]}),
        ),
        row(
            "POST",
            "/api/reviews/{id}/hide",
            format!("/api/reviews/{review_id}/hide"),
            admin_only,
        ),
        row(
            "GET",
            "/api/reviews",
            format!("/api/reviews?product_id={product}"),
            open,
        ),
        row(
            "GET",
            "/api/reviews",
            "/api/reviews".into(),
            [400, 400, 400, 200],
        ),
        row(
            "GET",
            "/api/reviews/summary",
            format!("/api/reviews/summary?product_id={product}"),
            open,
        ),
        row("GET", "/api/search", "/api/search?q=book".into(), open),
        row(
            "GET",
            "/api/search/suggest",
            "/api/search/suggest?q=bo".into(),
            open,
        ),
        row(
            "POST",
            "/api/users/register",
            "/api/users/register".into(),
            [201; 4],
        ),
        row("POST", "/api/users/login", "/api/users/login".into(), open)
            .with(json!({"email": "a@example.com", "password": emporium_testkit::PASSWORD})),
        row("GET", "/api/users/me", "/api/users/me".into(), o),
        row(
            "POST",
            "/api/users/token",
            "/api/users/token".into(),
            [401; 4],
        )
        .with(json!({"refresh_token": "not-a-refresh-token"})),
        row(
            "POST",
            "/api/users/logout",
            "/api/users/logout".into(),
            [204; 4],
        )
        .with(json!({"refresh_token": "not-a-refresh-token"})),
        // Everyone here confirmed their address already.
        row(
            "POST",
            "/api/users/verification",
            "/api/users/verification".into(),
            [401, 409, 409, 409],
        ),
        row(
            "POST",
            "/api/users/verify",
            "/api/users/verify".into(),
            [400; 4],
        )
        .with(json!({"token": "not-a-link-token"})),
        row(
            "POST",
            "/api/users/password-reset",
            "/api/users/password-reset".into(),
            [202; 4],
        )
        .with(json!({"email": "nobody@example.com"})),
        row(
            "POST",
            "/api/users/password-reset/confirm",
            "/api/users/password-reset/confirm".into(),
            [400; 4],
        )
        .with(json!({"token": "not-a-link-token", "password": "a brand new passphrase"})),
        row(
            "GET",
            "/api/users/me/sessions",
            "/api/users/me/sessions".into(),
            o,
        ),
        row(
            "DELETE",
            "/api/users/me/sessions/{id}",
            format!("/api/users/me/sessions/{}", uuid::Uuid::now_v7()),
            [401, 404, 404, 404],
        ),
        // Ends the sessions of A, B and the admin; their access tokens stay valid.
        row(
            "DELETE",
            "/api/users/me/sessions",
            "/api/users/me/sessions".into(),
            o,
        ),
        row(
            "GET",
            "/.well-known/jwks.json",
            "/.well-known/jwks.json".into(),
            open,
        ),
    ];

    let tokens = [
        None,
        Some(a.token.as_str()),
        Some(b.token.as_str()),
        Some(admin.as_str()),
    ];
    let mut wrong = Vec::new();
    for r in &rows {
        for (i, who) in WHO.iter().enumerate() {
            let mut payload = r.body.clone();
            if r.template == "/api/users/register" {
                payload = Some(
                    json!({"email": fresh_email(), "password": emporium_testkit::PASSWORD, "name": "New"}),
                );
            }
            let key_header = (r.template == "/api/orders" && r.method == "POST").then(key);
            let (status, text) = send_keyed(
                &up,
                tokens[i],
                r.method,
                &r.path,
                payload.as_ref(),
                key_header.as_deref(),
            )
            .await;
            if status != r.expect[i] {
                wrong.push(format!(
                    "{} {} as {who}: expected {}, got {status}: {}",
                    r.method,
                    r.path,
                    r.expect[i],
                    text.chars().take(160).collect::<String>()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the matrix disagrees:\n{}",
        wrong.join("\n")
    );

    // Every operation of the published API is in the table.
    let doc = json_of(
        http()
            .get(up.at("/api/openapi.json"))
            .send()
            .await
            .expect("doc"),
    )
    .await;
    let covered: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_lowercase(), r.template.to_string()))
        .collect();
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            if !covered.contains(&(method.clone(), path.clone())) {
                missing.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "operations not in the matrix: {missing:?}"
    );
}

async fn send(
    up: &Up,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String) {
    send_keyed(up, token, method, path, body, None).await
}

async fn send_keyed(
    up: &Up,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
    idempotency_key: Option<&str>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http().request(method, up.at(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(k) = idempotency_key {
        request = request.header("idempotency-key", k);
    }
    let r = request.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}
