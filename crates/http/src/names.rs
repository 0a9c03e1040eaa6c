//! The header names of `emporium_contracts::headers` as [`HeaderName`] constants,
//! for code on every request's path: a name given as `&str` is parsed and checked
//! again at each use (`HeaderMap::get`, `insert`, `remove`), a constant once, at
//! compile time.

use emporium_contracts::headers;
use http::HeaderName;

pub const REQUEST_ID: HeaderName = HeaderName::from_static(headers::REQUEST_ID);
pub const TIMEOUT_MS: HeaderName = HeaderName::from_static(headers::TIMEOUT_MS);
pub const TRACEPARENT: HeaderName = HeaderName::from_static(headers::TRACEPARENT);
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const CLIENT_IP: HeaderName = HeaderName::from_static(headers::CLIENT_IP);
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static(headers::IDEMPOTENCY_KEY);
pub const SHED: HeaderName = HeaderName::from_static(headers::SHED);
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// [`headers::IDENTITY_HEADERS`]: what only the gateway and the storefront may set.
pub const IDENTITY: [HeaderName; 4] = [
    HeaderName::from_static(headers::IDENTITY_HEADERS[0]),
    HeaderName::from_static(headers::IDENTITY_HEADERS[1]),
    HeaderName::from_static(headers::IDENTITY_HEADERS[2]),
    HeaderName::from_static(headers::IDENTITY_HEADERS[3]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_name_the_contracts_headers() {
        assert_eq!(REQUEST_ID.as_str(), headers::REQUEST_ID);
        assert_eq!(TIMEOUT_MS.as_str(), headers::TIMEOUT_MS);
        assert_eq!(TRACEPARENT.as_str(), headers::TRACEPARENT);
        assert_eq!(CLIENT_IP.as_str(), headers::CLIENT_IP);
        assert_eq!(IDEMPOTENCY_KEY.as_str(), headers::IDEMPOTENCY_KEY);
        assert_eq!(SHED.as_str(), headers::SHED);
        let identity = IDENTITY;
        let identity: Vec<&str> = identity.iter().map(HeaderName::as_str).collect();
        assert_eq!(identity, headers::IDENTITY_HEADERS);
    }
}
