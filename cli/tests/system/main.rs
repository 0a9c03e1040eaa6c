//! The whole shop as a newcomer runs it: the real `emporium up` process tree on
//! ephemeral ports, driven through the gateway, with services killed by SIGKILL.
//!
//! Every test runs on the embedded defaults (SQLite, the feed), or with
//! `EMPORIUM_TEST_BACKENDS=postgres-nats` on PostgreSQL + NATS JetStream started for
//! the test (`scripts/test` runs both). The tests in `production` always run on
//! PostgreSQL + NATS.
//!
//! With `EMPORIUM_TEST_SHAPE=monolith` the same tests run the shop as
//! `emporium up --monolith`: every service in one process beside the registry, so a
//! SIGKILL of "orders" is a crash of every service at once. A test that must stop
//! one service alone runs that one as a process of its own (`--except`), the
//! strangler path; so do services given several `--replicas`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use emporium_testkit::servers::{self, Nats, Postgres};

mod authz;
mod browser;
mod checkout;
mod deploy;
mod fuzz;
mod hosts;
mod load;
mod observability;
mod overload;
mod production;
mod resilience;
mod search;

/// PostgreSQL (one database, a schema per service) and NATS of one test.
struct Backends {
    pg: Postgres,
    /// Restarted by tests while the shop runs.
    nats: Mutex<Nats>,
    database_url: String,
}

impl Backends {
    /// Starts both servers; None when they are missing and not required (the test
    /// then says so and passes without running).
    fn start(test: &str) -> Option<Self> {
        match Self::launch() {
            Ok(backends) => Some(backends),
            Err(missing) if servers::required() => {
                panic!("{test} needs PostgreSQL and NATS: {missing}")
            }
            Err(missing) => {
                eprintln!("SKIPPED {test}: {missing}");
                None
            }
        }
    }

    /// For the tests that run on either engine: PostgreSQL + NATS when this run asks
    /// for them (`EMPORIUM_TEST_BACKENDS=postgres-nats`), else the embedded defaults.
    fn if_requested() -> Option<Self> {
        match std::env::var("EMPORIUM_TEST_BACKENDS").as_deref() {
            Ok("postgres-nats") => Some(Self::launch().unwrap_or_else(|missing| {
                panic!("EMPORIUM_TEST_BACKENDS=postgres-nats, but: {missing}")
            })),
            Ok("") | Err(_) => None,
            Ok(other) => panic!("EMPORIUM_TEST_BACKENDS={other}: expected postgres-nats"),
        }
    }

    fn launch() -> Result<Self, servers::Unavailable> {
        let pg = Postgres::start()?;
        let nats = Nats::start()?;
        let database_url = pg.create_database("shop");
        Ok(Self {
            pg,
            nats: Mutex::new(nats),
            database_url,
        })
    }

    fn settings(&self) -> Vec<(String, String)> {
        vec![
            ("EMPORIUM__DATABASE_URL".into(), self.database_url.clone()),
            (
                "EMPORIUM__EVENTS__NATS_URL".into(),
                self.nats.lock().expect("lock").url(),
            ),
        ]
    }
}

/// Where a test reaches the shop: its gateway, and the folder notifications
/// writes mail to.
trait Shop {
    fn base(&self) -> &str;
    fn mail_dir(&self) -> std::path::PathBuf;
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }
}

impl<S: Shop + ?Sized> Shop for Arc<S> {
    fn base(&self) -> &str {
        S::base(self)
    }
    fn mail_dir(&self) -> std::path::PathBuf {
        S::mail_dir(self)
    }
}

impl Shop for Up {
    fn base(&self) -> &str {
        &self.base
    }
    fn mail_dir(&self) -> std::path::PathBuf {
        Up::mail_dir(self)
    }
}

struct Up {
    child: Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
    data: std::path::PathBuf,
    /// Dropped after the shop stopped.
    backends: Option<Backends>,
}

impl Up {
    /// A client calling the shop's services as the operator, with a certificate
    /// from the CA `emporium up` made in its data folder (as the CLI does).
    fn operator(&self) -> reqwest::Client {
        let ca = emporium_identity::Ca::load(&emporium_identity::CaFiles::in_dir(
            &self.data.join("identity"),
        ))
        .expect("the shop's CA");
        let credentials = ca
            .mint(
                emporium_identity::Principal::Operator,
                Duration::from_secs(3600),
            )
            .expect("operator credentials");
        emporium_testkit::identity::client_with(&std::sync::Arc::new(credentials))
    }

    /// `path` at `service`'s first instance, over mTLS.
    fn service_url(&self, service: &str, path: &str) -> String {
        format!("https://{}{path}", self.addr(service))
    }

