//! The CLI as the operator: the registry to ask, and a short-lived operator
//! certificate minted from the CA that `emporium up` keeps in the shop's data
//! folder (`identity/ca.pem`, `identity/ca.key`). A shop started with identity
//! off has no CA there; the CLI then speaks plain HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use emporium_client::{Clients, RegistryClient};
use emporium_identity::{Ca, CaFiles, Principal};

/// How long the CLI's own certificate lives.
const LIFETIME: Duration = Duration::from_secs(3600);

/// The registry of the running shop (or `registry`), called as the operator.
pub fn registry(
    registry: Option<String>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<RegistryClient> {
    let url = crate::status::registry_url(registry, data_dir.clone())?;
    // A shop with identity off records an http:// registry.
    let clients = if url.starts_with("http://") {
        Clients::plain()
    } else {
        clients(data_dir)?
    };
    Ok(RegistryClient::new(&url, clients))
}

/// The operator's clients: mTLS with a certificate from the shop's CA when
/// there is one, else plain HTTP.
pub fn clients(data_dir: Option<PathBuf>) -> anyhow::Result<Clients> {
    let dir = crate::running::data_dir(data_dir).join("identity");
    let files = CaFiles::in_dir(&dir);
    if !files.key.exists() {
        return Ok(Clients::plain());
    }
    let ca = Ca::load(&files)?;
    Ok(Clients::mtls(Arc::new(
        ca.mint(Principal::Operator, LIFETIME)?,
    )))
}

/// What `emporium up` hands its processes for service identity.
pub struct Prepared {
    /// The CA certificate: the trust anchor of every process.
    pub ca_cert: PathBuf,
    /// The CA key, for the registry alone.
    pub ca_key: PathBuf,
    /// The bootstrap secret, for the registry alone; the others get join tokens
    /// derived from it.
    pub secret: String,
}

impl Prepared {
    /// The environment of a process hosting `services`: the CA key and the
    /// secret for the registry, each service's join token for the others.
    pub fn env_for(&self, services: &[&str]) -> Vec<(String, String)> {
        if services.contains(&"registry") {
            return vec![
                (
                    "EMPORIUM__IDENTITY__CA_KEY".into(),
                    self.ca_key.display().to_string(),
                ),
                (
                    "EMPORIUM__IDENTITY__BOOTSTRAP_SECRET".into(),
                    self.secret.clone(),
                ),
            ];
        }
        services
            .iter()
            .map(|s| {
                (
                    format!("EMPORIUM__IDENTITY__TOKENS__{}", s.to_uppercase()),
                    self.token(s),
                )
            })
            .collect()
    }

    /// The join token of `service`, derived from the bootstrap secret.
    pub fn token(&self, service: &str) -> String {
        emporium_identity::token::join_token(&self.secret, service)
    }
}

/// The CA and the bootstrap secret in `<data_dir>/identity/`, made on first use.
pub fn prepare(data_dir: &std::path::Path) -> anyhow::Result<Prepared> {
    prepare_in(&data_dir.join("identity"))
}

/// The CA (`ca.pem`, `ca.key`) and the bootstrap secret in `dir`, made on first use.
pub fn prepare_in(dir: &std::path::Path) -> anyhow::Result<Prepared> {
    use anyhow::Context as _;
    let files = CaFiles::in_dir(dir);
    Ca::load_or_create(&files)?;
    let secret_file = dir.join("bootstrap.secret");
    let secret = match std::fs::read_to_string(&secret_file) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            let secret = emporium_identity::token::new_secret()?;
            emporium_identity::write_private(&secret_file, &secret)
                .with_context(|| format!("writing {}", secret_file.display()))?;
            secret
        }
    };
    Ok(Prepared {
        ca_cert: files.cert,
        ca_key: files.key,
        secret,
    })
}

/// The join token of `service`, from the bootstrap secret in the data folder.
pub fn join_token(service: &str, data_dir: Option<PathBuf>) -> anyhow::Result<String> {
    use anyhow::Context as _;
    anyhow::ensure!(
        emporium_identity::names::valid_service_name(service),
        "{service:?} is not a service name"
    );
    let file = crate::running::data_dir(data_dir)
        .join("identity")
        .join("bootstrap.secret");
    let secret = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {} (has `emporium up` run here?)", file.display()))?;
    Ok(emporium_identity::token::join_token(secret.trim(), service))
}
