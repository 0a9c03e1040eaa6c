//! storefront: the shop a person uses in a browser.
//!
//! Server-rendered HTML (askama templates, checked at compile time) over the
//! services' public APIs; every page works without JavaScript, and `site.js` only
//! adds to it (search suggestions, live order status, no double submits). The
//! gateway routes every path outside `/api` here, after verifying the session
//! cookie as it verifies a bearer token; the storefront is a trusted
//! backend-for-frontend: it calls the services directly through the platform's
//! typed clients, acting as the signed-in shopper with the identity headers
//! ([`backend`]), so a page is one hop from each service it shows.
//!
//! - [`session`]: the session cookie (the access token, HttpOnly, SameSite=Lax,
//!   Secure over TLS), CSRF tokens on every state-changing form (double-submit
//!   cookie and an Origin check), security headers (a strict CSP);
//! - [`pages`]: the handlers, one module per area (home and search, product, cart,
//!   checkout, orders and inbox, account; the back office and the ops console for
//!   admins);
//! - [`view`]: what the templates show, built from the APIs' answers; money and
//!   dates formatted once;
//! - [`error`]: error pages (404, 500 with the request id, a service down), and
//!   the sections that say "unavailable right now" while the rest renders.
//!
//! The storefront keeps nothing: no database, no events. Sessions live in the
//! shopper's cookie, carts and orders in their services.

mod assets;
mod backend;
mod error;
mod pages;
mod session;
mod view;

use std::time::Duration;

use axum::Router;
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub use session::{CSRF_COOKIE, CSRF_FIELD};

pub const NAME: &str = "storefront";

/// The `[storefront]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorefrontSettings {
    /// The shop's name, in the header and page titles.
    pub shop_name: String,
    /// Deadline of one call to a service.
    pub call_timeout_ms: u64,
    /// Mark the cookies `Secure` (they are also when the gateway says the request
    /// came over TLS, `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Products per page of search results and categories.
    pub page_size: usize,
    /// Reviews per page on a product page.
    pub reviews_per_page: usize,
}

impl Default for StorefrontSettings {
    fn default() -> Self {
        Self {
            shop_name: "Emporium".into(),
            call_timeout_ms: 5_000,
            secure_cookies: false,
            page_size: 24,
            reviews_per_page: 5,
        }
    }
}

/// The storefront, as the runtime hosts it.
pub struct Storefront;

impl Service for Storefront {
    type Settings = StorefrontSettings;
    const NAME: &'static str = NAME;
    const EVENTS: bool = false;

    async fn build(&self, cx: &mut Build<StorefrontSettings>) -> anyhow::Result<Router> {
        let timeout = Duration::from_millis(cx.settings.call_timeout_ms);
        let registry = cx
            .common()
            .registry_url
            .as_deref()
            .map(|url| emporium_client::RegistryClient::new(url, cx.host.clients.clone()));
        let backend = backend::Backend::new(|service| cx.client(service, timeout), registry);
        let log_file = emporium_telemetry::logfile::current(&cx.common().data_dir);
        Ok(pages::router(pages::App::new(
            backend,
            cx.settings.clone(),
            log_file,
        )))
    }
}
