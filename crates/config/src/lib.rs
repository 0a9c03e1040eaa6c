//! Typed, layered settings for every Emporium process.
//!
//! Layers, later wins: the defaults compiled into each settings struct, then the TOML
//! file (`emporium.toml` in the working directory, or the file named by
//! `EMPORIUM_CONFIG`), then environment variables `EMPORIUM__KEY` and
//! `EMPORIUM__SERVICE__KEY` (`__` separates levels; keys are case-insensitive).
//!
//! Top-level keys are [`Common`] to every process (registry URL, data folder, logs);
//! each service reads its own table (`[catalog]`, `[users]`, ...) into its own type.
//! Secrets are wrapped in [`Secret`], which never prints its value.

mod client;
mod secret;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use client::{CallPolicy, CallPolicyOverrides, ClientSettings};
pub use figment::Figment as Source;
pub use secret::Secret;

/// Environment variable naming the config file.
pub const CONFIG_FILE_ENV: &str = "EMPORIUM_CONFIG";
/// Prefix of every settings environment variable.
pub const ENV_PREFIX: &str = "EMPORIUM__";

/// Errors while loading settings: which key, which layer, what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid settings: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid settings: {key}: {message}")]
    Key { key: String, message: String },
}

/// Settings shared by every process.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Common {
    /// Base URL of the registry; `None` runs a service without discovery (tests).
    pub registry_url: Option<String>,
    /// Root of the services' data; each service keeps its files in `<data_dir>/<service>/`.
    pub data_dir: PathBuf,
    /// A stable name for this instance; generated when unset.
    pub instance_id: Option<String>,
    /// The host other services reach this instance at, when it listens on a wildcard
    /// address (in a container: its pod IP or DNS name).
    pub advertise_host: Option<String>,
    /// Milliseconds the registry keeps listing this instance without a heartbeat.
    pub registry_ttl_ms: u64,
    /// The database every service uses when its own `database_url` is unset, each in
    /// a schema named after it (`postgres://...`); unset: a SQLite file per service.
    pub database_url: Option<String>,
    pub log: LogSettings,
    pub http: HttpSettings,
    pub events: EventsSettings,
    pub store: StoreSettings,
    pub identity: IdentitySettings,
    /// How this process calls the others (`[client.default]`, `[client.<target>]`).
    pub client: ClientSettings,
    /// Every this many milliseconds (at least 100) the process gives the heap memory
    /// it freed back to the system (glibc's `malloc_trim`); 0 never.
    pub heap_trim_ms: u64,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            registry_url: Some("http://127.0.0.1:7070".into()),
            data_dir: PathBuf::from("./data"),
            instance_id: None,
            advertise_host: None,
            registry_ttl_ms: 6_000,
            database_url: None,
            log: LogSettings::default(),
            http: HttpSettings::default(),
            events: EventsSettings::default(),
            store: StoreSettings::default(),
            identity: IdentitySettings::default(),
            client: ClientSettings::default(),
            heap_trim_ms: 5_000,
        }
    }
}

impl Common {
    /// The data folder of one service.
    pub fn service_dir(&self, service: &str) -> PathBuf {
        self.data_dir.join(service)
    }
}

/// Limits of the HTTP server every service runs (the `[http]` table).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Longest a request may take; a shorter budget from the caller wins.
    pub request_timeout_ms: u64,
    /// The most requests served at once; more are refused with 503 rather than
    /// queued. With `adaptive_concurrency`, the ceiling of the adaptive limit.
    pub concurrency_limit: usize,
    /// Let the limit follow latency (a gradient limit, as Netflix's
    /// concurrency-limits): it shrinks while requests queue and grows back to
    /// `concurrency_limit` when they no longer do.
    pub adaptive_concurrency: bool,
    /// Where the adaptive limit stops while requests queue for less than
    /// `concurrency_burst_ms`: a burst of up to this many requests in flight
    /// per route is served, not shed (short of the ceiling, which every route
    /// shares).
    pub concurrency_floor: usize,
    /// How long requests may queue before the limit goes below
    /// `concurrency_floor`: queueing that stands longer is overload (a dip of
    /// less than a second without queueing does not end it). The
    /// overload is over when for as long no request queued or was refused.
    /// At least 1000 (the longest window the limit measures).
    pub concurrency_burst_ms: u64,
    /// The least the limit goes down to under overload that stands (at most
    /// `concurrency_floor`).
    pub concurrency_min: usize,
    /// How much longer than without load a route's requests may take on
    /// average (besides twice as long) before the limit reads it as queueing.
    pub concurrency_slack_ms: u64,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// How long in-flight requests may finish after shutdown starts.
    pub grace_period_ms: u64,
    /// Take a shorter deadline from the caller's `x-request-timeout-ms`. Off at the
    /// gateway, where callers are the public.
    pub honour_caller_timeout: bool,
    /// Continue the caller's trace (`traceparent`, its sampled flag, `tracestate`).
    /// Off at the gateway: a request from the public starts a new trace, linked to
    /// the caller's, so nobody outside picks trace ids or forces sampling.
    pub honour_caller_trace: bool,
    /// Calls to other services speak HTTP/2 (else HTTP/1.1): it pays where many
    /// calls are in flight at once to the same instances, one connection
    /// carrying them all, and costs more per call where they go one after
    /// another. Unset: the gateway's do, no other service's.
    pub http2_calls: Option<bool>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout_ms: 10_000,
            concurrency_limit: 1024,
            adaptive_concurrency: true,
            concurrency_floor: 64,
            concurrency_burst_ms: 2_000,
            concurrency_min: 8,
            concurrency_slack_ms: 10,
            body_limit_bytes: 64 * 1024,
            grace_period_ms: 5_000,
            honour_caller_timeout: true,
            honour_caller_trace: true,
            http2_calls: None,
        }
    }
}

