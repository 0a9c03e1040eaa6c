//! Payment cards as they cross from the shopper to orders to payments.
//!
//! A full card number only ever lives in memory: its `Debug` shows the last four
//! digits, it is never serialised into logs, and payments stores brand and last four
//! digits only. Validation (Luhn, expiry, CVC) is defined here once so orders can
//! refuse a bad card at the edge with the same rules payments applies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A card as entered at checkout.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// The card number; spaces and dashes are allowed between digits.
    #[schema(example = "4242 4242 4242 4242")]
    pub number: String,
    #[schema(example = 12)]
    pub exp_month: u32,
    #[schema(example = 2030)]
    pub exp_year: u32,
    #[schema(example = "123")]
    pub cvc: String,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = digits(&self.number);
        let last4 = digits.get(digits.len().saturating_sub(4)..).unwrap_or("");
        f.debug_struct("Card")
            .field("number", &format_args!("****{last4}"))
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .field("cvc", &"***")
            .finish()
    }
}

/// What may be kept about a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
}

/// A rule a card breaks: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardProblem {
    pub field: &'static str,
    pub message: &'static str,
}

impl Card {
    /// The number's digits, without separators.
    pub fn digits(&self) -> String {
        digits(&self.number)
    }

    /// Checks the card against the rules of a card form, with `today` as
    /// `(year, month)`. Returns what may be kept about it.
    pub fn validate(&self, today: (u32, u32)) -> Result<CardSummary, Vec<CardProblem>> {
        let mut problems = Vec::new();
        let digits = self.digits();
        let well_formed = self
            .number
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
        if !well_formed || !(12..=19).contains(&digits.len()) {
            problems.push(CardProblem {
                field: "card.number",
                message: "must be 12 to 19 digits",
            });
        } else if !luhn(&digits) {
            problems.push(CardProblem {
                field: "card.number",
                message: "is not a valid card number (checksum)",
            });
        }
        if !(1..=12).contains(&self.exp_month) {
            problems.push(CardProblem {
                field: "card.exp_month",
                message: "must be 1 to 12",
            });
        } else if !(2000..=2200).contains(&self.exp_year) {
            problems.push(CardProblem {
                field: "card.exp_year",
                message: "must be a four-digit year",
            });
        } else if (self.exp_year, self.exp_month) < today {
            problems.push(CardProblem {
                field: "card.exp_year",
                message: "the card has expired",
            });
        }
        if !(3..=4).contains(&self.cvc.len()) || !self.cvc.chars().all(|c| c.is_ascii_digit()) {
            problems.push(CardProblem {
                field: "card.cvc",
                message: "must be 3 or 4 digits",
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(CardSummary {
            brand: brand(&digits).to_string(),
            last4: digits[digits.len() - 4..].to_string(),
        })
    }
}

fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// The Luhn (mod 10) checksum of a digit string.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

fn brand(digits: &str) -> &'static str {
    let prefix2: u32 = digits.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let prefix4: u32 = digits.get(..4).and_then(|p| p.parse().ok()).unwrap_or(0);
    match () {
        _ if digits.starts_with('4') => "visa",
        _ if (51..=55).contains(&prefix2) || (2221..=2720).contains(&prefix4) => "mastercard",
        _ if prefix2 == 34 || prefix2 == 37 => "amex",
        _ if digits.starts_with("6011") || prefix2 == 65 => "discover",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(number: &str, month: u32, year: u32) -> Card {
        Card {
            number: number.into(),
            exp_month: month,
            exp_year: year,
            cvc: "123".into(),
        }
    }

    #[test]
    fn test_cards_pass_luhn_and_typos_do_not() {
        for n in [
            "4242424242424242",
            "4000000000000002",
            "4000000000000119",
            "4000000000003055",
            "5555555555554444",
        ] {
            assert!(luhn(n), "{n}");
        }
        assert!(!luhn("4242424242424241"));
        assert!(!luhn(""));
    }

    #[test]
    fn validation_names_each_field() {
        let ok = card("4242 4242 4242 4242", 12, 2030)
            .validate((2026, 11))
            .expect("valid");
        assert_eq!(
            ok,
            CardSummary {
                brand: "visa".into(),
                last4: "4242".into()
            }
        );
        let expired = card("4242424242424242", 10, 2026)
            .validate((2026, 11))
            .expect_err("expired");
        assert_eq!(expired[0].field, "card.exp_year");
        assert!(
            card("4242424242424242", 11, 2026)
                .validate((2026, 11))
                .is_ok(),
            "valid through the end of its month"
        );
        let bad = card("4242-x", 13, 2030)
            .validate((2026, 11))
            .expect_err("bad");
        let fields: Vec<_> = bad.iter().map(|p| p.field).collect();
        assert_eq!(fields, ["card.number", "card.exp_month"]);
    }

    #[test]
    fn debug_never_shows_the_number() {
        let shown = format!("{:?}", card("4242424242424242", 1, 2030));
        assert!(!shown.contains("4242424242424242"), "{shown}");
        assert!(shown.contains("****4242"));
    }
}
