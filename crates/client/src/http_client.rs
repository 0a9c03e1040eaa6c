//! The HTTP clients every Emporium process uses: pooled keep-alive connections,
//! no Nagle delay, a short connect timeout; plain HTTP, or mutual TLS as this
//! process's principal with one pool per service called.
//!
//! Calls speak HTTP/1.1 unless the [`Clients`] were made for HTTP/2
//! ([`Version::Http2`], `http.http2_calls`: the gateway's). Every server of the
//! chassis serves both (over mTLS HTTP/2 is chosen by ALPN, on plain HTTP spoken
//! from the first byte). HTTP/2 pays where one caller has many calls in flight to
//! the same instances: one connection per instance carries them all, so requests
//! and answers share reads and writes instead of costing a system call each on
//! both sides (the gateway spent 8–10% and catalog 9–14% less CPU per product
//! page, built without LTO, twentieth session; on a later machine, with the
//! LTO build, HTTP/1.1 read 5% more requests/s through the gateway, and the
//! default waits for more machines: `docs/benchmarks.md`, twenty-third
//! session). Where calls go one after another (a checkout's saga) it costs more
//! per call than HTTP/1.1 (6–9% more CPU per checkout): `docs/benchmarks.md`,
//! "HTTP/2 between services". An HTTP/2 connection that carries calls is pinged
//! every 10 s, and closed when a ping goes 10 s unanswered: a peer that vanished
//! without a reset (its host gone, a partition) would otherwise keep every new
//! call waiting on it. [`http_client`], for anything else (probes, other
//! servers), speaks HTTP/1.1.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use emporium_identity::Credentials;
use futures::TryFutureExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::error::ClientError;

pub type HttpClient = Client<HttpsConnector<Tcp>, Body>;

/// A new pooled HTTP/1.1 client for plain `http://` URLs (probes, servers that
/// are not Emporium's).
pub fn http_client() -> HttpClient {
    plain_client(Version::Http1)
}

/// Which HTTP a pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http1,
    /// HTTP/2: from the first byte on plain HTTP (prior knowledge: only to the
    /// chassis' servers), offered first by ALPN over TLS.
    Http2,
}

impl Version {
    /// HTTP/2 when `http2`, else HTTP/1.1.
    pub fn http2_if(http2: bool) -> Self {
        if http2 { Self::Http2 } else { Self::Http1 }
    }
}

fn plain_client(version: Version) -> HttpClient {
    plain_client_pinging(version, H2_PING)
}

/// [`plain_client`], its HTTP/2 connections pinged every `ping`.
fn plain_client_pinging(version: Version, ping: Duration) -> HttpClient {
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
    pooled(connector, version, ping)
}

/// A pooled HTTP/1.1 client over TLS with `config`, checking that the server
/// is `name`.
pub fn tls_client(config: rustls::ClientConfig, name: &str) -> anyhow::Result<HttpClient> {
    versioned_tls_client(config, name, Version::Http1)
}

/// [`tls_client`] speaking `version`: for HTTP/1.1 only that is offered (ALPN);
/// for HTTP/2 it is offered first, and HTTP/1.1 taken where the server offers
/// only that.
fn versioned_tls_client(
    config: rustls::ClientConfig,
    name: &str,
    version: Version,
) -> anyhow::Result<HttpClient> {
    let name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|_| anyhow::anyhow!("{name} is not a valid server name"))?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    let connector = match version {
        Version::Http1 => builder.enable_http1().wrap_connector(tcp()),
        Version::Http2 => builder.enable_all_versions().wrap_connector(tcp()),
    };
    // Over TLS the version is what ALPN chose: never HTTP/2 without asking.
    Ok(pooled(connector, Version::Http1, H2_PING))
}

fn tcp() -> Tcp {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    // The TLS layer above takes https:// URIs.
    connector.enforce_http(false);
    Tcp(connector)
}

/// How often an HTTP/2 connection with calls in flight is pinged, and how long
/// an answer may take before it is closed.
const H2_PING: Duration = Duration::from_secs(10);

