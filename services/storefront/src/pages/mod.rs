//! The pages: one module per area, the routes, and what every page shares (the
//! header's [`Chrome`], form and query extractors that answer with error pages).

mod account;
mod admin;
mod browse;
mod cart;
mod checkout;
mod email;
mod ops;
mod orders;
mod product;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use emporium_contracts::registry::Instance;

use crate::StorefrontSettings;
use crate::assets::{self, URLS};
use crate::backend::{self, Backend, Cart};
use crate::error::PageError;
use crate::session::{self, Visitor};

/// What every handler shares; one `Arc`.
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub backend: Backend,
    pub settings: StorefrontSettings,
    /// The log file `emporium up` keeps (for the trace page), if this is one.
    pub log_file: std::path::PathBuf,
}

impl App {
    pub fn new(
        backend: Backend,
        settings: StorefrontSettings,
        log_file: std::path::PathBuf,
    ) -> Self {
        Self(Arc::new(Inner {
            backend,
            settings,
            log_file,
        }))
    }

    pub(crate) fn registry(&self) -> Result<&emporium_client::RegistryClient, PageError> {
        self.backend.registry.as_ref().ok_or_else(|| {
            PageError::Internal(anyhow::anyhow!("the storefront runs without a registry"))
        })
    }

    /// Every instance the registry knows, healthy or not.
    pub async fn instances_all(&self) -> Result<Vec<Instance>, PageError> {
        self.registry()?
            .instances()
            .await
            .map(|s| s.instances)
            .map_err(|e| PageError::from_call("the registry", e))
    }

    /// The healthy instances: those worth asking.
    pub async fn instances(&self) -> Result<Vec<Instance>, PageError> {
        emporium_events::fleet::instances(self.registry()?)
            .await
            .map_err(|e| PageError::from_call("the registry", e))
    }
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(browse::home))
        .route("/search", get(browse::search))
        .route("/products/{sku}", get(product::show))
        .route("/products/{sku}/reviews", post(product::review))
        .route("/cart", get(cart::show))
        .route("/cart/items", post(cart::add))
        .route("/cart/items/{sku}", post(cart::update))
        .route("/cart/items/{sku}/remove", post(cart::remove))
        .route("/checkout", get(checkout::form).post(checkout::place))
        .route("/orders", get(orders::history))
        .route("/orders/{id}", get(orders::show))
        .route("/orders/{id}/status", get(orders::status))
        .route("/inbox", get(orders::inbox))
        .route("/admin", get(admin::index))
        .route(
            "/admin/products",
            get(admin::products).post(admin::create_product),
        )
        .route("/admin/products/new", get(admin::new_product))
        .route(
            "/admin/products/{id}",
            get(admin::edit_product).post(admin::save_product),
        )
        .route("/admin/stock/{sku}", post(admin::set_stock))
        .route("/admin/orders", get(admin::orders))
        .route("/admin/reviews", get(admin::reviews))
        .route("/admin/reviews/{id}/hide", post(admin::hide_review))
        .route("/admin/events", get(admin::dead_letters))
        .route("/admin/events/{id}/replay", post(admin::replay))
        .route("/ops", get(ops::console))
        .route("/ops/trace", get(ops::trace))
        .route("/signin", get(account::signin_form).post(account::signin))
        .route("/signup", get(account::signup_form).post(account::signup))
        .route("/signout", post(account::signout))
        .route("/verify", get(email::verify_form).post(email::verify))
        .route("/verification", post(email::resend))
        .route("/reset", get(email::reset_form).post(email::ask_reset))
        .route("/reset/confirm", post(email::confirm_reset))
        .route("/assets/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .route_layer(axum::middleware::from_fn_with_state(
            app.settings.secure_cookies,
            session::csrf,
        ))
        // Outside the CSRF check: a refreshed session is signed in by then.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            session::refresh,
        ))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(session::secure_headers))
        .with_state(app)
}

async fn not_found() -> PageError {
    PageError::NotFound
}

/// The header, footer and everything else the layout shows on every page.
pub struct Chrome {
    pub shop: String,
    pub title: String,
    /// The signed-in shopper's display name.
    pub user: Option<String>,
    pub admin: bool,
    /// Units in the cart, for the badge.
    pub cart_count: i64,
    pub csrf: String,
    /// The search box's text.
    pub q: String,
    /// "Sign in", coming back to this page.
    pub signin: String,
    pub notice: String,
    pub css: &'static str,
    pub js: &'static str,
    pub icon: &'static str,
}

impl Chrome {
    /// The layout without a visitor: error pages.
    pub fn plain(title: &str) -> Self {
        Self {
            shop: "Emporium".into(),
            title: title.into(),
            user: None,
            admin: false,
            cart_count: 0,
            csrf: String::new(),
            q: String::new(),
            signin: "/signin".into(),
            notice: String::new(),
            css: &URLS.css,
            js: &URLS.js,
            icon: &URLS.icon,
        }
    }

