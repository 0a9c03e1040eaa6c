//! users' API, over HTTP, against a real SQLite database in a temp folder.

mod accounts;
mod email;
mod pacts;

use emporium_contracts::auth::{AUDIENCE, AccessClaims, ISSUER};
use emporium_contracts::headers;
use emporium_testkit::{Spawned, TestEnv, client, problem};
use emporium_users::{TokenResponse, UserView, Users, UsersSettings};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::json;

async fn spawn(env: &TestEnv) -> Spawned {
    env.spawn(Users, env.settings::<UsersSettings>(None)).await
}

async fn register(app: &Spawned, email: &str, password: &str) -> reqwest::Response {
    client()
        .post(app.at("/api/users/register"))
        .json(&json!({"email": email, "password": password, "name": "Ada Lovelace"}))
        .send()
        .await
        .expect("send")
}

async fn login(app: &Spawned, email: &str, password: &str) -> reqwest::Response {
    client()
        .post(app.at("/api/users/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("send")
}

/// A new account for `email` with the usual password.
async fn account(app: &Spawned, email: &str) -> UserView {
    let r = register(app, email, "correct horse battery").await;
    assert_eq!(r.status(), 201, "register {email}");
    r.json().await.expect("user")
}

/// `email` signed in with the usual password: its tokens.
async fn tokens(app: &Spawned, email: &str) -> TokenResponse {
    let r = login(app, email, "correct horse battery").await;
    assert_eq!(r.status(), 200, "{email} signs in");
    r.json().await.expect("tokens")
}

async fn verify(app: &Spawned, token: &str) -> AccessClaims {
    let jwks: JwkSet = client()
        .get(app.at("/.well-known/jwks.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("jwks");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid published");
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<AccessClaims>(token, &DecodingKey::from_jwk(jwk).expect("key"), &v)
        .expect("a valid token")
        .claims
}

#[tokio::test]
async fn register_login_and_me() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let r = register(&app, "  Ada@Example.COM ", "correct horse battery").await;
    assert_eq!(r.status(), 201);
    let user: UserView = r.json().await.expect("user");
    assert_eq!(user.email, "ada@example.com", "normalised");
    assert_eq!(user.roles, ["customer"]);

    let r = login(&app, "ADA@example.com", "correct horse battery").await;
    assert_eq!(r.status(), 200);
    let token: TokenResponse = r.json().await.expect("token");
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.expires_in, 900);
    let claims = verify(&app, &token.access_token).await;
    assert_eq!(claims.sub, user.id);
    assert_eq!(claims.exp - claims.iat, 900);

    let me: UserView = client()
        .get(app.at("/api/users/me"))
        .header(headers::USER_ID, &user.id)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("me");
    assert_eq!(me.id, user.id);
    problem(
        client()
            .get(app.at("/api/users/me"))
            .send()
            .await
            .expect("send"),
        401,
    )
    .await;
    let stranger = uuid::Uuid::now_v7().to_string();
    problem(
        client()
            .get(app.at("/api/users/me"))
            .header(headers::USER_ID, stranger)
            .send()
            .await
            .expect("send"),
        404,
    )
    .await;
}

#[tokio::test]
async fn duplicate_emails_are_409_whatever_their_case() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    assert_eq!(
        register(&app, "grace@example.com", "correct horse battery")
            .await
            .status(),
        201
    );
    problem(
        register(&app, "GRACE@example.com", "another long password").await,
        409,
    )
    .await;
}

#[tokio::test]
async fn bad_registrations_name_the_field() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    for (email, password, field) in [
        ("not-an-email", "correct horse battery", "email"),
        ("a@b", "correct horse battery", "email"),
        (
            &format!("{}@example.com", "a".repeat(250)) as &str,
            "correct horse battery",
            "email",
        ),
        ("ok@example.com", "short", "password"),
        ("ok@example.com", "password123", "password"),
        ("ok@example.com", &"p".repeat(200), "password"),
    ] {
        let p = problem(register(&app, email, password).await, 422).await;
        assert_eq!(p.errors[0].field, field, "{email} / {password}");
    }
    let long_name = client()
        .post(app.at("/api/users/register"))
        .json(&json!({"email": "n@example.com", "password": "correct horse battery", "name": "n".repeat(101)}))
        .send()
        .await
        .expect("send");
    assert_eq!(problem(long_name, 422).await.errors[0].field, "name");
    let all_bad = client()
        .post(app.at("/api/users/register"))
        .json(&json!({"email": "x", "password": "y", "name": ""}))
        .send()
        .await
        .expect("send");
    assert_eq!(
        problem(all_bad, 422).await.errors.len(),
        3,
        "every field is reported at once"
    );
    let extra = client()
        .post(app.at("/api/users/register"))
        .json(&json!({"email": "e@example.com", "password": "correct horse battery", "name": "E", "roles": ["admin"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(
        problem(extra, 422).await.errors[0].field,
        "roles",
        "no mass assignment"
    );
    let wrong_type = client()
        .post(app.at("/api/users/register"))
        .json(&json!({"email": 5, "password": "correct horse battery", "name": "E"}))
        .send()
        .await
        .expect("send");
    assert_eq!(problem(wrong_type, 422).await.errors[0].field, "email");
    let malformed = client()
        .post(app.at("/api/users/register"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .expect("send");
    problem(malformed, 400).await;
}

#[tokio::test]
async fn failed_logins_do_not_reveal_whether_the_account_exists() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    assert_eq!(
        register(&app, "known@example.com", "correct horse battery")
            .await
            .status(),
        201
    );
    let wrong_password = problem(
        login(&app, "known@example.com", "wrong horse battery").await,
        401,
    )
    .await;
    let unknown_user = problem(
        login(&app, "nobody@example.com", "correct horse battery").await,
        401,
    )
    .await;
    let not_an_email = problem(login(&app, "nobody", "correct horse battery").await, 401).await;
    assert_eq!(wrong_password.detail, unknown_user.detail);
    assert_eq!(wrong_password.detail, not_an_email.detail);
    problem(
        login(&app, "known@example.com", &"x".repeat(5000)).await,
        401,
    )
    .await;
}

#[tokio::test]
async fn the_signing_key_survives_a_restart() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    assert_eq!(
        register(&app, "k@example.com", "correct horse battery")
            .await
            .status(),
        201
    );
    let token: TokenResponse = login(&app, "k@example.com", "correct horse battery")
        .await
        .json()
        .await
        .expect("token");
    app.stop().await.expect("stop");
    let again = spawn(&env).await;
    // A token issued before the restart still verifies against the new JWKS.
    verify(&again, &token.access_token).await;
}
