//! How a request reaches a service: over the network, or to a router in-process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use emporium_contracts::chaos::Fault;
use emporium_telemetry::metrics;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use tower::ServiceExt;

use crate::discovery::{Discovery, Route};
use crate::error::ClientError;
use crate::resilience::outlier::Failure;
use crate::resilience::{Admit, Policies, Target, retry};
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

    /// Whether a call to `service` would be refused at once now (no instance
    /// listed, its circuit open), without making one: for a caller that would
    /// rather not start work it cannot finish.
    fn check(&self, service: &str) -> BoxFuture<'static, Result<(), ClientError>> {
        let _ = service;
        Box::pin(async { Ok(()) })
    }

    /// Returns once `service` has an instance listed, or after `at_most`: for a
    /// caller that found none and would try again after `at_most` anyway. A
    /// transport that cannot tell waits `at_most`.
    fn until_listed(&self, service: &str, at_most: Duration) -> BoxFuture<'static, ()> {
        let _ = service;
        Box::pin(tokio::time::sleep(at_most))
    }
}

/// The deadline of a call, which [`crate::ServiceClient`] hands to the transport in
/// the request's extensions: no retry is started that could not finish before it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

/// Over HTTP (mutual TLS unless identity is off) to instances found by
/// [`Discovery`], through the caller's [`Policies`] for the target:
///
/// - the bulkhead first: too many calls in flight to the target fail at once;
/// - each attempt asks the circuit breaker, and goes to the instance the balancer
///   put first, a retry to the next one;
/// - a call that never reached a server (connection refused) may be sent again
///   whatever its method; one that may be repeated (see [`retry::idempotent`])
///   also after a reset or a 502/503/504, after a jittered backoff or the
///   `Retry-After` it was given, and is hedged to another instance when an attempt
///   goes unanswered for the attempt timeout;
/// - every retry and hedge is taken from the target's retry budget, and none is
///   started that could not finish before the call's [`Deadline`];
/// - every attempt's outcome feeds the breaker and the instance's outlier record.
#[derive(Clone)]
pub struct HttpTransport {
    discovery: Arc<Discovery>,
    clients: Clients,
    policies: Arc<Policies>,
}

impl HttpTransport {
    pub fn new(discovery: Arc<Discovery>, clients: Clients, policies: Arc<Policies>) -> Self {
        Self {
            discovery,
            clients,
            policies,
        }
    }
}

impl Transport for HttpTransport {
    fn until_listed(&self, service: &str, at_most: Duration) -> BoxFuture<'static, ()> {
        let discovery = self.discovery.clone();
        let service = service.to_string();
        Box::pin(async move { discovery.until_listed(&service, at_most).await })
    }

    fn send(
        &self,
        service: &str,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Body>, ClientError>> {
        let this = self.clone();
        let service = service.to_string();
        Box::pin(async move { this.call(service, request).await })
    }

    fn check(&self, service: &str) -> BoxFuture<'static, Result<(), ClientError>> {
        let this = self.clone();
        let service = service.to_string();
        Box::pin(async move {
            if this.policies.target(&service).is_open() {
                return Err(ClientError::CircuitOpen(service));
            }
            this.discovery.routes(&service).await.map(|_| ())
        })
    }
}

/// How one attempt ended, as far as the policies care.
enum Ended {
    Answered(Response<Body>),
    /// Never reached a server.
    Refused(BoxError),
    /// Broke on the way (a reset, a closed connection).
    Broken(BoxError),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl From<hyper_util::client::legacy::Error> for Ended {
    fn from(e: hyper_util::client::legacy::Error) -> Self {
        if e.is_connect() || refused_stream(&e) {
            Ended::Refused(e.into())
        } else {
            Ended::Broken(e.into())
        }
    }
}

/// Whether an HTTP/2 server declined the stream before processing it
/// (`REFUSED_STREAM`, RFC 9113 §8.7): like a refused connection, it never
/// reached the service. A stream failed by the server going away (`GOAWAY`) is
/// not counted: h2 reports the same error for streams it was still serving.
fn refused_stream(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = e.source();
    }
    false
}

/// What a fault rule does to one call.
enum Injected {
    /// Send it after this wait.
    Wait(Duration),
    /// Answer with this instead of sending it.
    Answer(Response<Body>),
    /// Fail it as a reset connection.
    Reset,
}

