//! Accounts done properly: admins granted by the operator, sessions with rotating
//! refresh tokens, sign-out, login throttling, signing-key rotation.

use std::time::Duration;

use emporium_contracts::headers;
use emporium_testkit::identity::client_as;
use emporium_testkit::{Spawned, TestEnv, client, problem};
use emporium_users::{SessionView, TokenResponse, Users, UsersSettings};
use serde_json::{Value, json};

use super::{account, register, spawn, tokens, verify};

async fn refresh(app: &Spawned, refresh_token: &str) -> reqwest::Response {
    client()
        .post(app.at("/api/users/token"))
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .expect("send")
}

async fn sessions_of(app: &Spawned, user_id: &str) -> Vec<SessionView> {
    client()
        .get(app.at("/api/users/me/sessions"))
        .header(headers::USER_ID, user_id)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("sessions")
}

async fn grant(app: &Spawned, email: &str) -> reqwest::Response {
    client()
        .put(app.at(&format!("/internal/users/admins/{email}")))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn admins_are_granted_and_revoked_by_the_operator_only() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    // Granted before the account exists: the grant waits for it.
    let r = grant(&app, "Boss@Example.com").await;
    assert_eq!(r.status(), 201);
    let g: Value = r.json().await.expect("grant");
    assert_eq!(g["email"], "boss@example.com");
    assert_eq!(g["account"], false);
    // Whoever registers the address is no admin until they prove they receive
    // its mail.
    let user = account(&app, "boss@example.com").await;
    assert_eq!(
        user.roles,
        ["customer"],
        "not before the address is confirmed"
    );
    assert_eq!(
        verify(&app, &tokens(&app, "boss@example.com").await.access_token)
            .await
            .roles,
        ["customer"]
    );
    let r = client()
        .put(app.at("/internal/users/verified/boss@example.com"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert!(
        verify(&app, &tokens(&app, "boss@example.com").await.access_token)
            .await
            .roles
            .contains(&"admin".to_string())
    );
    assert_eq!(
        grant(&app, "boss@example.com").await.status(),
        200,
        "granted already"
    );
    let list: Vec<Value> = client()
        .get(app.at("/internal/users/admins"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["account"], true);

    // Nobody else may grant, not even the gateway with a valid certificate.
    let r = client_as("gateway")
        .put(app.at("/internal/users/admins/mallory@example.com"))
        .send()
        .await
        .expect("send");
    problem(r, 403).await;
    problem(grant(&app, "not-an-email").await, 422).await;

    // A regular account is no admin; revoking takes the role from the next token.
    account(&app, "ada@example.com").await;
    assert!(
        !verify(&app, &tokens(&app, "ada@example.com").await.access_token)
            .await
            .roles
            .contains(&"admin".to_string())
    );
    let session = tokens(&app, "boss@example.com").await;
    let r = client()
        .delete(app.at("/internal/users/admins/boss@example.com"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    let refreshed: TokenResponse = refresh(&app, &session.refresh_token)
        .await
        .json()
        .await
        .expect("refreshed");
    assert_eq!(
        verify(&app, &refreshed.access_token).await.roles,
        ["customer"]
    );
    let r = client()
        .delete(app.at("/internal/users/admins/boss@example.com"))
        .send()
        .await
        .expect("send");
    problem(r, 404).await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session() {
    let env = TestEnv::new();
    let mut settings = env.settings::<UsersSettings>(None);
    settings.service.refresh_reuse_grace_secs = 0;
    let app = env.spawn(Users, settings).await;
    let user = account(&app, "ada@example.com").await;
    let first = tokens(&app, "ada@example.com").await;
    assert_eq!(first.refresh_expires_in, 14 * 24 * 3600);
    let r = refresh(&app, &first.refresh_token).await;
    assert_eq!(r.status(), 200);
    let second: TokenResponse = r.json().await.expect("refreshed");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(verify(&app, &second.access_token).await.sub, user.id);
    assert_eq!(
        sessions_of(&app, &user.id).await.len(),
        1,
        "the same session"
    );

    // The first token again: someone kept a copy. The session ends, for both.
    let reused = problem(refresh(&app, &first.refresh_token).await, 401).await;
    assert!(reused.detail.contains("already used"), "{}", reused.detail);
    problem(refresh(&app, &second.refresh_token).await, 401).await;
    assert!(sessions_of(&app, &user.id).await.is_empty());

    problem(refresh(&app, "not-a-token").await, 401).await;
    problem(refresh(&app, &"x".repeat(10_000)).await, 401).await;
    let r = client()
        .post(app.at("/api/users/token"))
        .json(&json!({ "refresh_token": first.refresh_token, "user_id": user.id }))
        .send()
        .await
        .expect("send");
    problem(r, 422).await;
}

#[tokio::test]
async fn a_refresh_token_sent_twice_at_once_is_a_retry_not_a_theft() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let user = account(&app, "ada@example.com").await;
    let first = tokens(&app, "ada@example.com").await;
    // Two tabs refresh with the same token at the same moment: both get a
    // successor (within the grace period), and both successors work.
    let (a, b) = tokio::join!(
        refresh(&app, &first.refresh_token),
        refresh(&app, &first.refresh_token)
    );
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    let a: TokenResponse = a.json().await.expect("a");
    let b: TokenResponse = b.json().await.expect("b");
    assert_ne!(a.refresh_token, b.refresh_token);
    assert_eq!(refresh(&app, &a.refresh_token).await.status(), 200);
    assert_eq!(refresh(&app, &b.refresh_token).await.status(), 200);
    assert_eq!(sessions_of(&app, &user.id).await.len(), 1, "one session");
}

#[tokio::test]
async fn sign_out_ends_a_session_and_users_see_only_their_own() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let ada = account(&app, "ada@example.com").await;
    let bob = account(&app, "bob@example.com").await;
    let laptop = tokens(&app, "ada@example.com").await;
    let phone = tokens(&app, "ada@example.com").await;
    let bobs = tokens(&app, "bob@example.com").await;
    let ada_sessions = sessions_of(&app, &ada.id).await;
    assert_eq!(ada_sessions.len(), 2);
    assert_eq!(sessions_of(&app, &bob.id).await.len(), 1);

    // Bob cannot end Ada's session; it is not found for him.
    let r = client()
        .delete(app.at(&format!("/api/users/me/sessions/{}", ada_sessions[0].id)))
        .header(headers::USER_ID, &bob.id)
        .send()
        .await
        .expect("send");
    problem(r, 404).await;
    assert_eq!(sessions_of(&app, &ada.id).await.len(), 2);

    // Signing out on the laptop ends that session only.
    let r = client()
        .post(app.at("/api/users/logout"))
        .json(&json!({ "refresh_token": laptop.refresh_token }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    problem(refresh(&app, &laptop.refresh_token).await, 401).await;
    assert_eq!(refresh(&app, &phone.refresh_token).await.status(), 200);
    let r = client()
        .post(app.at("/api/users/logout"))
        .json(&json!({ "refresh_token": "unknown" }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204, "the same answer for unknown tokens");

    // Ada ends her remaining session by id; then signs out everywhere.
    let left = sessions_of(&app, &ada.id).await;
    assert_eq!(left.len(), 1);
    let r = client()
        .delete(app.at(&format!("/api/users/me/sessions/{}", left[0].id)))
        .header(headers::USER_ID, &ada.id)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    tokens(&app, "ada@example.com").await;
    tokens(&app, "ada@example.com").await;
    let r: Value = client()
        .delete(app.at("/api/users/me/sessions"))
        .header(headers::USER_ID, &ada.id)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("revoked");
    assert_eq!(r["revoked"], 2);
    assert!(sessions_of(&app, &ada.id).await.is_empty());
    assert_eq!(
        refresh(&app, &bobs.refresh_token).await.status(),
        200,
        "Bob is still signed in"
    );
}

/// A sign-in attempt as the gateway makes it, naming the client's address.
async fn attempt(app: &Spawned, ip: &str, email: &str, password: &str) -> reqwest::Response {
    client_as("gateway")
        .post(app.at("/api/users/login"))
        .header(headers::CLIENT_IP, ip)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn password_spraying_is_slowed_per_address_and_guessing_per_account() {
    let env = TestEnv::new();
    let mut settings = env.settings::<UsersSettings>(None);
    settings.service.login_throttle.account_free_failures = 3;
    settings.service.login_throttle.ip_free_failures = 6;
    settings.service.login_throttle.base_delay_ms = 1_000;
    let app = env.spawn(Users, settings).await;
    for i in 0..8 {
        register(
            &app,
            &format!("victim{i}@example.com"),
            "correct horse battery",
        )
        .await;
    }

    // One address tries a common password on every account: after its free
    // failures it is refused before any password is checked.
    let sprayer = "203.0.113.9";
    for i in 0..6 {
        let r = attempt(
            &app,
            sprayer,
            &format!("victim{i}@example.com"),
            "Summer2026!x",
        )
        .await;
        problem(r, 401).await;
    }
    problem(
        attempt(&app, sprayer, "victim6@example.com", "Summer2026!x").await,
        401,
    )
    .await;
    let r = attempt(&app, sprayer, "victim7@example.com", "Summer2026!x").await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=2).contains(&retry), "retry after {retry}");
    problem(r, 429).await;
    // Even the right password is refused from there while it is slowed.
    problem(
        attempt(
            &app,
            sprayer,
            "victim7@example.com",
            "correct horse battery",
        )
        .await,
        429,
    )
    .await;
    // The victims, from their own addresses, sign in.
    assert_eq!(
        attempt(
            &app,
            "198.51.100.7",
            "victim7@example.com",
            "correct horse battery"
        )
        .await
        .status(),
        200
    );

    // Guessing one account's password from many addresses slows that account,
    // for about a second first: its owner is not locked out for long. An email
    // without an account gets exactly the same answers.
    for email in ["victim7@example.com", "nobody@example.com"] {
        for i in 0..3 {
            problem(
                attempt(&app, &format!("192.0.2.{i}"), email, "wrong horse battery").await,
                401,
            )
            .await;
        }
        problem(
            attempt(&app, "192.0.2.3", email, "wrong horse battery").await,
            401,
        )
        .await;
        let blocked = attempt(&app, "192.0.2.4", email, "correct horse battery").await;
        assert_eq!(blocked.headers()["retry-after"], "1", "{email}");
        problem(blocked, 429).await;
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        attempt(
            &app,
            "198.51.100.8",
            "victim7@example.com",
            "correct horse battery"
        )
        .await
        .status(),
        200
    );
    problem(
        attempt(
            &app,
            "198.51.100.8",
            "nobody@example.com",
            "correct horse battery",
        )
        .await,
        401,
    )
    .await;

    // Only the gateway and the storefront may name the client's address.
    let r = client_as("orders")
        .post(app.at("/api/users/login"))
        .header(headers::CLIENT_IP, "198.51.100.99")
        .json(&json!({ "email": "victim2@example.com", "password": "correct horse battery" }))
        .send()
        .await
        .expect("send");
    problem(r, 403).await;
}

#[tokio::test]
async fn a_rotated_signing_key_keeps_old_tokens_valid() {
    let env = TestEnv::new();
    let mut settings = env.settings::<UsersSettings>(None);
    // Signs at once here (by default a new key is published 30 s before it signs).
    settings.service.key_activation_delay_secs = 0;
    let app = env.spawn(Users, settings).await;
    account(&app, "ada@example.com").await;
    let before = tokens(&app, "ada@example.com").await;
    let r = client()
        .post(app.at("/internal/users/keys"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let keys: Vec<Value> = r.json().await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["signing"], true);
    assert_eq!(keys[1]["signing"], false);
    assert!(keys[1]["withdrawn_at"].is_string());
    let after = tokens(&app, "ada@example.com").await;
    let kid = |t: &str| {
        jsonwebtoken::decode_header(t)
            .expect("header")
            .kid
            .expect("kid")
    };
    assert_eq!(
        kid(&after.access_token),
        keys[0]["kid"].as_str().expect("kid")
    );
    assert_eq!(
        kid(&before.access_token),
        keys[1]["kid"].as_str().expect("kid")
    );
    // Both verify against the published JWKS.
    verify(&app, &before.access_token).await;
    verify(&app, &after.access_token).await;
    let r = client_as("gateway")
        .post(app.at("/internal/users/keys"))
        .send()
        .await
        .expect("send");
    problem(r, 403).await;
}
