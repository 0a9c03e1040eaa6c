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
}

impl Default for UpArgs {
    fn default() -> Self {
        Self {
            port: 8080,
            data_dir: PathBuf::from("./data"),
            replicas: Vec::new(),
            database_url: None,
            nats_url: None,
        }
    }
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

/// One supervised process.
struct Supervised {
    service: Service,
    /// `<service>-<n>`: its instance id.
    label: &'static str,
    /// Its name in logs and tables.
    display: &'static str,
    /// Where it listens; fixed after its first start so restarts keep the address.
    listen: SocketAddr,
    pid: AtomicU32,
    stopping: AtomicBool,
    exited: Notify,
    finished: AtomicBool,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("locating the emporium binary")?;
    let run_dir = args.data_dir.join("run");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let log_file = crate::logfile::RotatingFile::open(
        crate::logfile::current(&data_dir),
        crate::logfile::DEFAULT_MAX_BYTES,
        crate::logfile::DEFAULT_KEEP,
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
    let env = Env {
        exe,
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
        .start(Service::Registry, 1, "127.0.0.1:0".parse()?, None)
        .await?;
    let registry_url = format!("http://{}", registry.listen);
    std::fs::write(run_dir.join("registry.url"), &registry_url)?;
    crate::monitoring::write(&run_dir, &registry_url)
        .with_context(|| format!("writing the Prometheus config in {}", run_dir.display()))?;

    let mut all = vec![registry.clone()];
    let instances = Service::BEHIND_REGISTRY.iter().flat_map(|&service| {
        let count = args
            .replicas
            .iter()
            .rev()
            .find(|(s, _)| *s == service)
            .map_or(1, |&(_, n)| n);
        (1..=count).map(move |replica| (service, replica))
    });
    let starts = instances.map(|(service, replica)| {
        let listen: SocketAddr = if service == Service::Gateway {
            SocketAddr::from(([127, 0, 0, 1], args.port))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 0))
        };
        env.start(service, replica, listen, Some(&registry_url))
    });
    let mut failure = None;
    for started in futures::future::join_all(starts).await {
        match started {
            Ok(s) => all.push(s),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if failure.is_none() {
        let readiness = all.iter().map(|s| async move {
            wait_ready(s.listen)
                .await
                .with_context(|| format!("{} did not become ready", s.display))
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
        .find(|s| s.service == Service::Gateway)
        .map(|s| s.listen)
        .context("no gateway")?;
    print_table(&all, gateway, started.elapsed(), &data_dir);

    crate::services::wait_for_signal().await;
    logs.line(
        "emporium",
        "stopping: gateway, then services, then registry",
    );
    for group in [
        vec![Service::Gateway],
        Service::BACKENDS.to_vec(),
        vec![Service::Registry],
    ] {
        let members: Vec<_> = all
            .iter()
            .filter(|s| group.contains(&s.service))
            .cloned()
            .collect();
        stop_group(&members).await;
    }
    logs.line("emporium", "stopped");
    Ok(())
}

/// glibc raises its mmap threshold after large blocks are freed, after which each
/// 19 MiB argon2 block comes from a heap arena and is never given back: users grew to
/// ~500 MiB after 65 sign-ups. A fixed threshold keeps large blocks mmapped and
/// returned on free (users stays ~17 MiB). Set for every child unless the caller set
/// it; containers set it in their environment.
const MMAP_THRESHOLD_ENV: &str = "MALLOC_MMAP_THRESHOLD_";
const MMAP_THRESHOLD: &str = "4194304";

#[derive(Clone)]
struct Env {
    exe: PathBuf,
    data_dir: PathBuf,
    run_dir: PathBuf,
    logs: LogSink,
    /// Settings naming PostgreSQL and NATS, passed to every process.
    backends: Vec<(&'static str, String)>,
    /// Services running more than one instance.
    replicated: Vec<Service>,
}

impl Env {
    /// How an instance is named in logs and tables: the service's name, or its
    /// label when it has several instances.
    fn display(&self, service: Service, label: &'static str) -> &'static str {
        if self.replicated.contains(&service) {
            label
        } else {
            service.name()
        }
    }

    /// Starts `service`, learns its address, and keeps it running until stopped.
    async fn start(
        &self,
        service: Service,
        replica: u32,
        listen: SocketAddr,
        registry_url: Option<&str>,
    ) -> anyhow::Result<Arc<Supervised>> {
        // One per instance for the life of the supervisor.
        let label: &'static str = String::leak(format!("{}-{replica}", service.name()));
        let addr_file = self.run_dir.join(format!("{label}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let mut child = self.spawn(service, label, listen, registry_url, &addr_file)?;
        let actual = wait_for_addr(&addr_file, self.display(service, label), &mut child).await?;
        let supervised = Arc::new(Supervised {
            service,
            label,
            display: self.display(service, label),
            listen: actual,
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
        service: Service,
        label: &'static str,
        listen: SocketAddr,
        registry_url: Option<&str>,
        addr_file: &Path,
    ) -> anyhow::Result<Child> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("serve")
            .arg(service.name())
            .env(SUPERVISED_ENV, "1")
            .env("EMPORIUM__INSTANCE_ID", label)
            .envs(self.backends.iter().map(|(k, v)| (k, v)))
            .env(ADDR_FILE_ENV, addr_file)
            .env("EMPORIUM__DATA_DIR", &self.data_dir)
            .env("EMPORIUM__LOG__FORMAT", "json")
            .env(
                format!("EMPORIUM__{}__LISTEN", service.name().to_uppercase()),
                listen.to_string(),
            )
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
        if std::env::var_os(MMAP_THRESHOLD_ENV).is_none() {
            cmd.env(MMAP_THRESHOLD_ENV, MMAP_THRESHOLD);
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {label}"))?;
        self.logs.attach(self.display(service, label), &mut child);
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
                    s.service,
                    s.label,
                    s.listen,
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

/// The address a freshly started process wrote to its address file; an error at
/// once if the process exits first (a port in use, bad settings: its log says why).
async fn wait_for_addr(path: &Path, label: &str, child: &mut Child) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{label} exited while starting ({status}); see its log above");
        }
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(addr) = text.trim().parse()
        {
            return Ok(addr);
        }
        if Instant::now() > deadline {
            bail!("{label} did not report its address");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

fn print_table(all: &[Arc<Supervised>], gateway: SocketAddr, took: Duration, data_dir: &Path) {
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
        out.push_str(&format!(
            "  {:<14} {:<22} {:>8}\n",
            s.display,
            s.listen.to_string(),
            s.pid.load(Ordering::SeqCst)
        ));
    }
    out.push_str(&format!(
        "\n  Open http://{gateway}/   (API docs: http://{gateway}/docs/)\n"
    ));
    out.push_str(&format!(
        "  Logs: {} (emporium logs [SERVICE] --follow --trace ID --level L)\n",
        crate::logfile::current(data_dir).display()
    ));
    out.push_str(&format!(
        "  Metrics: GET /metrics on every service; prometheus --config.file={}\n",
        data_dir.join("run").join("prometheus.yml").display()
    ));
    out.push_str("  Ctrl-C stops everything.\n\n");
    print!("{out}");
}
