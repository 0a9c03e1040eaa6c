//! Calling other services by name.
//!
//! - [`RegistryClient`] speaks the registry's internal API;
//! - [`Discovery`] resolves a service name to its healthy instances through the
//!   registry and keeps them in a local cache that a background long-poll keeps fresh,
//!   so traffic keeps flowing while the registry is down; it balances round-robin and
//!   sets aside for a few seconds an instance that refused a connection;
//! - [`Transport`] is how a request reaches a service: [`HttpTransport`] over the
//!   network, [`LocalTransport`] to in-process routers (tests, a later monolith mode);
//! - [`ServiceClient`] makes typed JSON calls over a transport with a deadline on every
//!   call and the request id, time budget and trace context of the current request;
//! - [`agent`] registers the running service, heartbeats, re-registers when the
//!   registry forgot it, and deregisters on shutdown.

pub mod agent;
mod discovery;
mod error;
mod http_client;
mod registry;
mod service_client;
mod transport;

pub use discovery::Discovery;
pub use error::ClientError;
pub use http_client::{HttpClient, http_client};
pub use registry::RegistryClient;
pub use service_client::ServiceClient;
pub use transport::{HttpTransport, LocalTransport, Transport};