/// Counts `fault` on a call to `target` and says what it does.
fn inject(fault: &Fault, target: &str) -> Injected {
    let (kind, injected) = match fault {
        Fault::Delay { ms, jitter_ms } => {
            let jitter = if *jitter_ms > 0 {
                fastrand::u64(..=*jitter_ms)
            } else {
                0
            };
            ("delay", Injected::Wait(Duration::from_millis(ms + jitter)))
        }
        Fault::Abort { status } => {
            let status = http::StatusCode::from_u16(*status)
                .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
            let problem = emporium_http::ApiError::new(
                status,
                "fault_injected",
                "a fault rule aborted this call",
            );
            (
                "abort",
                Injected::Answer(axum::response::IntoResponse::into_response(problem)),
            )
        }
        Fault::Reset => ("reset", Injected::Reset),
    };
    metrics::counter!("emporium_faults_injected_total", "target" => target.to_string(), "kind" => kind)
        .increment(1);
    injected
}

const INJECTED_RESET: &str = "connection reset (injected by a fault rule)";

/// Sends one attempt, or does to it what the fault a rule picked says.
async fn attempt(
    send: hyper_util::client::legacy::ResponseFuture,
    injected: Option<Injected>,
) -> Ended {
    match injected {
        Some(Injected::Wait(wait)) => tokio::time::sleep(wait).await,
        Some(Injected::Answer(response)) => return Ended::Answered(response),
        Some(Injected::Reset) => return Ended::Broken(INJECTED_RESET.into()),
        None => {}
    }
    match send.await {
        Ok(response) => Ended::Answered(response.map(Body::new)),
        Err(e) => e.into(),
    }
}

