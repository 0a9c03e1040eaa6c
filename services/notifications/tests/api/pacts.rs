//! notifications' contracts. As a provider, it honours what its consumers rely on
//! (every pact naming it, `crates/contracts/pacts/*-notifications.json`, replayed
//! against a real instance fed by a real users). As a consumer, what it relies on
//! from users, as a pact (`crates/contracts/pacts/notifications-users.json`,
//! verified by users' API tests): a one-time link for a user, minted just before
//! the mail that carries it.

use std::collections::BTreeMap;

use emporium_client::api::Users;
use emporium_contracts::auth::{LINK_PASSWORD_RESET, LINK_VERIFY_EMAIL, LINKS_PATH, LinkRequest};
use emporium_testkit::pact::{Interaction, Pact, Substitutions, verify};
use emporium_testkit::{client, eventually, sign_up};
use serde_json::{Value, json};

use super::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_the_pacts_of_its_consumers() {
    let w = world().await;
    let (users, notifications) = (&w.users, &w.notifications);
    let state = |given: String, _: BTreeMap<String, String>| async move {
        let subs: Substitutions = match given.as_str() {
            // An account's welcome, sent.
            "a shopper has been mailed" => {
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let email = format!("pact-{n}@example.com");
                let (user, _) = sign_up(&users.url, &email).await;
                eventually("the welcome mail sent", || async {
                    let page: Value = client()
                        .get(notifications.at("/api/notifications"))
                        .header("x-user-id", &user)
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                    page["items"]
                        .as_array()?
                        .iter()
                        .any(|m| m["status"] == "sent")
                        .then_some(())
                })
                .await;
                vec![("user_id", user)]
            }
            other => panic!("notifications knows no provider state `{other}`"),
        };
        subs
    };
    verify("notifications", &notifications.url, state).await;
}

const USER: &str = "22222222-2222-4222-8222-222222222222";

#[tokio::test]
async fn mails_rely_on_users_for_their_links() {
    let mut pact = Pact::declare("notifications", "users");
    for purpose in [LINK_VERIFY_EMAIL, LINK_PASSWORD_RESET] {
        pact.interaction(
            Interaction::new(&format!("a {purpose} link for an account"))
                .given("a user has an account")
                .param("user_id", USER)
                .request(
                    "POST",
                    LINKS_PATH,
                    Some(json!({ "user_id": USER, "purpose": purpose })),
                )
                .responds(
                    201,
                    json!({ "token": "a-token", "expires_at": "2026-12-04T12:00:00Z" }),
                    &[],
                ),
        );
    }
    let users = Users(pact.client());
    for purpose in [LINK_VERIFY_EMAIL, LINK_PASSWORD_RESET] {
        let link = users
            .link(&LinkRequest {
                user_id: USER.to_string(),
                purpose: purpose.to_string(),
            })
            .await
            .expect("a link");
        assert!(!link.token.is_empty());
    }
    pact.finish();
}
