//! Money: integer minor units and a currency, never floating point.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount of money. `amount` is in minor units (cents): `1999` with `USD` is
/// $19.99.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Minor units (cents).
    #[schema(example = 1999)]
    pub amount: i64,
    /// ISO 4217 code, such as `USD`.
    #[schema(example = "USD")]
    pub currency: String,
}

impl Money {
    pub fn new(amount: i64, currency: &str) -> Self {
        Self {
            amount,
            currency: currency.to_string(),
        }
    }
}
