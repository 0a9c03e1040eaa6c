//! The checkout request: parsed and checked at the edge, fingerprinted for
//! idempotency. No I/O.

use emporium_contracts::card::{Card, CardSummary};
use emporium_contracts::fields;
use emporium_http::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where the order ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    #[schema(example = "Ada Lovelace", schema_with = fields::line_schema::<200>)]
    pub name: String,
    #[schema(example = "12 St James's Square", schema_with = fields::line_schema::<200>)]
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fields::optional_line_schema::<200>)]
    pub line2: Option<String>,
    #[schema(example = "London", schema_with = fields::line_schema::<100>)]
    pub city: String,
    #[schema(example = "SW1Y 4JH", schema_with = fields::line_schema::<20>)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 (lower case is read as upper case).
    #[schema(example = "GB", pattern = "^[A-Za-z]{2}$")]
    pub country: String,
}

/// `POST /api/orders`: check out the cart.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub card: Card,
    pub shipping_address: ShippingAddress,
}

/// A checked request.
pub struct Checkout {
    pub card: Card,
    pub summary: CardSummary,
    pub shipping: ShippingAddress,
    /// Fingerprint of what was asked (never of the full card number).
    pub fingerprint: String,
}

/// A line of an address ([`fields::line`]); an error is collected.
fn text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) -> String {
    fields::line(value, max)
        .map_err(|m| errors.push(FieldError::new(field, m)))
        .unwrap_or_default()
        .to_string()
}

/// Checks every field, reporting all problems at once.
pub fn check(request: CheckoutRequest, today: (u32, u32)) -> Result<Checkout, Vec<FieldError>> {
    let mut errors = Vec::new();
    let a = &request.shipping_address;
    let p = "shipping_address";
    let shipping = ShippingAddress {
        name: text(&mut errors, &format!("{p}.name"), &a.name, 200),
        line1: text(&mut errors, &format!("{p}.line1"), &a.line1, 200),
        line2: fields::optional_line(a.line2.as_deref().unwrap_or_default(), 200)
            .map_err(|m| errors.push(FieldError::new(format!("{p}.line2"), m)))
            .ok()
            .flatten()
            .map(str::to_string),
        city: text(&mut errors, &format!("{p}.city"), &a.city, 100),
        postal_code: text(&mut errors, &format!("{p}.postal_code"), &a.postal_code, 20),
        country: a.country.to_ascii_uppercase(),
    };
    if shipping.country.len() != 2 || !shipping.country.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(FieldError::new(
            format!("{p}.country"),
            "must be a two-letter ISO 3166 code",
        ));
    }
    let summary = FieldError::collect(request.card.validate(today), &mut errors);
    match summary {
        Some(summary) if errors.is_empty() => {
            let fingerprint = fingerprint(&summary, &request.card, &shipping);
            Ok(Checkout {
                card: request.card,
                summary,
                shipping,
                fingerprint,
            })
        }
        _ => Err(errors),
    }
}

fn fingerprint(summary: &CardSummary, card: &Card, shipping: &ShippingAddress) -> String {
    let canonical = serde_json::json!({
        "card": [&summary.brand, &summary.last4, card.exp_month, card.exp_year],
        "shipping": shipping,
    })
    .to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(number: &str, city: &str) -> CheckoutRequest {
        CheckoutRequest {
            card: Card {
                number: number.into(),
                exp_month: 12,
                exp_year: 2030,
                cvc: "123".into(),
            },
            shipping_address: ShippingAddress {
                name: "Ada".into(),
                line1: "1 Main St".into(),
                line2: None,
                city: city.into(),
                postal_code: "12345".into(),
                country: "us".into(),
            },
        }
    }

    #[test]
    fn same_request_same_fingerprint_and_different_otherwise() {
        let a = check(request("4242424242424242", "Springfield"), (2026, 11)).expect("ok");
        let b = check(request("4242 4242 4242 4242", " Springfield "), (2026, 11)).expect("ok");
        let c = check(request("4242424242424242", "Shelbyville"), (2026, 11)).expect("ok");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert_eq!(a.shipping.country, "US");
        assert!(!a.fingerprint.contains("4242424242424242"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut r = request("4242424242424241", "");
        r.shipping_address.country = "USA".into();
        let errors = check(r, (2026, 11)).err().expect("invalid");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "shipping_address.city",
                "shipping_address.country",
                "card.number"
            ]
        );
    }
}
