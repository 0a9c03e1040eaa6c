//! Calling other services by name.
//!
//! - [`RegistryClient`] speaks the registry's internal API;
//! - [`Discovery`] resolves a service name to its healthy instances through the
//!   registry and keeps them in a local cache that a background long-poll keeps fresh,
//!   so traffic keeps flowing while the registry is down; it balances by power of two
//!   choices on calls in flight and keeps each instance's outlier record;
//! - [`resilience`] holds the policies every call goes through: bulkhead, retries
//!   with hedging inside a retry budget, circuit breaker, outlier ejection;
//!   [`faults`] holds the fault rules injected into this process's calls on purpose;
//! - [`Transport`] is how a request reaches a service: [`HttpTransport`] over the
//!   network, [`LocalTransport`] to fixed in-process routers (tests), and
//!   [`InProcess`] to the services hosted in this process, over HTTP to the rest,
//!   and [`Direct`] to one instance at a known address;
//! - [`identity`] gets the instance its certificate and renews it; [`Clients`]
//!   are how one principal's calls leave the process (mTLS, a pool per service);
//! - [`Host`] is who an instance is (service, instance id, settings, readiness) and
//!   the transport its calls take;
//! - [`ServiceClient`] makes typed JSON calls over a transport with a deadline on every
//!   call and the request id, time budget and trace context of the current request;
//! - [`api`] holds the typed clients of the internal APIs (inventory, payments,
//!   cart), one method per call, over the paths the contracts define;
//! - [`agent`] registers the running service, heartbeats, re-registers when the
//!   registry forgot it, and deregisters on shutdown.

pub mod agent;
pub mod api;
mod backoff;
mod discovery;
mod error;
pub mod faults;
mod host;
mod http_client;
pub mod identity;
mod registry;
pub mod resilience;
mod service_client;
mod transport;

pub use backoff::backoff;
pub use discovery::{Discovery, Route};
pub use error::ClientError;
pub use faults::Faults;
pub use host::{Host, instance_id};
pub use http_client::{Clients, HttpClient, Version, http_client, own_pools, tls_client};
pub use registry::RegistryClient;
pub use resilience::Policies;
pub use service_client::ServiceClient;
pub use transport::{Deadline, Direct, HttpTransport, InProcess, LocalTransport, Transport};

/// Percent-encodes one path segment (an id or a SKU from outside): anything but
/// RFC 3986's unreserved characters, so it cannot change the path it is put in.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(super::path_segment("BEA-00001"), "BEA-00001");
        assert_eq!(super::path_segment("a/../b?c#d"), "a%2F..%2Fb%3Fc%23d");
        assert_eq!(super::path_segment("é"), "%C3%A9");
    }
}
