//! notifications: email on account and order events.
//!
//! Consumes users' `UserRegistered` (the recipient's address, and a welcome mail),
//! `EmailVerificationRequested` and `PasswordResetRequested` (a mail with a one-time
//! link users mints as it goes out: see [`links`]) and orders' `OrderConfirmed` and
//! `OrderCancelled`. A handler only records the
//! message, in the consumer's transaction; a [`delivery`] loop woken after each
//! commit sends it: through SMTP (lettre) when `[notifications.smtp]` is set, otherwise
//! as an `.eml` file under `<data_dir>/notifications/mail/`. Delivery failures are
//! retried with backoff until they succeed, so a mail outage never reaches the
//! checkout and no mail is lost. Public API: `GET /api/notifications` (your messages).

mod api;
pub mod audit;
mod delivery;
mod handlers;
mod links;
mod render;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use emporium_config::Secret;
use emporium_contracts::events::{
    EmailVerificationRequested, OrderCancelled, OrderConfirmed, PasswordResetRequested,
    UserRegistered,
};
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub use api::{MessagePage, MessageView};

pub const NAME: &str = "notifications";

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[notifications]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsSettings {
    /// The sender of every mail.
    pub from: String,
    /// The shop's public address, for the links in account mails (confirm an
    /// address, reset a password).
    pub shop_url: String,
    /// Send through this SMTP server; without it, mail is written to `mail_dir`.
    pub smtp: Option<SmtpSettings>,
    /// Where `.eml` files go (default: `<data_dir>/notifications/mail`).
    pub mail_dir: Option<PathBuf>,
    /// First retry delay of a failed delivery; doubles up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for NotificationsSettings {
    fn default() -> Self {
        Self {
            from: "Emporium <orders@emporium.localhost>".into(),
            shop_url: "http://localhost:8080".into(),
            smtp: None,
            mail_dir: None,
            retry_base_ms: 500,
            retry_max_ms: 60_000,
        }
    }
}

/// An SMTP server (`[notifications.smtp]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `none` (plain, for a local relay), `starttls` or `tls`.
    #[serde(default = "default_tls")]
    pub tls: String,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    /// Give up on one connection attempt after this long.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_ms: u64,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_tls() -> String {
    "starttls".into()
}

fn default_smtp_timeout() -> u64 {
    10_000
}

/// The notifications service, as the runtime hosts it.
pub struct Notifications;

impl Service for Notifications {
    type Settings = NotificationsSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<NotificationsSettings>) -> anyhow::Result<Router> {
        {
            use emporium_telemetry::metrics::{counter, describe_counter};
            describe_counter!(
                "emporium_mails_sent_total",
                "Mails handed to the SMTP server."
            );
            describe_counter!(
                "emporium_mail_failures_total",
                "Mail deliveries that failed, transient (retried) or permanent."
            );
            counter!("emporium_mails_sent_total").absolute(0);
            for kind in ["transient", "permanent"] {
                counter!("emporium_mail_failures_total", "kind" => kind).absolute(0);
            }
        }
        let s = cx.settings.clone();
        let mail_dir = s
            .mail_dir
            .clone()
            .unwrap_or_else(|| cx.host.data_dir().join("mail"));
        let mailer = delivery::Mailer::new(&s, mail_dir)?;
        let wake = Arc::new(tokio::sync::Notify::new());
        cx.on::<UserRegistered>(handlers::user_registered)
            .on::<EmailVerificationRequested>(handlers::verification_requested)
            .on::<PasswordResetRequested>(handlers::reset_requested)
            .on::<OrderConfirmed>(handlers::order_confirmed)
            .on::<OrderCancelled>(handlers::order_cancelled)
            .on_commit(wake.clone());
        let db = cx.db().clone();
        let sender_db = db.clone();
        let links = links::Links::new(cx.client("users", Duration::from_secs(10)), &s.shop_url);
        cx.spawn(move |stopped| delivery::run(sender_db, mailer, links, s, wake, stopped));
        Ok(api::router(api::AppState { db }))
    }
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
