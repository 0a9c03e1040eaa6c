//! What each service of the checkout reports of its own data for `emporium
//! verify`, which checks the invariants that span services (no service reads
//! another's database; each answers `GET /internal/<service>/audit`, operator
//! only, or lets the CLI read its database through the same code when the shop is
//! stopped).

use serde::{Deserialize, Serialize};

/// A line: so many units of a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    pub sku: String,
    pub quantity: i64,
}

/// `(owner id, sku, quantity)` rows as lines by owner (an order, a reservation).
pub fn lines_by_owner(
    rows: Vec<(String, String, i64)>,
) -> std::collections::HashMap<String, Vec<AuditLine>> {
    let mut lines: std::collections::HashMap<String, Vec<AuditLine>> = Default::default();
    for (owner, sku, quantity) in rows {
        lines
            .entry(owner)
            .or_default()
            .push(AuditLine { sku, quantity });
    }
    lines
}

/// orders' facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersFacts {
    pub orders: Vec<OrderFact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFact {
    pub id: String,
    pub user_id: String,
    pub idempotency_key: String,
    /// PENDING, CONFIRMED, CANCELLED.
    pub status: String,
    /// The saga's step: reserve, authorize, complete, compensate, done.
    pub step: String,
    pub total: i64,
    pub currency: String,
    pub deadline_ms: i64,
    pub updated_ms: i64,
    pub lines: Vec<AuditLine>,
    /// The id of the `OrderConfirmed` event it published, while the outbox keeps it.
    pub confirmation_event: Option<String>,
}

/// payments' facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentsFacts {
    pub payments: Vec<PaymentFact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFact {
    pub order_id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
}

/// inventory's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryFacts {
    pub reservations: Vec<ReservationFact>,
    pub stock: Vec<StockFact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationFact {
    pub order_id: String,
    pub status: String,
    pub lines: Vec<AuditLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockFact {
    pub sku: String,
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
    pub initial: i64,
    pub adjusted: i64,
}

/// notifications' facts: the mails it recorded about orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsFacts {
    pub messages: Vec<MessageFact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFact {
    /// The id of the event that caused it.
    pub event_id: String,
    /// order_confirmed, order_cancelled.
    pub kind: String,
    /// pending, sent, skipped.
    pub status: String,
}
