//! The public edge over TLS: the certificate the public sees (files, reloaded
//! when they change), HSTS on the routes' answers over TLS (the rate limit's 429s
//! get it where the limit is set up, in the gateway's `build`: it runs before
//! this layer), and plain HTTP redirected to HTTPS on the same port (health
//! probes excepted).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_identity::{Peer, Remote};
use http::{HeaderValue, StatusCode, header};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

/// How often the certificate files are checked for a change.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// `[gateway.tls]`: serve the public over TLS.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EdgeTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// `Strict-Transport-Security: max-age` in seconds (a year unless set; 0 sends
    /// none).
    #[serde(default = "a_year")]
    pub hsts_max_age_s: u64,
}

fn a_year() -> u64 {
    365 * 24 * 3600
}

/// The current certificate, reloaded from its files when they change.
#[derive(Debug)]
pub struct Reloading {
    files: EdgeTls,
    current: ArcSwap<CertifiedKey>,
    stamp: std::sync::Mutex<Option<(SystemTime, SystemTime)>>,
}

impl Reloading {
    /// Loads the files now (an error stops the gateway from starting).
    pub fn load(files: &EdgeTls) -> anyhow::Result<Arc<Self>> {
        let key = read(files)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            current: ArcSwap::from_pointee(key),
            stamp: std::sync::Mutex::new(stamp(files)),
        }))
    }

    /// A server config presenting the current certificate (TLS 1.2 and 1.3).
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(emporium_identity::provider())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads if the files changed since the last look; a bad pair is logged
    /// and the current certificate kept.
    fn refresh(&self) {
        let now = stamp(&self.files);
        let Ok(mut last) = self.stamp.lock() else {
            return;
        };
        if now == *last {
            return;
        }
        match read(&self.files) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                *last = now;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                // Often a half-written pair: the next look may find it whole.
                tracing::warn!(
                    error = format!("{e:#}"),
                    "TLS certificate files changed but do not load; keeping the current one"
                );
            }
        }
    }

    /// Looks at the files every second until `stop`.
    pub async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELOAD_EVERY) => self.refresh(),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn stamp(files: &EdgeTls) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&files.cert)?, m(&files.key)?))
}

fn read(files: &EdgeTls) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", files.cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate",
        files.cert.display()
    );
    let key = std::fs::read_to_string(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    emporium_identity::certified_key(chain, &key)
}

/// Whether `req` arrived over TLS.
pub fn over_tls(req: &Request) -> bool {
    req.extensions()
        .get::<ConnectInfo<Remote>>()
        .is_some_and(|ConnectInfo(r)| matches!(r.peer, Peer::Anonymous | Peer::Verified(_)))
}

/// With edge TLS: plain HTTP is redirected to HTTPS (308, same host, port and
/// path; probes stay plain) and answers over TLS carry HSTS.
pub async fn https_only(
    State(hsts): State<Option<HeaderValue>>,
    req: Request,
    next: Next,
) -> Response {
    if !over_tls(&req) {
        // An HTTP/2 client names the host in the URI, not in a header.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default();
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        return match HeaderValue::from_str(&format!("https://{host}{path}")) {
            Ok(location) if !host.is_empty() => (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response(),
            _ => emporium_http::ApiError::bad_request("use HTTPS").into_response(),
        };
    }
    let mut response = next.run(req).await;
    if let Some(hsts) = hsts {
        response
            .headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    response
}
