//! Domain events: the data of every event a service publishes, defined once.
//!
//! An event travels inside a CloudEvents envelope (see the `emporium-events` crate);
//! this module defines what goes in its `data`. Each data type names its CloudEvents
//! `type` (`emporium.<source>.<Name>.v<N>`) and the service that publishes it, so a
//! consumer subscribes by type and cannot misspell either.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who reads each producer's feed and snapshot: the services that consume its
/// events (`cx.on::<E>()` in a consumer needs its name here, next to `E`'s
/// source; the producer refuses everyone else).
pub const CONSUMERS: &[(&str, &[&str])] = &[
    ("catalog", &["cart", "inventory", "search"]),
    ("inventory", &["search"]),
    ("orders", &["cart", "notifications", "reviews"]),
    ("users", &["notifications", "reviews"]),
    ("reviews", &["search"]),
];

/// The services consuming `source`'s events.
pub fn consumers_of(source: &str) -> &'static [&'static str] {
    CONSUMERS
        .iter()
        .find(|(s, _)| *s == source)
        .map_or(&[], |(_, c)| c)
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
    pub name: String,
}
event!(UserRegistered, "users", "UserRegistered", |e| e
    .user_id
    .clone());

/// users: an account's email address is to be confirmed (at registration, or asked
/// again): notifications mails a one-time link, minted by users when it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmailVerificationRequested {
    pub user_id: String,
    pub email: String,
    pub name: String,
}
event!(
    EmailVerificationRequested,
    "users",
    "EmailVerificationRequested",
    |e| e.user_id.clone()
);

/// users: the owner of an account asked to reset its password: notifications
/// mails a one-time link, minted by users when it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PasswordResetRequested {
    pub user_id: String,
    pub email: String,
    pub name: String,
}
event!(
    PasswordResetRequested,
    "users",
    "PasswordResetRequested",
    |e| e.user_id.clone()
);

/// catalog: a product was added. Events stored before the product's description,
/// image, attributes and version were carried decode with those empty (version 0,
/// older than any product's first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductCreated {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub category: String,
    /// Minor units.
    pub price: i64,
    pub currency: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// When it was added (Unix ms).
    #[serde(default)]
    pub created_ms: i64,
    /// 1 at creation; see [`ProductUpdated::version`].
    #[serde(default)]
    pub version: i64,
}
event!(ProductCreated, "catalog", "ProductCreated", |e| e
    .product_id
    .clone());

/// catalog: a product changed (name, description, category, attributes, image or
/// price): its whole public view after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductUpdated {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    /// Minor units.
    pub price: i64,
    pub currency: String,
    pub image_url: String,
    pub attributes: BTreeMap<String, String>,
    /// When it was added (Unix ms).
    pub created_ms: i64,
    /// Grows by one with every change of the product: a consumer holding a newer
    /// version ignores this one (events and snapshots may arrive in any order).
    pub version: i64,
}
event!(ProductUpdated, "catalog", "ProductUpdated", |e| e
    .product_id
    .clone());

impl From<ProductCreated> for ProductUpdated {
    fn from(p: ProductCreated) -> Self {
        Self {
            product_id: p.product_id,
            sku: p.sku,
            name: p.name,
            description: p.description,
            category: p.category,
            price: p.price,
            currency: p.currency,
            image_url: p.image_url,
            attributes: p.attributes,
            created_ms: p.created_ms,
            version: p.version,
        }
    }
}

/// catalog: a product's price changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// How much of a product a shopper can buy, as a shopper sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockLevel {
    InStock,
    /// At most [`StockLevel::LOW`] left.
    Low,
    SoldOut,
}

impl StockLevel {
    /// Units at or below which stock is low.
    pub const LOW: i64 = 5;

    pub fn of(available: i64) -> Self {
        match available {
            ..=0 => Self::SoldOut,
            1..=Self::LOW => Self::Low,
            _ => Self::InStock,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InStock => "in_stock",
            Self::Low => "low",
            Self::SoldOut => "sold_out",
        }
    }
}

/// inventory: a SKU's availability crossed a level a shopper sees ([`StockLevel`]):
/// published when a stock row is created and when the level changes, not on every
/// unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockChanged {
    pub sku: String,
    pub product_id: String,
    /// Units available when the level changed.
    pub available: i64,
    pub level: StockLevel,
    /// Grows by one with every event of this SKU; older ones are ignored.
    pub version: i64,
}
event!(StockChanged, "inventory", "StockChanged", |e| e.sku.clone());

/// A product's rating, as reviews computes it from the reviews shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
pub struct RatingSummary {
    pub product_id: String,
    pub count: i64,
    /// Stars, rounded to two decimals; 0 without reviews.
    pub average: f64,
    /// Reviews with 1, 2, 3, 4 and 5 stars.
    pub histogram: [i64; 5],
    /// Grows by one with every change of this product's summary.
    pub version: i64,
}
// Not published on its own: the item of reviews' snapshot, one per product.
event!(RatingSummary, "reviews", "RatingSummary", |e| e
    .product_id
    .clone());

/// reviews: a verified buyer reviewed a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewAdded {
    pub review_id: String,
    pub product_id: String,
    pub rating: i64,
    /// The product's rating with this review.
    pub summary: RatingSummary,
}
event!(ReviewAdded, "reviews", "ReviewAdded", |e| e
    .review_id
    .clone());

/// reviews: a reviewer changed their review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewChanged {
    pub review_id: String,
    pub product_id: String,
    pub rating: i64,
    pub summary: RatingSummary,
}
event!(ReviewChanged, "reviews", "ReviewChanged", |e| e
    .review_id
    .clone());

/// reviews: an admin hid a review; the summary no longer counts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewHidden {
    pub review_id: String,
    pub product_id: String,
    pub summary: RatingSummary,
}
event!(ReviewHidden, "reviews", "ReviewHidden", |e| e
    .review_id
    .clone());

/// One line of an order, as placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    pub sku: String,
    pub product_id: String,
    pub name: String,
    /// Minor units, per item.
    pub unit_price: i64,
    pub quantity: i64,
}

/// orders: a checkout was accepted and its saga started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderPlaced {
    pub order_id: String,
    pub user_id: String,
    pub total: i64,
    pub currency: String,
}
event!(OrderPlaced, "orders", "OrderPlaced", |e| e.order_id.clone());

/// orders: stock committed and payment captured; the order will ship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
