//! gateway: the only public entry point.
//!
//! Every request passes, in order: the chassis stack (request id, deadline, access
//! log, load shedding), the per-IP rate limit ([`ratelimit`], GCRA, held across
//! gateway instances by [`share`]: 429 with `Retry-After`), the route table ([`routes`]: `/api/<area>/...` → the service
//! that owns the area; `/internal/...` never), authentication ([`auth`]: EdDSA JWTs
//! verified against users' JWKS; the verified user id and roles are forwarded in
//! headers that clients cannot set), and the proxy ([`proxy`]: load-balanced across
//! the service's instances by the registry; 502/503/504 as problem+json).
//!
//! Every other path is the storefront's (the shop's HTML pages): forwarded to the
//! storefront service with the session cookie verified like a bearer token
//! ([`proxy::storefront`]).
//!
//! It also serves the combined OpenAPI document at `/api/openapi.json`, Swagger UI at
//! `/docs`, the JWKS at `/.well-known/jwks.json`, and the API's landing page at
//! `/api`.

pub mod auth;
mod brownout;
pub mod edge;
mod forwarded;
mod openapi;
mod pages;
mod proxy;
mod ratelimit;
mod routes;
pub mod share;

use http::HeaderValue;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::{any, get};
use emporium_client::ServiceClient;
use emporium_config::Common;
use emporium_runtime::{Build, Host, Service};
use serde::Deserialize;

pub const NAME: &str = "gateway";

/// The service that issues tokens and serves the JWKS.
const USERS: &str = "users";

/// The service that serves every path outside `/api`.
const STOREFRONT: &str = "storefront";

/// Where the gateway listens unless `gateway.listen` says otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// The `[gateway]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// `/api/<area>/...` is served by the service named here.
    pub routes: BTreeMap<String, String>,
    /// `METHOD /path/prefix` entries anyone may call without a token.
    pub public_routes: Vec<String>,
    /// `METHOD /exact/path` entries whose service dedupes by the
    /// `Idempotency-Key` header: a request that carries one may be retried
    /// (after a reset connection or a 502/503/504) like a read.
    pub keyed_routes: Vec<String>,
    pub rate_limit: RateLimitSettings,
    /// Deadline of a call to a service.
    pub upstream_timeout_ms: u64,
    /// Least time between two JWKS fetches triggered by unknown key ids.
    pub jwks_refetch_interval_ms: u64,
    /// Clock skew tolerated when checking a token's expiry.
    pub jwt_leeway_secs: u64,
    /// Access tokens remembered after they verified, until they expire, so a
    /// shopper's signature is checked once rather than on every request
    /// (0: every request checks it; see `auth.rs`).
    pub token_cache_entries: usize,
    /// Proxies in front of the gateway (CIDRs or addresses): only from these are
    /// `X-Forwarded-For`, `-Host` and `-Proto` believed (the client's address
    /// for rate limits, the host the storefront checks origins against).
    pub trusted_proxies: Vec<String>,
    /// Serve the public over TLS with these certificate files (reloaded when
    /// they change); plain HTTP is then redirected to HTTPS.
    pub tls: Option<edge::EdgeTls>,
    /// Where `/metrics` and the detailed `/readyz` are served (plain HTTP, for
    /// operators and Prometheus), off the public port; the public `/readyz` only
    /// says ready or not. By default a free port on loopback (the registry tells
    /// Prometheus which).
    pub admin_listen: Option<SocketAddr>,
    /// Threads serving the public port, each running its own event loop with
    /// its own connections to the services (nginx's worker per core), when the
    /// gateway runs alone in its process; unset: one per available core; 0: on
    /// the process's shared runtime.
    pub serve_threads: Option<usize>,
    pub brownout: BrownoutSettings,
}

/// Journeys admitted at the edge under overload (see `brownout.rs`): while the
/// service behind a `protect` route sheds more than `target` of its requests,
/// a share of the `start` routes' requests is refused at the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrownoutSettings {
    pub enabled: bool,
    /// `METHOD /exact/path` entries that finish journeys (never refused here).
    pub protect: Vec<String>,
    /// `METHOD /exact/path` entries that start them.
    pub start: Vec<String>,
    /// The share of protected requests shed that the controller keeps.
    pub target: f64,
}

impl Default for BrownoutSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            protect: vec!["POST /api/orders".into()],
            start: vec!["POST /api/cart/items".into()],
            target: 0.25,
        }
    }
}

