//! Serving on while things go wrong: a hung instance loses its traffic, a service
//! known to be down is answered for at once, and work in flight finishes when it
//! is back.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::checkout::{APPROVE, body, emporium, emporium_with, key, shopper, stocked_sku};
use crate::observability::scrape;
use crate::{Frozen, Up, http};

/// The URL of a product's page in the API, through the gateway.
async fn product_url(up: &Up) -> String {
    let page: Value = http()
        .get(up.at("/api/catalog/products?limit=1"))
        .send()
        .await
        .expect("products")
        .json()
        .await
        .expect("json");
    let id = page["items"][0]["id"].as_str().expect("id");
    up.at(&format!("/api/catalog/products/{id}"))
}

/// One GET through the gateway: its start (since `t0`), status and duration.
async fn timed_get(url: String, t0: Instant) -> (Duration, u16, Duration) {
    let began = Instant::now();
    let status = match http().get(&url).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    (began - t0, status, began.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_instance_among_two_loses_its_traffic_within_a_second() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_on(data.path(), None, &[], &["--replicas", "catalog=2"]);
    let url = product_url(&up).await;
    // Both instances in use.
    for _ in 0..40 {
        assert_eq!(timed_get(url.clone(), Instant::now()).await.1, 200);
    }

    // Its port stays open and calls to it hang; the registry lists it for 2 s more.
    let frozen = Frozen::services(&up, &["catalog-1"]);
    let t0 = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while t0.elapsed() < Duration::from_secs(3) {
                seen.push(timed_get(url.clone(), t0).await);
            }
            seen
        }));
    }
    let mut seen = Vec::new();
    for r in readers {
        seen.extend(r.await.expect("join"));
    }
    drop(frozen);
    let failed: Vec<_> = seen
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(failed.is_empty(), "every read answered: {failed:?}");
    // A read that went to the hung one is sent to the other after the attempt
    // timeout (1 s); from one second on, none goes there at all.
    let slowest = seen
        .iter()
        .map(|(_, _, took)| *took)
        .max()
        .unwrap_or_default();
    assert!(slowest < Duration::from_millis(2_500), "{slowest:?}");
    let late: Vec<_> = seen
        .iter()
        .filter(|(began, _, took)| {
            *began > Duration::from_millis(1_200) && *took > Duration::from_millis(500)
        })
        .collect();
    assert!(
        late.is_empty(),
        "after a second no read waits on the hung instance: {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_payments_hung_checkouts_are_refused_at_once_and_the_one_in_flight_confirms_after() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_apart(data.path(), &["payments"]);
    let sku = stocked_sku(&up, 2).await;
    let ada = shopper(&up, "ada@example.com").await;
    let bo = shopper(&up, "bo@example.com").await;
    for s in [&ada, &bo] {
        assert_eq!(s.add(&up, &sku, 1).await.status(), 200);
    }

    let frozen = Frozen::services(&up, &["payments"]);
    // Placed while payments is still listed: it waits for it.
    let r = ada
        .checkout(&up, Some(&key()), &body(APPROVE, "Springfield"))
        .await;
    assert_eq!(r.status(), 202);
    let in_flight: Value = r.json().await.expect("json");
    assert_eq!(in_flight["status"], "PENDING", "{in_flight}");

    // Once its heartbeats have lapsed (2 s here): refused at once, nothing reserved.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let refused = bo
        .checkout(&up, Some(&key()), &body(APPROVE, "Springfield"))
        .await;
    let took = started.elapsed();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("payments")),
        "{problem}"
    );
    assert!(took < Duration::from_millis(500), "at once: {took:?}");

    // Back: the order in flight completes, and so does a new one.
    drop(frozen);
    let id = in_flight["id"].as_str().expect("id");
    let settled = ada.settled(&up, id, Duration::from_secs(30)).await;
    assert_eq!(settled["status"], "CONFIRMED", "{settled}");
    let again = bo.check_out(&up, APPROVE, Duration::from_secs(30)).await;
    assert_eq!(again["status"], "CONFIRMED", "{again}");
}