/// Service identity and mTLS between services (the `[identity]` table).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct IdentitySettings {
    /// `mtls`: every instance gets a short-lived certificate from the platform's
    /// CA and services talk mutual TLS; `off`: plain HTTP and every caller trusted
    /// (for debugging; warned at start).
    pub mode: IdentityMode,
    /// The CA certificate every process trusts (`<data_dir>/identity/ca.pem` when
    /// unset).
    pub trust_anchor: Option<PathBuf>,
    /// The CA's key. A process holding it issues its own certificates: the
    /// registry (which issues everyone else's), tests.
    pub ca_key: Option<PathBuf>,
    /// The operator's bootstrap secret, which join tokens derive from: only the
    /// registry needs it, to check them.
    pub bootstrap_secret: Option<Secret<String>>,
    /// Join tokens by service (`identity.tokens.orders`), shown to the registry
    /// for that service's certificate (`emporium token orders` prints one).
    pub tokens: std::collections::BTreeMap<String, Secret<String>>,
    /// A folder of join tokens, a file per service named after it (a mounted Secret,
    /// compose's identity volume made by `emporium identity init`); `tokens.<service>`
    /// wins.
    pub tokens_dir: Option<PathBuf>,
    /// A file holding the bootstrap secret, when `bootstrap_secret` is unset.
    pub bootstrap_secret_file: Option<PathBuf>,
    /// Lifetime of a workload certificate in seconds; renewed at two thirds.
    pub cert_lifetime_s: u64,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            mode: IdentityMode::Mtls,
            trust_anchor: None,
            ca_key: None,
            bootstrap_secret: None,
            tokens: Default::default(),
            tokens_dir: None,
            bootstrap_secret_file: None,
            cert_lifetime_s: 24 * 3600,
        }
    }
}

impl IdentitySettings {
    /// The join token of `service`: `tokens.<service>`, else its file in
    /// `tokens_dir`; None when neither has one.
    pub fn token(&self, service: &str) -> Result<Option<Secret<String>>, ConfigError> {
        if let Some(token) = self.tokens.get(service) {
            return Ok(Some(token.clone()));
        }
        match &self.tokens_dir {
            Some(dir) => read_secret(&dir.join(service), "identity.tokens_dir"),
            None => Ok(None),
        }
    }

    /// The bootstrap secret: `bootstrap_secret`, else `bootstrap_secret_file`'s.
    pub fn bootstrap_secret(&self) -> Result<Option<Secret<String>>, ConfigError> {
        if let Some(secret) = &self.bootstrap_secret {
            return Ok(Some(secret.clone()));
        }
        match &self.bootstrap_secret_file {
            Some(file) => read_secret(file, "identity.bootstrap_secret_file"),
            None => Ok(None),
        }
    }

    /// The trust anchor's path, given the data folder.
    pub fn trust_anchor_path(&self, data_dir: &Path) -> PathBuf {
        self.trust_anchor
            .clone()
            .unwrap_or_else(|| data_dir.join("identity").join("ca.pem"))
    }
}

