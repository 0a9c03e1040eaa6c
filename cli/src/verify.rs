//! `emporium verify`: the invariants of the checkout that span services, checked
//! from the facts each service reports of its own data (`GET
//! /internal/<service>/audit` on a running shop; on a stopped one, the same code
//! reading each service's database). No service reads another's database, and
//! neither does this command's logic: it only compares what they report.
//!
//! On a running shop, orders is asked first: an order it reports finished had its
//! payment and stock settled before, so the later answers of payments and
//! inventory agree with it; orders still in flight are left out of the
//! comparisons.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use emporium_contracts::audit::{InventoryFacts, NotificationsFacts, OrdersFacts, PaymentsFacts};
use http::Method;
use serde::de::DeserializeOwned;

/// A saga before its payment that is this far past its deadline is stuck.
const STUCK_AFTER_DEADLINE_MS: i64 = 60_000;
/// A saga after its payment (rolling forward) that has not moved for this long is stuck.
const STUCK_ROLLING_MS: i64 = 300_000;
/// Mail for an order confirmed this recently may still be on its way.
const MAIL_SETTLE_MS: i64 = 60_000;

/// What the four services of the checkout report.
pub struct Facts {
    pub orders: OrdersFacts,
    pub payments: PaymentsFacts,
    pub inventory: InventoryFacts,
    pub notifications: NotificationsFacts,
}

/// One invariant and what breaks it.
pub struct Check {
    pub name: &'static str,
    pub violations: Vec<String>,
}

pub async fn run(registry: Option<String>, data_dir: Option<PathBuf>) -> anyhow::Result<bool> {
    let (facts, stopped) = match running(registry.clone(), data_dir.clone()).await {
        Some(registry) => {
            println!("asking the running shop ({})", registry.base_url());
            (from_services(&registry).await?, false)
        }
        None => {
            let dir = crate::running::data_dir(data_dir);
            println!(
                "the shop is not running; reading the databases under {}",
                dir.display()
            );
            (from_databases(dir).await?, true)
        }
    };
    let checks = check(&facts, emporium_client::faults::now_ms(), stopped);
    let settled = facts
        .orders
        .orders
        .iter()
        .filter(|o| o.step == "done")
        .count();
    println!(
        "{} orders ({} finished, {} in flight), {} payments, {} reservations, {} SKUs, {} order mails",
        facts.orders.orders.len(),
        settled,
        facts.orders.orders.len() - settled,
        facts.payments.payments.len(),
        facts.inventory.reservations.len(),
        facts.inventory.stock.len(),
        facts.notifications.messages.len()
    );
    let mut failed = 0;
    for c in &checks {
        if c.violations.is_empty() {
            println!("  ok      {}", c.name);
        } else {
            failed += c.violations.len();
            println!("  FAILED  {} ({} violations)", c.name, c.violations.len());
            for v in c.violations.iter().take(10) {
                println!("            {v}");
            }
        }
    }
    println!("{failed} violation(s)");
    Ok(failed == 0)
}

/// The registry of a running shop, if one answers.
async fn running(
    registry: Option<String>,
    data_dir: Option<PathBuf>,
) -> Option<emporium_client::RegistryClient> {
    let registry = crate::operator::registry(registry, data_dir).ok()?;
    registry.instances().await.ok()?;
    Some(registry)
}

async fn ask<T: DeserializeOwned>(
    registry: &emporium_client::RegistryClient,
    service: &str,
) -> anyhow::Result<T> {
    let path = format!("/internal/{service}/audit");
    let (_, body) = crate::operations::on_one(registry, service, Method::GET, &path).await?;
    serde_json::from_value(body).with_context(|| format!("{service}'s facts"))
}

async fn from_services(registry: &emporium_client::RegistryClient) -> anyhow::Result<Facts> {
    let orders = ask(registry, "orders").await?;
    let payments = ask(registry, "payments").await?;
    let inventory = ask(registry, "inventory").await?;
    let notifications = ask(registry, "notifications").await?;
    Ok(Facts {
        orders,
        payments,
        inventory,
        notifications,
    })
}