impl HttpTransport {
    async fn call(
        self,
        service: String,
        request: Request<Bytes>,
    ) -> Result<Response<Body>, ClientError> {
        let target = self.policies.target(&service);
        let _slot = target.enter()?;
        target.called();
        let mut routes = self.discovery.routes(&service).await?;
        let http = self.clients.to(&service)?;
        let scheme = self.clients.uri_scheme();
        let deadline = request.extensions().get::<Deadline>().map(|d| d.0);
        let (mut parts, body) = request.into_parts();
        let path = path_of(&parts.uri);
        // Each attempt says what is left of the deadline when it goes (below); the
        // call's own value is not copied into every attempt's headers first.
        if deadline.is_some() {
            parts.headers.remove(emporium_http::names::TIMEOUT_MS);
        }
        let policy = &target.policy;
        let keyed = parts.extensions.get::<retry::Keyed>().is_some();
        let idempotent = retry::idempotent(&parts.method, keyed);
        let attempt_timeout = Duration::from_millis(policy.attempt_timeout_ms);
        // A long poll waits on purpose: an unanswered attempt is no sign of trouble.
        let long_poll = emporium_http::limit::is_long_poll(&parts.uri);
        // Hedged: reads only (a command's copy could answer before the original
        // has done its work), and only to another instance.
        let read = matches!(parts.method, http::Method::GET | http::Method::HEAD);
        let hedge = read && !attempt_timeout.is_zero() && !long_poll && routes.len() > 1;
        let max_attempts = 1 + policy.retries as usize;
        let backoff = |retry: usize| {
            retry::backoff(
                Duration::from_millis(policy.backoff_base_ms),
                Duration::from_millis(policy.backoff_max_ms),
                retry as u32,
            )
        };
        let fits = |at: Instant| deadline.is_none_or(|d| at < d);

        let mut attempts = Attempts {
            discovery: &self.discovery,
            service: &service,
            target: &target,
            deadline,
            answered: false,
            launched: Vec::new(),
            overdue: if long_poll {
                Duration::MAX
            } else if hedge {
                attempt_timeout
            } else {
                Duration::from_millis(policy.attempt_timeout_ms.max(1_000))
            },
        };
        let mut running = FuturesUnordered::new();
        // When the next attempt goes, and why.
        let mut next: Option<(Instant, &'static str)> = Some((Instant::now(), "first"));
        let mut last: Option<Result<Response<Body>, ClientError>> = None;
        loop {
            if let Some((at, reason)) = next
                && at <= Instant::now()
            {
                next = None;
                let n = attempts.launched.len();
                // A retry reads the instances again: one that came up since the
                // call began (a restarted service at a new address) is there. A
                // hedge goes only to an instance this call has not tried.
                if n > 0
                    && let Ok(fresh) = self.discovery.routes(&service).await
                {
                    routes = fresh;
                }
                let route = match reason {
                    "hedge" => untried(&routes, &attempts.launched),
                    _ => least_recently_tried(&routes, &attempts.launched),
                };
                let allowed = route.is_some() && (n == 0 || target.retry(reason));
                let admitted = match allowed.then(|| target.admit()) {
                    Some(Ok(admit)) => Some(admit),
                    Some(Err(open)) => {
                        last.get_or_insert(Err(open));
                        None
                    }
                    None => None,
                };
                if let (Some(admit), Some(route)) = (admitted, route) {
                    let mut req = Request::new(Body::from(body.clone()));
                    *req.method_mut() = parts.method.clone();
                    *req.uri_mut() = at_address(&service, scheme, &route.address, &path)?;
                    *req.headers_mut() = parts.headers.clone();
                    // What is left of the deadline now, not when the call began.
                    if let Some(deadline) = deadline {
                        let left = deadline.saturating_duration_since(Instant::now());
                        req.headers_mut().insert(
                            emporium_http::names::TIMEOUT_MS,
                            http::HeaderValue::from(left.as_millis() as u64),
                        );
                    }
                    let in_flight = route.health.start();
                    let send = http.request(req);
                    let injected = self
                        .policies
                        .faults()
                        .pick(self.policies.caller(), &service)
                        .map(|fault| inject(&fault, &service));
                    running.push(async move {
                        let ended = attempt(send, injected).await;
                        drop(in_flight);
                        (n, ended)
                    });
                    attempts
                        .launched
                        .push((route, admit, Instant::now(), false));
                    if hedge && n + 1 < max_attempts && fits(Instant::now() + attempt_timeout) {
                        next = Some((Instant::now() + attempt_timeout, "hedge"));
                    }
                }
            }
            if running.is_empty() {
                match next {
                    Some((at, _)) => {
                        tokio::time::sleep_until(at.into()).await;
                        continue;
                    }
                    None => {
                        return last
                            .unwrap_or_else(|| Err(ClientError::NoInstances(service.clone())));
                    }
                }
            }
            let done = match next {
                Some((at, _)) => tokio::select! {
                    done = running.next() => done,
                    () = tokio::time::sleep_until(at.into()) => continue,
                },
                None => running.next().await,
            };
            let Some((n, ended)) = done else { continue };
            let (failed, declined) = match &ended {
                Ended::Answered(r) => {
                    let failed = r.status().is_server_error();
                    (
                        failed,
                        failed && r.headers().contains_key(http::header::RETRY_AFTER),
                    )
                }
                _ => (true, false),
            };
            attempts.ended(n, failed, matches!(ended, Ended::Refused(_)), declined);
            let n = attempts.launched.len();
            // Whether another instance can take a retry at once: one this call
            // has not tried, among the instances known now.
            if failed && let Ok(fresh) = self.discovery.routes(&service).await {
                routes = fresh;
            }
            let other = untried(&routes, &attempts.launched).is_some();
            let (retry_reason, wait) = match &ended {
                // Told to come back to this instance later than a backoff would
                // (it sheds load, or its own dependency failed): another instance
                // may take the call at once; with none, the answer goes back to
                // the caller, whose caller can decide.
                Ended::Answered(r)
                    if retry::retry_after(r.headers()).is_some_and(|wait| {
                        wait > Duration::from_millis(policy.backoff_max_ms)
                    }) =>
                {
                    if idempotent && retry::retryable(r.status()) && other {
                        (Some("status"), Duration::ZERO)
                    } else {
                        (None, Duration::ZERO)
                    }
                }
                Ended::Answered(r) if retry::retryable(r.status()) && idempotent => {
                    let wait = retry::retry_after(r.headers()).unwrap_or_default();
                    (Some("status"), backoff(n).max(wait))
                }
                Ended::Answered(_) => (None, Duration::ZERO),
                Ended::Refused(_) if other => (Some("refused"), Duration::ZERO),
                Ended::Refused(_) => (Some("refused"), backoff(n)),
                Ended::Broken(_) if idempotent => (Some("reset"), backoff(n)),
                Ended::Broken(_) => (None, Duration::ZERO),
            };
            let outcome = match ended {
                Ended::Answered(response) => Ok(response),
                Ended::Refused(source) => Err(ClientError::Unreachable {
                    service: service.clone(),
                    source,
                }),
                Ended::Broken(source) => Err(ClientError::Transport {
                    service: service.clone(),
                    source,
                }),
            };
            // A refusal never hides what an earlier attempt got: the caller may
            // rely on "never sent" meaning no attempt reached a server.
            if !matches!(&outcome, Err(e) if e.never_sent())
                || last
                    .as_ref()
                    .is_none_or(|l| matches!(l, Err(e) if e.never_sent()))
            {
                last = Some(outcome);
            }
            let Some(reason) = retry_reason else {
                return last.unwrap_or_else(|| Err(ClientError::NoInstances(service.clone())));
            };
            // While a hedged attempt still runs, it may yet answer: wait for it.
            let at = Instant::now() + wait;
            if running.is_empty() {
                next = (n < max_attempts && fits(at)).then_some((at, reason));
            }
        }
    }
}

/// The attempts of one call, so that those still unanswered when the call ends
/// count as timed out: another attempt answered first, or the call's deadline
/// passed. (A caller that went away early, a shopper closing the page, says
/// nothing about the instance.)
struct Attempts<'a> {
    discovery: &'a Discovery,
    service: &'a str,
    target: &'a Target,
    /// Each attempt's instance, breaker admission, start, and whether it ended.
    launched: Vec<(Route, Admit, Instant, bool)>,
    /// How long unanswered makes an attempt a failure of its instance.
    overdue: Duration,
    deadline: Option<Instant>,
    /// Whether an attempt has ended (the call is deciding, not being dropped).
    answered: bool,
}

