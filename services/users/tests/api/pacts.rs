//! users honours what its consumers rely on: every pact naming it
//! (`crates/contracts/pacts/*-users.json`), replayed against a real instance.

use std::collections::BTreeMap;

use emporium_contracts::auth::{LINK_PASSWORD_RESET, LINK_VERIFY_EMAIL};
use emporium_testkit::pact::{Substitutions, verify};
use emporium_testkit::{Spawned, TestEnv};

use serde_json::json;

use super::{account, spawn, tokens};

#[tokio::test]
async fn honours_the_pacts_of_its_consumers() {
    let env = TestEnv::new();
    let app = spawn(&env).await;
    let app = &app;
    let state = |given: String, params: BTreeMap<String, String>| async move {
        let subs: Substitutions = match given.as_str() {
            // With the usual password ("correct horse battery").
            "a user has an account" => {
                let email = format!("pact-{}@example.com", uuid::Uuid::new_v4().simple());
                let mut subs = vec![("user_id", account(app, &email).await.id)];
                if params.contains_key("email") {
                    subs.push(("email", email));
                }
                subs.retain(|(name, _)| params.contains_key(*name));
                subs
            }
            "no account has an email" => {
                vec![(
                    "email",
                    format!("pact-{}@example.com", uuid::Uuid::new_v4().simple()),
                )]
            }
            "a user is signed in" => {
                let email = format!("pact-{}@example.com", uuid::Uuid::new_v4().simple());
                account(app, &email).await;
                vec![("refresh_token", tokens(app, &email).await.refresh_token)]
            }
            "a user has a link to confirm their email" => {
                vec![("token", link(app, LINK_VERIFY_EMAIL, false).await)]
            }
            "a user has a password reset link" => {
                vec![("token", link(app, LINK_PASSWORD_RESET, false).await)]
            }
            "a user has used a link to confirm their email" => {
                vec![("token", link(app, LINK_VERIFY_EMAIL, true).await)]
            }
            "a user has used a password reset link" => {
                vec![("token", link(app, LINK_PASSWORD_RESET, true).await)]
            }
            // Signing up mails a link: another is refused for a minute.
            "a user signed up a moment ago" => {
                let email = format!("pact-{}@example.com", uuid::Uuid::new_v4().simple());
                vec![("user_id", account(app, &email).await.id)]
            }
            other => panic!("users knows no provider state `{other}`"),
        };
        subs
    };
    verify("users", &app.url, state).await;
}

/// The token of a `purpose` link for a new account, used once already if `used`.
async fn link(app: &Spawned, purpose: &str, used: bool) -> String {
    let email = format!("pact-{}@example.com", uuid::Uuid::new_v4().simple());
    let user = account(app, &email).await;
    let token = super::email::token(app, &user.id, purpose).await;
    if used {
        let (path, body) = if purpose == LINK_VERIFY_EMAIL {
            ("/api/users/verify", json!({ "token": token }))
        } else {
            (
                "/api/users/password-reset/confirm",
                json!({ "token": token, "password": "another good passphrase" }),
            )
        };
        let r = super::email::post(app, path, body).await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    token
}
