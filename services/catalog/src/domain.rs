//! Catalog rules with no I/O: SKUs, prices, product fields, listing parameters and
//! cursors.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emporium_contracts::fields;
use emporium_http::FieldError;
use serde::{Deserialize, Serialize};

/// Highest price accepted, in minor units (1,000,000.00).
pub const MAX_PRICE_MINOR: i64 = 100_000_000;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
pub const MAX_ATTRIBUTES: usize = 50;
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 64;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 256;
pub const MAX_IMAGE_URL_LEN: usize = 2_048;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

pub use emporium_contracts::sku::Sku;

/// A price in minor units: positive and at most [`MAX_PRICE_MINOR`].
pub fn check_price(amount: i64) -> Result<i64, String> {
    if amount <= 0 {
        Err("must be greater than zero".into())
    } else if amount > MAX_PRICE_MINOR {
        Err(format!("must be at most {MAX_PRICE_MINOR} minor units"))
    } else {
        Ok(amount)
    }
}

/// A line (or with `multiline`, paragraphs) of 1..=`max` characters without
/// control characters, trimmed: [`emporium_contracts::fields`].
pub fn check_text(input: &str, max: usize, multiline: bool) -> Result<String, String> {
    let checked = if multiline {
        fields::required_text(input, max)
    } else {
        fields::line(input, max)
    };
    checked.map(str::to_string)
}

/// An image URL: a path on this site or an https URL.
///
/// An https URL's host is a DNS name or IPv4 address (letters, digits, `.`, `-`),
/// with a port if any; no user info, no IPv6 literal.
pub fn check_image_url(input: &str) -> Result<String, &'static str> {
    let url = input;
    let host_ok = |rest: &str| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = authority.split_once(':').unwrap_or((authority, "1"));
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
    };
    let ok = url.chars().count() <= MAX_IMAGE_URL_LEN
        && (url.starts_with('/') && !url.starts_with("//")
            || url.strip_prefix("https://").is_some_and(host_ok))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(url.to_string())
    } else {
        Err("must be a path such as /images/x.svg or an https URL")
    }
}

pub fn check_attributes(attrs: &BTreeMap<String, String>) -> Result<(), String> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(format!("at most {MAX_ATTRIBUTES} attributes"));
    }
    for (k, v) in attrs {
        if k.is_empty() || k.chars().count() > MAX_ATTRIBUTE_KEY_CHARS {
            return Err(format!(
                "attribute names are 1-{MAX_ATTRIBUTE_KEY_CHARS} characters"
            ));
        }
        if v.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS {
            return Err(format!(
                "attribute `{k}` is longer than {MAX_ATTRIBUTE_VALUE_CHARS} characters"
            ));
        }
    }
    Ok(())
}

/// The orders a listing can be sorted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    #[serde(rename = "name")]
    NameAsc,
    #[serde(rename = "-name")]
    NameDesc,
    #[serde(rename = "price")]
    PriceAsc,
    #[serde(rename = "-price")]
    PriceDesc,
}

impl Sort {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        match input {
            "name" => Ok(Self::NameAsc),
            "-name" => Ok(Self::NameDesc),
            "price" => Ok(Self::PriceAsc),
            "-price" => Ok(Self::PriceDesc),
            _ => Err("must be one of name, -name, price, -price"),
        }
    }
}

/// Where the previous page ended: the sort key and id of its last item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: Sort,
    /// The last item's price (price sorts).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// The last item's name (name sorts).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "i")]
    pub id: String,
}

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(input: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(input.as_bytes()).ok()?;
        let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
        let matches_sort = match cursor.sort {
            Sort::NameAsc | Sort::NameDesc => cursor.name.is_some(),
            Sort::PriceAsc | Sort::PriceDesc => cursor.price.is_some(),
        };
        matches_sort.then_some(cursor)
    }
}

