//! The services this binary can host, and how each is started.

use clap::ValueEnum;
use emporium_runtime::run_process;

/// Set by `emporium up` on the processes it starts.
pub const SUPERVISED_ENV: &str = "EMPORIUM_SUPERVISED";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Registry,
    Gateway,
    Users,
    Catalog,
}

impl Service {
    /// Every service but the registry, in start order; the gateway last.
    pub const BEHIND_REGISTRY: [Service; 3] = [Service::Users, Service::Catalog, Service::Gateway];

    pub fn name(self) -> &'static str {
        match self {
            Service::Registry => emporium_registry::NAME,
            Service::Gateway => emporium_gateway::NAME,
            Service::Users => emporium_users::NAME,
            Service::Catalog => emporium_catalog::NAME,
        }
    }

    /// Runs the service in this process until SIGTERM or Ctrl-C.
    pub async fn serve(self) -> anyhow::Result<()> {
        match self {
            Service::Registry => {
                run_process(
                    emporium_registry::NAME,
                    emporium_registry::DEFAULT_LISTEN,
                    emporium_registry::run,
                )
                .await
            }
            Service::Gateway => {
                run_process(
                    emporium_gateway::NAME,
                    emporium_gateway::DEFAULT_LISTEN,
                    emporium_gateway::run,
                )
                .await
            }
            Service::Users => {
                run_process(
                    emporium_users::NAME,
                    emporium_users::DEFAULT_LISTEN,
                    emporium_users::run,
                )
                .await
            }
            Service::Catalog => {
                run_process(
                    emporium_catalog::NAME,
                    emporium_catalog::DEFAULT_LISTEN,
                    emporium_catalog::run,
                )
                .await
            }
        }
    }
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
