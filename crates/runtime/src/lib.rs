//! Hosting services: a service is a value ([`Service`]) that the runtime hosts,
//! alone in a process or beside others.
//!
//! A service crate declares its name, settings table, migrations, and a `build`
//! that makes its routes and declares its event handlers and background tasks on a
//! [`Build`]. The runtime ([`hosting`]) does the wiring every service used to copy:
//! settings, database and migrations, events, the HTTP chassis, registration,
//! background tasks, and an orderly stop.
//!
//! - [`run`] hosts one service until a shutdown future resolves (tests);
//! - [`run_process`] is what `emporium serve a[,b,...]` calls: load settings, start
//!   logs and metrics, bind each service's listener, report the bound addresses to a
//!   supervisor, and run until SIGTERM/SIGINT. With several services in the process
//!   their calls to each other go through the in-process transport, and each one's
//!   log lines, metrics (a `service` label) and spans carry its own name. The
//!   process gives freed heap memory back every few seconds ([`heap`]).

mod heap;
pub mod hosting;
pub mod live;
mod service;

use std::fmt::Write as _;

use anyhow::Context;
use emporium_config::Common;

pub use emporium_client::{Host, backoff};
pub use hosting::{AnyService, Built, Process, VERSION, advertised, run, run_in, serve};
pub use service::{Build, LOOPBACK_ANY_PORT, Service};

/// Environment variable naming a file where the bound addresses are written
/// (`<service> <address>` per line), for a supervisor that started the process on
/// port 0.
pub const ADDR_FILE_ENV: &str = "EMPORIUM_ADDR_FILE";

/// The service name logs carry outside any one service's work, in a process
/// hosting several.
pub const PROCESS_NAME: &str = "monolith";

/// Runs `services` in this process until SIGTERM or Ctrl-C: what
/// `emporium serve <service>[,<service>...]` does.
pub async fn run_process(services: &[&dyn AnyService]) -> anyhow::Result<()> {
    anyhow::ensure!(!services.is_empty(), "no service to run");
    let source = emporium_config::figment();
    let mut common: Common = source
        .extract()
        .map_err(Box::new)
        .context("loading the settings")?;
    let names: Vec<&str> = services.iter().map(|s| s.name()).collect();
    let process_name = match names.as_slice() {
        [one] => *one,
        _ => PROCESS_NAME,
    };
    // Generated once when not configured, and kept by every layer below: a
    // process hosting several names each instance `<service>-<this id>`.
    let instance = emporium_client::instance_id(process_name, &common);
    common.instance_id = Some(instance.clone());
    emporium_telemetry::init(
        emporium_telemetry::Identity {
            service: process_name.to_string(),
            instance: instance.clone(),
        },
        &common.log,
    );
    let process = Process::new(&common, &names);
    heap::spawn_trimming(std::time::Duration::from_millis(common.heap_trim_ms));
    let source = source.merge(("instance_id", instance));
    let result = async {
        let built =
            futures::future::try_join_all(services.iter().map(|s| s.start_in(&process, &source)))
                .await?;
        if let Ok(path) = std::env::var(ADDR_FILE_ENV) {
            let mut text = String::new();
            for b in &built {
                let _ = writeln!(text, "{} {}", b.name(), b.local_addr()?);
                if let Some(admin) = b.admin_addr() {
                    let _ = writeln!(text, "{}/admin {admin}", b.name());
                }
            }
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .with_context(|| format!("writing {path}"))?;
        }
        serve(built, emporium_http::shutdown_signal()).await
    }
    .await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "service failed");
    }
    // Spans still queued go out before the process ends (blocking, bounded by the
    // exporter's timeout).
    tokio::task::block_in_place(emporium_telemetry::trace::shutdown);
    result
}
