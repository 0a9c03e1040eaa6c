//! Reviews' rules with no I/O: what may be written, the events of a review's
//! stream, and how a product's rating follows from them.

use emporium_contracts::events::RatingSummary;
use emporium_contracts::fields;
use emporium_http::FieldError;
use serde::{Deserialize, Serialize};

pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_TEXT_CHARS: usize = 4_000;

/// What happened to one review: the events of its stream, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReviewEvent {
    Added {
        product_id: String,
        user_id: String,
        author: String,
        rating: i64,
        title: String,
        text: String,
    },
    Changed {
        rating: i64,
        title: String,
        text: String,
    },
    Hidden {
        by: String,
    },
}

impl ReviewEvent {
    /// The `type` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Added { .. } => "added",
            Self::Changed { .. } => "changed",
            Self::Hidden { .. } => "hidden",
        }
    }
}

/// A review's content, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub rating: i64,
    pub title: String,
    pub text: String,
}

/// Checks a rating of 1 to 5, a title of 1 to 120 characters and a text of up to
/// 4,000 (stored as sent, trimmed; shown as text, never as HTML).
pub fn check(rating: i64, title: &str, text: &str) -> Result<Content, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !(1..=5).contains(&rating) {
        errors.push(FieldError::new("rating", "must be 1 to 5 stars"));
    }
    let title = fields::line(title, MAX_TITLE_CHARS)
        .map_err(|m| errors.push(FieldError::new("title", m)))
        .unwrap_or_default();
    let text = fields::text(text, MAX_TEXT_CHARS)
        .map_err(|m| errors.push(FieldError::new("text", m)))
        .unwrap_or_default();
    if errors.is_empty() {
        Ok(Content {
            rating,
            title: title.to_string(),
            text: text.to_string(),
        })
    } else {
        Err(errors)
    }
}

/// A product's rating as stored: counts, not averages, so every change is exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: i64,
    pub total: i64,
    pub histogram: [i64; 5],
    pub version: i64,
}

impl Tally {
    /// Counts a shown review of `rating` in (`+1`) or out (`-1`).
    pub fn count(&mut self, rating: i64, sign: i64) {
        if let Some(slot) = usize::try_from(rating - 1)
            .ok()
            .and_then(|i| self.histogram.get_mut(i))
        {
            *slot += sign;
            self.count += sign;
            self.total += sign * rating;
        }
    }

    pub fn summary(&self, product_id: &str) -> RatingSummary {
        let average = if self.count > 0 {
            // Rounded half up to two decimals, in integers.
            ((self.total * 200 + self.count) / (2 * self.count)) as f64 / 100.0
        } else {
            0.0
        };
        RatingSummary {
            product_id: product_id.to_string(),
            count: self.count,
            average,
            histogram: self.histogram,
            version: self.version,
        }
    }
}

/// The id of the review `user_id` writes of `product_id`: one per user and product,
/// so a second review of the same product is an append to an existing stream.
pub fn review_id(product_id: &str, user_id: &str) -> String {
    // FNV-1a, twice, into the 122 free bits of a version-4-shaped UUID: stable
    // across processes and releases.
    let hash = |seed: u64| {
        let mut h = seed;
        for b in product_id.bytes().chain([0]).chain(user_id.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    let bytes = ((u128::from(hash(0xcbf2_9ce4_8422_2325)) << 64)
        | u128::from(hash(0x8422_2325_cbf2_9ce4)))
    .to_be_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_limits() {
        assert!(check(5, "Great", "").is_ok());
        let fields = |r: Result<Content, Vec<FieldError>>| -> Vec<String> {
            r.err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(check(0, "x", "")), ["rating"]);
        assert_eq!(fields(check(6, "x", "")), ["rating"]);
        assert_eq!(fields(check(3, "  ", "")), ["title"]);
        assert_eq!(fields(check(3, &"t".repeat(121), "")), ["title"]);
        assert_eq!(fields(check(3, "ok", &"x".repeat(4_001))), ["text"]);
        assert!(check(3, &"t".repeat(120), &"x".repeat(4_000)).is_ok());
        // Markup is kept as text.
        let c = check(4, "<b>bold</b>", "<script>x</script>").expect("valid");
        assert_eq!(c.text, "<script>x</script>");
    }

    #[test]
    fn the_summary_counts_exactly_and_rounds_to_two_decimals() {
        let mut t = Tally::default();
        for r in [5, 4, 4] {
            t.count(r, 1);
        }
        let s = t.summary("p");
        assert_eq!(
            (s.count, s.average, s.histogram),
            (3, 4.33, [0, 0, 0, 2, 1])
        );
        t.count(5, 1);
        assert_eq!(t.summary("p").average, 4.5);
        t.count(1, 1);
        t.count(1, 1);
        // 20 / 6 = 3.333...
        assert_eq!(t.summary("p").average, 3.33);
        t.count(1, -1);
        t.count(1, -1);
        t.count(4, -1);
        // 14 / 3 = 4.666... rounds up.
        assert_eq!(t.summary("p").average, 4.67);
        assert_eq!(Tally::default().summary("p").average, 0.0);
    }

    #[test]
    fn one_review_id_per_user_and_product() {
        assert_eq!(review_id("p", "u"), review_id("p", "u"));
        assert_ne!(review_id("p", "u"), review_id("p", "v"));
        assert_ne!(review_id("pu", ""), review_id("p", "u"));
        assert!(uuid::Uuid::parse_str(&review_id("p", "u")).is_ok());
    }
}
