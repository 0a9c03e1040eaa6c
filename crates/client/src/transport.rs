//! How a request reaches a service: over the network, or to a router in-process.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response, Uri};
use tower::ServiceExt;

use crate::discovery::Discovery;
use crate::error::ClientError;
use emporium_identity::{Peer, Principal};

use crate::http_client::Clients;

/// Sends a request to some instance of a named service.
///
/// Requests are buffered (`Bytes`) so a transport may retry a request that never
/// reached an instance; responses stream. The request's URI is path and query only:
/// the transport picks the instance.
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        service: &str,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Body>, ClientError>>;
}

/// Over HTTP (mutual TLS unless identity is off) to instances found by
/// [`Discovery`].
///
/// A connection refused by one instance is retried on the next (the request did not
/// reach it, so this is safe for any method) and that instance is tried last for a
/// few seconds. Nothing else is retried here.
#[derive(Clone)]
pub struct HttpTransport {
    discovery: Arc<Discovery>,
    clients: Clients,
}

impl HttpTransport {
    pub fn new(discovery: Arc<Discovery>, clients: Clients) -> Self {
        Self { discovery, clients }
    }
}

impl Transport for HttpTransport {
    fn send(
        &self,
        service: &str,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Body>, ClientError>> {
        let this = self.clone();
        let service = service.to_string();
        Box::pin(async move {
            let candidates = this.discovery.candidates(&service).await?;
            let http = this.clients.to(&service)?;
            let scheme = this.clients.scheme();
            let (parts, body) = request.into_parts();
            let path = path_of(&parts.uri);
            let mut last_error = None;
            let attempts = candidates.len().min(3);
            let mut parts = Some(parts);
            for (i, address) in candidates.iter().take(attempts).enumerate() {
                let uri = at(&service, scheme, address, &path)?;
                // The last attempt takes the request's parts; earlier ones copy them.
                let mut head = if i + 1 == attempts {
                    parts.take()
                } else {
                    parts.as_ref().map(|p| {
                        let mut copy = Request::new(()).into_parts().0;
                        copy.method = p.method.clone();
                        copy.headers = p.headers.clone();
                        copy
                    })
                }
                .ok_or_else(|| ClientError::NoInstances(service.clone()))?;
                head.uri = uri;
                let req = Request::from_parts(head, Body::from(body.clone()));
                match http.request(req).await {
                    Ok(response) => return Ok(response.map(Body::new)),
                    Err(e) if e.is_connect() => {
                        tracing::debug!(%service, %address, error = %e, "instance refused; trying the next");
                        this.discovery.report_failure(&service, address);
                        last_error = Some(e);
                    }
                    Err(e) => {
                        return Err(ClientError::Transport {
                            service,
                            source: e.into(),
                        });
                    }
                }
            }
            Err(match last_error {
                Some(e) => ClientError::Unreachable {
                    service,
                    source: e.into(),
                },
                None => ClientError::NoInstances(service),
            })
        })
    }
}

/// A request's path and query, `/` when it has none.
fn path_of(uri: &Uri) -> String {
    uri.path_and_query().map_or("/", |p| p.as_str()).to_string()
}

/// `path` at the instance listening on `address`.
fn at(service: &str, scheme: &str, address: &str, path: &str) -> Result<Uri, ClientError> {
    format!("{scheme}://{address}{path}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| ClientError::Decode {
            service: service.to_string(),
            source: e.into(),
        })
}

/// To one instance at a known address, whatever the service name: for operating
/// on each instance in turn (its own status, its own dead letters).
#[derive(Clone)]
pub struct Direct {
    address: String,
    clients: Clients,
}

impl Direct {
    /// To `address` through `clients` (share them: they hold the connection pools).
    pub fn new(address: &str, clients: Clients) -> Self {
        Self {
            address: address.to_string(),
            clients,
        }
    }
}

impl Transport for Direct {
    fn send(
        &self,
        service: &str,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Body>, ClientError>> {
        let this = self.clone();
        let service = service.to_string();
        Box::pin(async move {
            let (mut head, body) = request.into_parts();
            let scheme = this.clients.scheme();
            head.uri = at(&service, scheme, &this.address, &path_of(&head.uri))?;
            match this
                .clients
                .to(&service)?
                .request(Request::from_parts(head, Body::from(body)))
                .await
            {
                Ok(response) => Ok(response.map(Body::new)),
                Err(e) if e.is_connect() => Err(ClientError::Unreachable {
                    service,
                    source: e.into(),
                }),
                Err(e) => Err(ClientError::Transport {
                    service,
                    source: e.into(),
                }),
            }
        })
    }
}

/// To routers in this process, by service name: no sockets, no registry.
#[derive(Clone, Default)]
pub struct LocalTransport {
    routers: HashMap<String, Router>,
}

impl LocalTransport {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, service: &str, router: Router) -> Self {
        self.routers.insert(service.to_string(), router);
        self
    }
}