/// A secret kept in a file (trimmed); None when the file does not exist.
fn read_secret(path: &Path, key: &str) -> Result<Option<Secret<String>>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(Secret::new(s.trim().to_string()))),
        Ok(_) => Err(ConfigError::Key {
            key: key.into(),
            message: format!("{} is empty", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::Key {
            key: key.into(),
            message: format!("reading {}: {e}", path.display()),
        }),
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    Mtls,
    Off,
}

/// How events are delivered to consumers (the `[events]` table).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// Attempts at handling one event before it is parked as a dead letter.
    pub max_attempts: u32,
    /// First retry delay; it doubles per attempt up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long one feed request waits for new events (long poll).
    pub feed_wait_ms: u64,
    /// Events fetched per feed request.
    pub batch_size: u32,
    /// After applying a page shorter than `batch_size`, how long a feed reader
    /// waits before asking for the next one, so that events arriving meanwhile come
    /// as one page (one request, one transaction) instead of one each under load.
    /// An event arriving while the reader waits idle is still delivered at once.
    pub batch_linger_ms: u64,
    /// NATS JetStream instead of the feed (`nats://127.0.0.1:4222`): an outbox relay
    /// publishes each service's events to its stream; consumers are durable.
    pub nats_url: Option<String>,
    /// How long published events are kept: outbox rows (once relayed, on
    /// JetStream), processed-event ids, and a JetStream stream's messages.
    pub retention_ms: u64,
    /// How often the outbox and processed-event ids are pruned.
    pub prune_every_ms: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base_ms: 100,
            retry_max_ms: 5_000,
            feed_wait_ms: 20_000,
            batch_size: 200,
            batch_linger_ms: 20,
            nats_url: None,
            retention_ms: 7 * 24 * 3_600_000,
            prune_every_ms: 600_000,
        }
    }
}

/// How services write to their databases (the `[store]` table).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// On SQLite, at most this many writes waiting for the file's write slot share
    /// one transaction (group commit), each undone alone if it fails; 1: every
    /// write a transaction of its own. PostgreSQL's writers do not take turns.
    pub write_group_max: usize,
    /// On SQLite, the WAL is checkpointed every this many milliseconds (at least
    /// 10) by a task of its own, and by a writer only past 16 MB; 0: by SQLite,
    /// in the writer whose commit took it past 4 MB.
    pub checkpoint_ms: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            write_group_max: 32,
            checkpoint_ms: 100,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LogSettings {
    /// `auto` (human on a terminal, JSON otherwise), `json` or `pretty`.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `info,emporium_gateway=debug`;
    /// `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

/// Everything one service needs: the common part, where it listens, its own
/// database (if not the shared one), and its own table.
#[derive(Debug, Clone)]
pub struct Settings<S> {
    pub common: Common,
    pub listen: SocketAddr,
    /// `<service>.database_url`: a database of its own; else `common.database_url`,
    /// else a SQLite file in its data folder.
    pub database_url: Option<String>,
    pub service: S,
}

impl<S> Settings<S> {
    /// The database URL this service uses, if not the embedded default.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url
            .as_deref()
            .or(self.common.database_url.as_deref())
    }
}

impl<S: Default> Settings<S> {
    /// Defaults only, for tests: no registry, data in `data_dir`, port 0.
    pub fn for_test(data_dir: &Path) -> Self {
        Self {
            common: Common {
                registry_url: None,
                data_dir: data_dir.to_path_buf(),
                // Tests that want service identity set it up (testkit does).
                identity: IdentitySettings {
                    mode: IdentityMode::Off,
                    ..IdentitySettings::default()
                },
                ..Common::default()
            },
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            service: S::default(),
        }
    }
}

/// Deserializes `value`, naming the full key of whatever is wrong.
fn typed<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." {
            prefix.to_string()
        } else {
            format!("{prefix}.{path}")
        };
        ConfigError::Key {
            key,
            message: e.into_inner().to_string(),
        }
    })
}

/// The layered configuration source: file, then environment.
pub fn figment() -> Figment {
    let file = std::env::var(CONFIG_FILE_ENV).unwrap_or_else(|_| "emporium.toml".into());
    Figment::new()
        .merge(Toml::file(file))
        .merge(Env::prefixed(ENV_PREFIX).split("__"))
}

/// Loads the settings of `service` from the standard layers.
///
/// `default_listen` is where the service listens unless `<service>.listen` says
/// otherwise (port 0 asks the OS for a free port).
pub fn load<S: DeserializeOwned + Default>(
    service: &str,
    default_listen: SocketAddr,
) -> Result<Settings<S>, ConfigError> {
    from_figment(&figment(), service, default_listen)
}

