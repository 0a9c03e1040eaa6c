//! The card network, behind a trait: the one fake in Emporium, at the edge of the world.
//!
//! [`Simulated`] answers by test card number (documented in the README):
//!
//! | number             | outcome                                               |
//! |--------------------|-------------------------------------------------------|
//! | `4242424242424242` | approved                                              |
//! | `4000000000000002` | declined: insufficient funds                          |
//! | `4000000000000119` | processor error (retryable) on the first two attempts |
//! |                    | of each order, approved on the third                  |
//! | `4000000000003055` | approved after a delay (2 s by default)               |
//! | any other valid    | approved                                              |

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use emporium_contracts::card::Card;
use futures::future::BoxFuture;

pub const APPROVE: &str = "4242424242424242";
pub const DECLINE: &str = "4000000000000002";
pub const TRANSIENT: &str = "4000000000000119";
pub const SLOW: &str = "4000000000003055";

/// How many attempts of one order the transient card fails.
pub const TRANSIENT_FAILURES: u32 = 2;

/// What a processor can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Approved, with the processor's reference.
    Approved(String),
    /// Refused for good, with the reason.
    Declined(String),
    /// Failed this time; asking again may work.
    Transient(String),
}

/// A card processor.
///
/// The contract payments relies on, as real processors offer it through idempotency
/// keys: every call is idempotent by order id (authorize) or by the authorization's
/// reference (capture, void, refund). Payments records an outcome only after the
/// processor gave it, so a crash between the two is healed by calling again: a
/// repeated authorize returns the first authorization instead of placing a second
/// hold, and a repeated capture or refund does not move money twice. As real
/// processors do, a void of a captured authorization fails (refund it instead), and
/// so do a capture of a voided one and a refund of money never captured: payments
/// relies on that when a cancel meets a sale whose capture is on its way.
pub trait Processor: Send + Sync + 'static {
    /// Holds `amount` on `card` for `order_id`.
    fn authorize<'a>(
        &'a self,
        order_id: &'a str,
        amount: i64,
        card: &'a Card,
    ) -> BoxFuture<'a, Outcome>;
    /// Takes the money held by an approved authorization.
    fn capture<'a>(&'a self, reference: &'a str, amount: i64) -> BoxFuture<'a, Result<(), String>>;
    /// Drops an authorization (no money moved).
    fn void<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// Returns captured money.
    fn refund<'a>(&'a self, reference: &'a str, amount: i64) -> BoxFuture<'a, Result<(), String>>;
}

/// The simulated processor.
pub struct Simulated {
    slow: Duration,
    attempts: Mutex<HashMap<String, u32>>,
}

impl Simulated {
    pub fn new(slow: Duration) -> Self {
        Self {
            slow,
            attempts: Mutex::new(HashMap::new()),
        }
    }
}

impl Processor for Simulated {
    fn authorize<'a>(
        &'a self,
        order_id: &'a str,
        _amount: i64,
        card: &'a Card,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let reference = format!("sim_{}", order_id.replace('-', ""));
            match card.digits().as_str() {
                DECLINE => Outcome::Declined("insufficient_funds".into()),
                TRANSIENT => {
                    let attempt = {
                        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
                        let n = attempts.entry(order_id.to_string()).or_default();
                        *n += 1;
                        *n
                    };
                    if attempt <= TRANSIENT_FAILURES {
                        Outcome::Transient("processor_error".into())
                    } else {
                        Outcome::Approved(reference)
                    }
                }
                SLOW => {
                    tokio::time::sleep(self.slow).await;
                    Outcome::Approved(reference)
                }
                _ => Outcome::Approved(reference),
            }
        })
    }

    fn capture<'a>(
        &'a self,
        _reference: &'a str,
        _amount: i64,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn void<'a>(&'a self, _reference: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn refund<'a>(
        &'a self,
        _reference: &'a str,
        _amount: i64,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(number: &str) -> Card {
        Card {
            number: number.into(),
            exp_month: 12,
            exp_year: 2099,
            cvc: "123".into(),
        }
    }

    #[tokio::test]
    async fn test_cards_behave_as_documented() {
        let p = Simulated::new(Duration::from_millis(50));
        assert!(matches!(
            p.authorize("o1", 100, &card(APPROVE)).await,
            Outcome::Approved(_)
        ));
        assert_eq!(
            p.authorize("o2", 100, &card(DECLINE)).await,
            Outcome::Declined("insufficient_funds".into())
        );
        for _ in 0..TRANSIENT_FAILURES {
            assert!(matches!(
                p.authorize("o3", 100, &card(TRANSIENT)).await,
                Outcome::Transient(_)
            ));
        }
        assert!(matches!(
            p.authorize("o3", 100, &card(TRANSIENT)).await,
            Outcome::Approved(_)
        ));
        let started = std::time::Instant::now();
        assert!(matches!(
            p.authorize("o4", 100, &card(SLOW)).await,
            Outcome::Approved(_)
        ));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
