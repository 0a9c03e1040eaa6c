//! notifications' API, over HTTP: a welcome mail for every account users registers
//! (its UserRegistered event, through a registry and users' feed), written as an
//! `.eml` file, listed only to its owner.

use emporium_notifications::{Notifications, NotificationsSettings};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_testkit::{TestEnv, client, eventually, problem, sign_up};
use emporium_users::{Users, UsersSettings};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_account_gets_one_welcome_mail_that_only_its_owner_sees() {
    let env = TestEnv::new();
    let registry = env
        .spawn(RegistryService, env.settings::<RegistrySettings>(None))
        .await;
    let users = env
        .spawn(Users, env.settings::<UsersSettings>(Some(&registry)))
        .await;
    let mail_dir = env.dir.path().join("outbox-mail");
    let mut settings = env.settings::<NotificationsSettings>(Some(&registry));
    settings.service.mail_dir = Some(mail_dir.clone());
    let notifications = env.spawn(Notifications, settings).await;

    let (ada, _) = sign_up(&users.url, "ada@example.com").await;
    let (bob, _) = sign_up(&users.url, "bob@example.com").await;
    let inbox = |user: String| {
        let url = notifications.at("/api/notifications");
        async move {
            let r = client()
                .get(&url)
                .header("x-user-id", &user)
                .send()
                .await
                .expect("list");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("page")
        }
    };
    let mine = eventually("ada's welcome mail sent", || async {
        let page = inbox(ada.clone()).await;
        (page["items"][0]["status"] == "sent").then_some(page)
    })
    .await;
    assert_eq!(mine["total"], 1);
    let message = &mine["items"][0];
    assert_eq!(message["kind"], "welcome");
    assert!(
        message["body"]
            .as_str()
            .is_some_and(|b| b.contains("Test User"))
    );
    eventually("bob's mail sent", || async {
        let page = inbox(bob.clone()).await;
        (page["total"] == 1 && page["items"][0]["status"] == "sent").then_some(())
    })
    .await;

    // One .eml file per account, addressed to it.
    let files: Vec<String> = std::fs::read_dir(&mail_dir)
        .expect("mail dir")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).expect("eml"))
        .collect();
    assert_eq!(files.len(), 2, "one mail each");
    assert!(
        files
            .iter()
            .any(|f| f.contains("To: ") && f.contains("ada@example.com"))
    );
    assert!(files.iter().any(|f| f.contains("bob@example.com")));

    problem(
        client()
            .get(notifications.at("/api/notifications"))
            .send()
            .await
            .expect("send"),
        401,
    )
    .await;
    let nobody = inbox(emporium_testkit::user_id("someone else")).await;
    assert_eq!(nobody["total"], 0);
}
