//! The internal APIs of the checkout: what orders asks of cart, inventory and
//! payments, and what they answer. Every call is keyed by order id and idempotent.

use serde::{Deserialize, Serialize};

/// The paths of the checkout's internal calls, defined once: the providers mount
/// these (axum's `{param}` syntax) and the typed clients
/// (`emporium_client::api`) fill them with [`fill`].
pub mod paths {
    /// cart: `GET` the cart of a user, priced ([`super::CartSnapshot`]). Kept for
    /// orders before cart's checkouts; the checkout takes the cart instead.
    pub const CART: &str = "/internal/carts/{user_id}";
    /// cart: `POST` takes a user's lines out of the cart for an order
    /// ([`super::TakeCart`] → [`super::TakenCart`]).
    pub const CART_CHECKOUTS: &str = "/internal/carts/{user_id}/checkouts";
    /// cart: `POST` puts the lines an order took back into the cart (its checkout did
    /// not go through). Keyed by order id alone.
    pub const CART_CHECKOUT_RETURN: &str = "/internal/cart-checkouts/{order_id}/return";
    /// inventory: `PUT` reserves ([`super::ReserveRequest`]), `GET` reads
    /// ([`super::Reservation`]).
    pub const RESERVATION: &str = "/internal/reservations/{order_id}";
    /// inventory: `POST` turns a reservation into a sale.
    pub const RESERVATION_COMMIT: &str = "/internal/reservations/{order_id}/commit";
    /// inventory: `POST` gives the units back.
    pub const RESERVATION_RELEASE: &str = "/internal/reservations/{order_id}/release";
    /// payments: `GET` an order's payment ([`super::Payment`]).
    pub const PAYMENT: &str = "/internal/payments/{order_id}";
    /// payments: `PUT` authorizes the card ([`super::AuthorizeRequest`]).
    pub const AUTHORIZATION: &str = "/internal/payments/{order_id}/authorization";
    /// payments: `POST` captures what was authorized.
    pub const CAPTURE: &str = "/internal/payments/{order_id}/capture";
    /// payments: `POST` voids an authorization or refunds a capture.
    pub const CANCEL: &str = "/internal/payments/{order_id}/cancel";
}

/// `template` with its one `{parameter}` replaced by `segment` (already encoded as
/// a path segment).
pub fn fill(template: &str, segment: &str) -> String {
    match (template.find('{'), template.find('}')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{segment}{}", &template[..open], &template[close + 1..])
        }
        _ => template.to_string(),
    }
}

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

/// orders → cart: `POST /internal/carts/{user_id}/checkouts`. The cart's lines
/// leave it for `order_id` at once, so a second checkout (another key) cannot buy
/// them again while the first is under way; they come back if the order is
/// cancelled (a `return` call, the `OrderCancelled` event, or `expires_ms` passing
/// with neither outcome known). The same `idempotency_key` again answers what it
/// took the first time, with the order id it took it for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeCart {
    pub order_id: String,
    pub idempotency_key: String,
    /// Unix ms after which cart gives the lines back unless the order was confirmed.
    pub expires_ms: i64,
}

/// cart's answer to a take: what left the cart, priced, and for which order (that of
/// the first take with the key). No lines: the cart was empty and nothing was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakenCart {
    pub order_id: String,
    pub user_id: String,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    pub total: i64,
}

/// cart's answer to a return: `returned` is true when this call put the lines
/// back, false when they already were, the order was confirmed, or it took nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartReturn {
    pub order_id: String,
    pub returned: bool,
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
    /// Take the money as soon as the card is approved (a sale: authorization and
    /// capture in one call, as processors offer it); the payment then answers
    /// `captured`, or `authorized` when the capture failed and is still to be made.
    /// Without it (the default) an approval holds the money until `…/capture`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capture: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_filled_with_their_parameter() {
        assert_eq!(
            fill(paths::RESERVATION_COMMIT, "o-1"),
            "/internal/reservations/o-1/commit"
        );
        assert_eq!(fill(paths::CART, "u%2F1"), "/internal/carts/u%2F1");
        assert_eq!(fill("/plain", "x"), "/plain");
    }
}
