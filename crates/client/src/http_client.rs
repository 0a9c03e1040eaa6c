//! The HTTP/1.1 clients every Emporium process uses: pooled keep-alive
//! connections, no Nagle delay, a short connect timeout; plain HTTP, or mutual
//! TLS as this process's principal with one pool per service called.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use emporium_identity::Credentials;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::ClientError;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// A new pooled client for plain `http://` URLs (probes, identity off).
pub fn http_client() -> HttpClient {
    // Never used for TLS: no roots, so an https:// URL would fail to verify.
    let config = rustls::ClientConfig::builder_with_provider(emporium_identity::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("aws-lc-rs supports TLS 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp());
    pooled(connector)
}

/// A pooled client over TLS with `config`, checking that the server is `name`.
pub fn tls_client(config: rustls::ClientConfig, name: &str) -> anyhow::Result<HttpClient> {
    let name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|_| anyhow::anyhow!("{name} is not a valid server name"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        .enable_http1()
        .wrap_connector(tcp());
    Ok(pooled(connector))
}

fn tcp() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    // The TLS layer above takes https:// URIs.
    connector.enforce_http(false);
    connector
}

fn pooled(connector: HttpsConnector<HttpConnector>) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// How one principal's calls leave the process: plain HTTP when identity is off,
/// else mutual TLS presenting its credentials, with a connection pool per
/// service called (a pooled connection is bound to the identity it proved).
#[derive(Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

enum Inner {
    Plain(HttpClient),
    Mtls {
        credentials: Arc<Credentials>,
        pools: RwLock<HashMap<String, HttpClient>>,
    },
}

impl Clients {
    /// Plain HTTP: service identity is off.
    pub fn plain() -> Self {
        Self {
            inner: Arc::new(Inner::Plain(http_client())),
        }
    }

    /// Mutual TLS as `credentials`' principal.
    pub fn mtls(credentials: Arc<Credentials>) -> Self {
        Self {
            inner: Arc::new(Inner::Mtls {
                credentials,
                pools: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The scheme of URIs this principal's calls take.
    pub fn scheme(&self) -> &'static str {
        match *self.inner {
            Inner::Plain(_) => "http",
            Inner::Mtls { .. } => "https",
        }
    }

    /// The client for calls to `service`.
    pub fn to(&self, service: &str) -> Result<HttpClient, ClientError> {
        let (credentials, pools) = match &*self.inner {
            Inner::Plain(client) => return Ok(client.clone()),
            Inner::Mtls { credentials, pools } => (credentials, pools),
        };
        if let Ok(clients) = pools.read()
            && let Some(client) = clients.get(service)
        {
            return Ok(client.clone());
        }
        let client = credentials
            .client_config()
            .and_then(|config| tls_client(config, &emporium_identity::server_name(service)))
            .map_err(|e| ClientError::Transport {
                service: service.to_string(),
                source: e.into(),
            })?;
        if let Ok(mut clients) = pools.write() {
            clients
                .entry(service.to_string())
                .or_insert_with(|| client.clone());
        }
        Ok(client)
    }
}
