//! orders' contracts. As a provider, it honours what its consumers rely on (every
//! pact naming it, `crates/contracts/pacts/*-orders.json`, replayed against a real
//! instance). As a consumer:
//! what the checkout saga relies on from inventory, payments and cart, as pacts
//! (`crates/contracts/pacts/orders-*.json`, verified by each provider's API tests):
//! each interaction is a call the saga makes through its typed client and an answer
//! it branches on (`src/saga.rs`: the statuses it matches, the problem codes and
//! HTTP statuses it treats apart). The typed clients must send exactly the declared
//! requests and read the declared answers as the saga expects.

use axum::http::StatusCode;
use emporium_client::api::{Cart, Inventory, Payments};
use emporium_contracts::card::Card;
use emporium_contracts::checkout::{AuthorizeRequest, StockLine, TakeCart};
use emporium_testkit::pact::{Interaction, Pact, Substitutions, verify};
use emporium_testkit::user_id;
use serde_json::{Value, json};

use super::{checkout_body, key, shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_the_pacts_of_its_consumers() {
    let s = shop().await;
    let s = &s;
    let state = |given: String, params: std::collections::BTreeMap<String, String>| async move {
        let mut subs: Substitutions = match given.as_str() {
            "a shopper has a cart of stocked products" => {
                let (sku, _) = s.stocked(2).await;
                let shopper = format!("pact-shopper-{}", key());
                s.add(&shopper, &sku, 2).await;
                vec![("user_id", user_id(&shopper))]
            }
            "a shopper has placed an order" => {
                let (sku, _) = s.stocked(2).await;
                let shopper = format!("pact-buyer-{}", key());
                s.add(&shopper, &sku, 2).await;
                let r = s
                    .checkout(&shopper, Some(&key()), &checkout_body("4242424242424242"))
                    .await;
                assert_eq!(r.status(), 202, "placed");
                let order: Value = r.json().await.expect("order");
                let id = order["id"].as_str().expect("id").to_string();
                vec![("user_id", user_id(&shopper)), ("order_id", id)]
            }
            other => panic!("orders knows no provider state `{other}`"),
        };
        subs.retain(|(name, _)| params.contains_key(*name));
        subs
    };
    verify("orders", &s.orders, state).await;
}

/// Order ids of the interactions: one each, so the provider states never meet.
fn order(n: u8) -> String {
    format!("00000000-0000-4000-8000-0000000000{n:02}")
}

const SKU: &str = "PACT-0001";
const SCARCE: &str = "PACT-0002";
const USER: &str = "11111111-1111-4111-8111-111111111111";

#[tokio::test]
async fn the_saga_relies_on_inventory_for_reservations() {
    let mut pact = Pact::declare("orders", "inventory");
    let reservation = |n: u8| format!("/internal/reservations/{}", order(n));
    pact.interaction(
        Interaction::new("reserve units that are in stock")
            .given("a SKU has 2 units or more")
            .param("sku", SKU)
            .request(
                "PUT",
                &reservation(1),
                Some(json!({ "lines": [{ "sku": SKU, "quantity": 2 }] })),
            )
            .responds(
                200,
                json!({ "order_id": order(1), "status": "reserved", "unavailable": [] }),
                &["/order_id", "/status"],
            ),
    );
    pact.interaction(
        Interaction::new("reserve more units than there are")
            .given("a SKU has fewer than 99 units")
            .param("sku", SCARCE)
            .request(
                "PUT",
                &reservation(2),
                Some(json!({ "lines": [{ "sku": SCARCE, "quantity": 99 }] })),
            )
            .responds(
                200,
                json!({ "order_id": order(2), "status": "rejected", "unavailable": [SCARCE] }),
                &["/status", "/unavailable/0"],
            ),
    );
    pact.interaction(
        Interaction::new("commit a reservation")
            .given("an order holds units")
            .param("order_id", &order(3))
            .request("POST", &format!("{}/commit", reservation(3)), None)
            .responds(
                200,
                json!({ "order_id": order(3), "status": "committed", "unavailable": [] }),
                &["/status"],
            ),
    );
    pact.interaction(
        Interaction::new("release a reservation")
            .given("an order holds units")
            .param("order_id", &order(4))
            .request("POST", &format!("{}/release", reservation(4)), None)
            .responds(
                200,
                json!({ "order_id": order(4), "status": "released", "unavailable": [] }),
                &[],
            ),
    );
    // Compensation releases whatever the order holds, and may hold nothing (the
    // saga failed before reserving); an error would stop the compensation.
    pact.interaction(
        Interaction::new("release what an order never reserved")
            .request("POST", &format!("{}/release", reservation(5)), None)
            .responds(
                200,
                json!({ "order_id": order(5), "status": "released", "unavailable": [] }),
                &[],
            ),
    );
    let inventory = Inventory(pact.client());
    let line = |sku: &str, quantity| StockLine {
        sku: sku.to_string(),
        quantity,
    };
    let r = inventory
        .reserve(&order(1), vec![line(SKU, 2)])
        .await
        .expect("reserve");
    assert_eq!(r.status, "reserved");
    let r = inventory
        .reserve(&order(2), vec![line(SCARCE, 99)])
        .await
        .expect("reserve");
    assert_eq!(
        (r.status.as_str(), r.unavailable),
        ("rejected", vec![SCARCE.to_string()])
    );
    let r = inventory.commit(&order(3)).await.expect("commit");
    assert_eq!(r.status, "committed");
    inventory.release(&order(4)).await.expect("release");
    inventory.release(&order(5)).await.expect("release nothing");
    pact.finish();
}

/// An RFC 9457 problem as the client reads it (`code` is what the saga matches).
fn problem(status: u16, code: &str) -> serde_json::Value {
    json!({ "type": "about:blank", "title": "t", "status": status, "detail": "d", "code": code })
}

fn card(number: &str) -> Card {
    Card {
        number: number.to_string(),
        exp_month: 12,
        exp_year: 2040,
        cvc: "123".to_string(),
    }
}

fn authorize(number: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        amount: 1999,
        currency: "USD".to_string(),
        card: card(number),
        // The saga asks for a sale: the money taken with the approval.
        capture: true,
    }
}

