//! Observability through real processes: one checkout is one trace from the
//! gateway to the notification consumer (received by an OTLP receiver inside the
//! test), every service's `/metrics` parses and moves with a checkout, a real
//! Prometheus finds every service through the registry, the shipped Prometheus and
//! Grafana files are valid and refer only to metrics that exist, logs carry trace
//! ids and are searchable with `emporium logs` and `emporium trace`, and no secret
//! reaches a log line or a span.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emporium_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use emporium_testkit::prom::{self, Scrape};
use emporium_testkit::servers;
use serde_json::Value;

use super::checkout::{APPROVE, DECLINE, body, emporium, key, shopper, stocked_sku};
use super::{Up, http};

/// Every process `emporium up` starts.
const SERVICES: [&str; 12] = [
    "registry",
    "gateway",
    "users",
    "catalog",
    "inventory",
    "payments",
    "cart",
    "orders",
    "notifications",
    "search",
    "reviews",
    "storefront",
];

/// A trace id sent by a caller outside the shop.
const OUTSIDE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const CONSUMER: i32 = 5;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The span of `service` in `trace` that satisfies `pred`.
fn find<'a>(
    spans: &'a [ReceivedSpan],
    trace: &str,
    service: &str,
    pred: impl Fn(&ReceivedSpan) -> bool,
) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.trace_id == trace && s.service == service && pred(s))
}

fn by_id<'a>(spans: &'a [ReceivedSpan], trace: &str, id: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.trace_id == trace && s.span_id == id)
}

/// `emporium up` exporting spans to a receiver of the test's, with `sampler`.
/// The services one checkout passes through.
const CHECKOUT_SERVICES: [&str; 6] = [
    "gateway",
    "orders",
    "inventory",
    "payments",
    "notifications",
    "cart",
];

