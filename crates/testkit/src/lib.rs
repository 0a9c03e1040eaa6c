//! Spawning Emporium services inside tests.
//!
//! A [`TestEnv`] owns a fresh temporary data folder; [`TestEnv::spawn`] hosts any
//! service (a value of the runtime's [`Service`]) on a port-0 listener in this
//! process, exactly as `emporium serve` would, and waits until its `/readyz`
//! answers. Services talk mTLS with certificates from the test binary's CA
//! ([`identity`]); [`client`] calls as the operator, [`identity::client_as`] as
//! a named service. [`Spawned::crash`] aborts a service without any shutdown (a stand-in for
//! SIGKILL at the task level); the system tests kill real processes.

pub mod identity;
pub mod mail;
pub mod otlp;
pub mod pact;
pub mod prom;
pub mod servers;

use std::net::SocketAddr;
use std::time::Duration;

use emporium_config::Settings;
use emporium_http::Problem;
use emporium_http::server::Shutdown;
use emporium_runtime::Service;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A temporary world for one test: a data folder, removed at the end.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> Self {
        emporium_telemetry::init_for_tests();
        let dir = tempfile::tempdir().expect("temporary data folder");
        identity::install(dir.path());
        Self { dir }
    }

    /// Default settings with data in this env and, optionally, a registry; the
    /// service issues its own certificate from the test CA.
    pub fn settings<S: Default>(&self, registry: Option<&Spawned>) -> Settings<S> {
        let mut settings = Settings::<S>::for_test(self.dir.path());
        settings.common.registry_url = registry.map(|r| r.url.clone());
        settings.common.registry_ttl_ms = 1_500;
        settings.common.identity.mode = emporium_config::IdentityMode::Mtls;
        settings.common.identity.ca_key = Some(self.dir.path().join("identity").join("ca.key"));
        settings
    }

    /// Hosts `service` with `settings` and waits until it is ready.
    pub async fn spawn<S: Service>(&self, service: S, settings: Settings<S::Settings>) -> Spawned {
        let process = emporium_runtime::Process::new(&settings.common, &[S::NAME]);
        self.spawn_in(process, service, settings).await
    }

    /// Hosts `service` with every call it makes to another service sent through
    /// `calls` (a consumer's pacts: [`pact::Pacts::transport`]) instead.
    pub async fn spawn_calling<S: Service>(
        &self,
        service: S,
        settings: Settings<S::Settings>,
        calls: std::sync::Arc<dyn emporium_client::Transport>,
    ) -> Spawned {
        let process =
            emporium_runtime::Process::new(&settings.common, &[S::NAME]).calling_through(calls);
        self.spawn_in(process, service, settings).await
    }

    async fn spawn_in<S: Service>(
        &self,
        process: emporium_runtime::Process,
        service: S,
        settings: Settings<S::Settings>,
    ) -> Spawned {
        let listener = TcpListener::bind(settings.listen).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = stop_rx.await;
        });
        // The public edge is reached as the public reaches it; the others
        // over mTLS unless identity is off.
        let scheme = match settings.common.identity.mode {
            emporium_config::IdentityMode::Mtls if !S::PUBLIC => "https",
            _ => "http",
        };
        let task = tokio::spawn(emporium_runtime::run_in(
            process, service, settings, listener, shutdown,
        ));
        let mut spawned = Spawned {
            addr,
            url: format!("{scheme}://{addr}"),
            stop: Some(stop_tx),
            task,
        };
        spawned.wait_ready().await;
        spawned
    }
}

