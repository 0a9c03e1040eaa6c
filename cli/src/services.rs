//! The services this binary can host, and how each is started.

use clap::ValueEnum;
use emporium_runtime::AnyService;

/// Set by `emporium up` on the processes it starts.
pub const SUPERVISED_ENV: &str = "EMPORIUM_SUPERVISED";

/// Declares the services: the enum, their names, and how each one is served.
macro_rules! services {
    ($($variant:ident => $krate:ident :: $service:ident),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
        pub enum Service {
            $($variant),+
        }

        impl Service {
            pub fn name(self) -> &'static str {
                match self {
                    $(Service::$variant => $krate::NAME),+
                }
            }

            /// The service, as a value the runtime hosts.
            pub fn hosted(self) -> &'static dyn AnyService {
                match self {
                    $(Service::$variant => &$krate::$service),+
                }
            }
        }
    };
}

services! {
    Registry => emporium_registry::RegistryService,
    Gateway => emporium_gateway::Gateway,
    Users => emporium_users::Users,
    Catalog => emporium_catalog::Catalog,
    Inventory => emporium_inventory::Inventory,
    Payments => emporium_payments::Payments,
    Cart => emporium_cart::Cart,
    Orders => emporium_orders::Orders,
    Notifications => emporium_notifications::Notifications,
    Search => emporium_search::Search,
    Reviews => emporium_reviews::Reviews,
    Storefront => emporium_storefront::Storefront,
}

/// Runs `services` in this process until SIGTERM or Ctrl-C.
pub async fn serve(services: &[Service]) -> anyhow::Result<()> {
    let mut hosted: Vec<&'static dyn AnyService> = Vec::new();
    for service in services {
        anyhow::ensure!(
            !hosted.iter().any(|h| h.name() == service.name()),
            "{} is named twice",
            service.name()
        );
        hosted.push(service.hosted());
    }
    emporium_runtime::run_process(&hosted).await
}

impl Service {
    /// The services behind the gateway, started together after the registry and
    /// stopped together before it.
    pub const BACKENDS: [Service; 10] = [
        Service::Users,
        Service::Catalog,
        Service::Inventory,
        Service::Payments,
        Service::Cart,
        Service::Orders,
        Service::Notifications,
        Service::Reviews,
        Service::Search,
        Service::Storefront,
    ];

    /// Every service but the registry, in start order; the gateway last.
    pub const BEHIND_REGISTRY: [Service; 11] = [
        Service::Users,
        Service::Catalog,
        Service::Inventory,
        Service::Payments,
        Service::Cart,
        Service::Orders,
        Service::Notifications,
        Service::Reviews,
        Service::Search,
        Service::Storefront,
        Service::Gateway,
    ];
}

/// Under `emporium up`, ask the kernel to send SIGTERM when the supervisor dies, so
/// no service outlives it (even when the supervisor is SIGKILLed).
pub fn die_with_parent() {
    if std::env::var_os(SUPERVISED_ENV).is_some() {
        #[cfg(target_os = "linux")]
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    emporium_http::shutdown_signal().await;
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum as _;

    use super::Service;

    /// The topology the NetworkPolicies are checked against names exactly the
    /// services this binary hosts.
    #[test]
    fn the_topology_names_every_service_this_binary_hosts() {
        let mut hosted: Vec<&str> = Service::value_variants().iter().map(|s| s.name()).collect();
        let mut declared = emporium_contracts::topology::SERVICES.to_vec();
        hosted.sort_unstable();
        declared.sort_unstable();
        assert_eq!(hosted, declared);
    }
}