#[tokio::test]
async fn the_saga_relies_on_payments_for_money() {
    let mut pact = Pact::declare("orders", "payments");
    let payment = |n: u8| format!("/internal/payments/{}", order(n));
    let body = |number: &str| Some(serde_json::to_value(authorize(number)).expect("json"));
    pact.interaction(
        Interaction::new("authorize and capture a card that is approved")
            .request(
                "PUT",
                &format!("{}/authorization", payment(11)),
                body("4242424242424242"),
            )
            .responds(
                200,
                json!({ "order_id": order(11), "status": "captured", "amount": 1999,
                        "currency": "USD", "brand": "visa", "last4": "4242", "attempts": 1 }),
                &["/status", "/amount", "/last4"],
            ),
    );
    pact.interaction(
        Interaction::new("authorize a card that is declined")
            .request("PUT", &format!("{}/authorization", payment(12)), body("4000000000000002"))
            .responds(
                200,
                json!({ "order_id": order(12), "status": "declined", "amount": 1999, "currency": "USD",
                        "attempts": 1, "reason": "insufficient funds" }),
                &["/status"],
            ),
    );
    pact.interaction(
        Interaction::new("authorize while the card processor fails")
            .request(
                "PUT",
                &format!("{}/authorization", payment(13)),
                body("4000000000000119"),
            )
            .responds(503, problem(503, "processor_unavailable"), &["/code"]),
    );
    pact.interaction(
        Interaction::new("authorize a card number that is not one")
            .request(
                "PUT",
                &format!("{}/authorization", payment(14)),
                body("4242424242424241"),
            )
            .responds(422, problem(422, "validation"), &[]),
    );
    pact.interaction(
        Interaction::new("look up a payment never asked for")
            .request("GET", &payment(15), None)
            .responds(404, problem(404, "not_found"), &[]),
    );
    pact.interaction(
        Interaction::new("look up an authorized payment")
            .given("an order has an authorized payment")
            .param("order_id", &order(16))
            .request("GET", &payment(16), None)
            .responds(
                200,
                json!({ "order_id": order(16), "status": "authorized", "amount": 1999, "currency": "USD",
                        "attempts": 1, "brand": "visa", "last4": "4242" }),
                &["/status"],
            ),
    );
    pact.interaction(
        Interaction::new("capture an authorized payment")
            .given("an order has an authorized payment")
            .param("order_id", &order(17))
            .request("POST", &format!("{}/capture", payment(17)), None)
            .responds(200, json!({ "order_id": order(17), "status": "captured", "amount": 1999, "currency": "USD", "attempts": 1 }), &["/status"]),
    );
    pact.interaction(
        Interaction::new("capture a voided payment")
            .given("an order has a voided payment")
            .param("order_id", &order(18))
            .request("POST", &format!("{}/capture", payment(18)), None)
            .responds(409, problem(409, "invalid_state"), &["/code"]),
    );
    pact.interaction(
        Interaction::new("cancel an authorized payment")
            .given("an order has an authorized payment")
            .param("order_id", &order(19))
            .request("POST", &format!("{}/cancel", payment(19)), None)
            .responds(200, json!({ "order_id": order(19), "status": "voided", "amount": 1999, "currency": "USD", "attempts": 1 }), &[]),
    );
    // Compensation cancels whatever payment the order has, and may have none.
    pact.interaction(
        Interaction::new("cancel a payment never authorized")
            .request("POST", &format!("{}/cancel", payment(20)), None)
            .responds(
                200,
                json!({ "order_id": order(20), "status": "voided", "amount": 0, "currency": "USD", "attempts": 0 }),
                &[],
            ),
    );
    let payments = Payments(pact.client());
    let p = payments
        .authorize(&order(11), &authorize("4242424242424242"))
        .await
        .expect("approved");
    assert_eq!(
        (p.status.as_str(), p.last4.as_deref()),
        ("captured", Some("4242")),
        "the saga need not capture it"
    );
    let p = payments
        .authorize(&order(12), &authorize("4000000000000002"))
        .await
        .expect("declined");
    assert_eq!(p.status, "declined");
    assert!(p.reason.is_some(), "the saga tells the shopper why");
    let e = payments
        .authorize(&order(13), &authorize("4000000000000119"))
        .await
        .expect_err("processor down");
    assert_eq!(
        e.problem_code(),
        Some("processor_unavailable"),
        "the saga waits"
    );
    let e = payments
        .authorize(&order(14), &authorize("4242424242424241"))
        .await
        .expect_err("invalid");
    assert_eq!(
        e.status(),
        Some(StatusCode::UNPROCESSABLE_ENTITY),
        "the saga compensates"
    );
    let e = payments.payment(&order(15)).await.expect_err("unknown");
    assert_eq!(
        e.status(),
        Some(StatusCode::NOT_FOUND),
        "interrupted before payment"
    );
    let p = payments.payment(&order(16)).await.expect("authorized");
    assert_eq!(p.status, "authorized");
    let p = payments.capture(&order(17)).await.expect("captured");
    assert_eq!(p.status, "captured");
    let e = payments.capture(&order(18)).await.expect_err("refused");
    assert_eq!(
        e.problem_code(),
        Some("invalid_state"),
        "the saga undoes the sale"
    );
    payments.cancel(&order(19)).await.expect("voided");
    payments
        .cancel(&order(20))
        .await
        .expect("nothing to cancel");
    pact.finish();
}

