//! The internal APIs of the checkout: what orders asks of cart, inventory and
//! payments, and what they answer. Every call is keyed by order id and idempotent.

use serde::{Deserialize, Serialize};

use crate::card::Card;
use crate::events::OrderLine;

/// cart → orders: the cart as it stands, priced.
/// `GET /internal/carts/{user_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartSnapshot {
    pub user_id: String,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    pub total: i64,
}

/// A quantity of one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    pub sku: String,
    pub quantity: i64,
}

/// orders → inventory: `PUT /internal/reservations/{order_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveRequest {
    pub lines: Vec<StockLine>,
}

/// inventory's answer to reserve, commit and release:
/// `status` is `reserved`, `rejected` (not enough stock: `unavailable` names the
/// SKUs), `committed` or `released`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: String,
    pub status: String,
    #[serde(default)]
    pub unavailable: Vec<String>,
}

/// orders → payments: `PUT /internal/payments/{order_id}/authorization`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    pub amount: i64,
    pub currency: String,
    pub card: Card,
}

/// payments' record of an order's payment. `status` is one of `authorizing`,
/// `authorized`, `declined`, `retryable`, `captured`, `voided`, `refunded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub order_id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub attempts: i64,
    /// Why it was declined or failed, for the order's timeline.
    pub reason: Option<String>,
}

/// The short number a person sees for an order (in mail, on pages): the last eight
/// characters of its id.
pub fn order_number(order_id: &str) -> &str {
    order_id
        .get(order_id.len().saturating_sub(8)..)
        .unwrap_or(order_id)
}
