//! Orders: the confirmation with live status, the history, one order's timeline, and
//! the inbox of the shopper's messages.
//!
//! A `PENDING` order's page watches its status: `site.js` polls
//! `/orders/{id}/status` and reloads when it changes; without JavaScript a
//! `<noscript>` refresh does the same.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{App, Chrome, PageQuery, cart_of, render};
use crate::backend::{self, Messages, Order, OrderPage, get, segment, with_query};
use crate::error::PageError;
use crate::session::Visitor;
use crate::view;

pub struct Row {
    pub href: String,
    pub number: String,
    pub date: String,
    pub status: &'static str,
    pub status_class: String,
    pub total: String,
    pub items: i64,
}

#[derive(Template)]
#[template(path = "orders.html")]
struct History {
    chrome: Chrome,
    rows: Vec<Row>,
    total: i64,
    next: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    cursor: Option<String>,
}

/// The short number shown for an order, as in its mail.
fn number(id: &str) -> String {
    emporium_contracts::checkout::order_number(id).to_string()
}

/// `GET /orders`
pub async fn history(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(query): PageQuery<HistoryQuery>,
) -> Result<Response, PageError> {
    let user = visitor.require("/orders")?;
    let cursor = query.cursor.unwrap_or_default();
    let (page, cart) = tokio::join!(
        get::<OrderPage>(
            backend::as_user(&app.backend.orders, user),
            with_query(
                "/api/orders",
                [("limit", "20"), ("cursor", cursor.as_str())]
            ),
        ),
        cart_of(&app, &visitor),
    );
    let page = page.map_err(|e| PageError::from_call("the order service", e))?;
    let rows = page
        .items
        .iter()
        .map(|o| Row {
            href: format!("/orders/{}", segment(&o.id)),
            number: number(&o.id),
            date: view::date(&o.created_at),
            status: view::status(&o.status),
            status_class: o.status.to_ascii_lowercase(),
            total: view::money(&o.total),
            items: o.lines.iter().map(|l| l.quantity).sum(),
        })
        .collect();
    let next = page
        .next
        .as_ref()
        .map(|c| with_query("/orders", [("cursor", c.as_str())]))
        .unwrap_or_default();
    render(&History {
        chrome: Chrome::new(&app, &visitor, "Your orders", cart.as_ref()),
        rows,
        total: page.total,
        next,
    })
}

pub struct Line {
    pub name: String,
    pub href: String,
    pub quantity: i64,
    pub unit_price: String,
}

pub struct Step {
    pub date: String,
    pub event: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPageView {
    chrome: Chrome,
    id: String,
    number: String,
    status: &'static str,
    status_class: String,
    pending: bool,
    confirmed: bool,
    cancelled: bool,
    reason: String,
    total: String,
    lines: Vec<Line>,
    address: Vec<String>,
    card: String,
    placed: String,
    timeline: Vec<Step>,
}

/// `GET /orders/{id}`
pub async fn show(
    State(app): State<App>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let back = format!("/orders/{}", segment(&id));
    let user = visitor.require(&back)?;
    let (order, cart) = tokio::join!(
        get::<Order>(
            backend::as_user(&app.backend.orders, user),
            format!("/api/orders/{}", segment(&id)),
        ),
        cart_of(&app, &visitor),
    );
    let order = order.map_err(|e| match e.status().map(|s| s.as_u16()) {
        // A malformed id is as unknown as someone else's order.
        Some(400 | 422) => PageError::NotFound,
        _ => PageError::from_call("the order service", e),
    })?;
    let a = &order.shipping_address;
    let address = [
        Some(a.name.clone()),
        Some(a.line1.clone()),
        a.line2.clone(),
        Some(format!("{} {}", a.postal_code, a.city)),
        Some(a.country.clone()),
    ]
    .into_iter()
    .flatten()
    .filter(|l| !l.trim().is_empty())
    .collect();
    let page = OrderPageView {
        chrome: Chrome::new(&app, &visitor, "Your order", cart.as_ref()),
        number: number(&order.id),
        status: view::status(&order.status),
        status_class: order.status.to_ascii_lowercase(),
        pending: order.status == "PENDING",
        confirmed: order.status == "CONFIRMED",
        cancelled: order.status == "CANCELLED",
        reason: view::reason(order.reason.as_deref()),
        total: view::money(&order.total),
        lines: order
            .lines
            .iter()
            .map(|l| Line {
                name: l.name.clone(),
                href: format!("/products/{}", segment(&l.sku)),
                quantity: l.quantity,
                unit_price: view::money(&l.unit_price),
            })
            .collect(),
        address,
        card: format!("{} ending in {}", order.card.brand, order.card.last4),
        placed: view::date(&order.created_at),
        timeline: order
            .timeline
            .iter()
            .flatten()
            .map(|t| Step {
                date: view::date(&t.at),
                event: view::event(&t.event),
                detail: t.detail.clone(),
            })
            .collect(),
        id: order.id,
    };
    render(&page)
}

#[derive(Serialize)]
pub struct Status {
    status: String,
}

/// `GET /orders/{id}/status`: `{status}`, for the page's script.
pub async fn status(
    State(app): State<App>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let user = visitor
        .user
        .as_ref()
        .ok_or_else(|| PageError::Forbidden("Sign in to see this order.".into()))?;
    let order = backend::as_user(&app.backend.orders, user)
        .get_json::<Order>(&format!("/api/orders/{}", segment(&id)))
        .await
        .map_err(|e| PageError::from_call("the order service", e))?;
    Ok(Json(Status {
        status: order.status,
    })
    .into_response())
}

pub struct Mail {
    pub subject: String,
    pub body: String,
    pub date: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct Inbox {
    chrome: Chrome,
    messages: Vec<Mail>,
}

/// `GET /inbox`: the messages sent to the shopper.
pub async fn inbox(State(app): State<App>, visitor: Visitor) -> Result<Response, PageError> {
    let user = visitor.require("/inbox")?;
    let (messages, cart) = tokio::join!(
        get::<Messages>(
            backend::as_user(&app.backend.notifications, user),
            "/api/notifications".into(),
        ),
        cart_of(&app, &visitor),
    );
    let messages = messages.map_err(|e| PageError::from_call("the inbox", e))?;
    render(&Inbox {
        chrome: Chrome::new(&app, &visitor, "Inbox", cart.as_ref()),
        messages: messages
            .items
            .into_iter()
            .map(|m| Mail {
                date: view::date(&m.created_at),
                status: match m.status.as_str() {
                    "sent" => "Sent".into(),
                    "pending" => "Sending".into(),
                    other => other.to_string(),
                },
                subject: m.subject,
                body: m.body,
            })
            .collect(),
    })
}
