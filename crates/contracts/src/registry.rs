//! The registry's internal API. Only services and operators call it; the gateway
//! never routes it.

use serde::{Deserialize, Serialize};

/// Base path of the registry's API.
pub const BASE: &str = "/internal/registry";

/// The registration metadata key of an instance's admin port (`host:port`), where
/// it serves `/metrics` when not on its own port (the gateway's).
pub const METRICS_ADDRESS: &str = "metrics_address";

/// What a service instance tells the registry about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub service: String,
    pub instance_id: String,
    /// `host:port` where the instance serves HTTP.
    pub address: String,
    pub version: String,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// How long the instance stays listed without a heartbeat.
    pub ttl_ms: u64,
    /// Whether it can take traffic as it registers. `None` (a registration made by
    /// hand): listed until a heartbeat says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// A heartbeat: the instance is alive and says whether it can take traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub ready: bool,
}

/// An instance as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub service: String,
    pub instance_id: String,
    pub address: String,
    pub version: String,
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Ready to take traffic (the last heartbeat said so and it is within its TTL).
    pub healthy: bool,
    /// Milliseconds since the epoch when the instance registered.
    pub registered_at_ms: u64,
    /// Milliseconds since the epoch of the last heartbeat.
    pub last_heartbeat_ms: u64,
}

/// The answer to a resolve or watch: the instances and the registry's change index.
///
/// `epoch` changes when the registry restarts; together with `index` it lets a
/// watcher tell "nothing changed" from "the registry forgot everything".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub epoch: String,
    pub index: u64,
    pub instances: Vec<Instance>,
}

/// One config value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
    /// The change index at which the value was last written.
    pub index: u64,
}

impl ConfigEntry {
    pub fn new(key: impl Into<String>, value: impl Into<String>, index: u64) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            index,
        }
    }
}

/// Body of a config write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigValue {
    pub value: String,
}

/// The answer to a config list or watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    pub epoch: String,
    pub index: u64,
    pub entries: Vec<ConfigEntry>,
}

/// Where an instance asks for its certificate (over TLS, without one yet).
pub const CERTIFICATES: &str = "/internal/registry/certificates";

/// An instance asking for a certificate for its service.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    pub service: String,
    /// The instance's public key: DER SubjectPublicKeyInfo, base64.
    pub public_key: String,
    /// The service's join token (a secret: never logged).
    pub token: String,
}

impl std::fmt::Debug for CertificateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateRequest")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// The certificate issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateGrant {
    /// PEM, the instance's certificate.
    pub certificate: String,
}

/// Where instances of one service share what their rate limits admitted (the
/// gateways' quotas, which hold across instances).
pub const USAGE: &str = "/internal/registry/usage";

/// Requests admitted per limit (`ip`, `user`) and key (an address, a user id).
pub type Usage = std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>>;

/// An instance's report of what it admitted since its last report, and where it
/// stands in what the others reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// The service whose instances share the usage.
    pub service: String,
    /// The reporting instance (its own reports are not sent back to it).
    pub instance_id: String,
    /// The last `(epoch, index)` this instance was answered; none at first.
    #[serde(default)]
    pub after: Option<(String, u64)>,
    #[serde(default)]
    pub usage: Usage,
}

impl UsageReport {
    /// How many `(limit, key)` counts the report carries.
    pub fn entries(&self) -> usize {
        self.usage.values().map(|keys| keys.len()).sum()
    }
}

/// What the other instances of the service reported since `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageExchange {
    pub epoch: String,
    pub index: u64,
    pub reports: Vec<UsageSince>,
}

/// One report of another instance, and how long ago the registry received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSince {
    pub age_ms: u64,
    pub usage: Usage,
}
