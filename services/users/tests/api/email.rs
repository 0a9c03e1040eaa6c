//! Email links at users: the token notifications mints for a mail, confirming an
//! address, and resetting a password (which ends every session).

use emporium_contracts::headers;
use emporium_testkit::identity::client_as;
use emporium_testkit::{Spawned, TestEnv, client, problem};
use emporium_users::UserView;
use serde_json::{Value, json};

use super::{account, login, spawn, tokens};

/// A link's token, as notifications asks for it when it mails one.
async fn mint(app: &Spawned, user_id: &str, purpose: &str) -> reqwest::Response {
    client_as("notifications")
        .post(app.at("/internal/users/links"))
        .json(&json!({ "user_id": user_id, "purpose": purpose }))
        .send()
        .await
        .expect("send")
}

pub(super) async fn token(app: &Spawned, user_id: &str, purpose: &str) -> String {
    let r = mint(app, user_id, purpose).await;
    assert_eq!(r.status(), 201, "a {purpose} link");
    let link: Value = r.json().await.expect("link");
    link["token"].as_str().expect("token").to_string()
}

pub(super) async fn post(app: &Spawned, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(app.at(path))
        .json(&body)
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn a_mailed_link_confirms_the_address_once() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let user = account(&app, "ada@example.com").await;
    assert!(!user.email_verified);

    // Only notifications gets link tokens, only for real accounts and purposes.
    let r = client_as("orders")
        .post(app.at("/internal/users/links"))
        .json(&json!({ "user_id": user.id, "purpose": "verify_email" }))
        .send()
        .await
        .expect("send");
    problem(r, 403).await;
    problem(
        mint(&app, &uuid::Uuid::now_v7().to_string(), "verify_email").await,
        410,
    )
    .await;
    problem(mint(&app, &user.id, "make_admin").await, 422).await;

    // A newer link replaces the older one.
    let old = token(&app, &user.id, "verify_email").await;
    let link = token(&app, &user.id, "verify_email").await;
    problem(
        post(&app, "/api/users/verify", json!({ "token": old })).await,
        400,
    )
    .await;
    // A reset link does not confirm (purposes do not mix).
    let reset = token(&app, &user.id, "password_reset").await;
    problem(
        post(&app, "/api/users/verify", json!({ "token": reset })).await,
        400,
    )
    .await;

    let r = post(&app, "/api/users/verify", json!({ "token": link })).await;
    assert_eq!(r.status(), 200);
    let confirmed: UserView = r.json().await.expect("user");
    assert!(confirmed.email_verified);
    problem(
        post(&app, "/api/users/verify", json!({ "token": link })).await,
        400,
    )
    .await;
    // Nothing more to confirm: no new link, no new mail.
    problem(mint(&app, &user.id, "verify_email").await, 409).await;
    let r = client()
        .post(app.at("/api/users/verification"))
        .header(headers::USER_ID, &user.id)
        .send()
        .await
        .expect("send");
    problem(r, 409).await;
}

#[tokio::test]
async fn asking_again_for_a_mail_is_limited_to_one_a_minute() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let user = account(&app, "ada@example.com").await;
    // Registering just queued one.
    let r = client()
        .post(app.at("/api/users/verification"))
        .header(headers::USER_ID, &user.id)
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["retry-after"], "60");
    problem(r, 429).await;
    // Resets are limited on their own, and answered the same whether the email
    // has an account, is asked for too often, or has none.
    let ask =
        |email: &'static str| post(&app, "/api/users/password-reset", json!({ "email": email }));
    let first = ask("ada@example.com").await;
    let again = ask("ada@example.com").await;
    let unknown = ask("nobody@example.com").await;
    for r in [first, again, unknown] {
        assert_eq!(r.status(), 202);
        assert_eq!(r.text().await.expect("body"), "");
    }
    let db = emporium_store::Db::open_service("users", &env.dir.path().join("users"), None)
        .await
        .expect("db");
    let (requests,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM outbox WHERE type = 'emporium.users.PasswordResetRequested.v1'",
    )
    .fetch_one(db.pool())
    .await
    .expect("count");
    assert_eq!(requests, 1, "one reset mail a minute");
    let r = post(
        &app,
        "/api/users/password-reset",
        json!({"email": "not an email"}),
    )
    .await;
    problem(r, 422).await;
}

#[tokio::test]
async fn a_password_reset_changes_the_password_and_ends_every_session() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let user = account(&app, "ada@example.com").await;
    let session = tokens(&app, "ada@example.com").await;
    let link = token(&app, &user.id, "password_reset").await;

    // The new password follows the rules; a refused one leaves the link usable.
    let r = post(
        &app,
        "/api/users/password-reset/confirm",
        json!({ "token": link, "password": "password123" }),
    )
    .await;
    assert_eq!(problem(r, 422).await.errors[0].field, "password");
    let r = post(
        &app,
        "/api/users/password-reset/confirm",
        json!({ "token": link, "password": "a brand new passphrase" }),
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = post(
        &app,
        "/api/users/password-reset/confirm",
        json!({ "token": link, "password": "yet another passphrase" }),
    )
    .await;
    problem(r, 400).await;

    problem(
        login(&app, "ada@example.com", "correct horse battery").await,
        401,
    )
    .await;
    assert_eq!(
        login(&app, "ada@example.com", "a brand new passphrase")
            .await
            .status(),
        200
    );
    // The session from before the reset is over.
    let r = post(
        &app,
        "/api/users/token",
        json!({ "refresh_token": session.refresh_token }),
    )
    .await;
    problem(r, 401).await;
    // Using the mailed link proved the mailbox too.
    let me: UserView = client()
        .get(app.at("/api/users/me"))
        .header(headers::USER_ID, &user.id)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("me");
    assert!(me.email_verified);
}
