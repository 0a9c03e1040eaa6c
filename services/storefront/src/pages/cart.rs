//! The cart: lines with their stock today, quantity changes, removal, the total.
//! Adding while signed out asks to sign in first and adds on the way back.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use futures::future::join_all;
use http::Method;
use serde::Deserialize;

use super::{App, Chrome, PageForm, PageQuery, notice, render};
use crate::backend::{self, AddItem, Cart, SetQuantity, Stock, get, segment, with_query};
use crate::error::PageError;
use crate::session::Visitor;
use crate::view;

pub struct Line {
    pub sku: String,
    pub href: String,
    pub name: String,
    pub unit_price: String,
    pub quantity: i64,
    pub line_total: String,
    /// "Only 2 left", "Sold out": said only when the line cannot be met in full.
    pub warning: String,
    pub image_url: String,
}

#[derive(Template)]
#[template(path = "cart.html")]
struct CartPage {
    chrome: Chrome,
    lines: Vec<Line>,
    item_count: i64,
    total: String,
    /// Some line asks for more than is available now.
    short: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct CartQuery {
    n: Option<String>,
}

/// `GET /cart`
pub async fn show(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(query): PageQuery<CartQuery>,
) -> Result<Response, PageError> {
    let user = visitor.require("/cart")?;
    let cart = backend::as_user(&app.backend.cart, user)
        .get_json::<Cart>("/api/cart")
        .await
        .map_err(|e| PageError::from_call("the cart", e))?;
    let stock = join_all(cart.items.iter().map(|l| {
        get::<Stock>(
            app.backend.inventory.clone(),
            format!("/api/inventory/{}", segment(&l.sku)),
        )
    }))
    .await;
    let lines: Vec<Line> = cart
        .items
        .iter()
        .zip(stock)
        .map(|(l, s)| {
            let warning = match s.ok().map(|s| s.available) {
                Some(n) if n <= 0 => "Sold out".to_string(),
                Some(n) if n < l.quantity => format!("Only {n} left"),
                _ => String::new(),
            };
            Line {
                href: format!("/products/{}", segment(&l.sku)),
                image_url: format!("/api/catalog/images/{}", segment(&l.sku)),
                sku: l.sku.clone(),
                name: l.name.clone(),
                unit_price: view::money(&l.unit_price),
                quantity: l.quantity,
                line_total: view::money(&l.line_total),
                warning,
            }
        })
        .collect();
    let page = CartPage {
        chrome: Chrome::new(&app, &visitor, "Your cart", Some(&cart))
            .with_notice(notice(query.n.as_deref())),
        short: lines.iter().any(|l| !l.warning.is_empty()),
        item_count: cart.item_count,
        total: cart.total.as_ref().map(view::money).unwrap_or_default(),
        lines,
    };
    render(&page)
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    sku: String,
    #[serde(default = "one")]
    quantity: i64,
    /// Minted into the form when the page was made, so a form sent twice (a
    /// double click, a resend after a lost answer) adds once.
    #[serde(default)]
    key: String,
}

fn one() -> i64 {
    1
}

/// `POST /cart/items`: add, then show the cart. Signed out: sign in first, and the
/// sign-in adds it.
pub async fn add(
    State(app): State<App>,
    visitor: Visitor,
    PageForm(form): PageForm<AddForm>,
) -> Result<Response, PageError> {
    let Some(user) = &visitor.user else {
        let quantity = form.quantity.to_string();
        let to = with_query(
            "/signin",
            [
                ("next", "/cart"),
                ("add", form.sku.as_str()),
                ("quantity", &quantity),
            ],
        );
        return Ok(Redirect::to(&to).into_response());
    };
    let key = uuid::Uuid::parse_str(form.key.trim()).ok();
    add_for(&app, user, &form.sku, form.quantity, key).await?;
    Ok(Redirect::to("/cart?n=added").into_response())
}

/// Adds `quantity` of `sku` to `user`'s cart under `key` (the form's, or a new
/// one); a refusal (an unknown SKU, a bad quantity, a full cart) is a page saying
/// why.
pub async fn add_for(
    app: &App,
    user: &emporium_http::Caller,
    sku: &str,
    quantity: i64,
    key: Option<uuid::Uuid>,
) -> Result<(), PageError> {
    let add = |key: uuid::Uuid| {
        // Keyed, so cart adds nothing for a repeat and the client chassis may
        // send it again after a reset connection. A UUID is always a header value.
        let mut cart = backend::as_user(&app.backend.cart, user);
        if let Ok(key) = http::HeaderValue::from_str(&key.to_string()) {
            cart = cart.with_header(
                http::HeaderName::from_static(emporium_contracts::headers::IDEMPOTENCY_KEY),
                key,
            );
        }
        async move {
            cart.send_json::<_, Cart>(Method::POST, "/api/cart/items", &AddItem { sku, quantity })
                .await
        }
    };
    match add(key.unwrap_or_else(uuid::Uuid::new_v4)).await {
        // The same form sent again with another quantity (back, changed, sent):
        // a new add, so under a new key.
        Err(e) if e.problem_code() == Some(KEY_REUSED) => {
            add(uuid::Uuid::new_v4()).await.map(drop).map_err(refused)
        }
        other => other.map(drop).map_err(refused),
    }
}

/// Cart's answer to a key sent again with another line.
const KEY_REUSED: &str = "idempotency_key_reused";

/// A 4xx from cart is the shopper's to fix: the page says what cart said.
fn refused(e: emporium_client::ClientError) -> PageError {
    match (e.status(), e.problem_detail()) {
        (Some(s), Some(detail)) if s.is_client_error() && s.as_u16() != 404 => {
            PageError::BadRequest(format!("The cart did not take that: {detail}."))
        }
        _ => PageError::from_call("the cart", e),
    }
}

#[derive(Debug, Deserialize)]
pub struct QuantityForm {
    quantity: i64,
}

/// `POST /cart/items/{sku}`: set a line's quantity (0 removes it).
pub async fn update(
    State(app): State<App>,
    visitor: Visitor,
    Path(sku): Path<String>,
    PageForm(form): PageForm<QuantityForm>,
) -> Result<Response, PageError> {
    let user = visitor.require("/cart")?;
    let cart = backend::as_user(&app.backend.cart, user);
    let path = format!("/api/cart/items/{}", segment(&sku));
    let done = if form.quantity <= 0 {
        cart.call_json::<Cart>(Method::DELETE, &path).await
    } else {
        cart.send_json::<_, Cart>(
            Method::PATCH,
            &path,
            &SetQuantity {
                quantity: form.quantity,
            },
        )
        .await
    };
    done.map_err(refused)?;
    Ok(Redirect::to("/cart?n=updated").into_response())
}

/// `POST /cart/items/{sku}/remove`
pub async fn remove(
    State(app): State<App>,
    visitor: Visitor,
    Path(sku): Path<String>,
) -> Result<Response, PageError> {
    let user = visitor.require("/cart")?;
    backend::as_user(&app.backend.cart, user)
        .call_json::<Cart>(
            Method::DELETE,
            &format!("/api/cart/items/{}", segment(&sku)),
        )
        .await
        .map_err(refused)?;
    Ok(Redirect::to("/cart?n=removed").into_response())
}