/// The raw query of a listing, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub category: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A checked listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub category: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort: Sort,
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl ListParams {
    pub fn check(self) -> Result<Listing, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(c) = &self.category
            && let Err(m) = fields::category_id(c)
        {
            errors.push(FieldError::new("category", m));
        }
        for (field, value) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if let Some(v) = value
                && !(0..=MAX_PRICE_MINOR).contains(&v)
            {
                errors.push(FieldError::new(
                    field,
                    format!("must be between 0 and {MAX_PRICE_MINOR}"),
                ));
            }
        }
        // A minimum above the maximum is a range nothing is in: an empty page.
        let sort = match self.sort.as_deref().map(Sort::parse).transpose() {
            Ok(s) => s.unwrap_or(Sort::NameAsc),
            Err(m) => {
                errors.push(FieldError::new("sort", m));
                Sort::NameAsc
            }
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => match Cursor::decode(c) {
                Some(cursor) if cursor.sort == sort => Some(cursor),
                Some(_) => {
                    errors.push(FieldError::new(
                        "cursor",
                        "belongs to a listing in another order",
                    ));
                    None
                }
                None => {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this service issued",
                    ));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Listing {
            category: self.category,
            min_price: self.min_price,
            max_price: self.max_price,
            sort,
            limit,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus() {
        assert_eq!(Sku::parse(" ele-00042 ").expect("ok").as_str(), "ELE-00042");
        for bad in ["", "AB", "-ABC", "ABC-", "A B C", "ÄBC", &"A".repeat(33)] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prices() {
        assert!(check_price(1).is_ok());
        assert!(check_price(MAX_PRICE_MINOR).is_ok());
        assert!(check_price(0).is_err());
        assert!(check_price(-5).is_err());
        assert!(check_price(MAX_PRICE_MINOR + 1).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let c = Cursor {
            sort: Sort::PriceDesc,
            price: Some(1999),
            name: None,
            id: "abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        let wrong = Cursor {
            sort: Sort::NameAsc,
            price: Some(1),
            name: None,
            id: "x".into(),
        };
        assert_eq!(
            Cursor::decode(&wrong.encode()),
            None,
            "a name cursor needs a name"
        );
    }

    #[test]
    fn listing_parameters() {
        let ok = ListParams {
            sort: Some("-price".into()),
            limit: Some(100),
            ..Default::default()
        }
        .check()
        .expect("valid");
        assert_eq!(ok.sort, Sort::PriceDesc);
        let errs = ListParams {
            limit: Some(0),
            min_price: Some(-1),
            sort: Some("popularity".into()),
            category: Some("Bad Category".into()),
            ..Default::default()
        }
        .check()
        .expect_err("invalid");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["category", "min_price", "sort", "limit"]);
        // A range nothing is in is a listing of nothing, not an error.
        let empty = ListParams {
            min_price: Some(500),
            max_price: Some(100),
            cursor: Some(String::new()),
            ..Default::default()
        }
        .check()
        .expect("min > max");
        assert_eq!(
            (empty.min_price, empty.max_price, empty.after),
            (Some(500), Some(100), None)
        );
        let name_cursor = Cursor {
            sort: Sort::NameAsc,
            price: None,
            name: Some("a".into()),
            id: "1".into(),
        };
        let errs = ListParams {
            sort: Some("price".into()),
            cursor: Some(name_cursor.encode()),
            ..Default::default()
        }
        .check()
        .expect_err("cursor from another order");
        assert_eq!(errs[0].field, "cursor");
    }

    #[test]
    fn text_and_urls() {
        assert_eq!(check_text("  Lamp ", 10, false).expect("ok"), "Lamp");
        assert!(check_text("", 10, false).is_err());
        assert!(check_text(&"x".repeat(11), 10, false).is_err());
        assert!(check_text("a\nb", 10, false).is_err());
        assert!(check_text("a\nb", 10, true).is_ok());
        assert!(check_image_url("/api/catalog/images/ABC").is_ok());
        assert!(check_image_url("https://cdn.example.com/x.png").is_ok());
        assert!(check_image_url("javascript:alert(1)").is_err());
        assert!(check_image_url("//evil.example.com/x").is_err());
        assert!(check_image_url("https://cdn.example.com:8443").is_ok());
        for bad in [
            "https://",
            "https://[::1/x",
            "https://a@b/x",
            "https://h:/x",
            "https://h:123456",
        ] {
            assert!(check_image_url(bad).is_err(), "{bad}");
        }
        let pattern = regex::Regex::new(crate::docs::IMAGE_URL_PATTERN).expect("a regex");
        for url in [
            "/x",
            "/",
            "//x",
            "/ x",
            "https://h/ x",
            "https://a.b:80/x?y#z",
            "https://h",
            "https://[::1]/",
            "https://a@b",
        ] {
            assert_eq!(pattern.is_match(url), check_image_url(url).is_ok(), "{url}");
        }
    }
}