async fn traced(data: &Path, sampler: &str, ratio: &str) -> (Up, OtlpReceiver) {
    let receiver = OtlpReceiver::start().await.expect("otlp receiver");
    let endpoint = receiver.endpoint();
    let up = Up::start_with(
        data,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_TRACES_SAMPLER", sampler),
            ("OTEL_TRACES_SAMPLER_ARG", ratio),
        ],
    );
    (up, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkout_is_one_trace_from_the_gateway_to_the_mail_and_logs_follow_it() {
    let data = tempfile::tempdir().expect("data dir");
    let (up, receiver) = traced(data.path(), "parentbased_always_on", "1").await;
    let tracy = shopper(&up, "tracy@example.com").await;
    let sku = stocked_sku(&up, 0).await;
    assert_eq!(tracy.add(&up, &sku, 1).await.status(), 200);
    // A caller from outside sends a trace context of its own: the gateway starts a
    // trace of its own instead, linked to the caller's.
    let r = http()
        .post(up.at("/api/orders"))
        .bearer_auth(&tracy.token)
        .header("idempotency-key", key())
        .header(
            "traceparent",
            format!("00-{OUTSIDE_TRACE}-b7ad6b7169203331-01"),
        )
        .header("tracestate", "outside=1")
        .json(&body(APPROVE, "Springfield"))
        .send()
        .await
        .expect("checkout");
    assert_eq!(r.status(), 202);
    let placed: Value = r.json().await.expect("json");
    let order_id = placed["id"].as_str().expect("id").to_string();
    let order = tracy.settled(&up, &order_id, Duration::from_secs(30)).await;
    assert_eq!(order["status"], "CONFIRMED");

    // The orders span that placed this order names it; its trace is the checkout's.
    let spans = receiver
        .wait_for(Duration::from_secs(30), |spans| {
            let Some(saga) = spans.iter().find(|s| {
                s.service == "orders" && s.attribute("emporium.order_id") == Some(&order_id)
            }) else {
                return false;
            };
            // Each service exports on its own schedule: wait for all of them, and
            // for every span's parent (a server span ends after its children).
            let trace = &saga.trace_id;
            let all_there = CHECKOUT_SERVICES.iter().all(|service| {
                spans
                    .iter()
                    .any(|s| s.trace_id == *trace && s.service == *service)
            });
            let tree_complete = spans
                .iter()
                .filter(|s| s.trace_id == *trace && !s.parent_span_id.is_empty())
                .all(|s| by_id(spans, trace, &s.parent_span_id).is_some());
            all_there
                && tree_complete
                && spans.iter().any(|s| {
                    s.trace_id == saga.trace_id
                        && s.service == "notifications"
                        && s.name == "send mail"
                })
        })
        .await;
    let saga = spans
        .iter()
        .find(|s| s.service == "orders" && s.attribute("emporium.order_id") == Some(&order_id))
        .unwrap_or_else(|| panic!("no saga span for {order_id} among {} spans", spans.len()));
    let trace = saga.trace_id.clone();
    let in_trace: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let services: BTreeSet<&str> = in_trace.iter().map(|s| s.service.as_str()).collect();
    for service in CHECKOUT_SERVICES {
        assert!(
            services.contains(service),
            "{service} is in the checkout's trace: {services:?}"
        );
    }

    // One root: the gateway's server span for POST /api/orders.
    let roots: Vec<_> = in_trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(roots[0].service, "gateway");
    assert_eq!(roots[0].kind, SERVER);
    assert_ne!(trace, OUTSIDE_TRACE, "the public does not pick trace ids");
    assert!(
        roots[0]
            .links
            .contains(&(OUTSIDE_TRACE.to_string(), "b7ad6b7169203331".to_string())),
        "the gateway's span links to the caller's: {:?}",
        roots[0].links
    );
    assert!(spans.iter().all(|s| s.trace_id != OUTSIDE_TRACE));
    // Every other span's parent is in the trace.
    for s in &in_trace {
        if !s.parent_span_id.is_empty() {
            assert!(
                by_id(&spans, &trace, &s.parent_span_id).is_some(),
                "the parent of {} {} is in the trace",
                s.service,
                s.name
            );
        }
    }
    // gateway client → orders server: the hop is one client span and its child.
    let orders_server = find(&spans, &trace, "orders", |s| {
        s.kind == SERVER && s.attribute("http.request.method") == Some("POST")
    })
    .expect("orders served the checkout");
    let hop = by_id(&spans, &trace, &orders_server.parent_span_id).expect("parent");
    assert_eq!((hop.service.as_str(), hop.kind), ("gateway", CLIENT));
    // The saga runs under the checkout request; inventory and payments are called
    // from it, each through a client span of orders.
    let saga_parent = by_id(&spans, &trace, &saga.parent_span_id).expect("saga parent");
    assert_eq!(saga_parent.service, "orders");
    for callee in ["inventory", "payments"] {
        let served = find(&spans, &trace, callee, |s| s.kind == SERVER)
            .unwrap_or_else(|| panic!("{callee} served a saga call"));
        let call = by_id(&spans, &trace, &served.parent_span_id).expect("caller");
        assert_eq!((call.service.as_str(), call.kind), ("orders", CLIENT));
        assert_eq!(
            call.parent_span_id, saga.span_id,
            "{callee} is called by the saga"
        );
    }
    // The notification consumer's span is a child of, and links to, the span that
    // published OrderConfirmed (the saga).
    let consumed = find(&spans, &trace, "notifications", |s| {
        s.kind == CONSUMER
            && s.attribute("messaging.destination.name")
                .is_some_and(|t| t.contains(".OrderConfirmed."))
    })
    .unwrap_or_else(|| {
        let theirs: Vec<_> = spans
            .iter()
            .filter(|s| s.service == "notifications")
            .collect();
        panic!("notifications handled OrderConfirmed in trace {trace}: {theirs:#?}")
    });
    assert_eq!(consumed.parent_span_id, saga.span_id);
    assert!(
        consumed
            .links
            .contains(&(trace.clone(), saga.span_id.clone()))
    );
    // Sending the mail, later, on the delivery loop, is a child of that consumer span.
    let sent = find(&spans, &trace, "notifications", |s| s.name == "send mail")
        .expect("the mail's sending is in the trace");
    assert_eq!(sent.parent_span_id, consumed.span_id);
    assert!(!sent.error);
    // Database transactions are spans too.
    assert!(
        find(&spans, &trace, "orders", |s| s.name == "db.transaction").is_some(),
        "orders' transactions are in the trace"
    );

    // Logs: JSON lines with the fields that matter, and the same trace id.
    let log = std::fs::read_to_string(data.path().join("logs/emporium.log")).expect("log file");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let traced: Vec<&Value> = lines
        .iter()
        .filter(|l| l["trace_id"] == trace.as_str())
        .collect();
    let logged: BTreeSet<&str> = traced
        .iter()
        .filter_map(|l| l["service"].as_str())
        .collect();
    for service in [
        "gateway",
        "orders",
        "inventory",
        "payments",
        "notifications",
    ] {
        assert!(
            logged.contains(service),
            "{service} logged in the trace: {logged:?}"
        );
    }
    for l in &traced {
        for field in [
            "timestamp",
            "level",
            "service",
            "instance",
            "trace_id",
            "span_id",
            "message",
        ] {
            assert!(l[field].is_string(), "{field} in {l}");
        }
    }
    // `emporium logs --trace` shows that trace only, from every service.
    let (ok, out) = emporium(data.path(), &["logs", "--trace", &trace]);
    assert!(ok, "{out}");
    let shown: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        shown.len(),
        traced.len(),
        "every line of the trace, nothing else"
    );
    let (ok, out) = emporium(data.path(), &["logs", "payments", "--level", "info"]);
    assert!(ok, "{out}");
    assert!(
        out.lines().count() >= 2,
        "payments logged its requests:\n{out}"
    );
    assert!(out.lines().all(|l| {
        let v: Value = serde_json::from_str(l).expect("json");
        v["service"] == "payments"
            && ["INFO", "WARN", "ERROR"].contains(&v["level"].as_str().unwrap_or(""))
    }));
    let (ok, out) = emporium(data.path(), &["logs", "--level", "error"]);
    assert!(
        ok && out.lines().count() < lines.len(),
        "levels filter:\n{out}"
    );
    // `emporium trace ORDER_ID`: the saga's timeline across services.
    let (ok, out) = emporium(data.path(), &["trace", &order_id]);
    assert!(ok, "{out}");
    for needle in [
        "gateway",
        "inventory",
        "payments",
        "notifications",
        "order confirmed",
        "event handled",
        "mail sent",
    ] {
        assert!(out.contains(needle), "{needle} in the timeline:\n{out}");
    }
    let (ok, out) = emporium(data.path(), &["trace", "no-such-order"]);
    assert!(!ok && out.contains("no log line mentions order"), "{out}");

    // Secrets: no password, token, card number, bootstrap secret, join token or
    // private key in any log line or span.
    let exported = receiver.raw_bytes();
    let exported = String::from_utf8_lossy(&exported);
    let token = tracy.token.as_str();
    let identity = data.path().join("identity");
    let bootstrap = std::fs::read_to_string(identity.join("bootstrap.secret")).expect("secret");
    let bootstrap = bootstrap.trim();
    let ca_key = std::fs::read_to_string(identity.join("ca.key")).expect("CA key");
    let ca_key = ca_key.lines().nth(1).expect("a PEM body").to_string();
    let orders_token = emporium_identity::token::join_token(bootstrap, "orders");
    // The operator's way to a token for a process started elsewhere.
    let (ok, out) = emporium(data.path(), &["token", "orders"]);
    assert!(ok && out.trim() == orders_token, "{out}");
    for secret in [
        APPROVE,
        emporium_testkit::PASSWORD,
        token,
        token.split('.').nth(2).unwrap_or(token),
        bootstrap,
        &orders_token,
        &ca_key,
    ] {
        assert!(!log.contains(secret), "a secret is in the logs");
        assert!(!exported.contains(secret), "a secret is in the spans");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_not_sampled_is_exported_by_no_service_yet_logged_with_its_id() {
    let data = tempfile::tempdir().expect("data dir");
    // The gateway samples no new trace; every service behind it follows its
    // caller's (unsampled) decision rather than sampling on its own.
    let (up, receiver) = traced(data.path(), "parentbased_traceidratio", "0").await;
    let shopper = shopper(&up, "unsampled@example.com").await;
    let sku = stocked_sku(&up, 0).await;
    assert_eq!(shopper.add(&up, &sku, 1).await.status(), 200);
    let order = shopper
        .check_out(&up, APPROVE, Duration::from_secs(30))
        .await;
    assert_eq!(order["status"], "CONFIRMED");
    let id = order["id"].as_str().expect("id");
    super::checkout::wait_for_mails(data.path(), &[id.to_string()], Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.count(), 0, "nothing sampled, nothing exported");
    // The logs still tie the checkout together.
    let (ok, out) = emporium(data.path(), &["trace", id]);
    assert!(ok, "{out}");
    for service in [
        "gateway",
        "orders",
        "inventory",
        "payments",
        "notifications",
    ] {
        assert!(out.contains(service), "{service} in the timeline:\n{out}");
    }
}

/// GET `/metrics` of one process, parsed strictly.
pub(crate) async fn scrape(address: &str) -> Scrape {
    let r = http()
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "exposition content type"
    );
    let text = r.text().await.expect("text");
    prom::parse(&text).unwrap_or_else(|e| panic!("{address}/metrics: {e}"))
}

/// Every service's metrics; the gateway's from its admin port, which is the only
/// place it serves them (the public port answers 404).
async fn scrape_all(up: &Up) -> HashMap<&'static str, Scrape> {
    let public = http()
        .get(up.at("/metrics"))
        .send()
        .await
        .expect("public metrics");
    assert_eq!(public.status(), 404, "no metrics on the public port");
    let mut all = HashMap::new();
    for service in SERVICES {
        let address = match service {
            "gateway" => up.addr("gateway/admin"),
            _ => up.addr(service),
        };
        all.insert(service, scrape(&address).await);
    }
    all
}

