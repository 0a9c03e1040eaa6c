//! notifications' API, over HTTP: a welcome mail and a mail to confirm the address
//! for every account users registers (its events, through a registry and users'
//! feed), written as `.eml` files, listed only to their owner; the confirmation's
//! one-time link works at users.

mod pacts;

use emporium_notifications::{Notifications, NotificationsSettings};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_testkit::mail::mailed_token;
use emporium_testkit::{Spawned, TestEnv, client, eventually, problem, sign_up};
use emporium_users::{Users, UsersSettings};
use serde_json::{Value, json};

/// A registry, users, and notifications writing its mail to `mail_dir`.
struct World {
    users: Spawned,
    notifications: Spawned,
    mail_dir: std::path::PathBuf,
    _registry: Spawned,
    _env: TestEnv,
}

async fn world() -> World {
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
    World {
        users,
        notifications,
        mail_dir,
        _registry: registry,
        _env: env,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_account_gets_a_welcome_and_a_working_confirmation_link_only_its_owner_sees() {
    let w = world().await;
    let World {
        users,
        notifications,
        mail_dir,
        ..
    } = &w;

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
    let all_sent = |page: &Value| {
        page["total"] == 2
            && page["items"]
                .as_array()
                .is_some_and(|i| i.iter().all(|m| m["status"] == "sent"))
    };
    let mine = eventually("ada's mails sent", || async {
        let page = inbox(ada.clone()).await;
        all_sent(&page).then_some(page)
    })
    .await;
    let of_kind = |kind: &str| {
        mine["items"]
            .as_array()
            .and_then(|i| i.iter().find(|m| m["kind"] == kind))
            .cloned()
            .unwrap_or_else(|| panic!("a {kind} mail: {mine}"))
    };
    let welcome = of_kind("welcome");
    assert!(
        welcome["body"]
            .as_str()
            .is_some_and(|b| b.contains("Test User"))
    );
    // The inbox shows that a link was sent, never the link: reading the shop's
    // inbox must not stand in for owning the mailbox.
    let verify = of_kind("verify_email");
    let body = verify["body"].as_str().expect("body");
    assert!(body.contains("only in the mail"), "{body}");
    assert!(!body.contains("token="), "{body}");
    eventually("bob's mails sent", || async {
        let page = inbox(bob.clone()).await;
        all_sent(&page).then_some(())
    })
    .await;

    // Two .eml files per account (welcome, confirm your address), addressed to it.
    let files: Vec<String> = std::fs::read_dir(mail_dir)
        .expect("mail dir")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).expect("eml"))
        .collect();
    assert_eq!(files.len(), 4, "two mails each");
    assert!(
        files
            .iter()
            .any(|f| f.contains("To: ") && f.contains("ada@example.com"))
    );
    assert!(files.iter().any(|f| f.contains("bob@example.com")));

    // The mailed link confirms Ada's address at users, once.
    let token = mailed_token(mail_dir, "ada@example.com", "/verify").await;
    let confirm = || {
        client()
            .post(users.at("/api/users/verify"))
            .json(&json!({ "token": token }))
            .send()
    };
    let r = confirm().await.expect("verify");
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.expect("account");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["email_verified"], true);
    problem(confirm().await.expect("verify"), 400).await;

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