impl Attempts<'_> {
    /// Records how attempt `n` ended: `failed` (a 5xx or a broken connection,
    /// `refused` if it never connected), or neither (`declined`: a 5xx with
    /// `Retry-After`, the server shedding load or its own dependency down, which
    /// says nothing of the instance's health).
    fn ended(&mut self, n: usize, failed: bool, refused: bool, declined: bool) {
        self.answered = true;
        let Some((route, admit, _, done)) = self.launched.get_mut(n) else {
            return;
        };
        *done = true;
        if declined {
            return;
        }
        self.target.attempted(*admit, !failed);
        let failure = match (failed, refused) {
            (false, _) => None,
            (true, true) => Some(Failure::Refused),
            (true, false) => Some(Failure::Failed),
        };
        let change = self
            .discovery
            .record(self.service, route, failure, &self.target.policy);
        if let Some(change) = change {
            self.target.outlier(&route.address, change);
        }
    }
}

impl Drop for Attempts<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let timed_out = self
            .deadline
            .is_some_and(|d| now + Duration::from_millis(10) >= d);
        if !self.answered && !timed_out {
            return;
        }
        for (route, _, started, done) in &self.launched {
            if !done && now.duration_since(*started) >= self.overdue {
                // The breaker is not told: the call as a whole did not fail.
                // As long as a refused instance: a hung one is ejected or dropped
                // by the registry before its turn comes again.
                let aside = self.overdue.max(Duration::from_secs(5));
                let change = self.discovery.record(
                    self.service,
                    route,
                    Some(Failure::Abandoned(aside)),
                    &self.target.policy,
                );
                if let Some(change) = change {
                    self.target.outlier(&route.address, change);
                }
            }
        }
    }
}

/// The first of `routes` (best first) that no attempt of this call has gone to.
fn untried(routes: &[Route], launched: &[(Route, Admit, Instant, bool)]) -> Option<Route> {
    least_recently_tried(routes, launched)
        .filter(|r| launched.iter().all(|(l, ..)| l.address != r.address))
}

/// The first of `routes` (best first) that no attempt of this call has gone to;
/// when every one has, the one whose latest attempt went longest ago, so the
/// retries go round the instances in turn.
fn least_recently_tried(
    routes: &[Route],
    launched: &[(Route, Admit, Instant, bool)],
) -> Option<Route> {
    let latest = |route: &Route| {
        launched
            .iter()
            .rposition(|(l, ..)| l.address == route.address)
    };
    routes.iter().min_by_key(|route| latest(route)).cloned()
}

