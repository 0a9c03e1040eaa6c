//! `hyper-floor LISTEN UPSTREAM`: the least a reverse proxy built on hyper does per
//! request, for `bench/run.sh` to measure beside nginx and the gateway. It serves
//! the way the gateway does (a thread per core, each a single-threaded tokio
//! runtime accepting from the same socket, with a connection pool of its own,
//! HTTP/1.1 keep-alive both ways) and nothing else: no routing, no limits, no
//! identity, no tracing, no metrics, no header rewriting. What the gateway costs
//! above it is what its features and its layers cost; what it costs above nginx is
//! hyper's and tokio's share. It keeps hyper_util's defaults where the gateway has
//! gone further (the upstream URI made with `format!`, the connection info
//! hyper_util copies into each response): a few allocations a request, so the
//! floor is a little high, if anything.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Upstream = Client<HttpConnector, Incoming>;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hyper-floor LISTEN UPSTREAM [h2] (host:port each; h2: HTTP/2 upstream)";
    let listen: SocketAddr = args.next().context(usage)?.parse().context(usage)?;
    let upstream = args.next().context(usage)?;
    let h2 = match args.next().as_deref() {
        None => false,
        Some("h2") => true,
        Some(_) => anyhow::bail!(usage),
    };
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut running = Vec::new();
    for _ in 0..threads {
        let listener = listener.try_clone()?;
        let upstream = upstream.clone();
        running.push(std::thread::spawn(move || serve(listener, upstream, h2)));
    }
    for thread in running {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a serving thread panicked"))??;
    }
    Ok(())
}

/// One event loop: accepts connections and proxies their requests to `upstream`.
fn serve(listener: std::net::TcpListener, upstream: String, h2: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .http2_only(h2)
            .build(connector);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::task::spawn_local(async move {
                let service = hyper::service::service_fn(move |request| {
                    forward(client.clone(), upstream.clone(), request)
                });
                // A client going away mid-request is not this benchmark's concern.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn forward(
    client: Upstream,
    upstream: String,
    mut request: Request<Incoming>,
) -> Result<Response<http_body_util::Either<Incoming, Full<Bytes>>>, Infallible> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let answer = match format!("http://{upstream}{path}").parse() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            client.request(request).await.ok()
        }
        Err(_) => None,
    };
    Ok(match answer {
        Some(response) => response.map(http_body_util::Either::Left),
        None => {
            let mut response = Response::new(http_body_util::Either::Right(Full::default()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    })
}
