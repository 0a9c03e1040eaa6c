//! The ops console, for admins: every instance the registry knows (health, version,
//! uptime, a link to its metrics), event delivery per subscription (lag, dead
//! letters, missed events), how checkouts ended in the last hour, and one order's
//! timeline across services (`emporium trace` as a page).

use std::time::{SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use emporium_events::fleet;
use emporium_telemetry::logfile;
use serde::Deserialize;

use super::{App, Chrome, render};
use crate::error::{PageError, Section};
use crate::session::Visitor;

pub struct InstanceRow {
    pub service: String,
    pub instance: String,
    pub address: String,
    pub version: String,
    pub healthy: bool,
    pub uptime: String,
    pub heartbeat: String,
    pub metrics: String,
}

pub struct LagRow {
    pub service: String,
    pub subscription: String,
    pub cursor: i64,
    pub head: i64,
    pub lag: i64,
    pub dead: i64,
    pub missed: i64,
    pub connected: bool,
}

pub struct OutcomeRow {
    pub outcome: String,
    pub orders: i64,
}

#[derive(Template)]
#[template(path = "ops.html")]
struct Ops {
    chrome: Chrome,
    instances: Vec<InstanceRow>,
    services: usize,
    lag: Vec<LagRow>,
    /// Instances that did not say how their events go.
    unreachable: String,
    dead: i64,
    outcomes: Section<Vec<OutcomeRow>>,
}

#[derive(Deserialize)]
struct Outcome {
    status: String,
    reason: Option<String>,
    orders: i64,
}

/// `3 h 20 min`, `45 s`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `GET /ops`
pub async fn console(State(app): State<App>, visitor: Visitor) -> Result<Response, PageError> {
    super::admin::admin(&visitor, "/ops")?;
    let instances = app.instances_all().await?;
    let healthy: Vec<_> = instances.iter().filter(|i| i.healthy).cloned().collect();
    let (statuses, outcomes) = tokio::join!(
        fleet::statuses(app.registry()?.clients(), &healthy),
        app.backend
            .orders
            .get_json::<Vec<Outcome>>("/internal/orders/outcomes?window_ms=3600000"),
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut services: Vec<&str> = instances.iter().map(|i| i.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    let mut rows: Vec<InstanceRow> = instances
        .iter()
        .map(|i| InstanceRow {
            service: i.service.clone(),
            instance: i.instance_id.clone(),
            metrics: format!(
                "http://{}/metrics",
                i.metadata
                    .get(emporium_contracts::registry::METRICS_ADDRESS)
                    .unwrap_or(&i.address)
            ),
            address: i.address.clone(),
            version: i.version.clone(),
            healthy: i.healthy,
            uptime: age(now.saturating_sub(i.registered_at_ms)),
            heartbeat: format!("{} ago", age(now.saturating_sub(i.last_heartbeat_ms))),
        })
        .collect();
    rows.sort_by(|a, b| (&a.service, &a.instance).cmp(&(&b.service, &b.instance)));
    let unreachable = statuses
        .unreachable
        .iter()
        .map(|i| i.instance_id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut lag: Vec<LagRow> = statuses
        .answers
        .iter()
        .flat_map(|(i, status)| {
            status.subscriptions.iter().map(move |s| LagRow {
                service: i.instance_id.clone(),
                subscription: s.name.clone(),
                cursor: s.cursor,
                head: s.head,
                lag: s.lag,
                dead: s.dead_letters,
                missed: s.missed,
                connected: s.connected,
            })
        })
        .collect();
    lag.sort_by(|a, b| (&a.service, &a.subscription).cmp(&(&b.service, &b.subscription)));
    let dead = lag.iter().map(|l| l.dead).sum();
    let outcomes = Section::from(
        "Checkout outcomes are unavailable right now.",
        outcomes.map(|list| {
            list.into_iter()
                .map(|o| OutcomeRow {
                    outcome: match o.reason {
                        Some(r) => format!("{} ({r})", crate::view::status(&o.status)),
                        None => crate::view::status(&o.status).to_string(),
                    },
                    orders: o.orders,
                })
                .collect()
        }),
    );
    render(&Ops {
        chrome: Chrome::new(&app, &visitor, "Ops console", None),
        services: services.len(),
        instances: rows,
        lag,
        unreachable,
        dead,
        outcomes,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct TraceQuery {
    #[serde(default)]
    order: String,
}

pub struct TraceRow {
    pub since: String,
    pub source: String,
    pub level: String,
    pub message: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "trace.html")]
struct Trace {
    chrome: Chrome,
    order: String,
    order_href: String,
    rows: Vec<TraceRow>,
    summary: String,
    note: String,
}

/// `GET /ops/trace?order=ID`: `emporium trace` as a page: one order's timeline
/// across services, from the log file `emporium up` keeps.
pub async fn trace(
    State(app): State<App>,
    visitor: Visitor,
    super::PageQuery(q): super::PageQuery<TraceQuery>,
) -> Result<Response, PageError> {
    super::admin::admin(&visitor, "/ops")?;
    let order = q.order.trim().to_string();
    if order.is_empty() {
        return Err(PageError::BadRequest("Give an order id.".into()));
    }
    let path = app.log_file.clone();
    let wanted = order.clone();
    let read = tokio::task::spawn_blocking(move || {
        let exists = path.exists() || !logfile::files_oldest_first(&path).is_empty();
        exists.then(|| logfile::timeline(&path, &wanted))
    })
    .await
    .map_err(|e| PageError::Internal(e.into()))?;
    let (timeline, note) = match read {
        None => (
            logfile::Timeline::default(),
            format!(
                "There is no log file at {}: this page reads the logs `emporium up` keeps. \
                 Elsewhere, follow the order's trace in your tracing backend (OTLP).",
                app.log_file.display()
            ),
        ),
        Some(Err(e)) => return Err(PageError::Internal(e.into())),
        Some(Ok(t)) if t.steps.is_empty() => (t, "No log line mentions this order.".into()),
        Some(Ok(t)) => (t, String::new()),
    };
    let summary = format!(
        "{} lines from {} services in {} trace(s)",
        timeline.steps.len(),
        timeline.services,
        timeline.traces
    );
    render(&Trace {
        chrome: Chrome::new(&app, &visitor, "Order trace", None),
        order_href: format!("/orders/{}", crate::backend::segment(&order)),
        order,
        rows: timeline
            .steps
            .into_iter()
            .map(|s| TraceRow {
                since: format!("{:.1}", s.since_ms),
                source: s.source,
                level: s.level,
                message: s.message,
                details: s.details.trim().to_string(),
            })
            .collect(),
        summary,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_a_person_would_say_them() {
        assert_eq!(age(45_000), "45 s");
        assert_eq!(age(125_000), "2 min");
        assert_eq!(age(3_600_000 * 3 + 60_000 * 20), "3 h 20 min");
        assert_eq!(age(86_400_000 * 2 + 3_600_000), "2 d 1 h");
    }
}