#[tokio::test]
async fn the_checkout_relies_on_cart_for_what_is_bought() {
    let mut pact = Pact::declare("orders", "cart");
    let key = "22222222-2222-4222-8222-222222222222";
    pact.interaction(
        Interaction::new("take a shopper's lines out of the cart for an order, priced")
            .given("a shopper has 2 of a SKU in the cart")
            .param("user_id", USER)
            .param("sku", SKU)
            .request(
                "POST",
                &format!("/internal/carts/{USER}/checkouts"),
                Some(json!({
                    "order_id": order(21), "idempotency_key": key, "expires_ms": 4_102_444_800_000_i64
                })),
            )
            .responds(
                200,
                json!({ "order_id": order(21), "user_id": USER, "currency": "USD", "total": 3998,
                    "lines": [
                        { "sku": SKU, "product_id": "p", "name": "n", "unit_price": 1999, "quantity": 2 }
                    ] }),
                &["/order_id", "/user_id", "/lines/0/sku", "/lines/0/quantity"],
            ),
    );
    pact.interaction(
        Interaction::new("put back what a cancelled order took")
            .given("an order took a shopper's cart")
            .param("order_id", &order(22))
            .request(
                "POST",
                &format!("/internal/cart-checkouts/{}/return", order(22)),
                None,
            )
            .responds(
                200,
                json!({ "order_id": order(22), "returned": true }),
                &["/order_id", "/returned"],
            ),
    );
    let cart = Cart(pact.client());
    let taken = cart
        .take(
            USER,
            &TakeCart {
                order_id: order(21),
                idempotency_key: key.into(),
                expires_ms: 4_102_444_800_000,
            },
        )
        .await
        .expect("take");
    assert_eq!(taken.order_id, order(21));
    assert_eq!(taken.lines.len(), 1);
    assert_eq!(
        taken.total,
        taken.lines[0].unit_price * taken.lines[0].quantity
    );
    assert!(cart.give_back(&order(22)).await.expect("give back"));
    pact.finish();
}
