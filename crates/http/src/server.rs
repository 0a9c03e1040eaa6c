//! Serving a router: health endpoints, the middleware stack, graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use emporium_config::HttpSettings;
use emporium_telemetry::Identity;
use futures::future::BoxFuture;
use tokio::net::TcpListener;

use crate::middleware::{self, Chassis};
use crate::problem::ApiError;

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What `/readyz` checks: named checks (a database ping) and whether the server is
/// draining. Cheap to clone; all clones share state.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<std::sync::RwLock<Vec<(&'static str, Check)>>>,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    /// Adds a check; `/readyz` is 503 while any check fails.
    pub fn add<F, Fut>(&self, name: &'static str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        if let Ok(mut checks) = self.checks.write() {
            checks.push((name, check));
        }
    }

    /// Runs every check; the names of the failing ones, with why.
    pub async fn failures(&self) -> Vec<String> {
        if self.draining.load(Ordering::Relaxed) {
            return vec!["shutting down".into()];
        }
        let checks: Vec<_> = match self.checks.read() {
            Ok(c) => c.clone(),
            Err(_) => return vec!["readiness state poisoned".into()],
        };
        let mut failed = Vec::new();
        for (name, check) in checks {
            if let Err(why) = check().await {
                failed.push(format!("{name}: {why}"));
            }
        }
        failed
    }

    pub async fn is_ready(&self) -> bool {
        self.failures().await.is_empty()
    }

    /// Marks the server as shutting down: `/readyz` fails from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

async fn livez() -> &'static str {
    "ok"
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let failures = readiness.failures().await;
    if failures.is_empty() {
        "ready".into_response()
    } else {
        not_ready(format!("not ready: {}", failures.join("; ")))
    }
}

/// 503 with a problem body. Not ready is an answer, not a failure: no warning per
/// probe while a service starts (the supervisor and the registry ask often).
fn not_ready(detail: String) -> Response {
    let error = ApiError::unavailable(detail);
    let mut response = (error.status(), axum::Json(error.problem())).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(crate::problem::PROBLEM_JSON),
    );
    response
}

/// `GET /metrics`: this process's metrics in Prometheus text format.
async fn metrics() -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            emporium_telemetry::metrics::CONTENT_TYPE,
        )],
        emporium_telemetry::metrics::render().await,
    )
        .into_response()
}

/// `/readyz` for the public: ready or not, without saying which check fails.
async fn readyz_terse(State(readiness): State<Readiness>) -> Response {
    if readiness.is_ready().await {
        "ready".into_response()
    } else {
        not_ready("not ready".into())
    }
}

/// The full application: the service's routes behind the default stack (with
/// `chassis`'s guard, owner and admission rule), plus health and metrics.
pub fn app(
    routes: Router,
    settings: &HttpSettings,
    readiness: Readiness,
    chassis: Chassis,
) -> Router {
    let health = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(readiness)
        .route("/metrics", get(metrics));
    middleware::stack(routes.merge(health), settings, chassis)
}

/// [`app`] for a public port with an admin port beside it ([`admin_app`]): no
/// `/metrics`, and `/readyz` without the failing checks' details.
pub fn public_app(
    routes: Router,
    settings: &HttpSettings,
    readiness: Readiness,
    chassis: Chassis,
) -> Router {
    let health = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz_terse))
        .with_state(readiness);
    middleware::stack(routes.merge(health), settings, chassis)
}

/// The admin port of a public service: probes with details, and `/metrics`.
pub fn admin_app(readiness: Readiness) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(readiness)
        .route("/metrics", get(metrics))
}

/// `app` with every request handled as the work of `identity` (outermost, so the
/// access log, metrics and spans of the request are that service's too): for a
/// router outside the default stack, the admin port's.
pub fn owned_by(app: Router, identity: Arc<Identity>) -> Router {
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            emporium_telemetry::identity::scope(identity.clone(), next.run(req))
        },
    ))
}

/// Serves `app` (see [`app`]) on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for at most `grace`; `/readyz` fails from the start
/// of shutdown. With `tls`, connections that start a TLS handshake get one and
/// each request learns its peer (see [`crate::guard`]).
pub async fn serve(
    app: Router,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    grace: Duration,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        readiness.drain();
        tracing::info!("shutting down");
        let _ = started_tx.send(());
    };
    let listener = emporium_identity::Listener::new(listener, tls)?;
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<emporium_identity::Remote>(),
    )
    .with_graceful_shutdown(signal)
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        _ = async {
            if started_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; dropping open connections");
            Ok(())
        }
    }
}

