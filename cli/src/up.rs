//! `emporium up`: the whole shop as separate OS processes on this machine.
//!
//! Starts the registry on a free loopback port, then users and catalog on free ports
//! and the gateway on `--port`, each as `emporium serve <service>` (this binary,
//! re-executed). Waits until every one answers `/readyz`, prints where they are, and
//! then supervises: logs of all processes are merged with a service prefix, a process
//! that dies is restarted with exponential backoff on the same address, and Ctrl-C or
//! SIGTERM stops the gateway first, the services next and the registry last, each
//! within a bounded time. The merged logs are also kept, rotated, in
//! `<data>/logs/emporium.log` for `emporium logs` and `emporium trace`.
//!
//! `--monolith` runs every service (the registry apart) in one process instead,
//! where calls between services are function calls into each other's routers, and
//! `--monolith --except orders,payments` runs those as processes of their own beside
//! it (the strangler path); all register with the same registry.
//!
//! `--replicas orders=2,inventory=2` runs more than one instance of a backend, each
//! with a stable instance id (`orders-1`, `orders-2`, kept across restarts);
//! `--database-url` and `--nats-url` point every service at PostgreSQL and NATS
//! JetStream (the same as `EMPORIUM__DATABASE_URL` and `EMPORIUM__EVENTS__NATS_URL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use emporium_runtime::ADDR_FILE_ENV;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::logs::LogSink;
use crate::services::{SUPERVISED_ENV, Service};

/// How long a service may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each group of processes gets to stop before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// A process that ran this long before dying starts its backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// The gateway's port on 127.0.0.1; 0 picks a free one and prints it.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Where the services keep their data.
    #[arg(long, default_value = "./data", env = "EMPORIUM__DATA_DIR")]
    pub data_dir: PathBuf,
    /// Instances per backend service, e.g. `orders=2,inventory=2` (default 1 each).
    #[arg(long, value_delimiter = ',', value_parser = parse_replicas)]
    pub replicas: Vec<(Service, u32)>,
    /// PostgreSQL for every service, each in a schema of its own
    /// (`postgres://user:password@host/db`); default: a SQLite file per service.
    #[arg(long, env = "EMPORIUM__DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// NATS JetStream as the event transport (`nats://host:4222`); default: the feed.
    #[arg(long, env = "EMPORIUM__EVENTS__NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// Every service but the registry in one process: no sockets between them.
    #[arg(long)]
    pub monolith: bool,
    /// With `--monolith`: these services run as processes of their own instead
    /// (`--except orders,payments`).
    #[arg(long, value_delimiter = ',', requires = "monolith", value_parser = parse_extracted)]
    pub except: Vec<Service>,
}

impl Default for UpArgs {
    fn default() -> Self {
        Self {
            port: 8080,
            data_dir: PathBuf::from("./data"),
            replicas: Vec::new(),
            database_url: None,
            nats_url: None,
            monolith: false,
            except: Vec::new(),
        }
    }
}

fn parse_extracted(name: &str) -> Result<Service, String> {
    Service::BEHIND_REGISTRY
        .into_iter()
        .find(|s| s.name() == name.trim())
        .ok_or_else(|| {
            let names: Vec<_> = Service::BEHIND_REGISTRY.iter().map(|s| s.name()).collect();
            format!(
                "`{name}` is not a service of the monolith; one of: {}",
                names.join(", ")
            )
        })
}

/// Most instances of one service `emporium up` starts.
const MAX_REPLICAS: u32 = 16;

fn parse_replicas(text: &str) -> Result<(Service, u32), String> {
    let (name, count) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected SERVICE=COUNT, e.g. orders=2"))?;
    let service = Service::BACKENDS
        .into_iter()
        .find(|s| s.name() == name.trim())
        .ok_or_else(|| {
            let names: Vec<_> = Service::BACKENDS.iter().map(|s| s.name()).collect();
            format!(
                "`{name}` cannot be replicated; one of: {}",
                names.join(", ")
            )
        })?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("`{count}`: expected a number of instances"))?;
    if !(1..=MAX_REPLICAS).contains(&count) {
        return Err(format!("{name}={count}: 1 to {MAX_REPLICAS} instances"));
    }
    Ok((service, count))
}

