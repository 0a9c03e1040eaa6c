//! Domain events: the data of every event a service publishes, defined once.
//!
//! An event travels inside a CloudEvents envelope (see the `emporium-events` crate);
//! this module defines what goes in its `data`. Each data type names its CloudEvents
//! `type` (`emporium.<source>.<Name>.v<N>`) and the service that publishes it, so a
//! consumer subscribes by type and cannot misspell either.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The data of one kind of event.
pub trait EventData: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The service that publishes it: the CloudEvents `source` and the feed to read.
    const SOURCE: &'static str;
    /// The CloudEvents `type`.
    const TYPE: &'static str;
    /// The CloudEvents `subject`: the id of the thing the event is about.
    fn subject(&self) -> String;
}

macro_rules! event {
    ($ty:ident, $source:literal, $name:literal, |$s:ident| $subject:expr) => {
        impl EventData for $ty {
            const SOURCE: &'static str = $source;
            const TYPE: &'static str = concat!("emporium.", $source, ".", $name, ".v1");
            fn subject(&self) -> String {
                let $s = self;
                $subject
            }
        }
    };
}

/// users: an account was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
    pub name: String,
}
event!(UserRegistered, "users", "UserRegistered", |e| e
    .user_id
    .clone());

/// catalog: a product was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductCreated {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub category: String,
    /// Minor units.
    pub price: i64,
    pub currency: String,
}
event!(ProductCreated, "catalog", "ProductCreated", |e| e
    .product_id
    .clone());

/// catalog: a product's price changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChanged {
    pub product_id: String,
    pub sku: String,
    pub old_price: i64,
    pub new_price: i64,
    pub currency: String,
}
event!(PriceChanged, "catalog", "PriceChanged", |e| e
    .product_id
    .clone());

/// One line of an order, as placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub product_id: String,
    pub name: String,
    /// Minor units, per item.
    pub unit_price: i64,
    pub quantity: i64,
}

/// orders: a checkout was accepted and its saga started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub user_id: String,
    pub total: i64,
    pub currency: String,
}
event!(OrderPlaced, "orders", "OrderPlaced", |e| e.order_id.clone());

/// orders: stock committed and payment captured; the order will ship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub order_id: String,
    pub user_id: String,
    pub total: i64,
    pub currency: String,
    pub lines: Vec<OrderLine>,
}
event!(OrderConfirmed, "orders", "OrderConfirmed", |e| e
    .order_id
    .clone());

/// orders: the checkout did not go through; nothing is charged or held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: String,
    pub user_id: String,
    /// A stable code: `out_of_stock`, `payment_declined`, `payment_unavailable`,
    /// `deadline_exceeded`, `interrupted`.
    pub reason: String,
    pub detail: String,
}
event!(OrderCancelled, "orders", "OrderCancelled", |e| e
    .order_id
    .clone());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_naming_rule() {
        assert_eq!(OrderConfirmed::TYPE, "emporium.orders.OrderConfirmed.v1");
        assert_eq!(ProductCreated::TYPE, "emporium.catalog.ProductCreated.v1");
        assert_eq!(UserRegistered::SOURCE, "users");
    }
}