/// The pool over `connector`, pinging HTTP/2 connections that carry calls every
/// `ping` (closed when an answer takes as long); `Version::Http1` still takes
/// HTTP/2 where TLS negotiated it.
fn pooled(connector: HttpsConnector<Tcp>, version: Version, ping: Duration) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(version == Version::Http2)
        .timer(hyper_util::rt::TokioTimer::new())
        .http2_keep_alive_interval(ping)
        .http2_keep_alive_timeout(ping)
        // Without a timer the idle timeout is only checked when a connection is
        // taken: a quiet pool (a serving thread's own) would keep its idle
        // connections open for good. The reaper runs on the runtime that first
        // gives a connection back; should that runtime end before the pool, idle
        // connections again expire only when taken.
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// hyper_util's TCP connector, whose connections describe themselves without the
/// addresses `HttpConnector` attaches (`HttpInfo`): hyper_util copies those into
/// every response's extensions, two allocations per call that nothing here reads.
#[derive(Clone)]
pub struct Tcp(HttpConnector);

/// A TCP connection made by [`Tcp`].
pub struct TcpConn(TokioIo<TcpStream>);

impl tower::Service<http::Uri> for Tcp {
    type Response = TcpConn;
    type Error = <HttpConnector as tower::Service<http::Uri>>::Error;
    type Future = futures::future::MapOk<
        <HttpConnector as tower::Service<http::Uri>>::Future,
        fn(TokioIo<TcpStream>) -> TcpConn,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        self.0.call(uri).map_ok(TcpConn as fn(_) -> _)
    }
}

impl Connection for TcpConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TcpConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TcpConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

thread_local! {
    /// Whether this thread keeps connection pools of its own ([`own_pools`]).
    static OWN_POOLS: Cell<bool> = const { Cell::new(false) };
    /// This thread's pools, by the [`Clients`] they belong to, then as that
    /// principal's shared ones are kept: one for plain HTTP, one per service
    /// over mTLS (keyed "" and by service name).
    static POOLS: RefCell<HashMap<u64, HashMap<String, HttpClient>>> = RefCell::new(HashMap::new());
}

/// From now on, calls made on this thread take connections from pools of the
/// thread's own, made on first use: for a thread running a single-threaded
/// runtime of its own (see `emporium_http::server::serve_threaded`), whose
/// connections are then driven by that runtime, never woken from another
/// thread. Other threads share one pool per [`Clients`] (and service).
pub fn own_pools() {
    OWN_POOLS.with(|own| own.set(true));
}

/// How one principal's calls leave the process: plain HTTP when identity is off,
/// else mutual TLS presenting its credentials, with a connection pool per
/// service called (a pooled connection is bound to the identity it proved).
#[derive(Clone)]
pub struct Clients {
    inner: Arc<Inner>,
    version: Version,
    /// Names this principal's pools on threads with pools of their own (an
    /// address could be reused by another principal's).
    id: u64,
}

/// The next [`Clients`]' id.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

enum Inner {
    Plain(Box<HttpClient>),
    Mtls {
        credentials: Arc<Credentials>,
        pools: RwLock<HashMap<String, HttpClient>>,
    },
}

impl Clients {
    /// Plain HTTP/1.1: service identity is off.
    pub fn plain() -> Self {
        Self::new(None, Version::Http1)
    }

    /// Mutual TLS as `credentials`' principal, HTTP/1.1.
    pub fn mtls(credentials: Arc<Credentials>) -> Self {
        Self::new(Some(credentials), Version::Http1)
    }

    /// Mutual TLS as `credentials`' principal, or plain HTTP without them,
    /// speaking `version`.
    pub fn new(credentials: Option<Arc<Credentials>>, version: Version) -> Self {
        let inner = match credentials {
            None => Inner::Plain(Box::new(plain_client(version))),
            Some(credentials) => Inner::Mtls {
                credentials,
                pools: RwLock::new(HashMap::new()),
            },
        };
        Self {
            inner: Arc::new(inner),
            version,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// These clients' principal speaking `version`: themselves if they do, else
    /// new clients with pools of their own.
    pub fn speaking(&self, version: Version) -> Self {
        if self.version == version {
            return self.clone();
        }
        let credentials = match &*self.inner {
            Inner::Plain(_) => None,
            Inner::Mtls { credentials, .. } => Some(credentials.clone()),
        };
        Self::new(credentials, version)
    }

    /// The scheme of URIs this principal's calls take.
    pub fn scheme(&self) -> &'static str {
        self.uri_scheme().as_str()
    }

    /// [`Self::scheme`] as a URI's part.
    pub fn uri_scheme(&self) -> &'static http::uri::Scheme {
        static HTTP: http::uri::Scheme = http::uri::Scheme::HTTP;
        static HTTPS: http::uri::Scheme = http::uri::Scheme::HTTPS;
        match *self.inner {
            Inner::Plain(_) => &HTTP,
            Inner::Mtls { .. } => &HTTPS,
        }
    }

