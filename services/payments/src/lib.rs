//! payments: authorize, capture, void and refund, keyed by order id.
//!
//! The card network is a [`processor::Processor`]; the default is the simulated one,
//! with documented test cards. Only the card's brand and last four digits are stored;
//! the number lives in memory for the length of the authorize call and is never
//! logged. Internal API (orders' saga calls it; nothing is routed publicly):
//!
//! - `PUT /internal/payments/{order_id}/authorization` `{amount, currency, card,
//!   capture}` (with `capture: true`, a sale: captured in the same call);
//! - `POST /internal/payments/{order_id}/capture`;
//! - `POST /internal/payments/{order_id}/cancel` (void or refund, whichever applies);
//! - `GET /internal/payments/{order_id}`;
//! - `GET /internal/payments/audit` (the operator's `emporium verify`).

mod api;
pub mod audit;
mod ledger;
pub mod processor;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub const NAME: &str = "payments";

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[payments]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsSettings {
    /// How long the slow test card (`4000000000003055`) takes to approve.
    pub slow_card_delay_ms: u64,
}

impl Default for PaymentsSettings {
    fn default() -> Self {
        Self {
            slow_card_delay_ms: 2_000,
        }
    }
}

/// Added to the request deadline to tell an abandoned authorization from a live one.
const STALE_MARGIN: Duration = Duration::from_secs(30);

/// The payments service, as the runtime hosts it.
pub struct Payments;

impl Service for Payments {
    type Settings = PaymentsSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<PaymentsSettings>) -> anyhow::Result<Router> {
        let ledger = ledger::Ledger {
            db: cx.db().clone(),
            processor: Arc::new(processor::Simulated::new(Duration::from_millis(
                cx.settings.slow_card_delay_ms,
            ))),
            // An authorize call lives at most as long as its request: the HTTP
            // deadline drops it. With a margin, an older `authorizing` row has no
            // live call.
            stale_after: Duration::from_millis(cx.common().http.request_timeout_ms) + STALE_MARGIN,
        };
        let recovered = ledger.recover().await?;
        if recovered > 0 {
            tracing::warn!(
                count = recovered,
                "authorizations interrupted by a restart can be retried"
            );
        }
        Ok(api::router(ledger))
    }
}