/// Requests per client IP, and per signed-in user (from the verified token, so
/// a user spreading requests over many addresses is still one user): a
/// sustained rate and a burst each (GCRA), held across every gateway instance
/// ([`share`]). The rates and bursts can change live
/// (`emporium config set gateway.rate_limit.burst 400`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub per_second: u32,
    pub burst: u32,
    pub user_per_second: u32,
    pub user_burst: u32,
    /// How often the gateways exchange what they admitted through the registry
    /// (0: each instance limits on its own).
    pub share_every_ms: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 100,
            burst: 200,
            user_per_second: 50,
            user_burst: 100,
            share_every_ms: 250,
        }
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        let areas = [
            "users",
            "catalog",
            "inventory",
            "cart",
            "orders",
            "payments",
            "notifications",
            "search",
            "reviews",
        ];
        Self {
            routes: areas
                .iter()
                .map(|a| (a.to_string(), a.to_string()))
                .collect(),
            public_routes: [
                "POST /api/users/register",
                "POST /api/users/login",
                "POST /api/users/token",
                "POST /api/users/logout",
                "POST /api/users/verify",
                "POST /api/users/password-reset",
                "GET /api/catalog/",
                "GET /api/inventory/",
                "GET /api/search",
                "GET /api/reviews",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            keyed_routes: ["POST /api/orders", "POST /api/cart/items"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rate_limit: RateLimitSettings::default(),
            upstream_timeout_ms: 10_000,
            jwks_refetch_interval_ms: 5_000,
            jwt_leeway_secs: 30,
            token_cache_entries: 10_000,
            trusted_proxies: Vec::new(),
            tls: None,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            serve_threads: None,
            brownout: BrownoutSettings::default(),
        }
    }
}

/// What every gateway handler shares; cloned per request, so it is one `Arc`.
pub(crate) type Shared = Arc<GatewayState>;

pub(crate) struct GatewayState {
    pub host: Host,
    pub table: routes::RouteTable,
    /// One client per routed service, made once.
    pub clients: HashMap<String, ServiceClient>,
    pub verifier: auth::Verifier,
    pub limits: Arc<share::Limits>,
    pub proxies: forwarded::TrustedProxies,
    pub upstream_timeout: Duration,
    pub body_limit: usize,
    pub docs: openapi::Combined,
    pub brownout: Option<Arc<brownout::Brownout>>,
}

impl GatewayState {
    /// The client for `service`: borrowed, as every service the gateway calls
    /// has one made at start (cloning it would copy its name on every request).
    pub fn client(&self, service: &str) -> Cow<'_, ServiceClient> {
        match self.clients.get(service) {
            Some(client) => Cow::Borrowed(client),
            None => Cow::Owned(self.host.client(service, self.upstream_timeout)),
        }
    }
}

/// The gateway's router, and its state.
fn router(
    host: Host,
    settings: &GatewaySettings,
    limits: Arc<share::Limits>,
    brownout: Option<Arc<brownout::Brownout>>,
) -> anyhow::Result<(Router, Shared)> {
    let table = routes::RouteTable::new(
        &settings.routes,
        &settings.public_routes,
        &settings.keyed_routes,
    )?;
    let upstream_timeout = Duration::from_millis(settings.upstream_timeout_ms);
    let clients = table
        .services()
        .into_iter()
        .chain([USERS, STOREFRONT])
        .map(|s| (s.to_string(), host.client(s, upstream_timeout)))
        .collect();
    let gateway: Shared = Arc::new(GatewayState {
        verifier: auth::Verifier::new(
            host.client(USERS, upstream_timeout),
            Duration::from_millis(settings.jwks_refetch_interval_ms),
            settings.jwt_leeway_secs,
            settings.token_cache_entries,
        ),
        table,
        clients,
        limits,
        proxies: forwarded::TrustedProxies::parse(&settings.trusted_proxies)?,
        upstream_timeout,
        body_limit: host.common.http.body_limit_bytes,
        docs: openapi::Combined::default(),
        brownout,
        host,
    });
    let routes = Router::new()
        .route("/api", get(pages::landing))
        .route("/api/", get(pages::landing))
        .route("/api/openapi.json", get(openapi::serve))
        .route("/.well-known/jwks.json", get(proxy::jwks))
        .route("/api/{*rest}", any(proxy::proxy))
        .merge(openapi::swagger_ui())
        .fallback(proxy::storefront)
        .with_state(gateway.clone());
    Ok((routes, gateway))
}