    /// The client for calls to `service`.
    pub fn to(&self, service: &str) -> Result<HttpClient, ClientError> {
        if OWN_POOLS.with(Cell::get) {
            return self.own(service);
        }
        self.shared(service)
    }

    /// This thread's own pool for calls to `service` (see [`own_pools`]).
    fn own(&self, service: &str) -> Result<HttpClient, ClientError> {
        let name = match &*self.inner {
            Inner::Plain(_) => "",
            Inner::Mtls { .. } => service,
        };
        // Looked up by reference: no allocation per call once the pool exists.
        let known = POOLS.with(|pools| {
            pools
                .borrow()
                .get(&self.id)
                .and_then(|mine| mine.get(name).cloned())
        });
        if let Some(client) = known {
            return Ok(client);
        }
        let client = match &*self.inner {
            Inner::Plain(_) => plain_client(self.version),
            Inner::Mtls { credentials, .. } => self.mtls_client(credentials, service)?,
        };
        POOLS.with(|pools| {
            pools
                .borrow_mut()
                .entry(self.id)
                .or_default()
                .insert(name.to_string(), client.clone())
        });
        Ok(client)
    }

    fn shared(&self, service: &str) -> Result<HttpClient, ClientError> {
        let (credentials, pools) = match &*self.inner {
            Inner::Plain(client) => return Ok(HttpClient::clone(client)),
            Inner::Mtls { credentials, pools } => (credentials, pools),
        };
        if let Ok(clients) = pools.read()
            && let Some(client) = clients.get(service)
        {
            return Ok(client.clone());
        }
        let client = self.mtls_client(credentials, service)?;
        if let Ok(mut clients) = pools.write() {
            clients
                .entry(service.to_string())
                .or_insert_with(|| client.clone());
        }
        Ok(client)
    }

