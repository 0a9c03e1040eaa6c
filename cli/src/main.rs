//! `emporium`: run the whole shop, one service, or ask the registry what is running.
//!
//! - `emporium up` (the default, what `cargo run --release` runs) supervises every
//!   service as its own OS process: see [`up`];
//! - `emporium serve <service>[,<service>...]` runs one service, as a container
//!   would, or several in one process;
//! - `emporium status` prints what the registry knows;
//! - `emporium events dead|replay|lag` inspects event delivery: [`events`];
//! - `emporium logs` and `emporium trace ORDER_ID` read the logs `emporium up` keeps:
//!   [`logview`];
//! - `emporium load` drives the shop with shoppers' journeys: [`load`];
//! - `emporium search reindex` rebuilds the search index without downtime,
//!   `emporium reviews rebuild` reviews' projections, `emporium admin grant EMAIL`
//!   makes an admin and `emporium keys rotate` rotates the token signing key:
//!   [`operations`];
//! - `emporium config get|set|watch KEY` changes settings every process applies at
//!   once, and `emporium chaos delay|abort|reset` injects faults into calls between
//!   services for a while: [`chaos`];
//! - `emporium verify` checks the checkout's invariants across services: [`verify`],
//!   and `emporium soak` checks out under chaos, then verifies: [`soak`].