    /// `emporium up` on a free port with its data in `data`.
    fn start(data: &std::path::Path) -> Self {
        Self::start_with(data, &[])
    }

    /// `emporium up` with extra settings in the environment.
    fn start_with(data: &std::path::Path, settings: &[(&str, &str)]) -> Self {
        Self::start_on(data, Backends::if_requested(), settings, &[])
    }

    /// `emporium up` on `backends` (None: the embedded defaults), with extra
    /// settings and arguments.
    fn start_on(
        data: &std::path::Path,
        backends: Option<Backends>,
        settings: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let backend_settings = backends
            .as_ref()
            .map(Backends::settings)
            .unwrap_or_default();
        let mut child = Command::new(env!("CARGO_BIN_EXE_emporium"))
            .args(["up", "--port", "0"])
            .args(args)
            .args(shape_args(args))
            .arg("--data-dir")
            .arg(data)
            .env_remove("EMPORIUM__DATABASE_URL")
            .env_remove("EMPORIUM__EVENTS__NATS_URL")
            .envs(backend_settings)
            .env("EMPORIUM__GATEWAY__RATE_LIMIT__PER_SECOND", "10000")
            .env("EMPORIUM__GATEWAY__RATE_LIMIT__BURST", "10000")
            .env("EMPORIUM__GATEWAY__RATE_LIMIT__USER_PER_SECOND", "10000")
            .env("EMPORIUM__GATEWAY__RATE_LIMIT__USER_BURST", "10000")
            .env("EMPORIUM__REGISTRY_TTL_MS", "2000")
            .env_remove("EMPORIUM__REGISTRY_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("emporium up starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("{line}");
                }
                sink.lock().expect("lock").push(line);
            }
        });
        let mut up = Up {
            child,
            base: String::new(),
            lines,
            data: data.to_path_buf(),
            backends,
        };
        let open = up.wait_for_line("Open http://", Duration::from_secs(60));
        let url = open
            .split_whitespace()
            .nth(1)
            .expect("url")
            .trim_end_matches('/');
        up.base = url.to_string();
        // The operator makes boss@example.com an admin, before it registers.
        let granted = Command::new(env!("CARGO_BIN_EXE_emporium"))
            .args(["admin", "grant", "boss@example.com", "--data-dir"])
            .arg(data)
            .env_remove("EMPORIUM__REGISTRY_URL")
            .output()
            .expect("emporium admin grant runs");
        assert!(
            granted.status.success(),
            "emporium admin grant: {}",
            String::from_utf8_lossy(&granted.stderr)
        );
        up
    }

    fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .expect("lock")
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if Instant::now() > deadline {
                let lines = self.lines.lock().expect("lock");
                let last = lines.len().saturating_sub(30);
                panic!(
                    "no line with {needle:?} in time; the errors:\n{}\nthe last lines:\n{}",
                    errors(&lines).join("\n"),
                    lines[last..].join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `emporium up` whose `apart` services run as processes of their own also in
    /// the monolith shape (`--except`), so the test can stop one of them alone.
    fn start_apart(data: &std::path::Path, apart: &[&str]) -> Self {
        let except = format!("--except={}", apart.join(","));
        let args: &[&str] = if monolith() { &[&except] } else { &[] };
        Self::start_on(data, Backends::if_requested(), &[], args)
    }

    /// The name the supervisor gives the process hosting `service` in its lines
    /// (`orders died`): the service's, or `monolith`.
    fn process_of(&self, service: &str) -> &'static str {
        let lines = self.lines.lock().expect("lock");
        let in_monolith = lines.iter().any(|l| {
            let mut cols = l.split_whitespace();
            cols.next() == Some(service) && l.ends_with("(monolith)")
        });
        if in_monolith {
            "monolith"
        } else {
            String::leak(service.to_string())
        }
    }

    /// The PID of the process hosting `service` now: the table's, or the one the
    /// supervisor last restarted it as.
    fn current_pid(&self, service: &str) -> i32 {
        let restarted = format!("{} restarted (pid ", self.process_of(service));
        let last = self.lines.lock().expect("lock").iter().rev().find_map(|l| {
            let rest = &l[l.find(&restarted)? + restarted.len()..];
            rest.split(')').next()?.parse().ok()
        });
        last.unwrap_or_else(|| self.pid(service))
    }

    /// How many processes `emporium up` runs (rows of its table with distinct PIDs).
    fn processes(&self) -> usize {
        let lines = self.lines.lock().expect("lock");
        let pids: std::collections::HashSet<&str> = lines
            .iter()
            .filter(|l| l.starts_with("  ") && l.contains(" 127.0.0.1:"))
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        pids.len()
    }

    /// The PID `emporium up` printed for `service`.
    fn pid(&self, service: &str) -> i32 {
        let lines = self.lines.lock().expect("lock");
        let row = lines
            .iter()
            .find(|l| {
                let mut cols = l.split_whitespace();
                cols.next() == Some(service)
                    && cols.next().is_some_and(|a| a.starts_with("127.0.0.1:"))
            })
            .expect("a table row");
        row.split_whitespace()
            .nth(2)
            .and_then(|p| p.parse().ok())
            .expect("pid")
    }

    /// Where notifications writes this shop's mail (`.eml` files).
    fn mail_dir(&self) -> std::path::PathBuf {
        self.data.join("notifications").join("mail")
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The test's NATS server.
    fn nats(&self) -> std::sync::MutexGuard<'_, Nats> {
        self.backends
            .as_ref()
            .expect("running on PostgreSQL + NATS")
            .nats
            .lock()
            .expect("lock")
    }

    /// The address `emporium up` printed for `service`.
    fn addr(&self, service: &str) -> String {
        let lines = self.lines.lock().expect("lock");
        lines
            .iter()
            .find_map(|l| {
                let mut cols = l.split_whitespace();
                (cols.next() == Some(service))
                    .then(|| cols.next())
                    .flatten()
                    .filter(|a| a.starts_with("127.0.0.1:"))
                    .map(str::to_string)
            })
            .expect("a table row")
    }

    /// A service's own database, as the service opens it (read and write).
    async fn db(&self, service: &str) -> emporium_store::Db {
        match &self.backends {
            Some(b) => emporium_store::Db::open_in(&b.database_url, Some(service)).await,
            None => {
                let file = self.data.join(service).join(format!("{service}.db"));
                emporium_store::Db::open(&format!("sqlite://{}?mode=rw", file.display())).await
            }
        }
        .expect("open a service's database")
    }

    /// SIGTERM, then waits (30 s at most) for a clean exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).expect("sigterm");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "emporium up did not stop in time"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Whether this run tests the monolith shape (`EMPORIUM_TEST_SHAPE=monolith`).
fn monolith() -> bool {
    match std::env::var("EMPORIUM_TEST_SHAPE").as_deref() {
        Ok("monolith") => true,
        Ok("") | Ok("processes") | Err(_) => false,
        Ok(other) => panic!("EMPORIUM_TEST_SHAPE={other}: expected monolith or processes"),
    }
}

/// What the shape adds to `emporium up`'s arguments: `--monolith`, with services
/// given several `--replicas` (or named in `--except` already) apart.
fn shape_args(args: &[&str]) -> Vec<String> {
    if !monolith() {
        return Vec::new();
    }
    let mut out = vec!["--monolith".to_string()];
    let replicated: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--replicas")
        .flat_map(|w| w[1].split(','))
        .filter_map(|r| r.split_once('=').map(|(s, _)| s))
        .collect();
    let has_except = args.iter().any(|a| a.starts_with("--except"));
    if !replicated.is_empty() && !has_except {
        out.push(format!("--except={}", replicated.join(",")));
    }
    out
}

/// Services stopped with SIGSTOP: their ports stay open and calls to them hang,
/// the worst kind of down (the supervisor does not restart a stopped process).
/// They go on when this is dropped, however the test ends.
struct Frozen(Vec<Pid>);

impl Frozen {
    fn services(up: &Up, services: &[&str]) -> Self {
        let pids: Vec<Pid> = services
            .iter()
            .map(|s| Pid::from_raw(up.current_pid(s)))
            .collect();
        for pid in &pids {
            kill(*pid, Signal::SIGSTOP).expect("stop");
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = kill(*pid, Signal::SIGCONT);
        }
    }
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// Processes still running with `data` as their data folder (children of that `up`).
fn leftovers(data: &std::path::Path) -> Vec<String> {
    let needle = format!(
        "EMPORIUM__DATA_DIR={}",
        std::fs::canonicalize(data)
            .unwrap_or(data.to_path_buf())
            .display()
    );
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if !zombie && environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn until_ok(url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = http().get(url).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Until the shop answers through its gateway with every service registered (the
/// catalog listed, search's index built, the combined API document naming orders,
/// inventory and search).
async fn until_ready(shop: &impl Shop, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut listed = true;
        for path in ["/api/catalog/products?limit=1", "/api/search?q=cream"] {
            listed &= http()
                .get(shop.at(path))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
        }
        let document = match http().get(shop.at("/api/openapi.json")).send().await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        // Every service a test's shopper meets next: users (sign-up) may start
        // last, as it makes its first signing key.
        if listed
            && [
                "/api/users",
                "/api/cart",
                "/api/orders",
                "/api/inventory",
                "/api/search",
            ]
            .iter()
            .all(|p| document.contains(p))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never became ready",
            shop.base()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn status_of(up: &Up, path: &str) -> u16 {
    http()
        .get(up.at(path))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// A signed-in account with its address confirmed: its access token.
async fn token(up: &Up, email: &str) -> String {
    checkout::shopper(up, email).await.token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_shop_survives_sigkill_of_a_service_and_of_the_registry() {
    let data = tempfile::tempdir().expect("data dir");
    let mut up = Up::start(data.path());

    // Register, log in, see yourself.
    let customer = token(&up, "shopper@example.com").await;
    let me: Value = http()
        .get(up.at("/api/users/me"))
        .bearer_auth(&customer)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["email"], "shopper@example.com");

    // A service's port believes certificates, not headers: the identity headers
    // the gateway would set, sent straight to cart, are refused without one
    // (plain HTTP, or TLS from another CA) and answered for the operator.
    let user_id = me["id"].as_str().expect("id");
    let forged = |client: reqwest::Client, url: String| {
        client
            .get(url)
            .header("x-user-id", user_id)
            .header("x-user-roles", "admin")
            .send()
    };
    let plain = format!("http://{}/api/cart", up.addr("cart"));
    let r = forged(http(), plain).await.expect("send");
    assert_eq!(r.status(), 401, "forged identity headers over plain HTTP");
    let stranger = emporium_testkit::identity::client_with(&emporium_testkit::identity::foreign(
        emporium_identity::Principal::service("gateway"),
    ));
    assert!(
        forged(stranger, up.service_url("cart", "/api/cart"))
            .await
            .is_err(),
        "a certificate from another CA got an answer"
    );
    let r = forged(up.operator(), up.service_url("cart", "/api/cart"))
        .await
        .expect("send");
    assert_eq!(r.status(), 200);

    // Browse: categories, filters, sorting, pages.
    let cats: Value = http()
        .get(up.at("/api/catalog/categories"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(cats["items"].as_array().expect("items").len() >= 10);
    let mut url =
        up.at("/api/catalog/products?category=sports&sort=-price&limit=30&max_price=20000");
    let mut seen = 0;
    let mut last = i64::MAX;
    let mut total;
    loop {
        let page: Value = http()
            .get(&url)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("page");
        total = page["total"].as_i64().expect("total");
        for p in page["items"].as_array().expect("items") {
            let price = p["price"]["amount"].as_i64().expect("price");
            assert!(price <= last && price <= 20000);
            assert_eq!(p["category"], "sports");
            last = price;
            seen += 1;
        }
        match page["next"].as_str() {
            Some(next) => url = up.at(&format!("/api/catalog/products?category=sports&sort=-price&limit=30&max_price=20000&cursor={next}")),
            None => break,
        }
    }
    assert_eq!(seen, total);
    assert!(seen > 30, "more than one page");

    // Refused where it should be.
    assert_eq!(status_of(&up, "/api/users/me").await, 401);
    assert_eq!(
        status_of(&up, "/api/catalog/products?limit=1000").await,
        400
    );
    assert_eq!(status_of(&up, "/internal/registry/instances").await, 404);
    let forbidden = http()
        .post(up.at("/api/catalog/products"))
        .bearer_auth(&customer)
        .json(&json!({"sku": "SYS-1", "name": "n", "description": "d", "category": "books", "price": {"amount": 100, "currency": "USD"}}))
        .send()
        .await
        .expect("send");
    assert_eq!(forbidden.status(), 403);

    // SIGKILL catalog: the supervisor restarts it and the routes come back.
    let catalog = up.pid("catalog");
    kill(Pid::from_raw(catalog), Signal::SIGKILL).expect("kill catalog");
    up.wait_for_line(
        &format!("{} died", up.process_of("catalog")),
        Duration::from_secs(10),
    );
    until_ok(&up.at("/api/catalog/categories"), Duration::from_secs(20)).await;

    // SIGKILL the registry: browsing keeps working from the clients' caches...
    let registry = up.pid("registry");
    kill(Pid::from_raw(registry), Signal::SIGKILL).expect("kill registry");
    for _ in 0..20 {
        assert_eq!(
            status_of(&up, "/api/catalog/products?limit=5").await,
            200,
            "served from the discovery cache"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    up.wait_for_line("registry died", Duration::from_secs(10));
    // ...and the restarted registry learns every service again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_emporium"))
            .args(["status", "--data-dir"])
            .arg(&up.data)
            .env_remove("EMPORIUM__REGISTRY_URL")
            .output()
            .expect("emporium status");
        let text = String::from_utf8_lossy(&out.stdout);
        let healthy = ["users", "catalog", "gateway"].iter().all(|s| {
            text.lines()
                .any(|l| l.trim_start().starts_with(s) && l.contains("healthy"))
        });
        if out.status.success() && healthy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the registry did not recover its view:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status_of(&up, "/api/catalog/categories").await, 200);
    let me_again = http()
        .get(up.at("/api/users/me"))
        .bearer_auth(&customer)
        .send()
        .await
        .expect("me");
    assert_eq!(me_again.status(), 200, "tokens still verify");

    // Logs of every process are merged behind a service prefix.
    {
        let lines = up.lines.lock().expect("lock");
        for service in ["registry", "users", "catalog", "gateway"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.trim_start().starts_with(&format!("{service} | {{"))),
                "{service} logs"
            );
        }
    }

    // SIGTERM: everything stops, in bounded time, and nothing is left behind.
    let pids: Vec<i32> = ["registry", "users", "gateway"]
        .iter()
        .map(|s| up.current_pid(s))
        .collect();
    let expected = if monolith() { 2 } else { 12 };
    assert_eq!(up.processes(), expected);
    assert_eq!(
        leftovers(&up.data).len(),
        expected,
        "every process of the shop is found while running"
    );
    let status = up.stop();
    assert!(status.success(), "{status}");
    for pid in pids {
        if pid != registry {
            assert!(!alive(pid), "pid {pid} outlived emporium up");
        }
    }
    assert!(
        up.lines
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.contains("stopped"))
    );
    assert!(
        leftovers(data.path()).is_empty(),
        "no process outlived emporium up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_of_the_whole_shop() {
    let data = tempfile::tempdir().expect("data dir");
    let mut first = Up::start(data.path());
    let _ = token(&first, "returning@example.com").await;
    assert!(first.stop().success());
    let second = Up::start_on(data.path(), first.backends.take(), &[], &[]);
    let login = http()
        .post(second.at("/api/users/login"))
        .json(&json!({"email": "returning@example.com", "password": emporium_testkit::PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200, "the account survived");
    let page: Value = http()
        .get(second.at("/api/catalog/products"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("page");
    assert_eq!(page["total"], 1200, "seeded once, not twice");
}

#[test]
fn a_gateway_port_in_use_fails_fast_and_leaves_nothing_behind() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let data = tempfile::tempdir().expect("data dir");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(["up", "--port", &port.to_string(), "--data-dir"])
        .arg(data.path())
        .env_remove("EMPORIUM__REGISTRY_URL")
        .output()
        .expect("emporium up runs");
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "no waiting for a dead process"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gateway exited while starting"), "{stderr}");
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(
        logs.contains("binding 127.0.0.1:"),
        "the gateway's own log says why:\n{logs}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        leftovers(data.path()).is_empty(),
        "the services started so far are stopped"
    );
}

/// The lines of a shop's output that say what went wrong (a process's error and
/// its causes, error and warning log lines, panics), at most 60: a process that
/// exits while starting prints its error long before the last lines.
fn errors(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    // The process whose causes follow, and how many of its lines are still kept.
    let mut causes: Option<(&str, usize)> = None;
    for line in lines {
        let process = line.split(" | ").next().unwrap_or_default();
        let wanted = line.contains("Error")
            || line.contains("\"level\":\"ERROR\"")
            || line.contains("\"level\":\"WARN\"")
            || line.contains("panicked");
        if line.contains("Caused by") {
            causes = Some((process, 5));
        } else if let Some((from, left)) =
            causes.filter(|(from, left)| *from == process && *left > 0)
        {
            causes = Some((from, left - 1));
        } else if !wanted {
            continue;
        }
        out.push(line.clone());
        if out.len() == 60 {
            break;
        }
    }
    out
}

#[test]
fn a_failed_start_shows_the_process_error_and_not_every_line() {
    let lines = [
        "orders-1 | Error: migrating the orders database",
        "orders-1 | ",
        "orders-1 | Caused by:",
        "orders-1 |     database is locked",
        r#"    cart | {"level":"INFO","message":"listening"}"#,
        r#"    cart | {"level":"WARN","message":"could not deregister"}"#,
    ]
    .map(String::from);
    let shown = errors(&lines);
    assert!(shown.iter().any(|l| l.contains("database is locked")));
    assert!(shown.iter().any(|l| l.contains("could not deregister")));
    assert!(!shown.iter().any(|l| l.contains("listening")));
}
