//! Who an instance is and how it reaches the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use emporium_config::Common;
use emporium_http::Readiness;

use crate::{
    Clients, Discovery, Faults, HttpTransport, Policies, RegistryClient, ServiceClient, Transport,
};

/// What a service gets from the process hosting it: its name and instance id, the
/// common settings, its readiness, and the transport its calls take.
#[derive(Clone)]
pub struct Host {
    pub service: &'static str,
    pub instance_id: String,
    pub common: Common,
    pub readiness: Readiness,
    pub discovery: Arc<Discovery>,
    pub transport: Arc<dyn Transport>,
    /// How this service's calls leave the process (its certificate, when mTLS).
    pub clients: Clients,
    /// The resilience policies of its calls, with each target's state.
    pub policies: Arc<Policies>,
}

impl Host {
    /// A host for `service` calling as `clients`; discovery goes through the
    /// registry in `common`, if any.
    pub fn new(service: &'static str, common: &Common, clients: Clients) -> Self {
        let registry = common
            .registry_url
            .as_deref()
            .map(|url| RegistryClient::new(url, clients.clone()));
        let discovery = Arc::new(Discovery::new(registry));
        let policies = Arc::new(Policies::new(
            service,
            common.client.clone(),
            Arc::new(Faults::default()),
        ));
        let transport: Arc<dyn Transport> = Arc::new(HttpTransport::new(
            discovery.clone(),
            clients.clone(),
            policies.clone(),
        ));
        Self {
            service,
            instance_id: instance_id(service, common),
            common: common.clone(),
            readiness: Readiness::default(),
            discovery,
            transport,
            clients,
            policies,
        }
    }

    /// Replaces the transport (tests, in-process calls).
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// Calls through `policies` (the process's, with its fault rules) over the
    /// network from now on.
    pub fn with_policies(mut self, policies: Arc<Policies>) -> Self {
        self.policies = policies.clone();
        self.transport = Arc::new(HttpTransport::new(
            self.discovery.clone(),
            self.clients.clone(),
            policies,
        ));
        self
    }

    /// Replaces discovery (several services in one process share one cache).
    pub fn with_discovery(mut self, discovery: Arc<Discovery>) -> Self {
        self.discovery = discovery;
        self
    }

    /// This service's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.common.service_dir(self.service)
    }

    /// A client for calling `service` with a per-call timeout.
    ///
    /// In debug builds, a call the shop's topology does not declare
    /// (`emporium_contracts::topology::CALLS`) panics: the NetworkPolicies are
    /// derived from that table, so an undeclared call would be refused in a cluster.
    pub fn client(&self, service: &str, timeout: Duration) -> ServiceClient {
        debug_assert!(
            emporium_contracts::topology::may_call(self.service, service),
            "{} calls {service}, which emporium_contracts::topology::CALLS does not declare",
            self.service
        );
        ServiceClient::new(service, self.transport.clone(), timeout)
    }
}

/// The configured instance id, or `<service>-<8 random hex digits>`.
pub fn instance_id(service: &str, common: &Common) -> String {
    common.instance_id.clone().unwrap_or_else(|| {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("{service}-{}", &id[..8])
    })
}