    fn mtls_client(
        &self,
        credentials: &Arc<Credentials>,
        service: &str,
    ) -> Result<HttpClient, ClientError> {
        let name = emporium_identity::server_name(service);
        credentials
            .client_config()
            .and_then(|config| versioned_tls_client(config, &name, self.version))
            .map_err(|e| ClientError::Transport {
                service: service.to_string(),
                source: e.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use http_body_util::BodyExt;
    use std::collections::HashSet;
    use std::net::SocketAddr;

    /// A server that answers each request with the caller's port: which
    /// connection carried it.
    async fn peer_port_server() -> SocketAddr {
        let app = axum::Router::new().route(
            "/port",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.port().to_string()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        addr
    }

    async fn port(clients: &Clients, server: SocketAddr) -> String {
        let request = http::Request::get(format!("http://{server}/port"))
            .body(Body::empty())
            .expect("request");
        let response = clients
            .to("svc")
            .expect("client")
            .request(request)
            .await
            .expect("answered");
        let body = response.into_body().collect().await.expect("body");
        String::from_utf8(body.to_bytes().to_vec()).expect("utf-8")
    }

    const TRIES: usize = 10;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

    /// When a series of calls may stop: given the ports they came from so far.
    type Done = Box<dyn Fn(&[String]) -> bool + Send>;

    /// The last call came on one of `ports`.
    fn on_one_of(ports: &HashSet<String>) -> Done {
        let ports = ports.clone();
        Box::new(move |so_far| so_far.last().is_some_and(|p| ports.contains(p)))
    }

    /// The last two calls came on the same connection.
    fn kept() -> Done {
        Box::new(|so_far| so_far.len() >= 2 && so_far[so_far.len() - 1] == so_far[so_far.len() - 2])
    }

    /// Calls, a pause before each, until `done` (at most `TRIES`): the ports
    /// they came from. A connection goes back to its pool only after its
    /// dispatcher, on whichever runtime drives it, has finished the exchange,
    /// so a call right after another may open a new one, which then joins the
    /// pool: what a pool keeps shows as reuse within a few calls, what it does
    /// not have never shows.
    async fn calls_until(clients: &Clients, server: SocketAddr, done: Done) -> Vec<String> {
        let mut ports: Vec<String> = Vec::new();
        for _ in 0..TRIES {
            tokio::time::sleep(PAUSE).await;
            ports.push(port(clients, server).await);
            if done(&ports) {
                break;
            }
        }
        ports
    }

    /// [`calls_until`] from a new thread with a runtime of its own, with
    /// pools of its own or not. The runtime lives a pause longer, as a
    /// server's would, so a connection it is handing back reaches its pool.
    async fn from_thread(
        clients: &Clients,
        server: SocketAddr,
        own: bool,
        done: Done,
    ) -> Vec<String> {
        let clients = clients.clone();
        // A thread never used before: `own_pools` lasts as long as its thread,
        // and tokio's blocking threads are reused.
        let thread = std::thread::spawn(move || {
            if own {
                own_pools();
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let ports = calls_until(&clients, server, done).await;
                tokio::time::sleep(PAUSE).await;
                ports
            })
        });
        tokio::task::spawn_blocking(move || thread.join().expect("thread"))
            .await
            .expect("joined")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thread_with_pools_of_its_own_keeps_its_own_connections() {
        let server = peer_port_server().await;
        for version in [Version::Http1, Version::Http2] {
            own_pools_kept(Clients::new(None, version), server).await;
        }
    }

    async fn own_pools_kept(clients: Clients, server: SocketAddr) {
        // Every connection the shared pool has had.
        let mut shared = HashSet::from([port(&clients, server).await]);
        let ports = calls_until(&clients, server, on_one_of(&shared)).await;
        assert!(
            on_one_of(&shared)(&ports),
            "the pool keeps it: {ports:?} {shared:?}"
        );
        shared.extend(ports);
        // Another thread without pools of its own takes a shared connection
        // (driven by this runtime)...
        let ports = from_thread(&clients, server, false, on_one_of(&shared)).await;
        assert!(
            on_one_of(&shared)(&ports),
            "a thread without pools of its own never got a shared connection: {ports:?} {shared:?}"
        );
        shared.extend(ports);
        // ...one with pools of its own opens one of its own and keeps it.
        let ports = from_thread(&clients, server, true, kept()).await;
        assert!(
            ports.iter().all(|p| !shared.contains(p)),
            "a thread with its own pools took the shared pool's connection: {ports:?} {shared:?}"
        );
        assert!(
            kept()(&ports),
            "a thread's own pool did not keep its connection: {ports:?}"
        );
        let ports = calls_until(&clients, server, on_one_of(&shared)).await;
        assert!(
            on_one_of(&shared)(&ports),
            "the shared pool lost its connections: {ports:?}"
        );
    }

    /// A server as the chassis serves (axum over [`emporium_identity::Listener`],
    /// with TLS when given a config) that answers with the HTTP version a call came in.
    async fn version_server(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
        let app = axum::Router::new().route(
            "/version",
            axum::routing::get(|req: axum::extract::Request| async move {
                format!("{:?}", req.version())
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let listener = emporium_identity::Listener::new(listener, tls).expect("listener");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    async fn version(client: &HttpClient, url: String) -> String {
        let request = http::Request::get(url)
            .body(Body::empty())
            .expect("request");
        let response = client.request(request).await.expect("answer");
        let body = response.into_body().collect().await.expect("body");
        String::from_utf8_lossy(&body.to_bytes()).into_owned()
    }

    #[tokio::test]
    async fn clients_made_for_http2_speak_it_and_every_other_call_http1() {
        let plain = version_server(None).await;
        let url = format!("http://{plain}/version");
        let h2 = Clients::new(None, Version::Http2)
            .to("catalog")
            .expect("client");
        assert_eq!(version(&h2, url.clone()).await, "HTTP/2.0");
        let h1 = Clients::plain().to("catalog").expect("client");
        assert_eq!(version(&h1, url.clone()).await, "HTTP/1.1");
        assert_eq!(version(&http_client(), url.clone()).await, "HTTP/1.1");
        // The registry is called over HTTP/1.1 whatever its principal's clients speak.
        let registry =
            crate::RegistryClient::new(&plain.to_string(), Clients::new(None, Version::Http2));
        let to_registry = registry.clients().to("registry").expect("client");
        assert_eq!(version(&to_registry, url).await, "HTTP/1.1");

        let ca = emporium_identity::Ca::generate().expect("CA");
        let mint = |name| {
            Arc::new(
                ca.mint(
                    emporium_identity::Principal::service(name),
                    Duration::from_secs(3600),
                )
                .expect("credentials"),
            )
        };
        let catalog = mint("catalog");
        let tls = version_server(Some(catalog.server_config().expect("config"))).await;
        let url = format!("https://{tls}/version");
        let h2 = Clients::new(Some(mint("cart")), Version::Http2)
            .to("catalog")
            .expect("client");
        assert_eq!(version(&h2, url.clone()).await, "HTTP/2.0");
        // A client that offers only HTTP/1.1 (these, curl --http1.1, an
        // operator's tool) gets it.
        let h1 = Clients::mtls(mint("cart")).to("catalog").expect("client");
        assert_eq!(version(&h1, url).await, "HTTP/1.1");
    }

    /// A TCP proxy in front of a server whose open connections can be frozen:
    /// they stay open and forward nothing more (a peer gone without a reset).
    struct FreezingProxy {
        addr: SocketAddr,
        /// Connections accepted so far (numbered from 1).
        accepted: Arc<AtomicU64>,
        /// Connections numbered below this are frozen.
        frozen_below: Arc<AtomicU64>,
    }

    impl FreezingProxy {
        async fn start(upstream: SocketAddr) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let proxy = Self {
                addr: listener.local_addr().expect("address"),
                accepted: Arc::new(AtomicU64::new(0)),
                frozen_below: Arc::new(AtomicU64::new(0)),
            };
            let (accepted, frozen_below) = (proxy.accepted.clone(), proxy.frozen_below.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let n = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(Self::relay(
                        n,
                        client_read,
                        server_write,
                        frozen_below.clone(),
                    ));
                    tokio::spawn(Self::relay(
                        n,
                        server_read,
                        client_write,
                        frozen_below.clone(),
                    ));
                }
            });
            proxy
        }

        /// Copies `from` to `to` until either ends, or stops forwarding for good
        /// once connection `n` is frozen.
        async fn relay(
            n: u64,
            mut from: impl tokio::io::AsyncRead + Unpin,
            mut to: impl tokio::io::AsyncWrite + Unpin,
            frozen_below: Arc<AtomicU64>,
        ) {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = vec![0; 16 * 1024];
            loop {
                let Ok(read) = from.read(&mut buf).await else {
                    return;
                };
                if n < frozen_below.load(Ordering::SeqCst) {
                    // Held open, never answered.
                    std::future::pending::<()>().await;
                }
                if read == 0 || to.write_all(&buf[..read]).await.is_err() {
                    return;
                }
            }
        }

        /// Freezes every connection open now; later ones are forwarded.
        fn freeze_open(&self) {
            let open = self.accepted.load(Ordering::SeqCst);
            self.frozen_below.store(open + 1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn an_http2_connection_whose_peer_stops_answering_is_closed_by_its_pings() {
        let server = peer_port_server().await;
        let proxy = FreezingProxy::start(server).await;
        let addr = proxy.addr;
        let ping = Duration::from_millis(500);
        let client = plain_client_pinging(Version::Http2, ping);
        let call = || {
            let request = http::Request::get(format!("http://{addr}/port"))
                .body(Body::empty())
                .expect("request");
            let client = client.clone();
            async move {
                let response = client.request(request).await?;
                let body = response.into_body().collect().await?;
                anyhow::Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
            }
        };
        let first = call().await.expect("answered");
        assert_eq!(call().await.expect("answered"), first, "one connection");
        // The connection open now swallows what it is sent.
        proxy.freeze_open();
        let started = std::time::Instant::now();
        // Without pings it would wait for good (the pool's default pings come
        // every 10 s): within 8 s, the call fails.
        let stuck = tokio::time::timeout(Duration::from_secs(8), call()).await;
        assert!(
            matches!(stuck, Ok(Err(_))),
            "a call on the dead connection should fail once a ping goes unanswered: {stuck:?}"
        );
        // A ping due `ping` after the call started, the connection closed `ping`
        // later: the rest is slack for a busy machine.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The pool dropped it: the next call opens a new connection.
        let next = call().await.expect("answered on a new connection");
        assert_ne!(next, first);
    }
}