    /// The layout for `visitor`, with the cart's units when known.
    pub fn new(app: &App, visitor: &Visitor, title: &str, cart: Option<&Cart>) -> Self {
        let user = visitor.user.as_ref().map(|_| {
            if visitor.name.is_empty() {
                "your account".to_string()
            } else {
                visitor.name.clone()
            }
        });
        Self {
            shop: app.settings.shop_name.clone(),
            title: title.into(),
            user,
            admin: visitor.is_admin(),
            cart_count: cart.map_or(0, |c| c.item_count),
            csrf: visitor.csrf.clone(),
            q: String::new(),
            signin: backend::with_query("/signin", [("next", visitor.here.as_str())]),
            notice: if visitor.expired {
                "Your session has ended; please sign in again.".into()
            } else {
                String::new()
            },
            css: &URLS.css,
            js: &URLS.js,
            icon: &URLS.icon,
        }
    }

    pub fn with_notice(mut self, notice: &str) -> Self {
        if !notice.is_empty() {
            self.notice = notice.into();
        }
        self
    }

    pub fn with_query(mut self, q: &str) -> Self {
        self.q = q.into();
        self
    }
}

/// The visitor's cart, for the badge: `None` when signed out or the cart is down
/// (the page renders without a count).
pub async fn cart_of(app: &App, visitor: &Visitor) -> Option<Cart> {
    let user = visitor.user.as_ref()?;
    backend::as_user(&app.backend.cart, user)
        .get_json::<Cart>("/api/cart")
        .await
        .map_err(|e| tracing::debug!(error = %e, "no cart badge"))
        .ok()
}

/// A rendered page, or the 500 page when the template fails.
pub fn render(page: &impl Template) -> Result<Response, PageError> {
    page.render()
        .map(|html| Html(html).into_response())
        .map_err(|e| PageError::Internal(e.into()))
}

/// A message named by the `n` query parameter after a redirect ("added to your
/// cart"): fixed texts only, so a link cannot put words on our pages.
pub fn notice(code: Option<&str>) -> &'static str {
    match code {
        Some("added") => "Added to your cart.",
        Some("updated") => "Your cart was updated.",
        Some("removed") => "Removed from your cart.",
        Some("signed-out") => "You are signed out.",
        Some("verified") => "Your email address is confirmed.",
        Some("confirm-to-check-out") => {
            "To check out, confirm your email address first: open the link we mailed you."
        }
        Some("verification-sent") => "A new link is on its way; check your mailbox.",
        Some("verification-wait") => "A mail went out less than a minute ago; wait a moment.",
        Some("password-reset") => "Your password is changed: sign in with the new one.",
        Some("welcome") => "Welcome! Your account is ready.",
        Some("reviewed") => "Thank you! Your review is published.",
        Some("cart-empty") => "Your cart is empty; add something before checking out.",
        Some("sold-out") => "Something in your cart is no longer available in that quantity.",
        _ => "",
    }
}

/// One input of a form: what was typed, and what is wrong with it.
#[derive(Debug, Default, Clone)]
pub struct Field {
    pub value: String,
    pub error: String,
}

impl Field {
    /// An input holding `value`, with nothing wrong yet.
    pub fn of(value: &str) -> Self {
        Self {
            value: value.to_string(),
            error: String::new(),
        }
    }
}

/// A textarea's text as the APIs take it: trimmed, with the CRLF line breaks
/// browsers submit as LF (a carriage return is a control character there).
pub fn paragraphs(text: &str) -> String {
    text.trim().replace("\r\n", "\n").replace('\r', "\n")
}

/// A form body decoded into `T`; a bad form is a 400 page.
pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, _: &S) -> Result<Self, PageError> {
        let bytes = Limited::new(req.into_body(), session::FORM_LIMIT)
            .collect()
            .await
            .map_err(|_| PageError::BadRequest("The form is too large.".into()))?
            .to_bytes();
        serde_urlencoded::from_bytes(&bytes)
            .map(PageForm)
            .map_err(|e| PageError::BadRequest(format!("The form is not valid: {e}.")))
    }
}

/// A query string decoded into `T`; a bad one is a 400 page.
pub struct PageQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageError> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(PageQuery)
            .map_err(|e| PageError::BadRequest(format!("The address is not valid: {e}.")))
    }
}

/// A local path to come back to: only `/something`, never another site
/// (`//evil.example`, `/\evil`) — an open redirect otherwise.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_textarea_is_sent_with_lf_line_breaks() {
        let sent = paragraphs(" Good lamp.\r\n\r\nBright.\r ");
        assert_eq!(sent, "Good lamp.\n\nBright.");
        assert!(emporium_contracts::fields::required_text(&sent, 100).is_ok());
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/cart")), "/cart");
        assert_eq!(safe_next(Some("/search?q=a")), "/search?q=a");
        assert_eq!(safe_next(Some("//evil.example/x")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/x\r\nSet-Cookie: a")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