/// Fault rules and live settings through the CLI: the gateway's calls to catalog
/// fail as told, are retried as configured, open its circuit, and close it again
/// once the rule is cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rules_open_the_circuit_and_live_settings_change_the_retries() {
    let data = tempfile::tempdir().expect("data dir");
    // Apart in the monolith shape too: in one process there is no breaker.
    let up = Up::start_apart(data.path(), &["catalog"]);
    let url = product_url(&up).await;
    let get = || async { http().get(&url).send().await.expect("get") };
    let gateway = up.addr("gateway/admin");
    let injected = || async {
        scrape(&gateway)
            .await
            .sum("emporium_faults_injected_total", &[("target", "catalog")])
    };
    let cli = |args: &[&str]| {
        let (ok, out) = emporium(data.path(), args);
        assert!(ok, "emporium {args:?}: {out}");
        out
    };
    assert_eq!(get().await.status(), 200);

    // Keep the circuit closed while counting retries.
    cli(&["config", "set", "client.catalog.breaker_min_calls", "1000"]);
    let out = cli(&[
        "chaos", "abort", "--to", "catalog", "--status", "503", "--for", "2m",
    ]);
    assert!(out.contains("abort with 503"), "{out}");
    let listed = cli(&["chaos", "list"]);
    assert!(
        listed.contains("100% of calls from any service to catalog"),
        "{listed}"
    );
    eventually_status(&get, 503).await;
    let before = injected().await;
    for _ in 0..5 {
        assert_eq!(get().await.status(), 503);
    }
    assert_eq!(
        injected().await - before,
        15.0,
        "each read tried three times (two retries)"
    );

    // Fewer retries, live: each process applies it as soon as the store changes.
    cli(&["config", "set", "client.catalog.retries", "0"]);
    let mut tries = 0;
    loop {
        let before = injected().await;
        assert_eq!(get().await.status(), 503);
        if injected().await - before == 1.0 {
            break;
        }
        tries += 1;
        assert!(tries < 50, "the gateway never took the new setting");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = injected().await;
    for _ in 0..5 {
        assert_eq!(get().await.status(), 503);
    }
    assert_eq!(injected().await - before, 5.0, "one attempt each now");

    // The circuit as configured by default: 20 calls of 10 s failing, and it opens.
    cli(&["config", "delete", "client.catalog.breaker_min_calls"]);
    let mut calls = 0;
    loop {
        let r = get().await;
        let problem: Value = r.json().await.expect("problem");
        if problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("failing"))
        {
            break;
        }
        calls += 1;
        assert!(calls <= 60, "the circuit never opened: {problem}");
    }
    let before = injected().await;
    let started = Instant::now();
    let r = get().await;
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let problem: Value = r.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("failing")),
        "open: fails at once without calling: {problem}"
    );
    assert_eq!(injected().await, before, "nothing sent while open");
    let metrics = scrape(&gateway).await;
    assert_eq!(
        metrics.sum("http_client_breaker_state", &[("target", "catalog")]),
        1.0
    );

    // Cleared: after the open time a probe finds catalog back and closes it.
    let out = cli(&["chaos", "clear"]);
    assert!(out.contains("1 fault rule(s) removed"), "{out}");
    eventually_status(&get, 200).await;
    let metrics = scrape(&gateway).await;
    assert_eq!(
        metrics.sum("http_client_breaker_state", &[("target", "catalog")]),
        0.0
    );
    for state in ["open", "half_open", "closed"] {
        assert!(
            metrics.sum(
                "http_client_breaker_transitions_total",
                &[("target", "catalog"), ("state", state)]
            ) >= 1.0,
            "{state}"
        );
    }
}

