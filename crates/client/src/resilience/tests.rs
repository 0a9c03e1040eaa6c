//! The policies against real HTTP servers on loopback: each test makes instances
//! that misbehave in one way and checks what the calls and the servers saw.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use emporium_config::{CallPolicyOverrides, ClientSettings};
use emporium_contracts::headers;
use http::{HeaderName, HeaderValue, Method};

use crate::{ClientError, Clients, Discovery, Faults, HttpTransport, Policies, ServiceClient};

/// One instance: what it answers (changeable), and how many calls reached it.
struct Instance {
    address: String,
    hits: Arc<AtomicUsize>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Instance {
    fn set(&self, behaviour: Behaviour) {
        if let Ok(mut b) = self.behaviour.lock() {
            *b = behaviour;
        }
    }
}

#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    Status(StatusCode),
    Hang,
    Slow(Duration),
    /// 503 with `Retry-After: N`.
    Busy(u64),
}

async fn instance(behaviour: Behaviour) -> Instance {
    let hits = Arc::new(AtomicUsize::new(0));
    let behaviour = Arc::new(Mutex::new(behaviour));
    let (counted, current) = (hits.clone(), behaviour.clone());
    let app = Router::new().route(
        "/{*path}",
        any(move || {
            let counted = counted.clone();
            let now = current.lock().map(|b| *b).unwrap_or(Behaviour::Ok);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = match now {
                    Behaviour::Ok => (StatusCode::OK, "\"ok\""),
                    Behaviour::Status(status) => (status, "{}"),
                    Behaviour::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "{}"),
                    Behaviour::Hang => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        (StatusCode::OK, "\"late\"")
                    }
                    Behaviour::Slow(by) => {
                        tokio::time::sleep(by).await;
                        (StatusCode::OK, "\"ok\"")
                    }
                };
                let mut response = axum::response::IntoResponse::into_response(answer);
                if let Behaviour::Busy(secs) = now {
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Instance {
        address,
        hits,
        behaviour,
    }
}

/// An address nothing listens on.
async fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    drop(listener);
    address
}

fn client(addresses: Vec<String>, policy: CallPolicyOverrides) -> ServiceClient {
    let discovery = Arc::new(Discovery::new(None).with_fixed("svc", addresses));
    client_through(discovery, policy)
}

fn client_through(discovery: Arc<Discovery>, policy: CallPolicyOverrides) -> ServiceClient {
    let settings = ClientSettings([("svc".to_string(), policy)].into_iter().collect());
    let transport = HttpTransport::new(
        discovery,
        Clients::plain(),
        Arc::new(Policies::new(
            "caller",
            settings,
            Arc::new(Faults::default()),
        )),
    );
    ServiceClient::new("svc", Arc::new(transport), Duration::from_secs(5))
}

fn keyed(client: ServiceClient) -> ServiceClient {
    client.with_header(
        HeaderName::from_static(headers::IDEMPOTENCY_KEY),
        HeaderValue::from_static("k-1"),
    )
}

fn hits(i: &Instance) -> usize {
    i.hits.load(Ordering::SeqCst)
}

#[tokio::test]
async fn reads_and_keyed_commands_are_retried_on_another_instance_other_commands_are_not() {
    let bad = instance(Behaviour::Status(StatusCode::SERVICE_UNAVAILABLE)).await;
    let good = instance(Behaviour::Ok).await;
    let c = client(
        vec![bad.address.clone(), good.address.clone()],
        CallPolicyOverrides {
            eject_after: Some(1_000),
            ..Default::default()
        },
    );
    for _ in 0..20 {
        let r: String = c
            .get_json("/x")
            .await
            .expect("a GET always finds the good one");
        assert_eq!(r, "ok");
    }
    for _ in 0..20 {
        keyed(c.clone())
            .send_json::<_, String>(Method::POST, "/x", &())
            .await
            .expect("a keyed POST is retried too");
    }
    let before = hits(&bad);
    let mut refused = 0;
    for _ in 0..20 {
        if let Err(e) = c.send_json::<_, String>(Method::POST, "/x", &()).await {
            assert_eq!(e.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "a POST without a key that reached the bad one is not repeated"
    );
    assert_eq!(hits(&bad) - before, refused, "each of them reached it once");
}

#[tokio::test]
async fn a_key_that_came_from_outside_does_not_make_a_command_repeatable() {
    let bad = instance(Behaviour::Status(StatusCode::SERVICE_UNAVAILABLE)).await;
    let c = client(vec![bad.address.clone()], Default::default());
    // As the gateway passes a shopper's request on: the key is the shopper's.
    let request = http::Request::post("/x")
        .header(headers::IDEMPOTENCY_KEY, "k-2")
        .body(bytes::Bytes::new())
        .expect("request");
    let response = c.send(request).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits(&bad), 1, "sent once");
    keyed(c.clone())
        .send_json::<_, String>(Method::POST, "/x", &())
        .await
        .expect_err("still 503");
    assert_eq!(hits(&bad), 4, "keyed by the calling service: retried twice");
}

#[tokio::test]
async fn a_503_with_retry_after_is_not_held_against_the_instance() {
    let busy = instance(Behaviour::Busy(5)).await;
    let good = instance(Behaviour::Ok).await;
    let c = client(
        vec![busy.address.clone(), good.address.clone()],
        CallPolicyOverrides {
            eject_after: Some(2),
            breaker_min_calls: Some(4),
            ..Default::default()
        },
    );
    for _ in 0..40 {
        c.get_json::<String>("/x").await.expect("the other answers");
    }
    let before = hits(&busy);
    assert!(before > 4, "shedding, not failing: still tried ({before})");
    busy.set(Behaviour::Status(StatusCode::INTERNAL_SERVER_ERROR));
    for _ in 0..40 {
        let _ = c.send_json::<_, String>(Method::POST, "/x", &()).await;
    }
    assert_eq!(hits(&busy) - before, 2, "failing: ejected after two");
}

#[tokio::test]
async fn a_refused_connection_is_retried_whatever_the_method() {
    let good = instance(Behaviour::Ok).await;
    let c = client(
        vec![closed_port().await, good.address.clone()],
        Default::default(),
    );
    for _ in 0..10 {
        c.send_json::<_, String>(Method::POST, "/x", &())
            .await
            .expect("the request never reached the closed port, so it may go elsewhere");
    }
    assert_eq!(hits(&good), 10);
}

/// A registry listing `svc` at the addresses `listed` holds (with the index of
/// their change), answering a long poll once they change; its URL.
async fn registry(listed: tokio::sync::watch::Sender<(u64, Vec<String>)>) -> String {
    use emporium_contracts::registry::{BASE, Instance, Snapshot};
    let app = Router::new().route(
        &format!("{BASE}/services/svc"),
        axum::routing::get(
            move |axum::extract::Query(query): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >| {
                let mut changes = listed.subscribe();
                async move {
                    let number = |k: &str| query.get(k).and_then(|v| v.parse::<u64>().ok());
                    if let (Some(after), Some(wait)) = (number("index"), number("wait_ms")) {
                        let changed = changes.wait_for(|(index, _)| *index > after);
                        let _ = tokio::time::timeout(Duration::from_millis(wait), changed).await;
                    }
                    let (index, addresses) = changes.borrow().clone();
                    let instances = addresses
                        .into_iter()
                        .map(|address| Instance {
                            service: "svc".into(),
                            instance_id: address.clone(),
                            address,
                            version: "0".into(),
                            metadata: Default::default(),
                            healthy: true,
                            registered_at_ms: 0,
                            last_heartbeat_ms: 0,
                        })
                        .collect();
                    axum::Json(Snapshot {
                        epoch: "e".into(),
                        index,
                        instances,
                    })
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test]
async fn a_retry_goes_to_an_instance_that_came_up_during_the_call() {
    let listed = tokio::sync::watch::Sender::new((1, Vec::new()));
    let registry = registry(listed.clone()).await;
    let discovery = Arc::new(Discovery::new(Some(crate::RegistryClient::new(
        &registry,
        Clients::plain(),
    ))));
    let good = instance(Behaviour::Ok).await;
    // The only instance the call knows when it starts fails it, but first a new
    // one comes up and the caller hears of it.
    let (watching, new, publish) = (discovery.clone(), good.address.clone(), listed.clone());
    let failed = Arc::new(AtomicUsize::new(0));
    let counted = failed.clone();
    let app = Router::new().route(
        "/{*path}",
        any(move || {
            let (discovery, new, publish) = (watching.clone(), new.clone(), publish.clone());
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut both = Vec::new();
                publish.send_modify(|(index, addresses)| {
                    addresses.push(new.clone());
                    *index += 1;
                    both = addresses.clone();
                });
                // Within the call's deadline (5 s).
                for _ in 0..400 {
                    let known = discovery.candidates("svc").await.expect("candidates");
                    if known.len() == both.len() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let failing = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    listed.send_replace((1, vec![failing]));

    let c = client_through(discovery, Default::default());
    let answer: String = c
        .get_json("/x")
        .await
        .expect("the retry went to the instance that came up");
    assert_eq!(
        (answer.as_str(), hits(&good), failed.load(Ordering::SeqCst)),
        ("ok", 1, 1),
        "the retry went to the new instance, not back to the one that failed"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_a_backoff_goes_back_to_the_caller() {
    let busy = instance(Behaviour::Busy(5)).await;
    let c = client(vec![busy.address.clone()], Default::default());
    let started = Instant::now();
    let e = c.get_json::<String>("/x").await.expect_err("503");
    assert_eq!(e.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(hits(&busy), 1, "not retried sooner than it said");
    busy.set(Behaviour::Status(StatusCode::SERVICE_UNAVAILABLE));
    let _ = c.get_json::<String>("/x").await;
    assert_eq!(
        hits(&busy),
        4,
        "without Retry-After: the first attempt and two retries"
    );
}

#[tokio::test]
async fn retries_stay_within_the_budget() {
    let bad = instance(Behaviour::Status(StatusCode::BAD_GATEWAY)).await;
    let c = client(
        vec![bad.address.clone()],
        CallPolicyOverrides {
            budget_min_per_sec: Some(0),
            backoff_base_ms: Some(1),
            backoff_max_ms: Some(2),
            eject_after: Some(1_000),
            breaker_min_calls: Some(1_000),
            ..Default::default()
        },
    );
    for _ in 0..100 {
        let e = c.get_json::<String>("/x").await.expect_err("always 502");
        assert_eq!(e.status(), Some(StatusCode::BAD_GATEWAY));
    }
    let retries = hits(&bad) - 100;
    assert!(
        (15..=20).contains(&retries),
        "20% of 100 calls may be retried, and are: {retries}"
    );
}

#[tokio::test]
async fn an_unanswered_read_is_hedged_to_another_instance() {
    let hung = instance(Behaviour::Hang).await;
    let good = instance(Behaviour::Ok).await;
    let c = client(
        vec![hung.address.clone(), good.address.clone()],
        CallPolicyOverrides {
            attempt_timeout_ms: Some(200),
            ..Default::default()
        },
    );
    for _ in 0..20 {
        let started = Instant::now();
        let r: String = c.get_json("/x").await.expect("answered by the other");
        assert_eq!(r, "ok");
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "at most an attempt timeout late: {:?}",
            started.elapsed()
        );
    }
    assert!(
        hits(&hung) <= 5,
        "five unanswered attempts eject it: {}",
        hits(&hung)
    );
}

#[tokio::test]
async fn slow_but_working_instances_still_answer_a_hedged_call() {
    let slow = instance(Behaviour::Slow(Duration::from_millis(300))).await;
    let other = instance(Behaviour::Slow(Duration::from_millis(300))).await;
    let c = client(
        vec![slow.address.clone(), other.address.clone()],
        CallPolicyOverrides {
            attempt_timeout_ms: Some(100),
            ..Default::default()
        },
    );
    let r: String = c.get_json("/x").await.expect("the first attempt wins");
    assert_eq!(r, "ok");
}

#[tokio::test]
async fn a_failing_instance_is_ejected_and_gets_no_more_calls() {
    let bad = instance(Behaviour::Status(StatusCode::INTERNAL_SERVER_ERROR)).await;
    let good = instance(Behaviour::Ok).await;
    let c = client(
        vec![bad.address.clone(), good.address.clone()],
        CallPolicyOverrides {
            breaker_min_calls: Some(1_000),
            ..Default::default()
        },
    );
    for _ in 0..60 {
        let _ = c.send_json::<_, String>(Method::POST, "/x", &()).await;
    }
    assert_eq!(hits(&bad), 5, "five failures in a row, then ejected");
    assert_eq!(hits(&good), 55);
}

#[tokio::test]
async fn the_circuit_opens_fails_fast_then_probes_and_closes() {
    let bad = instance(Behaviour::Status(StatusCode::INTERNAL_SERVER_ERROR)).await;
    let c = client(
        vec![bad.address.clone()],
        CallPolicyOverrides {
            breaker_min_calls: Some(10),
            breaker_open_ms: Some(300),
            ..Default::default()
        },
    );
    for _ in 0..10 {
        let e = c
            .send_json::<_, String>(Method::POST, "/x", &())
            .await
            .expect_err("500");
        assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    }
    let started = Instant::now();
    let e = c
        .send_json::<_, String>(Method::POST, "/x", &())
        .await
        .expect_err("open");
    assert!(matches!(e, ClientError::CircuitOpen(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(50), "at once");
    assert_eq!(hits(&bad), 10, "an open circuit sends nothing");
    assert_eq!(
        emporium_http::ApiError::from(e).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    let e = c
        .send_json::<_, String>(Method::POST, "/x", &())
        .await
        .expect_err("probe fails");
    assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(hits(&bad), 11, "one probe went through");
    let e = c
        .send_json::<_, String>(Method::POST, "/x", &())
        .await
        .expect_err("open again");
    assert!(matches!(e, ClientError::CircuitOpen(_)), "{e:?}");

    bad.set(Behaviour::Ok);
    tokio::time::sleep(Duration::from_millis(350)).await;
    c.send_json::<_, String>(Method::POST, "/x", &())
        .await
        .expect("the probe finds it back");
    for _ in 0..5 {
        c.send_json::<_, String>(Method::POST, "/x", &())
            .await
            .expect("closed again");
    }
    assert_eq!(hits(&bad), 17);
}

#[tokio::test]
async fn a_full_bulkhead_refuses_at_once() {
    let slow = instance(Behaviour::Slow(Duration::from_millis(500))).await;
    let c = client(
        vec![slow.address.clone()],
        CallPolicyOverrides {
            max_concurrent: Some(2),
            ..Default::default()
        },
    );
    let (a, b) = (c.clone(), c.clone());
    let first = tokio::spawn(async move { a.get_json::<String>("/x").await });
    let second = tokio::spawn(async move { b.get_json::<String>("/x").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let e = c
        .get_json::<String>("/x")
        .await
        .expect_err("third in flight");
    assert!(matches!(e, ClientError::Overloaded(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(first.await.expect("join").is_ok());
    assert!(second.await.expect("join").is_ok());
    c.get_json::<String>("/x").await.expect("room again");
}
