//! A client for the registry's internal API.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use emporium_contracts::registry::{
    BASE, ConfigEntry, ConfigSnapshot, ConfigValue, Heartbeat, Registration, Snapshot, USAGE,
    UsageExchange, UsageReport,
};
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::http_client::Clients;

const SERVICE: &str = "registry";
/// Deadline of an ordinary registry call (a long poll adds its wait).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the registry still knew the instance that sent a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    Known,
    /// The registry forgot the instance (it restarted, or the TTL lapsed): register again.
    Unknown,
}

/// Talks to one registry at a fixed address, as the principal `clients` present.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    clients: Clients,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// The registry at `url` (`host:port`, or a URL whose scheme is replaced by
    /// the one `clients` speak: https with identity on, else http), called as
    /// `clients`' principal over HTTP/1.1 whatever version `clients` speak to
    /// services: heartbeats and long polls, a few calls a second, gain nothing
    /// from sharing a connection.
    pub fn new(url: &str, clients: Clients) -> Self {
        let clients = clients.speaking(crate::Version::Http1);
        Self {
            base: format!("{}://{}", clients.scheme(), authority(url)),
            clients,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The principal's clients this registry client calls with.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    pub async fn register(&self, registration: &Registration) -> Result<(), ClientError> {
        let path = format!("{BASE}/instances/{}", registration.instance_id);
        self.call::<serde_json::Value>(Method::PUT, &path, Some(registration), CALL_TIMEOUT)
            .await
            .map(|_| ())
    }

    pub async fn heartbeat(
        &self,
        instance_id: &str,
        heartbeat: Heartbeat,
    ) -> Result<HeartbeatOutcome, ClientError> {
        let path = format!("{BASE}/instances/{instance_id}/heartbeat");
        match self
            .call::<serde_json::Value>(Method::PUT, &path, Some(&heartbeat), CALL_TIMEOUT)
            .await
        {
            Ok(_) => Ok(HeartbeatOutcome::Known),
            Err(ClientError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(HeartbeatOutcome::Unknown),
            Err(e) => Err(e),
        }
    }

    pub async fn deregister(&self, instance_id: &str) -> Result<(), ClientError> {
        let path = format!("{BASE}/instances/{instance_id}");
        match self
            .call::<serde_json::Value>(Method::DELETE, &path, None::<&()>, CALL_TIMEOUT)
            .await
        {
            Ok(_)
            | Err(ClientError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The healthy instances of `service`. With `after`, waits up to `wait` for a
    /// change past that (epoch, index) before answering (long poll).
    pub async fn resolve(
        &self,
        service: &str,
        after: Option<(&str, u64)>,
        wait: Duration,
    ) -> Result<Snapshot, ClientError> {
        let path = format!("{BASE}/services/{service}{}", watch_query(after, wait));
        self.call(Method::GET, &path, None::<&()>, CALL_TIMEOUT + wait)
            .await
    }

    /// Every instance the registry knows, healthy or not.
    pub async fn instances(&self) -> Result<Snapshot, ClientError> {
        let path = format!("{BASE}/instances");
        self.call(Method::GET, &path, None::<&()>, CALL_TIMEOUT)
            .await
    }

    pub async fn config_get(&self, key: &str) -> Result<Option<ConfigEntry>, ClientError> {
        let path = format!("{BASE}/config/{key}");
        match self
            .call(Method::GET, &path, None::<&()>, CALL_TIMEOUT)
            .await
        {
            Ok(entry) => Ok(Some(entry)),
            Err(ClientError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn config_put(&self, key: &str, value: &str) -> Result<ConfigEntry, ClientError> {
        let path = format!("{BASE}/config/{key}");
        let body = ConfigValue {
            value: value.to_string(),
        };
        self.call(Method::PUT, &path, Some(&body), CALL_TIMEOUT)
            .await
    }

    /// Deletes a config key; `false` when it was not set.
    pub async fn config_delete(&self, key: &str) -> Result<bool, ClientError> {
        let path = format!("{BASE}/config/{key}");
        match self
            .call::<()>(Method::DELETE, &path, None::<&()>, CALL_TIMEOUT)
            .await
        {
            Ok(()) => Ok(true),
            Err(ClientError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The config entries under `prefix`; with `after`, a long poll as in [`Self::resolve`].
    pub async fn config_list(
        &self,
        prefix: &str,
        after: Option<(&str, u64)>,
        wait: Duration,
    ) -> Result<ConfigSnapshot, ClientError> {
        let mut query = watch_query(after, wait);
        query.push_str(if query.is_empty() { "?" } else { "&" });
        query.push_str("prefix=");
        query.push_str(prefix);
        let path = format!("{BASE}/config{query}");
        self.call(Method::GET, &path, None::<&()>, CALL_TIMEOUT + wait)
            .await
    }

    /// Reports what this instance's rate limits admitted and gets what the
    /// service's other instances reported (shared quotas).
    pub async fn exchange_usage(&self, report: &UsageReport) -> Result<UsageExchange, ClientError> {
        self.call(Method::POST, USAGE, Some(report), CALL_TIMEOUT)
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Body::from(serde_json::to_vec(b).map_err(|e| decode(e.into()))?),
            None => Body::empty(),
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| decode(e.into()))?;
        let http = self.clients.to(SERVICE)?;
        let response = tokio::time::timeout(timeout, http.request(request))
            .await
            .map_err(|_| ClientError::Timeout(SERVICE.into()))?
            .map_err(|e| ClientError::Unreachable {
                service: SERVICE.into(),
                source: e.into(),
            })?;
        let status = response.status();
        let bytes: Bytes = tokio::time::timeout(timeout, response.into_body().collect())
            .await
            .map_err(|_| ClientError::Timeout(SERVICE.into()))?
            .map_err(|e| ClientError::Transport {
                service: SERVICE.into(),
                source: e.into(),
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(ClientError::Status {
                service: SERVICE.into(),
                status,
                problem: serde_json::from_slice(&bytes).ok().map(Box::new),
            });
        }
        // 204 No Content (a delete) decodes as JSON null.
        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(body).map_err(|e| decode(e.into()))
    }
}

/// `host:port` of a registry URL, without scheme or trailing slash.
pub(crate) fn authority(url: &str) -> &str {
    let url = url.split_once("://").map_or(url, |(_, rest)| rest);
    url.trim_end_matches('/')
}

fn watch_query(after: Option<(&str, u64)>, wait: Duration) -> String {
    match after {
        Some((epoch, index)) => {
            format!("?epoch={epoch}&index={index}&wait_ms={}", wait.as_millis())
        }
        None => String::new(),
    }
}

fn decode(source: Box<dyn std::error::Error + Send + Sync>) -> ClientError {
    ClientError::Decode {
        service: SERVICE.into(),
        source,
    }
}
