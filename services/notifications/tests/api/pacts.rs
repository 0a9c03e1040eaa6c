//! What notifications relies on from users, as a pact
//! (`crates/contracts/pacts/notifications-users.json`, verified by users' API
//! tests): a one-time link for a user, minted just before the mail that carries it.

use emporium_client::api::Users;
use emporium_contracts::auth::{LINK_PASSWORD_RESET, LINK_VERIFY_EMAIL, LINKS_PATH, LinkRequest};
use emporium_testkit::pact::{Interaction, Pact};
use serde_json::json;

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