impl Transport for LocalTransport {
    fn send(
        &self,
        service: &str,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Body>, ClientError>> {
        let router = self.routers.get(service).cloned();
        let service = service.to_string();
        // As the service whose work this is; outside any, a test's own call,
        // trusted (these routers are the test's, with no guard in front).
        let peer = match emporium_telemetry::identity::current() {
            Some(identity) => Peer::Verified(Principal::service(&identity.service)),
            None => Peer::Trusted,
        };
        Box::pin(async move {
            let router = router.ok_or_else(|| ClientError::NoInstances(service.clone()))?;
            call_router(router, service, Some(peer), request).await
        })
    }
}

/// Hands `request` to `router`, as if it had arrived over the network from
/// `peer` (proven by the process hosting both: no certificate to show).
async fn call_router(
    router: Router,
    service: String,
    peer: Option<Peer>,
    mut request: Request<Bytes>,
) -> Result<Response<Body>, ClientError> {
    if let Some(peer) = peer {
        request.extensions_mut().insert(peer);
    }
    router
        .oneshot(request.map(Body::from))
        .await
        .map_err(|e| ClientError::Transport {
            service,
            source: Box::new(e),
        })
}

/// To the services hosted in this process, straight into their routers (no
/// sockets, no registry); to every other service over HTTP.
///
/// The names hosted here are fixed when it is made; each one's router is
/// [mounted](InProcess::mount) once that service serves, and a call that comes
/// earlier waits for it (at most [`MOUNT_WAIT`]). Once the service stops
/// ([`InProcess::unmount`]) calls to it fail at once, as a closed port would.
#[derive(Clone)]
pub struct InProcess {
    local: Arc<HashMap<String, tokio::sync::watch::Sender<Slot>>>,
    /// Where calls to the other services go; none until [`InProcess::as_caller`].
    remote: Option<HttpTransport>,
    /// The service whose calls these are.
    caller: Option<String>,
}

/// How long a call waits for a co-hosted service that is still starting.
pub const MOUNT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A co-hosted service's router, by its state.
#[derive(Clone)]
enum Slot {
    Starting,
    Serving(Router),
    Stopped,
}

impl InProcess {
    pub fn new<'a>(hosted: impl IntoIterator<Item = &'a str>) -> Self {
        let local = hosted
            .into_iter()
            .map(|name| {
                (
                    name.to_string(),
                    tokio::sync::watch::Sender::new(Slot::Starting),
                )
            })
            .collect();
        Self {
            local: Arc::new(local),
            remote: None,
            caller: None,
        }
    }

    /// The same co-hosted services, called as `caller`, and the rest over
    /// `remote` (which presents `caller`'s certificate).
    pub fn as_caller(&self, caller: &str, remote: HttpTransport) -> Self {
        Self {
            local: self.local.clone(),
            remote: Some(remote),
            caller: Some(caller.to_string()),
        }
    }

    /// Serves calls to `service` with `router` (the service's whole app, chassis
    /// middleware included) from now on.
    pub fn mount(&self, service: &str, router: Router) {
        if let Some(slot) = self.local.get(service) {
            slot.send_replace(Slot::Serving(router));
        }
    }

    /// Refuses calls to `service` from now on (it is shutting down).
    pub fn unmount(&self, service: &str) {
        if let Some(slot) = self.local.get(service) {
            slot.send_replace(Slot::Stopped);
        }
    }

    /// Whether `service` is hosted in this process.
    pub fn hosts(&self, service: &str) -> bool {
        self.local.contains_key(service)
    }
}

impl Transport for InProcess {
    fn send(
        &self,
        service: &str,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Body>, ClientError>> {
        let Some(slot) = self.local.get(service) else {
            return match &self.remote {
                Some(remote) => remote.send(service, request),
                None => {
                    let service = service.to_string();
                    Box::pin(async move { Err(ClientError::NoInstances(service)) })
                }
            };
        };
        let now = slot.borrow().clone();
        let mut waiting = slot.subscribe();
        let service = service.to_string();
        let peer = self
            .caller
            .as_deref()
            .map(|caller| Peer::Verified(Principal::service(caller)));
        Box::pin(async move {
            let settled = match now {
                Slot::Starting => {
                    let ready = waiting.wait_for(|s| !matches!(s, Slot::Starting));
                    match tokio::time::timeout(MOUNT_WAIT, ready).await {
                        Ok(Ok(slot)) => slot.clone(),
                        _ => Slot::Stopped,
                    }
                }
                other => other,
            };
            let Slot::Serving(router) = settled else {
                return Err(ClientError::NoInstances(service));
            };
            call_router(router, service, peer, request).await
        })
    }
}
