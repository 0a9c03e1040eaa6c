//! Who may call what, decided before any handler runs.
//!
//! Every request is tagged with its [`Peer`]: the principal its connection's
//! client certificate names (see `emporium_identity::Listener`), or the calling
//! service when the runtime hands a request from one co-hosted service to
//! another. The rules, the same in every service:
//!
//! - health probes, `/metrics` and the paths a service opens (the registry's
//!   Prometheus discovery) answer anyone, plain HTTP included;
//! - everything else needs a verified peer — a service or the operator — unless
//!   the service is public (the gateway: the public reaches its routes over plain
//!   HTTP or the gateway's own TLS) or the path is one the service opens to anonymous TLS (the
//!   registry's certificate endpoint);
//! - identity headers (`x-user-id`, `x-user-roles`, `x-client-ip`) are accepted only from the
//!   gateway, the storefront and the operator; from anyone else the request is
//!   refused, not stripped, so a forgery is seen;
//! - routes narrow this further with [`Callers::callers`], declared next to the
//!   routes: "only orders may reserve stock".
//!
//! Each refusal is logged once, with the peer and the path.

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_identity::{Peer, Remote};

use crate::problem::ApiError;

/// The services whose identity headers are believed.
pub const USER_ASSERTING: &[&str] = &["gateway", "storefront"];

/// A service's place in the rules above.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Off: identity is turned off (plain HTTP between services); every caller
    /// is trusted, as before mTLS.
    pub enforce: bool,
    /// Plain HTTP reaches every route (the public edge).
    pub public: bool,
    /// Paths a caller without a certificate may reach over TLS.
    pub anonymous: &'static [&'static str],
    /// Paths anyone may reach, plain HTTP included (beside the probes and
    /// `/metrics`): what a Prometheus server reads.
    pub open: &'static [&'static str],
}

impl Guard {
    /// No rules: identity off, or a router exercised in a unit test.
    pub fn off() -> Self {
        Self::default()
    }
}

/// The address of the connection `extensions` came over: the server's
/// `ConnectInfo<Remote>`, else a `ConnectInfo<SocketAddr>` (a test's
/// `MockConnectInfo`, a plain `axum::serve`).
pub fn peer_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    match extensions.get::<ConnectInfo<Remote>>() {
        Some(ConnectInfo(remote)) => Some(remote.addr),
        None => extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr),
    }
}

/// The peer of `req`: from its connection, else as the in-process transport
/// tagged it, else nobody.
fn peer_of(req: &Request) -> Peer {
    if let Some(ConnectInfo(remote)) = req.extensions().get::<ConnectInfo<Remote>>() {
        return remote.peer.clone();
    }
    req.extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or(Peer::Anonymous)
}

/// Tags the request with its peer and applies the rules (see the module's header).
pub(crate) async fn check<F, Fut>(guard: &Guard, mut req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let peer = if guard.enforce {
        peer_of(&req)
    } else {
        Peer::Trusted
    };
    req.extensions_mut().insert(peer.clone());
    let path = req.uri().path();
    if crate::middleware::is_probe(path) || guard.open.contains(&path) {
        return next(req).await;
    }
    let refusal = match &peer {
        Peer::Trusted => None,
        Peer::Verified(_) => {
            (carries_identity(&req) && !peer.is_one_of(USER_ASSERTING)).then(|| {
                ApiError::forbidden(
                    "identity headers are accepted from the gateway and the storefront only",
                )
            })
        }
        // The public edge: over plain HTTP or its own TLS, anyone.
        Peer::Plain | Peer::Anonymous if guard.public => None,
        Peer::Anonymous if guard.anonymous.contains(&path) => None,
        Peer::Anonymous | Peer::Plain => Some(ApiError::unauthorized(
            "this service answers Emporium services only: connect with mTLS and a certificate from the platform's CA",
        )),
    };
    match refusal {
        None => next(req).await,
        Some(error) => {
            tracing::warn!(peer = %peer, path, method = %req.method(), "refused: {}", error.problem().detail);
            error.into_response()
        }
    }
}

fn carries_identity(req: &Request) -> bool {
    let h = req.headers();
    crate::names::IDENTITY
        .iter()
        .any(|name| h.contains_key(name))
}

/// Declares which services may call a router's routes.
pub trait Callers {
    /// Only the named services (and the operator) may call these routes; others
    /// get 403. With identity off, anyone may.
    fn callers(self, allowed: &'static [&'static str]) -> Self;
}

impl<S: Clone + Send + Sync + 'static> Callers for Router<S> {
    fn callers(self, allowed: &'static [&'static str]) -> Self {
        self.route_layer(axum::middleware::from_fn_with_state(allowed, only))
    }
}

async fn only(
    State(allowed): State<&'static [&'static str]>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or(Peer::Anonymous);
    if peer.is_one_of(allowed) {
        return next.run(req).await;
    }
    let who = if allowed.is_empty() {
        "the operator".to_string()
    } else {
        allowed.join(", ")
    };
    tracing::warn!(peer = %peer, path = req.uri().path(), "refused: not one of this route's callers ({who})");
    ApiError::forbidden(format!("only {who} may call this")).into_response()
}
