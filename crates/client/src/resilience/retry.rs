//! When a call may be repeated, and how long to wait first.

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode, header};

/// Whether a request may be sent twice: a read, or a command its caller made
/// safe to repeat (`keyed`: the calling service put an `idempotency-key` on its
/// client, [`crate::ServiceClient::with_header`], whose callee dedupes by it).
/// A key that merely came along in a request from outside (the gateway passing a
/// shopper's on) counts only on the gateway's `keyed_routes`, whose services
/// dedupe by it; elsewhere the callee may not. (PUT
/// and DELETE are idempotent by HTTP's definition, but a handler may not be.)
pub fn idempotent(method: &Method, keyed: bool) -> bool {
    matches!(*method, Method::GET | Method::HEAD) || keyed
}

/// Marks a request whose caller keyed it as safe to repeat (see [`idempotent`]).
#[derive(Debug, Clone, Copy)]
pub struct Keyed;

/// Statuses that say this instance could not serve the call now, where another
/// instance, or the same one a moment later, may.
pub fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The wait before retry number `retry` (1-based): exponential, capped, with full
/// jitter (a uniform pick below the exponential value), so callers that failed
/// together do not come back together.
pub fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
    let ceiling = crate::backoff(base, max, retry);
    ceiling.mul_f64(fastrand::f64())
}

/// A `Retry-After` of delay-seconds (an HTTP date is not worth a clock
/// comparison between services: ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_reads_and_keyed_commands_are_idempotent() {
        assert!(idempotent(&Method::GET, false));
        assert!(!idempotent(&Method::POST, false));
        assert!(!idempotent(&Method::PUT, false));
        assert!(idempotent(&Method::POST, true));
    }

    #[test]
    fn backoff_is_jittered_below_the_exponential_ceiling() {
        let base = Duration::from_millis(25);
        let max = Duration::from_millis(250);
        let waits: Vec<Duration> = (0..200).map(|_| backoff(base, max, 3)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(100)));
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "jittered, not fixed");
        assert!((0..50).all(|_| backoff(base, max, 30) <= max));
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