mod chaos;
mod events;
mod load;
mod logs;
mod logview;
mod monitoring;
mod operations;
mod operator;
mod running;
mod secrets;
mod services;
mod soak;
mod status;
mod up;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "emporium",
    version,
    about = "An online shop built as microservices"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the registry, every service and the gateway, and supervise them.
    Up(up::UpArgs),
    /// Run one service in this process, or several side by side
    /// (`emporium serve users,catalog,cart`: their calls to each other stay in the
    /// process).
    Serve {
        #[arg(value_enum, value_delimiter = ',', required = true)]
        services: Vec<services::Service>,
    },
    /// Show the instances the registry knows.
    Status {
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL")]
        registry: Option<String>,
        /// The data folder of the `emporium up` to ask.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Inspect event delivery: dead letters, replays, consumer lag.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL", global = true)]
        registry: Option<String>,
        /// The data folder of the `emporium up` to ask.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Operate the search index: `emporium search reindex`.
    Search {
        #[command(subcommand)]
        command: operations::SearchCommand,
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL", global = true)]
        registry: Option<String>,
        /// The data folder of the `emporium up` to ask.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Operate reviews: `emporium reviews rebuild` (projections from the event store).
    Reviews {
        #[command(subcommand)]
        command: operations::ReviewsCommand,
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL", global = true)]
        registry: Option<String>,
        /// The data folder of the `emporium up` to ask.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Grant or revoke the admin role: `emporium admin grant EMAIL`.
    Admin {
        #[command(subcommand)]
        command: operations::AdminCommand,
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL", global = true)]
        registry: Option<String>,
        /// The data folder of the `emporium up` to ask.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Settings every process applies at once: `emporium config set log.level debug`.
    Config {
        #[command(subcommand)]
        command: chaos::ConfigCommand,
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL", global = true)]
        registry: Option<String>,
        /// The data folder of the `emporium up` to ask.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Checkouts while processes are killed (and faults injected), then `verify`:
    /// `emporium soak --for 10m --kill-every 10s --faults`.
    Soak(soak::SoakArgs),
    /// Check the checkout's invariants across services (running or stopped shop);
    /// exits non-zero on a violation.
    Verify {
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL")]
        registry: Option<String>,
        /// The data folder of the shop to check.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Inject faults into calls between services, for a while:
    /// `emporium chaos delay --from orders --to payments --ms 800 --percent 50 --for 60s`.
    Chaos {
        #[command(subcommand)]
        command: chaos::ChaosCommand,
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL", global = true)]
        registry: Option<String>,
        /// The data folder of the `emporium up` to ask.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Rotate users' token signing key: `emporium keys rotate`.
    Keys {
        #[command(subcommand)]
        command: operations::KeysCommand,
        /// The registry's URL; by default the one a running `emporium up` recorded.
        #[arg(long, env = "EMPORIUM__REGISTRY_URL", global = true)]
        registry: Option<String>,
        /// The data folder of the `emporium up` to ask.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Print the merged logs of `emporium up`, filtered; `--follow` keeps going.
    Logs {
        /// Only these services or instance ids (`orders`, `orders-2`).
        services: Vec<String>,
        /// Keep printing new lines until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        /// Only the lines of this trace (the `trace_id` of any line).
        #[arg(long)]
        trace: Option<String>,
        /// Only lines at this level or above.
        #[arg(long, value_enum)]
        level: Option<logview::Level>,
        /// The data folder of the `emporium up` whose logs to read.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Drive the shop with shoppers' journeys and report rates and latencies.
    Load(load::LoadArgs),
    /// Print the timeline of one order across services, from the logs.
    Trace {
        order_id: String,
        /// The data folder of the `emporium up` whose logs to read.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The shop's identity material for deployments elsewhere:
    /// `emporium identity kubernetes | kubectl apply -f -`.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
        /// The data folder holding `identity/` (made here when missing).
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Print a service's join token (`identity.tokens.<service>` for a process
    /// started elsewhere), from the bootstrap secret in the data folder.
    Token {
        /// The service the token gets certificates for.
        service: String,
        /// The data folder holding `identity/` (made by `emporium up`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Kubernetes Secrets for deploy/k8s: the CA for the registry, the trust anchor
    /// for every pod, a join token per service.
    Kubernetes,
    /// The same as files in a folder (`ca.pem`, `ca.key`, `bootstrap.secret`,
    /// `tokens/<service>`), made once and kept: compose's `identity` container.
    Init {
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One worker thread per available core (cgroup limits included), the same in a
    // container as under `emporium up`.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command.unwrap_or(Command::Up(up::UpArgs::default())) {
        Command::Up(args) => runtime.block_on(up::run(args)),
        Command::Serve { services } => {
            services::die_with_parent();
            runtime.block_on(services::serve(&services))
        }
        Command::Status { registry, data_dir } => runtime.block_on(status::run(registry, data_dir)),
        Command::Events {
            command,
            registry,
            data_dir,
        } => {
            let registry = operator::registry(registry, data_dir)?;
            runtime.block_on(events::run(command, &registry))
        }
        Command::Search {
            command,
            registry,
            data_dir,
        } => {
            let registry = operator::registry(registry, data_dir)?;
            runtime.block_on(operations::search(command, &registry))
        }
        Command::Reviews {
            command,
            registry,
            data_dir,
        } => {
            let registry = operator::registry(registry, data_dir)?;
            runtime.block_on(operations::reviews(command, &registry))
        }
        Command::Admin {
            command,
            registry,
            data_dir,
        } => {
            let registry = operator::registry(registry, data_dir)?;
            runtime.block_on(operations::admin(command, &registry))
        }
        Command::Config {
            command,
            registry,
            data_dir,
        } => {
            let registry = operator::registry(registry, data_dir)?;
            runtime.block_on(chaos::config(command, &registry))
        }
        Command::Soak(args) => {
            if runtime.block_on(soak::run(args))? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Verify { registry, data_dir } => {
            if runtime.block_on(verify::run(registry, data_dir))? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Chaos {
            command,
            registry,
            data_dir,
        } => {
            let registry = operator::registry(registry, data_dir)?;
            runtime.block_on(chaos::chaos(command, &registry))
        }
        Command::Keys {
            command,
            registry,
            data_dir,
        } => {
            let registry = operator::registry(registry, data_dir)?;
            runtime.block_on(operations::keys(command, &registry))
        }
        Command::Logs {
            services,
            follow,
            trace,
            level,
            data_dir,
        } => {
            let filter = logview::Filter {
                services,
                trace,
                min_level: level,
            };
            runtime.block_on(logview::logs(filter, follow, data_dir))
        }
        Command::Trace { order_id, data_dir } => logview::trace(&order_id, data_dir),
        Command::Identity { command, data_dir } => match command {
            IdentityCommand::Kubernetes => {
                print!("{}", secrets::kubernetes(data_dir)?);
                Ok(())
            }
            IdentityCommand::Init { out } => secrets::init(&out),
        },
        Command::Token { service, data_dir } => {
            println!("{}", operator::join_token(&service, data_dir)?);
            Ok(())
        }
        Command::Load(args) => runtime.block_on(load::run(args)),
    }
}