/// Polls until a GET answers `status` (15 s at most).
async fn eventually_status<F, Fut>(get: &F, status: u16)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if get().await.status().as_u16() == status {
            return;
        }
        assert!(Instant::now() < deadline, "never answered {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `emporium verify` with the shop's backend settings (a stopped shop's
/// databases are found through them).
fn verify(up: &Up) -> (bool, String) {
    let settings = up
        .backends
        .as_ref()
        .map(crate::Backends::settings)
        .unwrap_or_default();
    emporium_with(&up.data, &["verify"], settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_invariants_of_a_running_and_a_stopped_shop() {
    let data = tempfile::tempdir().expect("data dir");
    let mut up = Up::start(data.path());
    let sku = stocked_sku(&up, 1).await;
    let ada = shopper(&up, "ada@example.com").await;
    for card in [APPROVE, crate::checkout::DECLINE] {
        assert_eq!(ada.add(&up, &sku, 1).await.status(), 200);
        ada.check_out(&up, card, Duration::from_secs(30)).await;
    }
    let (ok, out) = verify(&up);
    assert!(ok, "{out}");
    assert!(out.contains("asking the running shop"), "{out}");
    assert!(out.contains("2 orders (2 finished, 0 in flight)"), "{out}");
    assert!(out.contains("0 violation(s)"), "{out}");

    // Money taken that no order accounts for: named, and the exit code says so.
    let payments = up.db("payments").await;
    sqlx::query("UPDATE payments SET amount = amount + 1 WHERE status = 'captured'")
        .execute(payments.pool())
        .await
        .expect("tamper");
    let (ok, out) = verify(&up);
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAILED  captured money equals the totals of the confirmed orders"),
        "{out}"
    );
    sqlx::query("UPDATE payments SET amount = amount - 1 WHERE status = 'captured'")
        .execute(payments.pool())
        .await
        .expect("repair");

    assert!(up.stop().success());
    let (ok, out) = verify(&up);
    assert!(ok, "{out}");
    assert!(out.contains("the shop is not running"), "{out}");
    assert!(out.contains("0 violation(s)"), "{out}");
}

/// `emporium soak` against `up` with `args` after its own; asserts that no
/// invariant broke and returns its summary line and a reader of its numbers.
fn soak(up: &Up, args: &[&str]) -> (String, impl Fn(&str) -> f64) {
    let settings = up
        .backends
        .as_ref()
        .map(crate::Backends::settings)
        .unwrap_or_default();
    let mut all = vec!["soak", "--base", &up.base];
    all.extend_from_slice(args);
    let (ok, out) = emporium_with(&up.data, &all, settings);
    assert!(ok, "{out}");
    assert!(out.contains("0 violation(s)"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("soak: "))
        .unwrap_or_else(|| panic!("no summary line: {out}"))
        .to_string();
    eprintln!("{line}");
    let summary = line.clone();
    let number = move |after: &str| -> f64 {
        summary
            .split(after)
            .next()
            .and_then(|s| s.split_whitespace().last())
            .and_then(|n| n.trim_start_matches('(').trim_end_matches('%').parse().ok())
            .unwrap_or_else(|| panic!("{after} in {summary}"))
    };
    (line, number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_with_kills_and_faults_breaks_no_invariant() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    stocked_sku(&up, 0).await;
    let (line, number) = soak(
        &up,
        &[
            "--for",
            "44s",
            "--kill-every",
            "4s",
            "--faults",
            "--users",
            "6",
        ],
    );
    let (checkouts, kills) = (number(" journeys"), number(" kills"));
    assert!(checkouts > 50.0, "{line}");
    // With one instance per service, kills and faults are ridden out:
    // connections refused by a restarting process are retried, and so are
    // keyed commands (checkout, add to cart) after a reset. As a monolith a
    // kill takes every service down at once for a second or more, longer than
    // the retries wait, and the shoppers' failures then come back at once
    // (closed loop, no think time): no floor there, only the invariants.
    if !crate::monolith() {
        let requests_ok = number("% of requests succeeded");
        assert!(
            requests_ok >= 99.0,
            "at least 99% of requests succeed: {line}"
        );
    }
    // As processes, each kill is one service; as a monolith, each is all of them.
    let expected = if crate::monolith() { 5.0 } else { 10.0 };
    assert!(
        kills >= expected,
        "every kind of backend killed at least once: {line}"
    );
    // Which processes died, as the supervisor saw it: every backend service.
    let lines = up.lines.lock().expect("lock").join("\n");
    for service in [
        "users",
        "catalog",
        "inventory",
        "payments",
        "cart",
        "orders",
        "notifications",
    ] {
        assert!(
            lines.contains(&format!("{} restarted", up.process_of(service))),
            "{service} was killed and restarted"
        );
    }
}

/// Every service that runs two instances under `emporium up` (search keeps one:
/// its index belongs to its instance).
const TWICE: &str = "users=2,catalog=2,inventory=2,payments=2,cart=2,orders=2,\
                     notifications=2,reviews=2,storefront=2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_instances_of_each_service_a_soak_fails_no_read() {
    if crate::monolith() {
        // Two instances of every service are processes in either shape.
        return;
    }
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start_on(
        data.path(),
        crate::Backends::if_requested(),
        &[],
        &["--replicas", TWICE],
    );
    stocked_sku(&up, 0).await;
    // Online Boutique's mix, so most journeys are reads; one instance at a time
    // is killed, every service in turn but search, which runs once. No fault
    // rules: they fail a share of all calls to a service, whichever instance
    // answers, which no second instance can hide (the one-instance soak has them).
    let (line, number) = soak(
        &up,
        &[
            "--for",
            "40s",
            "--kill-every",
            "3s",
            "--mix",
            "boutique",
            "--spare",
            "search",
            "--users",
            "6",
        ],
    );
    let (reads, failed_reads, kills) = (number(" reads"), number(" failed), "), number(" kills"));
    assert!(reads > 200.0, "{line}");
    assert_eq!(failed_reads, 0.0, "no read failed: {line}");
    assert!(kills >= 9.0, "every replicated service killed: {line}");
    let lines = up.lines.lock().expect("lock").join("\n");
    for service in ["catalog", "cart", "orders"] {
        assert!(
            lines.contains(&format!("{service}-1 restarted"))
                || lines.contains(&format!("{service}-2 restarted")),
            "an instance of {service} was killed and restarted"
        );
    }
}