async fn from_databases(data_dir: PathBuf) -> anyhow::Result<Facts> {
    let figment = emporium_config::figment().merge(("data_dir", data_dir));
    let open = |service: &'static str| {
        let figment = figment.clone();
        async move {
            let settings = emporium_config::from_figment::<BTreeMap<String, serde_json::Value>>(
                &figment,
                service,
                emporium_runtime::LOOPBACK_ANY_PORT,
            )?;
            let dir = settings.common.service_dir(service);
            emporium_store::Db::open_service(service, &dir, settings.database_url())
                .await
                .with_context(|| format!("opening {service}'s database"))
        }
    };
    let orders = emporium_orders::audit::facts(&open("orders").await?).await?;
    let payments = emporium_payments::audit::facts(&open("payments").await?).await?;
    let inventory = emporium_inventory::audit::facts(&open("inventory").await?).await?;
    let notifications = emporium_notifications::audit::facts(&open("notifications").await?).await?;
    Ok(Facts {
        orders,
        payments,
        inventory,
        notifications,
    })
}

/// Every invariant, with what breaks it, at `now_ms`. Facts read from a running
/// shop (`stopped` false) are not one snapshot: what may have changed between
/// two services' answers, or between two reads of one service, is not compared.
pub fn check(facts: &Facts, now_ms: i64, stopped: bool) -> Vec<Check> {
    let payment: HashMap<&str, (&str, i64, &str)> = facts
        .payments
        .payments
        .iter()
        .map(|p| {
            (
                p.order_id.as_str(),
                (p.status.as_str(), p.amount, p.currency.as_str()),
            )
        })
        .collect();
    let reservation: HashMap<&str, &str> = facts
        .inventory
        .reservations
        .iter()
        .map(|r| (r.order_id.as_str(), r.status.as_str()))
        .collect();
    let orders: HashMap<&str, &emporium_contracts::audit::OrderFact> = facts
        .orders
        .orders
        .iter()
        .map(|o| (o.id.as_str(), o))
        .collect();
    let done = |o: &&emporium_contracts::audit::OrderFact| o.step == "done";

    let mut confirmed = Vec::new();
    let mut cancelled = Vec::new();
    for o in facts.orders.orders.iter().filter(done) {
        let paid = payment.get(o.id.as_str());
        let held = reservation.get(o.id.as_str()).copied();
        match o.status.as_str() {
            "CONFIRMED" => {
                match paid {
                    Some(("captured", amount, currency))
                        if *amount == o.total && *currency == o.currency => {}
                    other => confirmed.push(format!(
                        "order {} ({} {}) is confirmed, its payment is {other:?}",
                        o.id, o.total, o.currency
                    )),
                }
                if held != Some("committed") {
                    confirmed.push(format!(
                        "order {} is confirmed, its stock is {held:?}",
                        o.id
                    ));
                }
            }
            "CANCELLED" => {
                if let Some((status @ ("authorizing" | "authorized" | "captured"), ..)) = paid {
                    cancelled.push(format!(
                        "order {} is cancelled and its payment {status}",
                        o.id
                    ));
                }
                if let Some(status @ ("reserved" | "committed")) = held {
                    cancelled.push(format!(
                        "order {} is cancelled and its stock {status}",
                        o.id
                    ));
                }
            }
            other => confirmed.push(format!("order {} is done but {other}", o.id)),
        }
    }

    // Money: what was captured is what confirmed orders cost, per currency.
    let mut money = Vec::new();
    let mut captured: BTreeMap<&str, i64> = BTreeMap::new();
    let mut owed: BTreeMap<&str, i64> = BTreeMap::new();
    for p in facts
        .payments
        .payments
        .iter()
        .filter(|p| p.status == "captured")
    {
        if stopped && !orders.contains_key(p.order_id.as_str()) {
            money.push(format!(
                "{} {} captured for an unknown order {}",
                p.amount, p.currency, p.order_id
            ));
        }
        if orders
            .get(p.order_id.as_str())
            .is_some_and(|o| o.step == "done")
        {
            *captured.entry(p.currency.as_str()).or_default() += p.amount;
        }
    }
    for o in facts
        .orders
        .orders
        .iter()
        .filter(done)
        .filter(|o| o.status == "CONFIRMED")
    {
        *owed.entry(o.currency.as_str()).or_default() += o.total;
    }
    if captured != owed {
        money.push(format!(
            "captured {captured:?}, confirmed orders total {owed:?}"
        ));
    }

    // Stock: conserved per SKU, and every unit held belongs to a live order.
    let mut stock = Vec::new();
    for s in &facts.inventory.stock {
        if s.available < 0 || s.reserved < 0 || s.sold < 0 {
            stock.push(format!("{}: negative counts {s:?}", s.sku));
        }
        if s.available + s.reserved + s.sold != s.initial + s.adjusted {
            stock.push(format!(
                "{}: available {} + reserved {} + sold {} is not initial {} + adjusted {}",
                s.sku, s.available, s.reserved, s.sold, s.initial, s.adjusted
            ));
        }
    }
    let mut held: HashMap<(&str, &str), i64> = HashMap::new();
    for r in &facts.inventory.reservations {
        if !matches!(r.status.as_str(), "reserved" | "committed") {
            continue;
        }
        let order = orders.get(r.order_id.as_str()).map(|o| o.status.as_str());
        if order == Some("CANCELLED") || (stopped && order.is_none()) {
            stock.push(format!(
                "stock {} for order {}, which is not live",
                r.status, r.order_id
            ));
        }
        for l in &r.lines {
            *held.entry((l.sku.as_str(), r.status.as_str())).or_default() += l.quantity;
        }
    }
    for s in facts.inventory.stock.iter().filter(|_| stopped) {
        let reserved = held
            .get(&(s.sku.as_str(), "reserved"))
            .copied()
            .unwrap_or(0);
        let sold = held
            .get(&(s.sku.as_str(), "committed"))
            .copied()
            .unwrap_or(0);
        if reserved != s.reserved || sold != s.sold {
            stock.push(format!(
                "{}: {} reserved and {} sold, but reservations hold {reserved} and {sold}",
                s.sku, s.reserved, s.sold
            ));
        }
    }

    // One order per idempotency key and shopper.
    let mut keys = Vec::new();
    let mut seen = HashSet::new();
    for o in &facts.orders.orders {
        if !seen.insert((o.user_id.as_str(), o.idempotency_key.as_str())) {
            keys.push(format!(
                "two orders of {} under key {}",
                o.user_id, o.idempotency_key
            ));
        }
    }

    // Exactly one confirmation mail per confirmed order.
    let mut mail = Vec::new();
    let mails: HashSet<&str> = facts
        .notifications
        .messages
        .iter()
        .filter(|m| m.kind == "order_confirmed")
        .map(|m| m.event_id.as_str())
        .collect();
    let mut expected = HashSet::new();
    for o in facts
        .orders
        .orders
        .iter()
        .filter(done)
        .filter(|o| o.status == "CONFIRMED")
    {
        let Some(event) = &o.confirmation_event else {
            continue; // pruned from the outbox long ago
        };
        expected.insert(event.as_str());
        if !mails.contains(event.as_str()) && now_ms - o.updated_ms > MAIL_SETTLE_MS {
            mail.push(format!("no confirmation mail for order {}", o.id));
        }
    }
    for m in &mails {
        if !expected.contains(m) {
            mail.push(format!("a confirmation mail ({m}) for no confirmed order"));
        }
    }

    // No saga left behind.
    let mut stuck = Vec::new();
    for o in facts.orders.orders.iter().filter(|o| o.step != "done") {
        let late = match o.step.as_str() {
            "reserve" | "authorize" => now_ms - o.deadline_ms > STUCK_AFTER_DEADLINE_MS,
            _ => now_ms - o.updated_ms > STUCK_ROLLING_MS,
        };
        if late {
            stuck.push(format!(
                "order {} is still at {} ({})",
                o.id, o.step, o.status
            ));
        }
    }

    vec![
        Check {
            name: "every confirmed order has a captured payment of its total and committed stock",
            violations: confirmed,
        },
        Check {
            name: "no cancelled order holds money or stock",
            violations: cancelled,
        },
        Check {
            name: "captured money equals the totals of the confirmed orders",
            violations: money,
        },
        Check {
            name: "stock is conserved per SKU and held only for live orders",
            violations: stock,
        },
        Check {
            name: "one order per idempotency key",
            violations: keys,
        },
        Check {
            name: "exactly one confirmation mail per confirmed order",
            violations: mail,
        },
        Check {
            name: "no saga left in flight past its deadline",
            violations: stuck,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use emporium_contracts::audit::{
        AuditLine, MessageFact, OrderFact, PaymentFact, ReservationFact, StockFact,
    };

    const NOW: i64 = 10_000_000;

    fn order(id: &str, status: &str, key: &str) -> OrderFact {
        OrderFact {
            id: id.into(),
            user_id: "u1".into(),
            idempotency_key: key.into(),
            status: status.into(),
            step: "done".into(),
            total: 500,
            currency: "USD".into(),
            deadline_ms: NOW - 500_000,
            updated_ms: NOW - 400_000,
            lines: vec![AuditLine {
                sku: "A-1".into(),
                quantity: 2,
            }],
            confirmation_event: (status == "CONFIRMED").then(|| format!("ev-{id}")),
        }
    }

    /// A shop where o1 was confirmed and o2 cancelled, every fact in order.
    fn healthy() -> Facts {
        Facts {
            orders: OrdersFacts {
                orders: vec![
                    order("o1", "CONFIRMED", "k1"),
                    order("o2", "CANCELLED", "k2"),
                ],
            },
            payments: PaymentsFacts {
                payments: vec![
                    PaymentFact {
                        order_id: "o1".into(),
                        status: "captured".into(),
                        amount: 500,
                        currency: "USD".into(),
                    },
                    PaymentFact {
                        order_id: "o2".into(),
                        status: "voided".into(),
                        amount: 500,
                        currency: "USD".into(),
                    },
                ],
            },
            inventory: InventoryFacts {
                reservations: vec![
                    ReservationFact {
                        order_id: "o1".into(),
                        status: "committed".into(),
                        lines: vec![AuditLine {
                            sku: "A-1".into(),
                            quantity: 2,
                        }],
                    },
                    ReservationFact {
                        order_id: "o2".into(),
                        status: "released".into(),
                        lines: vec![AuditLine {
                            sku: "A-1".into(),
                            quantity: 2,
                        }],
                    },
                ],
                stock: vec![StockFact {
                    sku: "A-1".into(),
                    available: 8,
                    reserved: 0,
                    sold: 2,
                    initial: 10,
                    adjusted: 0,
                }],
            },
            notifications: NotificationsFacts {
                messages: vec![MessageFact {
                    event_id: "ev-o1".into(),
                    kind: "order_confirmed".into(),
                    status: "sent".into(),
                }],
            },
        }
    }

    fn broken(facts: &Facts, stopped: bool) -> Vec<&'static str> {
        check(facts, NOW, stopped)
            .into_iter()
            .filter(|c| !c.violations.is_empty())
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn a_healthy_shop_passes_every_check() {
        assert!(broken(&healthy(), true).is_empty());
        assert!(broken(&healthy(), false).is_empty());
    }

    #[test]
    fn each_invariant_catches_its_violation() {
        let mut f = healthy();
        f.payments.payments[0].amount = 400;
        assert_eq!(
            broken(&f, true),
            [
                "every confirmed order has a captured payment of its total and committed stock",
                "captured money equals the totals of the confirmed orders"
            ]
        );

        let mut f = healthy();
        f.inventory.reservations[1].status = "reserved".into();
        f.inventory.stock[0].reserved = 2;
        f.inventory.stock[0].available = 6;
        assert_eq!(
            broken(&f, true),
            [
                "no cancelled order holds money or stock",
                "stock is conserved per SKU and held only for live orders"
            ]
        );

        let mut f = healthy();
        f.inventory.stock[0].available = 9;
        assert_eq!(
            broken(&f, false),
            ["stock is conserved per SKU and held only for live orders"]
        );

        let mut f = healthy();
        f.orders.orders[1].idempotency_key = "k1".into();
        assert_eq!(broken(&f, true), ["one order per idempotency key"]);

        let mut f = healthy();
        f.notifications.messages.clear();
        assert_eq!(
            broken(&f, true),
            ["exactly one confirmation mail per confirmed order"]
        );
        f.orders.orders[0].updated_ms = NOW - 1_000;
        assert!(
            broken(&f, false).is_empty(),
            "a mail on its way is no violation yet"
        );

        let mut f = healthy();
        f.orders.orders[1].step = "authorize".into();
        f.orders.orders[1].status = "PENDING".into();
        assert_eq!(
            broken(&f, true),
            ["no saga left in flight past its deadline"]
        );
    }

    #[test]
    fn what_a_running_shop_may_have_changed_between_answers_is_not_compared() {
        let mut f = healthy();
        // A payment captured for an order placed after orders answered.
        f.payments.payments.push(PaymentFact {
            order_id: "o3".into(),
            status: "captured".into(),
            amount: 100,
            currency: "USD".into(),
        });
        assert!(broken(&f, false).is_empty());
        assert_eq!(
            broken(&f, true),
            ["captured money equals the totals of the confirmed orders"]
        );
    }
}
