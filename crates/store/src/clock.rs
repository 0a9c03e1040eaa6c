//! Timestamps as services store them: integer milliseconds since the Unix epoch
//! (portable across engines), shown to clients as RFC 3339.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A stored timestamp as RFC 3339 (`2026-11-22T10:00:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Today's `(year, month)` in UTC: what card expiry dates are checked against.
pub fn year_month_utc() -> (u32, u32) {
    let now = OffsetDateTime::now_utc();
    (now.year().max(0) as u32, u32::from(u8::from(now.month())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_milliseconds() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_000_123), "1970-01-01T00:16:40.123Z");
        assert!(super::now_ms() > 1_700_000_000_000);
    }
}
