//! Contracts shared by Emporium services.
//!
//! Every type that crosses a service boundary is defined here exactly once, so the
//! producer and the consumer cannot drift apart (eShop copies its event classes per
//! service; Online Boutique copies `money.go`). Modules:
//!
//! - [`headers`]: names of the headers the gateway and the service clients agree on;
//! - [`registry`]: the registry's internal API (registration, heartbeat, resolve, config);
//! - [`money`]: amounts in integer minor units with a currency;
//! - [`auth`]: the claims inside the access tokens users issues and the gateway verifies;
//! - [`events`]: the data of every domain event, with its CloudEvents type and source;
//! - [`event_schemas`]: a JSON Schema per event type, checked in, and the rule that
//!   keeps `v1` consumers working;
//! - [`card`]: payment cards and their validation (Luhn, expiry), never logged in full;
//! - [`checkout`]: the internal calls of the checkout saga (cart, inventory, payments);
//! - [`sku`]: the stock-keeping unit format;
//! - [`fields`]: text fields several services check alike, with their JSON Schemas;
//! - [`chaos`]: fault rules the operator injects into calls between services;
//! - [`audit`]: the facts each checkout service reports for `emporium verify`;
//! - [`topology`]: who calls whom across the network (checked against the
//!   Kubernetes NetworkPolicies).

pub mod audit;
pub mod auth;
pub mod card;
pub mod chaos;
pub mod checkout;
pub mod event_schemas;
pub mod events;
pub mod fields;
pub mod headers;
pub mod money;
pub mod registry;
pub mod sku;
pub mod topology;
