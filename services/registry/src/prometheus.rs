//! Prometheus HTTP service discovery: `GET /internal/registry/prometheus/targets`.
//!
//! A Prometheus with an `http_sd_configs` entry pointing here scrapes every
//! registered instance, however many there are and wherever they listen, plus the
//! registry itself. Each target group carries the `service`, `instance_id` and
//! `version` labels, so every series can be grouped per service.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::state::Registry;

/// Where Prometheus reads its targets (open to plain HTTP, like `/metrics`).
pub const TARGETS: &str = "/internal/registry/prometheus/targets";

/// One target group of the HTTP SD format.
#[derive(Debug, Serialize)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: Labels,
}

#[derive(Debug, Serialize)]
pub struct Labels {
    pub service: String,
    pub instance_id: String,
    pub version: String,
}

#[derive(Clone)]
struct SdState {
    registry: Registry,
    /// The registry's own target (it is not registered with itself).
    own: TargetGroupSeed,
}

#[derive(Clone)]
pub struct TargetGroupSeed {
    pub address: String,
    pub instance_id: String,
}

pub fn router(registry: Registry, own: TargetGroupSeed) -> Router {
    Router::new()
        .route(TARGETS, get(targets))
        .with_state(SdState { registry, own })
}

/// Every registered instance, ready or not: an instance that is up but not ready
/// is still scraped, which is how its readiness trouble shows up on a dashboard.
async fn targets(State(s): State<SdState>) -> Json<Vec<TargetGroup>> {
    let mut groups = vec![TargetGroup {
        targets: vec![s.own.address.clone()],
        labels: Labels {
            service: crate::NAME.to_string(),
            instance_id: s.own.instance_id.clone(),
            version: emporium_runtime::VERSION.to_string(),
        },
    }];
    groups.extend(s.registry.all().instances.into_iter().map(|i| TargetGroup {
        // An instance with an admin port (the gateway) serves metrics there.
        targets: vec![
            i.metadata
                .get(emporium_contracts::registry::METRICS_ADDRESS)
                .cloned()
                .unwrap_or(i.address),
        ],
        labels: Labels {
            service: i.service,
            instance_id: i.instance_id,
            version: i.version,
        },
    }));
    Json(groups)
}
