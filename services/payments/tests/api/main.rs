//! payments' internal API, over HTTP, with the simulated card processor: every call
//! keyed by order id, so the saga may repeat any of them.

mod authorization;
mod pacts;

use emporium_payments::{Payments, PaymentsSettings};
use emporium_testkit::{Spawned, TestEnv, client, problem};
use serde_json::{Value, json};

const APPROVE: &str = "4242424242424242";
const DECLINE: &str = "4000000000000002";
const TRANSIENT: &str = "4000000000000119";

async fn spawn(env: &TestEnv) -> Spawned {
    env.spawn(Payments, env.settings::<PaymentsSettings>(None))
        .await
}

fn authorization(card: &str, amount: i64) -> Value {
    json!({
        "amount": amount,
        "currency": "USD",
        "card": {"number": card, "exp_month": 12, "exp_year": 2099, "cvc": "123"}
    })
}

async fn authorize(app: &Spawned, order: &str, body: &Value) -> reqwest::Response {
    client()
        .put(app.at(&format!("/internal/payments/{order}/authorization")))
        .json(body)
        .send()
        .await
        .expect("authorize")
}

async fn call(app: &Spawned, order: &str, action: &str) -> reqwest::Response {
    client()
        .post(app.at(&format!("/internal/payments/{order}/{action}")))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn an_approved_card_is_authorized_once_then_captured_once() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let body = authorization(APPROVE, 2599);
    let first: Value = authorize(&app, "o-1", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["status"], "authorized");
    assert_eq!(first["amount"], 2599);
    assert_eq!(first["brand"], "visa");
    assert_eq!(first["last4"], "4242");
    let again: Value = authorize(&app, "o-1", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["status"], "authorized");
    assert_eq!(again["attempts"], first["attempts"], "not authorized twice");
    let captured: Value = call(&app, "o-1", "capture")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(captured["status"], "captured");
    let twice = call(&app, "o-1", "capture").await;
    assert_eq!(twice.status(), 200, "capturing again is a no-op");
    // A captured payment that is cancelled is refunded.
    let refunded: Value = call(&app, "o-1", "cancel")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(refunded["status"], "refunded");
    let shown: Value = client()
        .get(app.at("/internal/payments/o-1"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["status"], "refunded");
    let card_number = serde_json::to_string(&shown).expect("json");
    assert!(
        !card_number.contains(APPROVE),
        "the card number is never kept"
    );
}

/// The body of a sale: the authorization that also takes the money.
fn sale(card: &str, amount: i64) -> Value {
    let mut body = authorization(card, amount);
    body["capture"] = json!(true);
    body
}

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "answered");
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_sale_takes_the_money_with_the_approval_once() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let first = json_of(authorize(&app, "s-1", &sale(APPROVE, 1250)).await).await;
    assert_eq!(
        (&first["status"], &first["amount"], &first["last4"]),
        (&json!("captured"), &json!(1250), &json!("4242"))
    );
    let again = json_of(authorize(&app, "s-1", &sale(APPROVE, 1250)).await).await;
    assert_eq!(again["status"], "captured");
    assert_eq!(again["attempts"], first["attempts"], "not authorized twice");
    let twice = json_of(call(&app, "s-1", "capture").await).await;
    assert_eq!(
        twice["status"], "captured",
        "a capture asked after it is a no-op"
    );
    assert_eq!(
        json_of(call(&app, "s-1", "cancel").await).await["status"],
        "refunded",
        "a compensation gives the money back"
    );
    // An authorization without the capture holds the money; asked again as a
    // sale, it is captured then.
    let held = json_of(authorize(&app, "s-2", &authorization(APPROVE, 700)).await).await;
    assert_eq!(held["status"], "authorized");
    let sold = json_of(authorize(&app, "s-2", &sale(APPROVE, 700)).await).await;
    assert_eq!(sold["status"], "captured");
    // A declined card takes nothing, and a cancelled order is not sold later.
    let declined = json_of(authorize(&app, "s-3", &sale(DECLINE, 100)).await).await;
    assert_eq!(declined["status"], "declined");
    assert_eq!(
        json_of(call(&app, "s-4", "cancel").await).await["status"],
        "voided"
    );
    let late = json_of(authorize(&app, "s-4", &sale(APPROVE, 100)).await).await;
    assert_eq!(late["status"], "voided");
}

#[tokio::test]
async fn declines_are_final_and_transient_failures_are_retryable() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let declined: Value = authorize(&app, "o-2", &authorization(DECLINE, 100))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(declined["status"], "declined");
    assert!(
        declined["reason"]
            .as_str()
            .is_some_and(|r| r.contains("insufficient"))
    );
    let p = problem(call(&app, "o-2", "capture").await, 409).await;
    assert_eq!(p.code, "invalid_state");

    // The processor fails twice, then approves: the caller retries the same call.
    let body = authorization(TRANSIENT, 100);
    for _ in 0..2 {
        let p = problem(authorize(&app, "o-3", &body).await, 503).await;
        assert_eq!(p.code, "processor_unavailable");
    }
    let approved: Value = authorize(&app, "o-3", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(approved["status"], "authorized");
    assert_eq!(approved["attempts"], 3);
}

#[tokio::test]
async fn cancelling_before_authorizing_voids_the_order_for_good() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let voided: Value = call(&app, "o-4", "cancel")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(voided["status"], "voided");
    // An authorization arriving late (the saga compensated first) charges nothing.
    let late = authorize(&app, "o-4", &authorization(APPROVE, 100)).await;
    let late: Value = late.json().await.expect("json");
    assert_eq!(late["status"], "voided");
}

#[tokio::test]
async fn bad_input_is_a_422_naming_every_field() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let body = json!({
        "amount": 0,
        "currency": "usd",
        "card": {"number": "4242 4242 4242 4241", "exp_month": 13, "exp_year": 2020, "cvc": "1"}
    });
    let p = problem(authorize(&app, "o-5", &body).await, 422).await;
    let fields: Vec<&str> = p.errors.iter().map(|e| e.field.as_str()).collect();
    for field in [
        "amount",
        "currency",
        "card.number",
        "card.exp_month",
        "card.cvc",
    ] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    let p = problem(
        client()
            .get(app.at("/internal/payments/never"))
            .send()
            .await
            .expect("get"),
        404,
    )
    .await;
    assert_eq!(p.code, "not_found");
}
