//! payments: authorize, capture, void and refund, keyed by order id.
//!
//! The card network is a [`processor::Processor`]; the default is the simulated one,
//! with documented test cards. Only the card's brand and last four digits are stored;
//! the number lives in memory for the length of the authorize call and is never
//! logged. Internal API (orders' saga calls it; nothing is routed publicly):
//!
//! - `PUT /internal/payments/{order_id}/authorization` `{amount, currency, card}`;
//! - `POST /internal/payments/{order_id}/capture`;
//! - `POST /internal/payments/{order_id}/cancel` (void or refund, whichever applies);
//! - `GET /internal/payments/{order_id}`.

mod api;
mod ledger;
pub mod processor;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use emporium_config::Settings;
use emporium_events::Events;
use emporium_runtime::Host;
use serde::Deserialize;
use tokio::net::TcpListener;

pub const NAME: &str = "payments";

pub const DEFAULT_LISTEN: SocketAddr = emporium_runtime::LOOPBACK_ANY_PORT;

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[payments]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsSettings {
    pub database_url: Option<String>,
    /// How long the slow test card (`4000000000003055`) takes to approve.
    pub slow_card_delay_ms: u64,
}

impl Default for PaymentsSettings {
    fn default() -> Self {
        Self {
            database_url: None,
            slow_card_delay_ms: 2_000,
        }
    }
}

/// Added to the request deadline to tell an abandoned authorization from a live one.
const STALE_MARGIN: Duration = Duration::from_secs(30);

/// Runs payments until `shutdown`.
pub async fn run(
    settings: Settings<PaymentsSettings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let host = Host::new(NAME, &settings.common);
    let db = host
        .open_db(settings.service.database_url.as_deref(), &MIGRATIONS)
        .await?;
    let events = Events::open(&host, &db).await?;
    let ledger = ledger::Ledger {
        db,
        processor: Arc::new(processor::Simulated::new(Duration::from_millis(
            settings.service.slow_card_delay_ms,
        ))),
        // An authorize call lives at most as long as its request: the HTTP deadline
        // drops it. With a margin, an older `authorizing` row has no live call.
        stale_after: Duration::from_millis(settings.common.http.request_timeout_ms) + STALE_MARGIN,
    };
    let recovered = ledger.recover().await?;
    if recovered > 0 {
        tracing::warn!(
            count = recovered,
            "authorizations interrupted by a restart can be retried"
        );
    }
    events
        .serve(host, api::router(ledger), listener, shutdown)
        .await
}