/// One supervised process, hosting one service or several.
struct Supervised {
    services: Vec<Service>,
    /// `<service>-<n>` (its instance id), or `monolith-1`.
    label: &'static str,
    /// Its name in logs and tables.
    display: &'static str,
    /// Where each of its services listens; fixed after the first start so restarts
    /// keep the addresses.
    listens: Vec<(Service, SocketAddr)>,
    /// The admin ports of its services that have one (the gateway's), as first
    /// started.
    admin: Vec<(Service, SocketAddr)>,
    pid: AtomicU32,
    stopping: AtomicBool,
    exited: Notify,
    finished: AtomicBool,
}

impl Supervised {
    fn hosts(&self, service: Service) -> bool {
        self.services.contains(&service)
    }

    fn addr(&self, service: Service) -> Option<SocketAddr> {
        self.listens
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, a)| *a)
    }

    /// When it stops: the gateway alone first, the registry last, the rest (a
    /// monolith too, with the services excepted from it) between.
    fn stage(&self) -> u8 {
        match self.services.as_slice() {
            [Service::Gateway] => 0,
            _ if self.hosts(Service::Registry) => 2,
            _ => 1,
        }
    }
}

/// What the services log unless told otherwise: info, and each event a consumer
/// handles at debug. The log file keeps those (`emporium trace` shows them); the
/// terminal leaves them out ([`LogSink`] shows info and up), so a first start's
/// seed is one "caught up" line per subscription instead of a screenful per event.
const CHILD_LOG_LEVEL: &str = "info,emporium_events::consumer=debug";

/// [`CHILD_LOG_LEVEL`], unless a level was set (`RUST_LOG`, `log.level`).
fn child_log_level() -> Option<&'static str> {
    if std::env::var_os("RUST_LOG").is_some() {
        return None;
    }
    let configured: Option<String> = emporium_config::figment().extract_inner("log.level").ok();
    match configured.as_deref() {
        None | Some("info") => Some(CHILD_LOG_LEVEL),
        Some(_) => None,
    }
}

