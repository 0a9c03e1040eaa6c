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

/// What [`Sku::parse`] accepts, as a JSON Schema pattern (before trimming and
/// upper-casing, which it also does).
pub const SKU_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9-]{1,30}[A-Za-z0-9]$";

impl utoipa::PartialSchema for Sku {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(SKU_PATTERN))
            .description(Some(
                "Stock-keeping unit: 3 to 32 characters of A-Z, 0-9 and `-`, not starting \
                 or ending with `-` (lower case is read as upper case)",
            ))
            .examples(["ELE-00001"])
            .into()
    }
}

impl utoipa::ToSchema for Sku {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_says_what_parse_accepts() {
        let pattern = regex::Regex::new(SKU_PATTERN).expect("a regex");
        for s in [
            "ELE-00001",
            "abc",
            "A-B",
            "A1",
            "-AB",
            "AB-",
            "A B",
            "ÄBC",
            &"A".repeat(33),
        ] {
            assert_eq!(
                pattern.is_match(s),
                Sku::parse(s).is_ok(),
                "{s:?}: the pattern and the parser disagree"
            );
        }
    }
}
