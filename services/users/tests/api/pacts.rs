//! users honours what its consumers rely on: every pact naming it
//! (`crates/contracts/pacts/*-users.json`), replayed against a real instance.

use std::collections::BTreeMap;

use emporium_contracts::auth::{LINK_PASSWORD_RESET, LINK_VERIFY_EMAIL};
use emporium_testkit::TestEnv;
use emporium_testkit::pact::{Substitutions, verify};

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
            "a user has a link to confirm their email" | "a user has a password reset link" => {
                let email = format!("pact-{}@example.com", uuid::Uuid::new_v4().simple());
                let user = account(app, &email).await;
                let purpose = if given.contains("confirm") {
                    LINK_VERIFY_EMAIL
                } else {
                    LINK_PASSWORD_RESET
                };
                vec![("token", super::email::token(app, &user.id, purpose).await)]
            }
            // Any token users never minted is as dead as a used one.
            "no link has a token" => Substitutions::new(),
            other => panic!("users knows no provider state `{other}`"),
        };
        subs
    };
    verify("users", &app.url, state).await;
}
