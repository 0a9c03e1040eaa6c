//! Who may move money: orders alone, proven by a certificate from the platform's
//! CA. Everyone else is refused, whatever they send.

use emporium_identity::Principal;
use emporium_testkit::identity::{anonymous, client_as, client_with, expired, foreign, plain};
use emporium_testkit::{TestEnv, problem};

use super::{APPROVE, authorization, spawn};

#[tokio::test]
async fn only_orders_may_authorize_a_payment_and_only_with_a_certificate_from_our_ca() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let path = "/internal/payments/o-authz/authorization";
    let body = authorization(APPROVE, 100);
    let https = app.at(path);
    let http = format!("http://{}{path}", app.addr);

    // No certificate: plain HTTP, or TLS without one.
    problem(
        plain().put(&http).json(&body).send().await.expect("send"),
        401,
    )
    .await;
    problem(
        anonymous()
            .put(&https)
            .json(&body)
            .send()
            .await
            .expect("send"),
        401,
    )
    .await;
    // A verified service that is not one of this route's callers.
    let p = problem(
        client_as("cart")
            .put(&https)
            .json(&body)
            .send()
            .await
            .expect("send"),
        403,
    )
    .await;
    assert!(p.detail.contains("orders"), "{}", p.detail);
    // Certificates the handshake refuses: another CA's, an expired one.
    for (what, credentials) in [
        ("another CA", foreign(Principal::service("orders"))),
        ("expired", expired(Principal::service("orders"))),
    ] {
        let sent = client_with(&credentials)
            .put(&https)
            .json(&body)
            .send()
            .await;
        assert!(
            sent.is_err(),
            "a certificate from {what} got an answer: {sent:?}"
        );
    }
    // Orders may; nothing above reached the ledger (this is the first attempt).
    let r = client_as("orders")
        .put(&https)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let payment: serde_json::Value = r.json().await.expect("json");
    assert_eq!(payment["status"], "authorized");
    assert_eq!(payment["attempts"], 1);
}

#[tokio::test]
async fn identity_headers_from_a_service_other_than_the_gateway_or_storefront_are_refused() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let url = app.at("/internal/payments/o-forged");
    let forged = |client: reqwest::Client| {
        client
            .get(&url)
            .header("x-user-id", "00000000-0000-4000-8000-000000000001")
            .header("x-user-roles", "admin")
            .send()
    };
    let p = problem(forged(client_as("orders")).await.expect("send"), 403).await;
    assert!(p.detail.contains("gateway"), "{}", p.detail);
    // Without the headers, the same caller is answered (404: no such payment).
    let r = client_as("orders").get(&url).send().await.expect("send");
    assert_eq!(r.status(), 404);
}