/// The gateway, as the runtime hosts it.
pub struct Gateway;

impl Service for Gateway {
    type Settings = GatewaySettings;
    const NAME: &'static str = NAME;
    // The edge: plain HTTP from the public reaches its routes (it strips and
    // sets identity headers itself).
    const PUBLIC: bool = true;
    const DEFAULT_LISTEN: SocketAddr = DEFAULT_LISTEN;

    fn configure(common: &mut Common) {
        // The public sets no deadlines here; the gateway's own timeout applies.
        common.http.honour_caller_timeout = false;
        // Nor trace ids: each public request starts a trace (linked to the caller's).
        common.http.honour_caller_trace = false;
        // Its latency is its upstreams' (a checkout waits seconds, a read takes
        // one): it would tell the adaptive limit nothing about the gateway's own
        // queueing. The services behind it shed their own load; the gateway keeps
        // the fixed ceiling, and its rate limits.
        common.http.adaptive_concurrency = false;
        // Hundreds of calls in flight to the same few instances: HTTP/2 carries
        // them on one connection each (8-10% less CPU per product page here and
        // 9-14% in catalog on the machine it was measured on; on one with cheaper
        // syscalls HTTP/1.1 was 13% faster: docs/benchmarks.md), unless the
        // operator said no.
        common.http.http2_calls.get_or_insert(true);
    }

    async fn build(&self, cx: &mut Build<GatewaySettings>) -> anyhow::Result<Router> {
        let threads = cx.settings.serve_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        cx.serve_on_threads(threads);
        let limits = Arc::new(share::Limits::new(&cx.settings.rate_limit)?);
        let b = &cx.settings.brownout;
        let brownout = match b.enabled {
            true => Some(Arc::new(brownout::Brownout::new(
                &b.protect, &b.start, b.target,
            )?)),
            false => None,
        };
        if let Some(brownout) = brownout.clone() {
            cx.every(brownout::TICK, move || {
                brownout.tick();
                std::future::ready(())
            });
        }
        let (mut routes, gateway) =
            router(cx.host.clone(), &cx.settings, limits.clone(), brownout)?;
        let hsts = cx
            .settings
            .tls
            .as_ref()
            .filter(|tls| tls.hsts_max_age_s > 0)
            .map(|tls| HeaderValue::from_str(&format!("max-age={}", tls.hsts_max_age_s)))
            .transpose()?;
        let edge_tls = cx.settings.tls.is_some();
        let edge_hsts = hsts.clone();
        // The rate limit runs before the routes' own layers (`edge::https_only`
        // among them), so it does here what that layer would: plain HTTP to a TLS
        // edge is redirected, not counted, and a refusal over TLS carries HSTS.
        cx.admit(move |req| {
            if edge_tls && !edge::over_tls(req) {
                return None;
            }
            let mut refused = proxy::rate_limit(&gateway, req)?;
            if let Some(hsts) = &edge_hsts {
                refused
                    .headers_mut()
                    .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            Some(refused)
        });
        let live = Arc::downgrade(&limits);
        cx.on_config(move |entries| {
            if let Some(limits) = live.upgrade() {
                limits.apply(entries);
            }
        });
        let registry = cx.host.discovery.registry().cloned();
        let instance_id = cx.host.instance_id.clone();
        let every = Duration::from_millis(cx.settings.rate_limit.share_every_ms);
        cx.spawn(move |stop| share::run(limits, registry, instance_id, every, stop));
        if let Some(addr) = cx.settings.admin_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("gateway.admin_listen: binding {addr}"))?;
            cx.serve_admin(listener);
            // Not a page either: the storefront's own metrics stay inside too.
            routes = routes.route(
                "/metrics",
                any(|| async { emporium_http::ApiError::not_found("no such resource") }),
            );
        }
        let Some(tls) = cx.settings.tls.clone() else {
            return Ok(routes);
        };
        let certificate = edge::Reloading::load(&tls)?;
        cx.serve_tls(certificate.server_config()?);
        cx.spawn(move |stop| certificate.watch(stop));
        Ok(routes.layer(axum::middleware::from_fn_with_state(hsts, edge::https_only)))
    }
}
