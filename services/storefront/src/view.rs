//! How values read from the services are shown: money, dates, stars, stock and
//! order outcomes in plain words.

use emporium_contracts::money::Money;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Units at or under which a product page says "only N left".
pub const LOW_STOCK: i64 = 5;

/// `$12.34`, `€0.99`, `¥1200`, or `12.34 CHF` for currencies without a sign here.
pub fn money(m: &Money) -> String {
    let (sign, decimals) = match m.currency.as_str() {
        "USD" => (Some("$"), 2),
        "EUR" => (Some("€"), 2),
        "GBP" => (Some("£"), 2),
        "JPY" => (Some("¥"), 0),
        _ => (None, 2),
    };
    let minus = if m.amount < 0 { "-" } else { "" };
    let abs = m.amount.unsigned_abs();
    let number = if decimals == 0 {
        abs.to_string()
    } else {
        format!("{}.{:02}", abs / 100, abs % 100)
    };
    match sign {
        Some(s) => format!("{minus}{s}{number}"),
        None => format!("{minus}{number} {}", m.currency),
    }
}

/// `3 Dec 2026, 07:37 UTC` from RFC 3339; the text as given if it is not.
pub fn date(rfc3339: &str) -> String {
    let Ok(t) = OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return rfc3339.to_string();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let month = &format!("{:?}", t.month())[..3];
    format!(
        "{} {} {}, {:02}:{:02} UTC",
        t.day(),
        month,
        t.year(),
        t.hour(),
        t.minute()
    )
}

/// Five stars, filled to the nearest whole: `★★★★☆`.
pub fn stars(average: f64) -> String {
    let full = (average.round().clamp(0.0, 5.0)) as usize;
    format!("{}{}", "★".repeat(full), "☆".repeat(5 - full))
}

/// `4.3` (one decimal) for an average of stars.
pub fn average(average: f64) -> String {
    format!("{average:.1}")
}

/// What a product page says about stock, and its CSS class.
pub fn stock(available: Option<i64>) -> (&'static str, String) {
    match available {
        None => ("unknown", "Stock unknown right now".into()),
        Some(n) if n <= 0 => ("sold-out", "Sold out".into()),
        Some(n) if n <= LOW_STOCK => ("low", format!("Only {n} left")),
        Some(_) => ("in-stock", "In stock".into()),
    }
}

/// What search says about stock, in words.
pub fn stock_level(level: &str) -> &'static str {
    match level {
        "in_stock" => "In stock",
        "low" => "Low stock",
        "sold_out" => "Sold out",
        _ => "",
    }
}

/// An order's status for a person.
pub fn status(status: &str) -> &'static str {
    match status {
        "PENDING" => "Processing",
        "CONFIRMED" => "Confirmed",
        "CANCELLED" => "Cancelled",
        _ => "Unknown",
    }
}

/// Why an order was cancelled, in plain words.
pub fn reason(code: Option<&str>) -> String {
    match code {
        None => String::new(),
        Some("payment_declined") => {
            "Your card was declined. Nothing was charged, and your cart is as you left it.".into()
        }
        Some("payment_invalid") => {
            "The card details were not accepted. Nothing was charged.".into()
        }
        Some("out_of_stock") => "Something in your cart sold out before we could reserve it. \
             Nothing was charged; your cart is as you left it."
            .into(),
        Some("deadline_exceeded") => "The payment took too long to confirm, so we stopped. \
             Nothing was charged."
            .into(),
        Some("interrupted") => "The order was interrupted before payment. Nothing was charged; \
             please try again."
            .into(),
        Some(other) => format!("The order could not be completed ({other}). Nothing was charged."),
    }
}

/// A timeline event's name for a person.
pub fn event(event: &str) -> String {
    match event {
        "placed" => "Order placed".into(),
        "stock_reserved" => "Items reserved".into(),
        "payment_authorized" => "Payment authorized".into(),
        "confirmed" => "Confirmed".into(),
        "cancelled" => "Cancelled".into(),
        other => {
            let words = other.replace('_', " ");
            let mut chars = words.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

/// Search's snippet (HTML-escaped text with matches in `<mark>`), made safe again
/// here: the text between the marks is unescaped and escaped anew, so no tag but
/// `<mark>` can survive whatever search sends.
pub fn snippet_html(snippet: &str) -> String {
    let mut out = String::with_capacity(snippet.len());
    for (i, part) in snippet.split("<mark>").enumerate() {
        let (marked, rest) = match (i, part.split_once("</mark>")) {
            (0, _) | (_, None) => ("", part),
            (_, Some((m, r))) => (m, r),
        };
        if !marked.is_empty() {
            out.push_str("<mark>");
            out.push_str(&escape(&unescape(marked)));
            out.push_str("</mark>");
        }
        out.push_str(&escape(&unescape(rest)));
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// HTML-escapes text.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_in_the_shops_currencies() {
        assert_eq!(money(&Money::new(1999, "USD")), "$19.99");
        assert_eq!(money(&Money::new(5, "EUR")), "€0.05");
        assert_eq!(money(&Money::new(-250, "GBP")), "-£2.50");
        assert_eq!(money(&Money::new(1200, "JPY")), "¥1200");
        assert_eq!(money(&Money::new(100_000, "CHF")), "1000.00 CHF");
    }

    #[test]
    fn dates_and_stars() {
        assert_eq!(date("2026-12-03T07:37:10Z"), "3 Dec 2026, 07:37 UTC");
        assert_eq!(date("yesterday"), "yesterday");
        assert_eq!(stars(4.4), "★★★★☆");
        assert_eq!(stars(0.0), "☆☆☆☆☆");
        assert_eq!(stars(9.0), "★★★★★");
    }

    #[test]
    fn stock_words() {
        assert_eq!(stock(Some(0)).1, "Sold out");
        assert_eq!(stock(Some(3)).1, "Only 3 left");
        assert_eq!(stock(Some(50)).1, "In stock");
        assert_eq!(stock(None).0, "unknown");
    }

    #[test]
    fn snippets_keep_only_marks() {
        assert_eq!(
            snippet_html("a <mark>soap</mark> &amp; &lt;b&gt;"),
            "a <mark>soap</mark> &amp; &lt;b&gt;"
        );
        // A tag that search failed to escape is escaped here.
        assert_eq!(
            snippet_html("<script>x</script> <mark>y</mark>"),
            "&lt;script&gt;x&lt;/script&gt; <mark>y</mark>"
        );
        assert_eq!(snippet_html("</mark>x"), "&lt;/mark&gt;x");
    }
}
