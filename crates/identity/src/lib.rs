//! Service identity: every workload proves who it is with a short-lived X.509
//! certificate from the platform's CA, and every connection between services is
//! mutual TLS.
//!
//! - [`names`]: SPIFFE-style ids (`spiffe://emporium.local/service/orders`) and the
//!   DNS name in each certificate that callers verify;
//! - [`Ca`]: the CA the registry runs (and tests, and the CLI acting as operator),
//!   which signs certificates;
//! - [`token`]: per-service join tokens derived from the operator's bootstrap
//!   secret, which an instance shows the registry to get its certificate;
//! - [`Credentials`]: a principal's current certificate and key, renewed in
//!   place, and the rustls configs presenting them;
//! - [`Listener`]: one port serving mTLS and plain HTTP, telling each
//!   request's [`Peer`].

mod ca;
mod credentials;
mod listener;
pub mod names;
pub mod token;

use std::path::Path;

use anyhow::Context as _;

pub use ca::{Ca, CaFiles, new_key, public_key_der};
pub use credentials::{
    Credentials, bootstrap_client_config, certified_key, principal_of, provider, server_name,
};
pub use listener::{Conn, Listener, Peer, Remote};
pub use names::{Principal, TRUST_DOMAIN};
pub use rcgen::KeyPair;

/// Writes `contents` to a new file at `path` readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