/// The threads [`serve_threaded`] serves on.
#[derive(Clone)]
pub struct Threads {
    /// How many (at least one).
    pub count: usize,
    /// Runs first on each thread with its index: the caller's per-thread setup
    /// (connection pools of its own, say).
    pub on_start: Arc<dyn Fn(usize) + Send + Sync>,
}

/// [`serve`] on `threads.count` threads of its own, each with a single-threaded
/// tokio runtime accepting from the same listening socket (one event loop per
/// core, as nginx's workers; unlike nginx, every thread is woken by a new
/// connection and one of them wins it: keep-alive connections make that rare). A
/// request and everything it awaits stay on the thread that accepted its
/// connection, so no task is woken across threads on the way; the state `app`
/// shares (limits, caches) is shared by every thread. `threads.on_start` runs
/// first on each thread. Shutdown is [`serve`]'s on every thread (drain, then the
/// grace period); if this future is dropped instead (a crash), every thread drops
/// its connections at once.
pub async fn serve_threaded(
    app: Router,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    grace: Duration,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
    threads: Threads,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    // Dropped with this future: the threads then stop without a grace period.
    let (_alive, abandoned) = tokio::sync::watch::channel(());
    let mut finished = Vec::with_capacity(threads.count);
    for index in 0..threads.count.max(1) {
        let listener = listener.try_clone()?;
        let (app, tls, readiness) = (app.clone(), tls.clone(), readiness.clone());
        let (mut stop, mut abandoned) = (stop_rx.clone(), abandoned.clone());
        let on_start = threads.on_start.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        let thread = move || {
            on_start(index);
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        let stopping = async move {
                            let _ = stop.wait_for(|stopping| *stopping).await;
                        };
                        tokio::select! {
                            served = serve(app, listener, tls, grace, readiness, stopping) => served,
                            _ = abandoned.changed() => Ok(()),
                        }
                    })
                });
            let _ = done.send(served);
        };
        std::thread::Builder::new()
            .name(format!("http-{index}"))
            .spawn(thread)?;
        finished.push(result);
    }
    drop(listener);
    // A thread that stops on its own (an error) stops the others.
    let all_stopped = futures::future::join_all(finished.into_iter().map(|result| {
        let stop_all = stop_tx.clone();
        async move {
            let result = result.await;
            let _ = stop_all.send(true);
            result
        }
    }));
    // Ends when the threads are told to stop: by the caller, or by one of them.
    let mut stopping = stop_rx;
    let signal = async move {
        tokio::select! {
            () = shutdown => {
                let _ = stop_tx.send(true);
            }
            _ = stopping.wait_for(|stopping| *stopping) => {}
        }
    };
    let (results, ()) = futures::future::join(all_stopped, signal).await;
    for result in results {
        result.map_err(|_| std::io::Error::other("a serving thread panicked"))??;
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The shutdown future `emporium serve` hands a service.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use emporium_contracts::headers;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn slow_app(settings: &HttpSettings, readiness: Readiness) -> Router {
        let routes = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        app(routes, settings, readiness, Chassis::default())
    }

    async fn problem_code(r: Response) -> String {
        assert_eq!(
            r.headers()[http::header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = r.into_body().collect().await.expect("body").to_bytes();
        let p: crate::Problem = serde_json::from_slice(&body).expect("problem");
        p.code
    }

    #[tokio::test]
    async fn the_callers_deadline_is_enforced_with_504() {
        let app = slow_app(&HttpSettings::default(), Readiness::default());
        let r = app
            .oneshot(
                Request::get("/slow")
                    .header(headers::TIMEOUT_MS, "50")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(r.headers().contains_key(headers::REQUEST_ID));
        assert_eq!(problem_code(r).await, "timeout");
    }

    #[tokio::test]
    async fn past_the_concurrency_limit_requests_are_shed_with_503() {
        let settings = HttpSettings {
            concurrency_limit: 1,
            ..HttpSettings::default()
        };
        let app = slow_app(&settings, Readiness::default());
        let first = tokio::spawn(
            app.clone()
                .oneshot(Request::get("/slow").body(Body::empty()).expect("request")),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = app
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()[http::header::RETRY_AFTER], "1");
        // Marked as shed, for the gateway's brownout to tell from other 503s.
        assert_eq!(second.headers()[emporium_contracts::headers::SHED], "1");
        assert_eq!(problem_code(second).await, "unavailable");
        // Probes are outside the limit.
        let live = app
            .oneshot(Request::get("/livez").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(live.status(), StatusCode::OK);
        assert_eq!(
            first.await.expect("join").expect("response").status(),
            StatusCode::OK
        );
    }

    /// What a load run saw: answers per second, the p99 of the answered, and
    /// how many were shed.
    #[derive(Debug)]
    struct Seen {
        goodput: f64,
        p99: Duration,
        shed: usize,
        /// The p99 of the first second, at a quarter of the capacity.
        unloaded_p99: Duration,
    }

    fn p99(mut latencies: Vec<Duration>) -> Duration {
        latencies.sort();
        latencies
            .get(latencies.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or_default()
    }

    /// A service that works on 4 requests at once, 20 ms each (200 a second):
    /// 1 s at 50 a second, then `rate` a second for 3 s, counted after the first
    /// second of it.
    async fn offered(adaptive: bool, rate: u32) -> Seen {
        let capacity = Arc::new(tokio::sync::Semaphore::new(4));
        let routes = Router::new().route(
            "/work",
            get(move || {
                let capacity = capacity.clone();
                async move {
                    let _worker = capacity.acquire().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    "done"
                }
            }),
        );
        let settings = HttpSettings {
            adaptive_concurrency: adaptive,
            concurrency_floor: 1,
            request_timeout_ms: 2_000,
            ..HttpSettings::default()
        };
        let app = app(routes, &settings, Readiness::default(), Chassis::default());
        let mut calls = tokio::task::JoinSet::new();
        let start = std::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0u32;
        while start.elapsed() < Duration::from_secs(4) {
            tick.tick().await;
            // Open loop: what is due by now is sent, answered or not.
            let elapsed = start.elapsed().as_secs_f64();
            let due = if elapsed < 1.0 {
                (elapsed * 50.0) as u32
            } else {
                50 + ((elapsed - 1.0) * f64::from(rate)) as u32
            };
            while sent < due {
                sent += 1;
                let app = app.clone();
                calls.spawn(async move {
                    let began = std::time::Instant::now();
                    let status = app
                        .oneshot(Request::get("/work").body(Body::empty()).expect("request"))
                        .await
                        .map(|r| r.status())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    (began, status, began.elapsed())
                });
            }
        }
        let counted_from = start + Duration::from_secs(2);
        let (mut ok, mut shed, mut latencies, mut unloaded) =
            (0usize, 0usize, Vec::new(), Vec::new());
        while let Some(call) = calls.join_next().await {
            let (began, status, took) = call.expect("join");
            if began < start + Duration::from_secs(1) {
                unloaded.push(took);
                continue;
            }
            if began < counted_from {
                continue;
            }
            match status {
                StatusCode::OK => {
                    ok += 1;
                    latencies.push(took);
                }
                StatusCode::SERVICE_UNAVAILABLE => shed += 1,
                _ => {}
            }
        }
        Seen {
            goodput: ok as f64 / 2.0,
            p99: p99(latencies),
            shed,
            unloaded_p99: p99(unloaded),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_three_times_capacity_goodput_holds_and_the_answered_stay_fast() {
        let adaptive = offered(true, 600).await;
        assert!(
            adaptive.goodput >= 0.9 * 200.0,
            "serves about what it can: {adaptive:?}"
        );
        assert!(adaptive.shed > 0, "{adaptive:?}");
        assert!(
            adaptive.p99 <= 5 * adaptive.unloaded_p99.max(Duration::from_millis(20)),
            "within five times the unloaded p99: {adaptive:?}"
        );
        // The control: the same load against a fixed limit queues up.
        let fixed = offered(false, 600).await;
        assert!(
            fixed.p99 > Duration::from_millis(300),
            "without the adaptive limit requests queue: {fixed:?}"
        );
    }

    #[tokio::test]
    async fn readiness_follows_checks_and_draining() {
        let readiness = Readiness::default();
        let healthy = Arc::new(AtomicBool::new(false));
        let flag = healthy.clone();
        readiness.add("database", move || {
            let ok = flag.load(Ordering::Relaxed);
            async move { if ok { Ok(()) } else { Err("down".into()) } }
        });
        let app = slow_app(&HttpSettings::default(), readiness.clone());
        let get = |app: Router| async move {
            app.oneshot(
                Request::get("/readyz")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response")
            .status()
        };
        assert_eq!(get(app.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
        healthy.store(true, Ordering::Relaxed);
        assert_eq!(get(app.clone()).await, StatusCode::OK);
        readiness.drain();
        assert_eq!(get(app).await, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn a_public_port_keeps_metrics_and_check_details_for_the_admin_port() {
        let readiness = Readiness::default();
        readiness.add("database", || async {
            Err("connection refused to 10.0.0.5".into())
        });
        let public = public_app(
            Router::new(),
            &HttpSettings::default(),
            readiness.clone(),
            Chassis::default(),
        );
        let admin = admin_app(readiness);
        let body = |r: Response| async move {
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
                .await
                .expect("body");
            String::from_utf8_lossy(&bytes).to_string()
        };
        let ask = |app: Router, path: &'static str| async move {
            app.oneshot(Request::get(path).body(Body::empty()).expect("request"))
                .await
                .expect("response")
        };
        let r = ask(public.clone(), "/metrics").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = ask(public.clone(), "/readyz").await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body(r).await.contains("10.0.0.5"), "no details in public");
        let r = ask(admin.clone(), "/readyz").await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body(r).await.contains("10.0.0.5"),
            "the details on the admin port"
        );
        assert_eq!(ask(admin, "/metrics").await.status(), StatusCode::OK);
        assert_eq!(ask(public, "/livez").await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problems() {
        let app = slow_app(&HttpSettings::default(), Readiness::default());
        let r = app
            .clone()
            .oneshot(Request::get("/nope").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(problem_code(r).await, "not_found");
        let r = app
            .oneshot(Request::post("/slow").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(r.headers().contains_key(http::header::ALLOW));
        assert_eq!(problem_code(r).await, "method_not_allowed");
    }

    /// One `GET /who` on a connection of its own: the status line and the body.
    async fn who(addr: std::net::SocketAddr) -> std::io::Result<String> {
        get_on_new_connection(addr, "/who").await
    }

    async fn get_on_new_connection(
        addr: std::net::SocketAddr,
        path: &str,
    ) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    /// A server on `threads` threads of its own whose `/who` names the thread
    /// that answered (and `/slow` takes 300 ms, notifying `slow_started` as it
    /// starts), with `readiness`; its address and its task.
    async fn threaded(
        threads: usize,
        readiness: Readiness,
        slow_started: Arc<tokio::sync::Notify>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let routes = Router::new()
            .route(
                "/who",
                get(|| async { std::thread::current().name().unwrap_or("?").to_string() }),
            )
            .route(
                "/slow",
                get(move || {
                    let started = slow_started.clone();
                    async move {
                        started.notify_one();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "done"
                    }
                }),
            );
        let app = app(
            routes,
            &HttpSettings::default(),
            readiness.clone(),
            Chassis::default(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = started.clone();
        let on_start = Arc::new(move |index: usize| {
            if let Ok(mut seen) = seen.lock() {
                seen.push(index);
            }
        });
        let server = tokio::spawn(serve_threaded(
            app,
            listener,
            None,
            Duration::from_secs(1),
            readiness,
            shutdown,
            Threads {
                count: threads,
                on_start,
            },
        ));
        // Each thread ran the caller's setup once.
        for _ in 0..1_000 {
            if started.lock().map(|s| s.len()).unwrap_or(0) == threads {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut seen = started.lock().expect("lock").clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..threads).collect::<Vec<_>>());
        (addr, server)
    }

    #[tokio::test]
    async fn threads_of_its_own_answer_and_drain_on_shutdown() {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let readiness = Readiness::default();
        let slow_started = Arc::new(tokio::sync::Notify::new());
        let (addr, server) = threaded(2, readiness.clone(), slow_started.clone(), async {
            let _ = stopped.await;
        })
        .await;
        for _ in 0..10 {
            let answer = who(addr).await.expect("answered");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(
                answer.ends_with("http-0") || answer.ends_with("http-1"),
                "answered on a serving thread, not the caller's runtime: {answer}"
            );
        }
        // A request in flight when shutdown starts is answered, not dropped.
        let in_flight = tokio::spawn(get_on_new_connection(addr, "/slow"));
        slow_started.notified().await;
        let _ = stop.send(());
        let answer = in_flight.await.expect("join").expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        assert!(!readiness.is_ready().await, "/readyz fails while draining");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("stopped within the grace period")
            .expect("join")
            .expect("served");
        assert!(who(addr).await.is_err(), "the port is closed");
    }

    #[tokio::test]
    async fn dropping_the_server_closes_the_port_at_once() {
        let (addr, server) = threaded(
            2,
            Readiness::default(),
            Arc::default(),
            std::future::pending(),
        )
        .await;
        assert!(
            who(addr)
                .await
                .expect("answered")
                .starts_with("HTTP/1.1 200")
        );
        // A crashed service: its server future dropped, no shutdown signalled.
        server.abort();
        let mut closed = false;
        for _ in 0..100 {
            if who(addr).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            closed,
            "the threads still serve after their server was dropped"
        );
    }
}