/// A request's path and query, `/` when it has none (shared with the request's
/// URI, not copied).
fn path_of(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// `path` at the instance listening on `address`, put together from its parts
/// (the path is shared, not copied; only the address is).
fn at_address(
    service: &str,
    scheme: &Scheme,
    address: &str,
    path: &PathAndQuery,
) -> Result<Uri, ClientError> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(Authority::try_from(address).map_err(|e| decode(service, e))?);
    parts.path_and_query = Some(path.clone());
    Uri::from_parts(parts).map_err(|e| decode(service, e))
}

fn decode(service: &str, e: impl std::error::Error + Send + Sync + 'static) -> ClientError {
    ClientError::Decode {
        service: service.to_string(),
        source: e.into(),
    }
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
            let scheme = this.clients.uri_scheme();
            head.uri = at_address(&service, scheme, &this.address, &path_of(&head.uri))?;
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
    fn check(&self, service: &str) -> BoxFuture<'static, Result<(), ClientError>> {
        match (&self.remote, self.local.contains_key(service)) {
            (Some(remote), false) => remote.check(service),
            _ => Box::pin(async { Ok(()) }),
        }
    }

    fn until_listed(&self, service: &str, at_most: Duration) -> BoxFuture<'static, ()> {
        // Hosted here: until it serves (a stopped one, shutting down, answers
        // no call again, so its callers wait the whole time rather than spin).
        if let Some(slot) = self.local.get(service) {
            let mut slot = slot.subscribe();
            return Box::pin(async move {
                let deadline = tokio::time::Instant::now() + at_most;
                let serving = slot.wait_for(|s| matches!(s, Slot::Serving(_)));
                let gone = matches!(tokio::time::timeout_at(deadline, serving).await, Ok(Err(_)));
                if gone {
                    tokio::time::sleep_until(deadline).await;
                }
            });
        }
        match &self.remote {
            Some(remote) => remote.until_listed(service, at_most),
            None => Box::pin(tokio::time::sleep(at_most)),
        }
    }

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
        // The process's fault rules apply to calls inside it too.
        let fault = match (&self.remote, &self.caller) {
            (Some(remote), Some(caller)) => remote.policies.faults().pick(caller, &service),
            _ => None,
        };
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
            match fault.map(|f| inject(&f, &service)) {
                Some(Injected::Wait(wait)) => tokio::time::sleep(wait).await,
                Some(Injected::Answer(response)) => return Ok(response),
                Some(Injected::Reset) => {
                    return Err(ClientError::Transport {
                        service,
                        source: INJECTED_RESET.into(),
                    });
                }
                None => {}
            }
            call_router(router, service, peer, request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::refused_stream;

    /// An error wrapping another, as hyper's wrap h2's.
    #[derive(Debug)]
    struct Wrapped(h2::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_refused_stream_never_reached_the_service_and_other_resets_may_have() {
        let refused = Wrapped(h2::Error::from(h2::Reason::REFUSED_STREAM));
        assert!(refused_stream(&refused));
        let cancelled = Wrapped(h2::Error::from(h2::Reason::CANCEL));
        assert!(!refused_stream(&cancelled));
        assert!(!refused_stream(&std::io::Error::other("reset")));
    }
}

#[cfg(test)]
mod in_process_tests {
    use std::time::{Duration, Instant};

    use super::{InProcess, Transport};

    #[tokio::test]
    async fn a_caller_waiting_for_a_hosted_service_goes_when_it_serves_and_not_while_it_is_stopped()
    {
        let host = InProcess::new(["catalog"]);
        let started = Instant::now();
        let waiting = tokio::spawn(host.until_listed("catalog", Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "still starting");
        host.mount("catalog", axum::Router::new());
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("went once it served")
            .expect("joined");
        assert!(started.elapsed() < Duration::from_secs(10));
        // Stopped (shutting down): the whole wait, so a reader does not spin on it.
        host.unmount("catalog");
        let started = Instant::now();
        host.until_listed("catalog", Duration::from_millis(300))
            .await;
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
