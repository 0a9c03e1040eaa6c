//! The shop's business metrics, counted where the saga commits an outcome: orders
//! placed, confirmed, cancelled by reason, revenue in minor units, and how long
//! sagas take. Every series exists from startup (at zero), so dashboards and alerts
//! have something to read before the first order.

use emporium_telemetry::metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

/// Why orders are cancelled: the saga's compensation reasons. Anything else is
/// counted as `other`, so the label stays a small fixed set.
pub const CANCEL_REASONS: &[&str] = &[
    "out_of_stock",
    "payment_declined",
    "payment_invalid",
    "payment_failed",
    "deadline_exceeded",
    "interrupted",
];

pub fn describe() {
    describe_counter!(
        "emporium_orders_placed_total",
        "Orders accepted at checkout (each then runs a saga)."
    );
    describe_counter!(
        "emporium_orders_confirmed_total",
        "Orders confirmed: stock committed and payment captured."
    );
    describe_counter!(
        "emporium_orders_cancelled_total",
        "Orders cancelled, by reason."
    );
    describe_counter!(
        "emporium_revenue_minor_units_total",
        "Revenue of confirmed orders in minor units (cents) of the currency."
    );
    describe_histogram!(
        "emporium_saga_duration_seconds",
        Unit::Seconds,
        "Time from placing an order to its saga's outcome."
    );
    describe_histogram!(
        "emporium_saga_step_duration_seconds",
        Unit::Seconds,
        "Time a saga step took (its calls and the writes it made), by the step the order was at; a failed step is counted too."
    );
    describe_counter!(
        "emporium_saga_step_failures_total",
        "Saga steps that failed and will be retried."
    );
    counter!("emporium_orders_placed_total").absolute(0);
    counter!("emporium_orders_confirmed_total").absolute(0);
    counter!("emporium_saga_step_failures_total").absolute(0);
    for reason in CANCEL_REASONS.iter().chain(&["other"]) {
        counter!("emporium_orders_cancelled_total", "reason" => *reason).absolute(0);
    }
}

pub fn placed() {
    counter!("emporium_orders_placed_total").increment(1);
}

pub fn confirmed(total: i64, currency: &str, created_ms: i64, now_ms: i64) {
    counter!("emporium_orders_confirmed_total").increment(1);
    counter!("emporium_revenue_minor_units_total", "currency" => currency.to_owned())
        .increment(u64::try_from(total).unwrap_or(0));
    saga_took("confirmed", created_ms, now_ms);
}

pub fn cancelled(reason: Option<&str>, created_ms: i64, now_ms: i64) {
    let reason = reason
        .and_then(|r| CANCEL_REASONS.iter().find(|known| **known == r))
        .copied()
        .unwrap_or("other");
    counter!("emporium_orders_cancelled_total", "reason" => reason).increment(1);
    saga_took("cancelled", created_ms, now_ms);
}

pub fn step_failed() {
    counter!("emporium_saga_step_failures_total").increment(1);
}

/// The label of the step an order is at (a fixed set; anything else `other`).
pub fn step_name(at: &str) -> &'static str {
    use crate::store::step;
    [
        step::RESERVE,
        step::AUTHORIZE,
        step::COMPLETE,
        step::COMPENSATE,
    ]
    .into_iter()
    .find(|known| *known == at)
    .unwrap_or("other")
}

pub fn step_took(step: &'static str, took: std::time::Duration) {
    histogram!("emporium_saga_step_duration_seconds", "step" => step).record(took.as_secs_f64());
}

fn saga_took(outcome: &'static str, created_ms: i64, now_ms: i64) {
    let seconds = (now_ms - created_ms).max(0) as f64 / 1000.0;
    histogram!("emporium_saga_duration_seconds", "outcome" => outcome).record(seconds);
}

#[cfg(test)]
mod tests {
    use super::CANCEL_REASONS;

    /// Every reason the saga compensates with is a label of its own, not `other`.
    #[test]
    fn every_compensation_reason_is_a_known_label() {
        let saga = include_str!("saga.rs");
        let mut found = 0;
        for (i, _) in saga.match_indices("compensate(") {
            let rest = &saga[i..];
            let Some(open) = rest.find('"') else { continue };
            // The reason is the first string literal of the call.
            if rest[..open].contains(';') || rest[..open].contains("fn ") {
                continue;
            }
            let reason = &rest[open + 1..];
            let reason = &reason[..reason.find('"').unwrap_or(0)];
            assert!(
                CANCEL_REASONS.contains(&reason),
                "compensation reason {reason:?} is not in CANCEL_REASONS"
            );
            found += 1;
        }
        assert!(found >= 8, "the saga's compensations were found: {found}");
    }
}
