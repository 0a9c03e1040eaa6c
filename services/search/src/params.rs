//! The query string of a search, checked: every bad value is a field error.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emporium_http::FieldError;
use serde::{Deserialize, Serialize};

use crate::searching::{After, Filters, Sort};

/// Longest query text accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 10_240;
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
/// Highest price filter, in minor units (as catalog's highest price).
pub const MAX_PRICE: i64 = 100_000_000;

/// `GET /api/search`, as sent.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// What to look for: words (typos and a partial last word are fine) or a SKU.
    /// Empty: every product, for browsing by filters.
    #[param(max_length = 10240)]
    pub q: Option<String>,
    /// A category id.
    #[param(schema_with = emporium_contracts::fields::slug_schema)]
    pub category: Option<String>,
    /// Minor units, inclusive.
    #[param(minimum = 0, maximum = 100_000_000)]
    pub min_price: Option<i64>,
    /// Minor units, inclusive.
    #[param(minimum = 0, maximum = 100_000_000)]
    pub max_price: Option<i64>,
    /// Only what can be bought now.
    pub in_stock: Option<bool>,
    /// Stars (1 to 5, decimals allowed), at least.
    #[param(minimum = 1, maximum = 5)]
    pub min_rating: Option<f64>,
    /// `relevance` (default), `price`, `-price`, `rating` or `new`.
    #[param(pattern = "^(relevance|-?price|rating|new)$")]
    pub sort: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// A checked search, less the parsed text.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub text: String,
    pub filters: Filters,
    pub sort: Sort,
    pub limit: usize,
    pub after: Option<After>,
}

/// The opaque `next`: the sort it belongs to and where the page ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    s: Sort,
    k: f64,
    i: String,
}

pub fn encode_cursor(sort: Sort, after: &After) -> String {
    let cursor = Cursor {
        s: sort,
        k: after.key,
        i: after.id.clone(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(input: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(input.as_bytes()).ok()?;
    let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
    cursor.k.is_finite().then_some(cursor)
}

impl SearchParams {
    pub fn check(self) -> Result<Checked, Vec<FieldError>> {
        let mut errors = Vec::new();
        let text = self.q.unwrap_or_default();
        if text.chars().count() > MAX_QUERY_CHARS {
            errors.push(FieldError::new(
                "q",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        if let Some(c) = &self.category
            && let Err(m) = emporium_contracts::fields::category_id(c)
        {
            errors.push(FieldError::new("category", m));
        }
        for (field, value) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if let Some(v) = value
                && !(0..=MAX_PRICE).contains(&v)
            {
                errors.push(FieldError::new(
                    field,
                    format!("must be between 0 and {MAX_PRICE} (minor units)"),
                ));
            }
        }
        // A minimum above the maximum is a range nothing is in: no results.
        let min_rating = match self.min_rating {
            None => None,
            Some(r) if r.is_finite() && (1.0..=5.0).contains(&r) => {
                Some((r * 100.0).round() as i64)
            }
            Some(_) => {
                errors.push(FieldError::new("min_rating", "must be 1 to 5 stars"));
                None
            }
        };
        let sort = match self.sort.as_deref().map(Sort::parse) {
            None => Sort::Relevance,
            Some(Ok(sort)) => sort,
            Some(Err(message)) => {
                errors.push(FieldError::new("sort", message));
                Sort::Relevance
            }
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be 1 to {MAX_LIMIT}"),
            ));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => match decode_cursor(raw) {
                Some(c) if c.s == sort => Some(After { key: c.k, id: c.i }),
                Some(_) => {
                    errors.push(FieldError::new(
                        "cursor",
                        "belongs to another sort order; start again without it",
                    ));
                    None
                }
                None => {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this API gave out",
                    ));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Checked {
            text,
            filters: Filters {
                category: self.category,
                min_price: self.min_price,
                max_price: self.max_price,
                in_stock: self.in_stock.unwrap_or(false),
                min_rating,
            },
            sort,
            limit,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(p: SearchParams) -> Vec<String> {
        p.check()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn bad_values_are_field_errors() {
        assert_eq!(
            fields(SearchParams {
                min_price: Some(-1),
                ..Default::default()
            }),
            ["min_price"]
        );
        // A range nothing is in finds nothing; it is not an error.
        assert!(
            fields(SearchParams {
                min_price: Some(500),
                max_price: Some(100),
                ..Default::default()
            })
            .is_empty()
        );
        for r in [0.0, 6.0, f64::NAN] {
            assert_eq!(
                fields(SearchParams {
                    min_rating: Some(r),
                    ..Default::default()
                }),
                ["min_rating"]
            );
        }
        assert_eq!(
            fields(SearchParams {
                q: Some("x".repeat(MAX_QUERY_CHARS + 1)),
                sort: Some("cheapest".into()),
                limit: Some(0),
                cursor: Some("!!".into()),
                category: Some("Not A Slug".into()),
                ..Default::default()
            }),
            ["q", "category", "sort", "limit", "cursor"]
        );
    }

    #[test]
    fn a_cursor_belongs_to_its_sort() {
        let after = After {
            key: 1234.0,
            id: "p".into(),
        };
        let cursor = encode_cursor(Sort::PriceAsc, &after);
        let ok = SearchParams {
            sort: Some("price".into()),
            cursor: Some(cursor.clone()),
            ..Default::default()
        }
        .check()
        .expect("valid");
        assert_eq!(ok.after, Some(after));
        assert_eq!(
            fields(SearchParams {
                sort: Some("-price".into()),
                cursor: Some(cursor),
                ..Default::default()
            }),
            ["cursor"]
        );
    }
}