/// A service running inside the test.
pub struct Spawned {
    pub addr: SocketAddr,
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Spawned {
    /// Waits (up to 15 s) until `/readyz` says 200.
    pub async fn wait_ready(&mut self) {
        let client = client();
        for _ in 0..300 {
            if self.task.is_finished() {
                match (&mut self.task).await {
                    Ok(Err(e)) => panic!("the service stopped while starting: {e:#}"),
                    other => panic!("the service stopped while starting: {other:?}"),
                }
            }
            if let Ok(r) = client.get(format!("{}/readyz", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not become ready", self.url);
    }

    /// Graceful shutdown; returns what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }

    /// Stops the service at once, with no shutdown at all.
    pub fn crash(self) {
        self.task.abort();
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// An HTTP client for tests, calling as the operator: over mTLS to services
/// with identity on, plain HTTP to the rest.
pub fn client() -> reqwest::Client {
    identity::operator()
}

/// Asserts that `response` is a problem+json with `status`, and returns it.
pub async fn problem(response: reqwest::Response, status: u16) -> Problem {
    assert_eq!(
        response.status().as_u16(),
        status,
        "unexpected status for {}",
        response.url()
    );
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "application/problem+json", "errors are problem+json");
    let problem: Problem = response.json().await.expect("problem body");
    assert_eq!(problem.status, status);
    problem
}

/// The password [`sign_up`] gives every account.
pub const PASSWORD: &str = "correct horse battery";

/// Registers `email` at `base` (the gateway, or users itself) and signs in: the new
/// account's id and an access token. Panics unless both steps succeed.
pub async fn sign_up(base: &str, email: &str) -> (String, String) {
    let r = client()
        .post(format!("{base}/api/users/register"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD, "name": "Test User"}))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201, "register {email}");
    let user: serde_json::Value = r.json().await.expect("user");
    (
        user["id"].as_str().expect("id").to_string(),
        sign_in(base, email).await,
    )
}

/// Signs `email` in (with [`PASSWORD`]) at `base`: an access token.
pub async fn sign_in(base: &str, email: &str) -> String {
    let r = client()
        .post(format!("{base}/api/users/login"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "login {email}");
    let token: serde_json::Value = r.json().await.expect("token");
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Confirms `email`'s address as its owner would: the link from the mail in
/// `mail_dir`, used at `base`. Sign in again afterwards for a token that says so.
pub async fn confirm_email(base: &str, mail_dir: &std::path::Path, email: &str) {
    let token = mail::mailed_token(mail_dir, email, "/verify").await;
    let r = client()
        .post(format!("{base}/api/users/verify"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), 200, "confirm {email}");
}

/// Grants the admin role to `email` as the operator would (`emporium admin
/// grant`), at users' own address `users`; before or after the account registers.
pub async fn grant_admin(users: &str, email: &str) {
    let r = client()
        .put(format!("{users}/internal/users/admins/{email}"))
        .send()
        .await
        .expect("grant");
    assert!(
        r.status().is_success(),
        "grant admin to {email}: {}",
        r.status()
    );
}

/// Confirms `email`'s address as the operator would (`emporium admin verify`), at
/// users' own address `users`.
pub async fn vouch(users: &str, email: &str) {
    let r = client()
        .put(format!("{users}/internal/users/verified/{email}"))
        .send()
        .await
        .expect("vouch");
    assert_eq!(r.status(), 204, "confirm {email}");
}

/// Polls `check` until it gives a value (every 50 ms, 20 s at most), then returns
/// it; panics naming `what` if it never does.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The user id (a UUID, as users issues) that tests call `name`: the same name
/// gives the same id.
pub fn user_id(name: &str) -> String {
    // FNV-1a of the name, in the node field of a version-4-shaped UUID.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("00000000-0000-4000-8000-{:012x}", h & 0xffff_ffff_ffff)
}

/// A request with the identity headers the gateway adds for the signed-in user
/// `name` (its id is [`user_id`]); `roles` comma-separated, may be empty.
pub fn as_user(
    request: reqwest::RequestBuilder,
    name: &str,
    roles: &str,
) -> reqwest::RequestBuilder {
    let request = request.header("x-user-id", user_id(name));
    if roles.is_empty() {
        request
    } else {
        request.header("x-user-roles", roles)
    }
}

/// The units of `sku` inventory (at `inventory`) has available, waiting until it
/// knows the SKU (it learns products from catalog's events).
pub async fn available(inventory: &str, sku: &str) -> i64 {
    let url = format!("{inventory}/api/inventory/{sku}");
    eventually(&format!("stock of {sku}"), || async {
        let r = client().get(&url).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        let v: serde_json::Value = r.json().await.ok()?;
        assert_eq!(v["sku"], sku);
        v["available"].as_i64()
    })
    .await
}

/// The first `n` (1 to 100) products `catalog` lists, as JSON.
pub async fn products(catalog: &str, n: usize) -> Vec<serde_json::Value> {
    let page: serde_json::Value = client()
        .get(format!("{catalog}/api/catalog/products?limit={n}"))
        .send()
        .await
        .expect("products")
        .json()
        .await
        .expect("page");
    page["items"].as_array().expect("items").clone()
}

/// A SKU among the first 50 products of `catalog` with at least `min` units at
/// `inventory`, and its units.
pub async fn stocked(catalog: &str, inventory: &str, min: i64) -> (String, i64) {
    for p in products(catalog, 50).await {
        let sku = p["sku"].as_str().expect("sku");
        let units = available(inventory, sku).await;
        if units >= min {
            return (sku.to_string(), units);
        }
    }
    panic!("no SKU with {min} units among the first 50");
}

/// GETs `url` and asserts the answer is a problem+json with `status`.
pub async fn get_problem(url: &str, status: u16) -> Problem {
    problem(client().get(url).send().await.expect("send"), status).await
}
