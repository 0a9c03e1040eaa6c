//! Stock-keeping units, as catalog defines them and cart and inventory accept them.

/// A stock-keeping unit: 3–32 characters of `A-Z`, `0-9` and `-`, normalised to
/// upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let sku = input.trim().to_ascii_uppercase();
        let ok = (3..=32).contains(&sku.len())
            && sku
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
            && !sku.starts_with('-')
            && !sku.ends_with('-');
        if ok {
            Ok(Self(sku))
        } else {
            Err("must be 3-32 characters of A-Z, 0-9 and '-'")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