/// Metric names a PromQL expression refers to (ours all start with these).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_' || bytes[i] == ':')
            {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            let before = start.checked_sub(1).map(|p| bytes[p]);
            let is_label = before == Some('"') || before == Some('$');
            if !is_label
                && (word.starts_with("http_")
                    || word.starts_with("emporium_")
                    || word.starts_with("process_"))
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_metrics_that_move_with_a_checkout() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    let shopper = shopper(&up, "metra@example.com").await;
    let sku = stocked_sku(&up, 0).await;
    let before = scrape_all(&up).await;

    assert_eq!(shopper.add(&up, &sku, 2).await.status(), 200);
    let confirmed = shopper
        .check_out(&up, APPROVE, Duration::from_secs(30))
        .await;
    assert_eq!(confirmed["status"], "CONFIRMED");
    let total = confirmed["total"]["amount"].as_i64().expect("total") as f64;
    let currency = confirmed["total"]["currency"]
        .as_str()
        .expect("currency")
        .to_string();
    assert_eq!(shopper.add(&up, &sku, 1).await.status(), 200);
    let declined = shopper
        .check_out(&up, DECLINE, Duration::from_secs(30))
        .await;
    assert_eq!(declined["status"], "CANCELLED");
    // Give notifications the time to send the mail.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let after = scrape_all(&up).await;
        if after["notifications"].sum("emporium_mails_sent_total", &[])
            > before["notifications"].sum("emporium_mails_sent_total", &[])
            || Instant::now() > deadline
        {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let moved = |service: &str, name: &str, labels: &[(&str, &str)]| {
        after[service].sum(name, labels) - before[service].sum(name, labels)
    };

    // RED: the gateway and orders served the checkout, by route template and status.
    assert!(
        moved(
            "gateway",
            "http_server_requests_total",
            &[
                ("route", "/api/orders"),
                ("method", "POST"),
                ("status", "202")
            ]
        ) >= 2.0
    );
    assert!(
        moved(
            "orders",
            "http_server_requests_total",
            &[("method", "POST"), ("status", "202")]
        ) >= 2.0
    );
    assert!(
        moved(
            "orders",
            "http_server_request_duration_seconds_count",
            &[("method", "POST"), ("status", "202")]
        ) >= 2.0
    );
    assert!(moved("cart", "http_server_requests_total", &[("status", "200")]) >= 2.0);
    assert!(after["gateway"].sum("process_cpu_seconds_total", &[]) > 0.0);
    // Services label by their route templates, never by the path with its id.
    assert!(
        moved(
            "orders",
            "http_server_requests_total",
            &[("route", "/api/orders/{id}"), ("method", "GET")]
        ) >= 2.0
    );
    assert!(after["orders"].samples.iter().all(|s| {
        s.labels
            .get("route")
            .is_none_or(|r| !r.contains(confirmed["id"].as_str().unwrap_or("-")))
    }));
    // Outbound calls per target.
    assert!(
        moved(
            "orders",
            "http_client_requests_total",
            &[("target", "inventory")]
        ) >= 2.0
    );
    assert!(
        moved(
            "orders",
            "http_client_requests_total",
            &[("target", "payments")]
        ) >= 2.0
    );
    assert!(
        moved(
            "gateway",
            "http_client_requests_total",
            &[("target", "orders")]
        ) >= 2.0
    );
    // Business counters and saga outcomes.
    assert_eq!(moved("orders", "emporium_orders_placed_total", &[]), 2.0);
    assert_eq!(moved("orders", "emporium_orders_confirmed_total", &[]), 1.0);
    assert_eq!(
        moved(
            "orders",
            "emporium_orders_cancelled_total",
            &[("reason", "payment_declined")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "orders",
            "emporium_revenue_minor_units_total",
            &[("currency", &currency)]
        ),
        total
    );
    assert_eq!(
        moved(
            "orders",
            "emporium_saga_duration_seconds_count",
            &[("outcome", "confirmed")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "orders",
            "emporium_saga_duration_seconds_count",
            &[("outcome", "cancelled")]
        ),
        1.0
    );
    // Each saga's steps (a step retried counts again), and its writes as waited for.
    for (step, at_least) in [
        ("reserve", 2.0),
        ("authorize", 2.0),
        ("complete", 1.0),
        ("compensate", 1.0),
    ] {
        let took = moved(
            "orders",
            "emporium_saga_step_duration_seconds_count",
            &[("step", step)],
        );
        assert!(took >= at_least, "{step}: {took}");
    }
    assert!(moved("orders", "emporium_store_write_seconds_count", &[]) >= 4.0);
    assert_eq!(moved("cart", "emporium_cart_items_added_total", &[]), 2.0);
    assert!(
        moved("notifications", "emporium_mails_sent_total", &[]) >= 1.0,
        "a mail was sent"
    );
    assert!(
        moved(
            "notifications",
            "emporium_events_handled_total",
            &[
                ("subscription", "notifications.orders"),
                ("outcome", "applied")
            ]
        ) >= 2.0
    );
    // Event gauges: lag and dead letters per subscription; the outbox.
    assert!(after["notifications"].has("emporium_consumer_lag_events"));
    assert_eq!(
        after["notifications"].sum("emporium_dead_letters", &[]),
        0.0
    );
    assert!(after["orders"].sum("emporium_outbox_head_sequence", &[]) >= 2.0);

    for (service, scrape) in &after {
        // Process metrics everywhere.
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(scrape.sum(name, &[]) > 0.0, "{service}: {name}");
        }
        // CPU counts in 10 ms ticks: an idle service may still be at zero.
        assert!(scrape.has("process_cpu_seconds_total"), "{service}: CPU");
        // In the monolith every service's series say whose they are, and its
        // `/metrics` shows its own only; apart, nothing adds the label.
        let own_requests = scrape
            .samples
            .iter()
            .filter(|s| s.name == "http_server_requests_total")
            .collect::<Vec<_>>();
        assert!(!own_requests.is_empty(), "{service}: requests counted");
        for s in &scrape.samples {
            let label = s.labels.get("service").map(String::as_str);
            // The registry runs apart from the monolith.
            if crate::monolith() && *service != "registry" {
                if !s.name.starts_with("process_") {
                    assert_eq!(
                        label,
                        Some(*service),
                        "{service}: {} {:?}",
                        s.name,
                        s.labels
                    );
                }
            } else {
                assert_eq!(label, None, "{service}: {} {:?}", s.name, s.labels);
            }
        }
        // No label value is an id: bounded label sets only.
        for s in &scrape.samples {
            for (k, v) in &s.labels {
                let looks_like_id = uuid::Uuid::parse_str(v).is_ok()
                    || v.contains(confirmed["id"].as_str().unwrap_or("-"))
                    || v.chars().filter(char::is_ascii_digit).count() > 6;
                assert!(
                    !looks_like_id || k == "le",
                    "{service}: {} has {k}={v}",
                    s.name
                );
            }
        }
    }

    // The shipped alert rules and dashboard refer only to metrics that exist.
    let mut exist: HashSet<String> = HashSet::new();
    for scrape in after.values() {
        exist.extend(scrape.samples.iter().map(|s| s.name.clone()));
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/emporium-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    let rules =
        std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).expect("rules");
    assert!(
        exprs.len() > 20,
        "the dashboard has queries: {}",
        exprs.len()
    );
    // The whole rules file: every name in it must exist, in queries or prose.
    exprs.push(rules);
    let mut referred = BTreeSet::new();
    for e in &exprs {
        referred.extend(metric_names(e));
    }
    assert!(referred.len() > 15, "{referred:?}");
    let missing: Vec<&String> = referred.iter().filter(|n| !exist.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "referred to but not exported: {missing:?}"
    );
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// A Debian tool, or None (and the test says why) when it is absent locally.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if servers::required() => panic!("{test} needs {name}: apt-get install prometheus"),
        None => {
            eprintln!(
                "SKIPPED {test}: {name} is not installed (scripts/test installs it; or apt-get install prometheus)"
            );
            None
        }
    }
}

#[test]
fn promtool_accepts_the_shipped_config_and_rules() {
    let Some(promtool) = tool("promtool", "promtool_accepts_the_shipped_config_and_rules") else {
        return;
    };
    for args in [
        ["check", "config", "deploy/prometheus/prometheus.yml"],
        ["check", "rules", "deploy/prometheus/alerts.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(repo())
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A Prometheus server of the test's own, killed when dropped.
struct Prometheus {
    child: std::process::Child,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_finds_every_service_through_the_registry() {
    let test = "a_real_prometheus_finds_every_service_through_the_registry";
    let Some(prometheus) = tool("prometheus", test) else {
        return;
    };
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_on(data.path(), None, &[], &["--replicas", "orders=2"]);
    let registry =
        std::fs::read_to_string(data.path().join("run/registry.url")).expect("registry url");
    // The config `emporium up` wrote for this run (the shipped one, pointed at its
    // registry), scraping every second.
    let written = std::fs::read_to_string(data.path().join("run/prometheus.yml")).expect("config");
    // Prometheus reads its targets over plain HTTP (an open path), whatever
    // the scheme services speak.
    let registry_addr = registry.trim().split_once("://").expect("a URL").1;
    assert!(written.contains(&format!(
        "http://{registry_addr}/internal/registry/prometheus/targets"
    )));
    let config = written
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("scrape_timeout: 4s", "scrape_timeout: 1s")
        .replace("refresh_interval: 5s", "refresh_interval: 1s");
    assert_ne!(config, written, "the intervals were shortened");
    let dir = tempfile::tempdir().expect("prometheus dir");
    std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
    std::fs::copy(
        data.path().join("run/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .expect("rules");
    let port = super::checkout::free_port();
    let _server = Prometheus {
        child: Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    };
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    loop {
        if let Ok(r) = http().get(format!("{api}/query?query=up")).send().await
            && let Ok(v) = r.json::<Value>().await
        {
            let up_by_instance: HashMap<String, (String, String)> = v["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r["metric"]["instance_id"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        (
                            r["metric"]["service"].as_str().unwrap_or("").to_string(),
                            r["value"][1].as_str().unwrap_or("").to_string(),
                        ),
                    )
                })
                .collect();
            let services: BTreeSet<&str> = up_by_instance
                .values()
                .filter(|(_, v)| v == "1")
                .map(|(s, _)| s.as_str())
                .collect();
            let orders_up = up_by_instance
                .iter()
                .filter(|(id, (s, v))| s == "orders" && v == "1" && id.starts_with("orders-"))
                .count();
            if services.len() == SERVICES.len() && orders_up == 2 {
                break;
            }
            last = v;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not see every service up: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // And it evaluates the shipped rules without errors.
    let rules: Value = http()
        .get(format!("{api}/rules"))
        .send()
        .await
        .expect("rules")
        .json()
        .await
        .expect("json");
    let groups = rules["data"]["groups"].as_array().expect("groups");
    assert!(!groups.is_empty());
    drop(up);
}