/// Extracts the settings of `service` from an already layered source.
pub fn from_figment<S: DeserializeOwned + Default>(
    figment: &Figment,
    service: &str,
    default_listen: SocketAddr,
) -> Result<Settings<S>, ConfigError> {
    let common: Common = figment.extract().map_err(Box::new)?;
    // `listen` and `database_url` sit in the service's table but belong to the
    // host, not to `S`, so they are taken out before `S` (which may deny unknown
    // keys) sees the table.
    let (listen, database_url, service) = match figment.find_value(service) {
        Ok(_) => {
            let mut table: Dict = figment.extract_inner(service).map_err(Box::new)?;
            let listen = table
                .remove("listen")
                .map(|v| typed::<SocketAddr>(&v, &format!("{service}.listen")))
                .transpose()?;
            let database_url = table
                .remove("database_url")
                .map(|v| typed::<String>(&v, &format!("{service}.database_url")))
                .transpose()?;
            let service_settings = typed::<S>(&Value::from(table), service)?;
            (listen, database_url, service_settings)
        }
        Err(_) => (None, None, S::default()),
    };
    Ok(Settings {
        common,
        listen: listen.unwrap_or(default_listen),
        database_url,
        service,
    })
}

#[cfg(test)]
// figment's Jail closures return figment::Error by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        page_size: u32,
        password: Secret<String>,
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn layers_defaults_then_file_then_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "emporium.toml",
                r#"
                data_dir = "/srv/emporium"
                [demo]
                page_size = 20
                listen = "127.0.0.1:9000"
                database_url = "postgres://demo@db/shop"
                password = "from-file"
                "#,
            )?;
            jail.set_env("EMPORIUM__DEMO__PAGE_SIZE", "50");
            jail.set_env("EMPORIUM__LOG__LEVEL", "debug");
            let s: Settings<Demo> = load("demo", addr()).map_err(|e| e.to_string())?;
            assert_eq!(s.common.data_dir, PathBuf::from("/srv/emporium"));
            assert_eq!(s.common.log.level, "debug");
            assert_eq!(s.service.page_size, 50, "env wins over the file");
            assert_eq!(s.listen, "127.0.0.1:9000".parse().map_err(|_| "addr")?);
            assert_eq!(s.service.password.expose(), "from-file");
            assert_eq!(s.database_url(), Some("postgres://demo@db/shop"));
            Ok(())
        });
    }

    #[test]
    fn missing_table_gives_defaults() {
        figment::Jail::expect_with(|_| {
            let s: Settings<Demo> = load("demo", addr()).map_err(|e| e.to_string())?;
            assert_eq!(s.service, Demo::default());
            assert_eq!(s.listen, addr());
            assert_eq!(s.common, Common::default());
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("EMPORIUM__DEMO__PAGE_SIZE", "many");
            let err = load::<Demo>("demo", addr()).expect_err("must fail");
            assert!(err.to_string().contains("page_size"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_a_service_table_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("EMPORIUM__DEMO__PAGE_SISE", "5");
            let err = load::<Demo>("demo", addr()).expect_err("typo must fail");
            assert!(err.to_string().contains("page_sise"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn tokens_and_the_bootstrap_secret_come_from_files_when_not_set() {
        figment::Jail::expect_with(|jail| {
            let dir = jail.directory().to_path_buf();
            std::fs::create_dir_all(dir.join("tokens")).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("tokens/orders"), "orders-token\n")
                .map_err(|e| e.to_string())?;
            std::fs::write(dir.join("secret"), "s3cret\n").map_err(|e| e.to_string())?;
            let mut identity = IdentitySettings {
                tokens_dir: Some(dir.join("tokens")),
                bootstrap_secret_file: Some(dir.join("secret")),
                ..IdentitySettings::default()
            };
            let token = identity.token("orders").map_err(|e| e.to_string())?;
            assert_eq!(
                token.map(|t| t.expose().clone()),
                Some("orders-token".into())
            );
            assert!(identity.token("cart").map_err(|e| e.to_string())?.is_none());
            let secret = identity.bootstrap_secret().map_err(|e| e.to_string())?;
            assert_eq!(secret.map(|s| s.expose().clone()), Some("s3cret".into()));
            // Set explicitly, the value wins over the file.
            identity
                .tokens
                .insert("orders".into(), Secret::new("inline".into()));
            let token = identity.token("orders").map_err(|e| e.to_string())?;
            assert_eq!(token.map(|t| t.expose().clone()), Some("inline".into()));
            // An empty file is an error, not a missing token.
            std::fs::write(dir.join("tokens/cart"), "").map_err(|e| e.to_string())?;
            assert!(identity.token("cart").is_err());
            Ok(())
        });
    }
}