/// The label of the process that hosts several services.
const MONOLITH: &str = "monolith-1";

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("locating the emporium binary")?;
    let run_dir = args.data_dir.join("run");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let log_file = emporium_telemetry::logfile::RotatingFile::open(
        emporium_telemetry::logfile::current(&data_dir),
        emporium_telemetry::logfile::DEFAULT_MAX_BYTES,
        emporium_telemetry::logfile::DEFAULT_KEEP,
    )
    .with_context(|| format!("opening the log file in {}", data_dir.display()))?;
    let logs = LogSink::new(Some(log_file));
    let mut backends = Vec::new();
    if let Some(url) = &args.database_url {
        backends.push(("EMPORIUM__DATABASE_URL", url.clone()));
    }
    if let Some(url) = &args.nats_url {
        backends.push(("EMPORIUM__EVENTS__NATS_URL", url.clone()));
    }
    if let Some(level) = child_log_level() {
        backends.push(("EMPORIUM__LOG__LEVEL", level.to_string()));
    }
    // Service identity: a CA and a bootstrap secret in the data folder, unless
    // the configuration turns identity off.
    let common: emporium_config::Common = emporium_config::figment()
        .extract()
        .context("reading the settings")?;
    let identity = match common.identity.mode {
        emporium_config::IdentityMode::Mtls => Some(Arc::new(crate::operator::prepare(&data_dir)?)),
        emporium_config::IdentityMode::Off => None,
    };
    let env = Env {
        exe,
        identity: identity.clone(),
        data_dir: data_dir.clone(),
        run_dir: run_dir.clone(),
        logs: logs.clone(),
        backends,
        replicated: args
            .replicas
            .iter()
            .filter(|(_, n)| *n > 1)
            .map(|(s, _)| *s)
            .collect(),
    };

    let registry = env
        .start(
            vec![Service::Registry],
            "registry-1",
            vec![(Service::Registry, "127.0.0.1:0".parse()?)],
            None,
        )
        .await?;
    let registry_addr = registry
        .addr(Service::Registry)
        .context("no registry address")?;
    // https when services speak mTLS: the CLI then asks as the operator.
    let scheme = if identity.is_some() { "https" } else { "http" };
    let registry_url = format!("{scheme}://{registry_addr}");
    std::fs::write(run_dir.join("registry.url"), &registry_url)?;
    crate::running::remember(&data_dir);
    // Prometheus reads its targets over plain HTTP (an open path).
    crate::monitoring::write(&run_dir, &format!("http://{registry_addr}"))
        .with_context(|| format!("writing the Prometheus config in {}", run_dir.display()))?;

    let mut all = vec![registry.clone()];
    let listen = |service: Service| -> SocketAddr {
        if service == Service::Gateway {
            SocketAddr::from(([127, 0, 0, 1], args.port))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    };
    let starts = plan(&args)?.into_iter().map(|(services, label)| {
        let listens = services.iter().map(|&s| (s, listen(s))).collect();
        env.start(services, label, listens, Some(&registry_url))
    });
    let mut failure = None;
    for started in futures::future::join_all(starts).await {
        match started {
            Ok(s) => all.push(s),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if failure.is_none() {
        let env = &env;
        let readiness = all.iter().flat_map(|s| {
            s.listens.iter().map(move |&(service, addr)| async move {
                wait_ready(addr)
                    .await
                    .with_context(|| format!("{} did not become ready", env.display_of(s, service)))
            })
        });
        failure = futures::future::join_all(readiness)
            .await
            .into_iter()
            .find_map(Result::err);
    }
    if let Some(error) = failure {
        // Stop what did start before reporting why the shop cannot run.
        stop_group(&all).await;
        return Err(error);
    }
    let gateway = all
        .iter()
        .find_map(|s| s.addr(Service::Gateway))
        .context("no gateway")?;
    print_table(&env, &all, gateway, started.elapsed(), &data_dir);

    crate::services::wait_for_signal().await;
    logs.line(
        "emporium",
        "stopping: gateway, then services, then registry",
    );
    for stage in 0..=2 {
        let members: Vec<_> = all.iter().filter(|s| s.stage() == stage).cloned().collect();
        stop_group(&members).await;
    }
    logs.line("emporium", "stopped");
    Ok(())
}

/// The processes to start after the registry: the services each hosts and its
/// label (its instance id when it hosts one).
fn plan(args: &UpArgs) -> anyhow::Result<Vec<(Vec<Service>, &'static str)>> {
    let own_process = |service: Service| !args.monolith || args.except.contains(&service);
    if let Some((service, _)) = args
        .replicas
        .iter()
        .find(|(s, n)| *n > 1 && !own_process(*s))
    {
        bail!(
            "--replicas {0}: {0} runs inside the monolith; add --except {0} to run instances of it",
            service.name()
        );
    }
    let mut plan = Vec::new();
    let inside: Vec<Service> = Service::BEHIND_REGISTRY
        .into_iter()
        .filter(|&s| !own_process(s))
        .collect();
    if !inside.is_empty() {
        plan.push((inside, MONOLITH));
    }
    for service in Service::BEHIND_REGISTRY
        .into_iter()
        .filter(|&s| own_process(s))
    {
        let count = args
            .replicas
            .iter()
            .rev()
            .find(|(s, _)| *s == service)
            .map_or(1, |&(_, n)| n);
        for replica in 1..=count {
            // One per instance for the life of the supervisor.
            let label: &'static str = String::leak(format!("{}-{replica}", service.name()));
            plan.push((vec![service], label));
        }
    }
    Ok(plan)
}

/// glibc raises its mmap threshold after large blocks are freed, after which each
/// 19 MiB argon2 block comes from a heap arena and is never given back: users grew to
/// ~500 MiB after 65 sign-ups. A fixed threshold keeps large blocks mmapped and
/// returned on free (users stays ~17 MiB). At 1 MiB it also covers tantivy's 1 MiB
/// indexing pages, which otherwise stay in a thread arena after the writer closes
/// (search idles at 38 MiB instead of 50). Set for every child unless the caller set
/// it; containers set it in their environment.
const MMAP_THRESHOLD_ENV: &str = "MALLOC_MMAP_THRESHOLD_";
const MMAP_THRESHOLD: &str = "1048576";

#[derive(Clone)]
struct Env {
    exe: PathBuf,
    /// The CA and secret, when identity is on.
    identity: Option<Arc<crate::operator::Prepared>>,
    data_dir: PathBuf,
    run_dir: PathBuf,
    logs: LogSink,
    /// Settings naming PostgreSQL and NATS, passed to every process.
    backends: Vec<(&'static str, String)>,
    /// Services running more than one instance.
    replicated: Vec<Service>,
}

impl Env {
    /// How a process is named in logs and tables: its service's name, its label
    /// when that service has several instances, or `monolith`.
    fn display(&self, services: &[Service], label: &'static str) -> &'static str {
        match services {
            [one] if self.replicated.contains(one) => label,
            [one] => one.name(),
            _ => "monolith",
        }
    }

    /// How one service of a process is named in tables.
    fn display_of(&self, s: &Supervised, service: Service) -> &'static str {
        if s.services.len() == 1 {
            s.display
        } else {
            service.name()
        }
    }

    /// Starts a process hosting `services`, learns their addresses, and keeps it
    /// running until stopped.
    async fn start(
        &self,
        services: Vec<Service>,
        label: &'static str,
        listens: Vec<(Service, SocketAddr)>,
        registry_url: Option<&str>,
    ) -> anyhow::Result<Arc<Supervised>> {
        let display = self.display(&services, label);
        let addr_file = self.run_dir.join(format!("{label}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let mut child = self.spawn(&services, label, &listens, registry_url, &addr_file)?;
        let actual = wait_for_addrs(&addr_file, display, &services, &mut child).await?;
        let admin = admin_addrs(&addr_file, &services);
        let supervised = Arc::new(Supervised {
            services,
            label,
            display,
            listens: actual,
            admin,
            pid: AtomicU32::new(child.id().unwrap_or_default()),
            stopping: AtomicBool::new(false),
            exited: Notify::new(),
            finished: AtomicBool::new(false),
        });
        let env = self.clone();
        let registry_url = registry_url.map(String::from);
        let s = supervised.clone();
        tokio::spawn(async move { env.supervise(s, child, registry_url, addr_file).await });
        Ok(supervised)
    }

    fn spawn(
        &self,
        services: &[Service],
        label: &'static str,
        listens: &[(Service, SocketAddr)],
        registry_url: Option<&str>,
        addr_file: &Path,
    ) -> anyhow::Result<Child> {
        let names: Vec<&str> = services.iter().map(|s| s.name()).collect();
        // A process hosting several services names each instance
        // `<service>-<its instance id>`: users-monolith-1, catalog-monolith-1, ...
        let mut cmd = Command::new(&self.exe);
        cmd.arg("serve")
            .arg(names.join(","))
            .env(SUPERVISED_ENV, "1")
            .env("EMPORIUM__INSTANCE_ID", label)
            .envs(self.backends.iter().map(|(k, v)| (k, v)))
            .env(ADDR_FILE_ENV, addr_file)
            .env("EMPORIUM__DATA_DIR", &self.data_dir)
            .env("EMPORIUM__LOG__FORMAT", "json")
            .envs(listens.iter().map(|(service, listen)| {
                (
                    format!("EMPORIUM__{}__LISTEN", service.name().to_uppercase()),
                    listen.to_string(),
                )
            }))
            // A process group of its own: Ctrl-C reaches only the supervisor, which
            // then stops the processes in order.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        if let Some(url) = registry_url {
            cmd.env("EMPORIUM__REGISTRY_URL", url);
        }
        if let Some(identity) = &self.identity {
            cmd.envs(identity.env_for(&names));
        }
        if std::env::var_os(MMAP_THRESHOLD_ENV).is_none() {
            cmd.env(MMAP_THRESHOLD_ENV, MMAP_THRESHOLD);
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {label}"))?;
        self.logs.attach(
            self.display(services, label),
            services.len() > 1,
            &mut child,
        );
        Ok(child)
    }

    /// Waits for the process to exit; restarts it with backoff unless stopping.
    async fn supervise(
        self,
        s: Arc<Supervised>,
        mut child: Child,
        registry_url: Option<String>,
        addr_file: PathBuf,
    ) {
        let mut backoff = Duration::from_millis(200);
        'running: loop {
            let ran_from = Instant::now();
            let status = child.wait().await;
            // The pid is free for reuse from now on: never signal it again.
            s.pid.store(0, Ordering::SeqCst);
            if s.stopping.load(Ordering::SeqCst) {
                break;
            }
            let how = match status {
                Ok(st) => st.to_string(),
                Err(e) => e.to_string(),
            };
            if ran_from.elapsed() > HEALTHY_RUN {
                backoff = Duration::from_millis(200);
            }
            self.logs.line(
                "emporium",
                &format!("{} died ({how}); restarting", s.display),
            );
            // Until a new process is running: wait out the backoff, try, double it.
            loop {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if s.stopping.load(Ordering::SeqCst) {
                    break 'running;
                }
                match self.spawn(
                    &s.services,
                    s.label,
                    &s.listens,
                    registry_url.as_deref(),
                    &addr_file,
                ) {
                    Ok(c) => {
                        let pid = c.id().unwrap_or_default();
                        s.pid.store(pid, Ordering::SeqCst);
                        child = c;
                        self.logs
                            .line("emporium", &format!("{} restarted (pid {pid})", s.display));
                        break;
                    }
                    Err(e) => self
                        .logs
                        .line("emporium", &format!("cannot restart {}: {e:#}", s.display)),
                }
            }
        }
        s.finished.store(true, Ordering::SeqCst);
        s.exited.notify_waiters();
    }
}

/// SIGTERM to every member, then waits up to the grace period; SIGKILL after that.
async fn stop_group(members: &[Arc<Supervised>]) {
    for s in members {
        s.stopping.store(true, Ordering::SeqCst);
        signal(s, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for s in members {
        loop {
            let notified = s.exited.notified();
            if s.finished.load(Ordering::SeqCst) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                signal(s, Signal::SIGKILL);
                break;
            }
        }
    }
}

fn signal(s: &Supervised, sig: Signal) {
    let pid = s.pid.load(Ordering::SeqCst);
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}

/// The addresses a freshly started process wrote to its address file (a line
/// `<service> <address>` for each service it hosts); an error at once if the
/// process exits first (a port in use, bad settings: its log says why).
async fn wait_for_addrs(
    path: &Path,
    label: &str,
    services: &[Service],
    child: &mut Child,
) -> anyhow::Result<Vec<(Service, SocketAddr)>> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{label} exited while starting ({status}); see its log above");
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            let found = listed(&text, services, "");
            if found.len() == services.len() {
                return Ok(found);
            }
        }
        if Instant::now() > deadline {
            bail!("{label} did not report its addresses");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The admin ports `path` lists (`<service>/admin <address>` lines).
fn admin_addrs(path: &Path, services: &[Service]) -> Vec<(Service, SocketAddr)> {
    listed(
        &std::fs::read_to_string(path).unwrap_or_default(),
        services,
        "/admin",
    )
}

/// The addresses an address file lists for `services`: its `<service><suffix>
/// <address>` lines.
fn listed(text: &str, services: &[Service], suffix: &str) -> Vec<(Service, SocketAddr)> {
    services
        .iter()
        .filter_map(|&service| {
            text.lines().find_map(|line| {
                let (name, addr) = line.split_once(' ')?;
                (name.strip_suffix(suffix) == Some(service.name()))
                    .then(|| addr.trim().parse().ok())
                    .flatten()
                    .map(|addr| (service, addr))
            })
        })
        .collect()
}

/// Polls `/readyz` until it answers 200.
async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    let client = emporium_client::http_client();
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let req = http_get(&format!("http://{addr}/readyz"))?;
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(1), client.request(req)).await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not ready after {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn http_get(url: &str) -> anyhow::Result<http::Request<axum::body::Body>> {
    Ok(http::Request::get(url).body(axum::body::Body::empty())?)
}

fn print_table(
    env: &Env,
    all: &[Arc<Supervised>],
    gateway: SocketAddr,
    took: Duration,
    data_dir: &Path,
) {
    let mut out = String::new();
    out.push_str(&format!(
        "\nEmporium is up in {} ms. Data: {}\n\n",
        took.as_millis(),
        data_dir.display()
    ));
    out.push_str(&format!(
        "  {:<14} {:<22} {:>8}\n",
        "SERVICE", "ADDRESS", "PID"
    ));
    for s in all {
        let pid = s.pid.load(Ordering::SeqCst);
        for &(service, addr) in &s.listens {
            let name = env.display_of(s, service);
            let shape = if s.services.len() > 1 {
                "  (monolith)"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {:<14} {:<22} {:>8}{shape}\n",
                name,
                addr.to_string(),
                pid
            ));
        }
        for &(service, addr) in &s.admin {
            let name = format!("{}/admin", env.display_of(s, service));
            out.push_str(&format!(
                "  {:<14} {:<22} {:>8}\n",
                name,
                addr.to_string(),
                pid
            ));
        }
    }
    out.push_str(&format!(
        "\n  Open http://{gateway}/   (API docs: http://{gateway}/docs/)\n"
    ));
    out.push_str(&format!(
        "  Logs: {} (emporium logs [SERVICE] --follow --trace ID --level L)\n",
        emporium_telemetry::logfile::current(data_dir).display()
    ));
    out.push_str(&format!(
        "  Metrics: GET /metrics on every service (the gateway's on gateway/admin); \
         prometheus --config.file={}\n",
        data_dir.join("run").join("prometheus.yml").display()
    ));
    out.push_str("  Ctrl-C stops everything.\n\n");
    print!("{out}");
}
