//! Service identity in tests: one CA per test binary, written into each
//! [`crate::TestEnv`]'s data folder (so every service it spawns issues its own
//! certificate from it), and HTTP clients presenting the operator's certificate
//! or a named service's.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use emporium_identity::{Ca, CaFiles, Credentials, Principal};

static CA: LazyLock<Ca> = LazyLock::new(|| Ca::generate().expect("a test CA"));

/// The test binary's CA.
pub fn ca() -> &'static Ca {
    &CA
}

/// Writes the CA into `<data_dir>/identity/`, where services find their trust
/// anchor; the key's path, for `identity.ca_key`.
pub fn install(data_dir: &Path) -> std::path::PathBuf {
    let files = CaFiles::in_dir(&data_dir.join("identity"));
    std::fs::create_dir_all(data_dir.join("identity")).expect("identity folder");
    std::fs::write(&files.cert, CA.cert_pem()).expect("write the CA certificate");
    emporium_identity::write_private(&files.key, &CA.key_pem()).expect("write the CA key");
    files.key
}

static OPERATOR: LazyLock<Arc<Credentials>> = LazyLock::new(|| credentials(Principal::Operator));

/// Fresh credentials for `principal` from the test CA.
pub fn credentials(principal: Principal) -> Arc<Credentials> {
    Arc::new(
        CA.mint(principal, Duration::from_secs(24 * 3600))
            .expect("test credentials"),
    )
}

/// A client presenting `credentials` to whichever service answers (the test
/// dials addresses, not names).
pub fn client_with(credentials: &Arc<Credentials>) -> reqwest::Client {
    builder_with(credentials).build().expect("http client")
}

/// [`client_with`], to build on (cookies, redirects).
pub fn builder_with(credentials: &Arc<Credentials>) -> reqwest::ClientBuilder {
    let tls = credentials
        .any_service_client_config()
        .expect("client TLS config");
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(20))
}

/// [`client_as`], to build on (cookies, redirects).
pub fn builder_as(name: &str) -> reqwest::ClientBuilder {
    builder_with(&credentials(Principal::service(name)))
}

/// A client calling as the operator (allowed everywhere, as the CLI is).
pub fn operator() -> reqwest::Client {
    client_with(&OPERATOR)
}

/// A client calling as the service `name`.
pub fn client_as(name: &str) -> reqwest::Client {
    client_with(&credentials(Principal::service(name)))
}

/// The operator's clients for Emporium's own client types (a `RegistryClient`).
pub fn operator_clients() -> emporium_client::Clients {
    emporium_client::Clients::mtls(OPERATOR.clone())
}

/// A service's clients, for calling as `name` with Emporium's own client types.
pub fn clients_as(name: &str) -> emporium_client::Clients {
    emporium_client::Clients::mtls(credentials(Principal::service(name)))
}

/// Credentials naming `principal` signed by another CA (trusting ours, so the
/// handshake gets as far as our server's check).
pub fn foreign(principal: Principal) -> Arc<Credentials> {
    let stranger = Ca::generate().expect("another CA");
    let key = emporium_identity::new_key().expect("key");
    let cert = stranger
        .issue(&principal, &key, Duration::from_secs(3600))
        .expect("cert");
    Arc::new(
        Credentials::new(principal, CA.cert_pem(), &cert, &key.serialize_pem())
            .expect("credentials"),
    )
}

/// Credentials for `principal` from our CA that expired yesterday.
pub fn expired(principal: Principal) -> Arc<Credentials> {
    let key = emporium_identity::new_key().expect("key");
    let now = time::OffsetDateTime::now_utc();
    let cert = CA
        .issue_between(
            &principal,
            &key,
            now - time::Duration::days(2),
            now - time::Duration::days(1),
        )
        .expect("cert");
    Arc::new(
        Credentials::new(principal, CA.cert_pem(), &cert, &key.serialize_pem())
            .expect("credentials"),
    )
}

/// A TLS client that shows no certificate (and checks none).
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// A plain HTTP client.
pub fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}
