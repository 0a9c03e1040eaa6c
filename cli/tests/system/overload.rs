//! Overload through real processes: checkouts offered at three times what the shop
//! gets through, and what it still confirms, how fast.
//!
//! Issue 13's goals are goodput at least 90% of the peak and the p99 of admitted
//! checkouts at most five times its unloaded value; `docs/benchmarks.md` has what
//! the release build reaches. Here, on a debug build sharing two cores with the
//! load generator, the bounds are looser (0.4 of the peak, the lower of one
//! measured before and one after, sixty times the unloaded p99: runs here gave
//! 0.63–1.02 and 2.2–10.3 times, and one cold CI run in a slow spell 42.9) but
//! still ones a collapse cannot meet: with every limit fixed at its ceiling and
//! no brownout (`EMPORIUM__HTTP__ADAPTIVE_CONCURRENCY=false
//! EMPORIUM__GATEWAY__BROWNOUT__ENABLED=false`) the same run confirms as many, but
//! its admitted checkouts wait 8 s at the median and 15 s at the p99 (778 times
//! the unloaded), where the shop as shipped answers in 85 and 260 ms (both
//! measured with a 2 s warm-up and one peak). The gateway's brownout is checked
//! to have taken part, as it is what keeps the goodput up (without it: 0.60 of
//! the peak, where the bound alone would pass).
//!
//! The shoppers heed `Retry-After` as polite clients do, each waiting between
//! once and twice what was asked (`shopper::spread`). Waiting exactly the
//! whole second asked, the 64 refused together came back together, orders
//! admitted a few of the herd at its lowest limit and refused the rest again,
//! and the peak after the overload read 0.11–0.20 of the one before (three runs
//! on a fast machine in December, and the stop's CI run); spread, 0.75–0.78.

use serde_json::Value;

use crate::Up;
use crate::load::load;

/// Confirmed checkouts a second, and their p50 and p99 in ms, of one run.
fn confirmed(report: &Value) -> (f64, f64, f64) {
    let f = |key: &str| {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {report}"))
    };
    (
        f("checkouts_per_s"),
        f("confirmed_p50_ms"),
        f("confirmed_p99_ms"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_three_times_its_capacity_the_shop_still_confirms_checkouts_quickly() {
    let data = tempfile::tempdir().expect("data dir");
    // Every test's shop has the per-client rates at 10,000/s: out of the way here.
    let up = Up::start(data.path());
    let checkout = |args: &[&str]| {
        let mut all = vec!["--mix", "checkout"];
        all.extend_from_slice(args);
        load(&up, &all)
    };
    // A calm spell first, for every limit to learn what checkouts take without
    // load: a first peak with nothing learnt yet is served with nothing refused
    // and 64 checkouts queueing, and read half again as much as the peak after
    // the overload, measured with the limits knowing (they then refuse a share
    // at 64 shoppers, as a queue of them stands).
    checkout(&["--users", "16", "--rate", "10", "--seconds", "3"]);
    // The peak: shoppers without think time, each back as soon as answered.
    let peak = || checkout(&["--users", "64", "--seconds", "6", "--warmup", "2"]);
    let first = peak();
    let (before, _, _) = confirmed(&first);
    assert!(before > 5.0, "{first}");
    let rate = |x: f64| format!("{:.1}", before * x);
    let unloaded = checkout(&["--users", "16", "--rate", &rate(0.1), "--seconds", "6"]);
    let (_, _, unloaded_p99) = confirmed(&unloaded);
    let gateway_admin = up.addr("gateway/admin");
    let refused = || async {
        crate::observability::scrape(&gateway_admin)
            .await
            .sum("gateway_brownout_refused_total", &[])
    };
    let refused_before = refused().await;
    // The first seconds of overload are orders' burst time: its limit stops at
    // the floor (64) for 2 s on purpose, so a burst is served rather than half
    // refused, and checkouts queue for half a second meanwhile; the limit then
    // needs a moment to settle. The warm-up leaves that onset out (runs here
    // ended it 2.5–3 s into the load): the bounds are on the overload it settles
    // into, as the benchmark's 3 s warm-up does on the release build.
    let over = checkout(&[
        "--users",
        "192",
        "--rate",
        &rate(3.0),
        "--seconds",
        "8",
        "--warmup",
        "4",
    ]);
    let (goodput, p50, p99) = confirmed(&over);
    let refused_at_3x = refused().await - refused_before;
    // The peak again: what this shared machine gets through moves by half
    // between minutes (other work on the host), and a run at 3x in a slow
    // minute set against a peak measured in a fast one read as a loss the shop
    // did not make. The bound is on the lower of the two. A shop left refusing
    // too much after an overload would bring both down together, so the second
    // is held to the first with the same margin as the goodput.
    let second = peak();
    let (after, _, _) = confirmed(&second);
    let capacity = before.min(after);
    let summary = format!(
        "peaks {before:.1}/s before and {after:.1}/s after; at 3x {goodput:.1}/s ({:.2} of the lower), \
         admitted p50 {p50:.0} ms, p99 {p99:.0} ms ({:.1}x the unloaded {unloaded_p99:.0} ms)",
        goodput / capacity,
        p99 / unloaded_p99,
    );
    eprintln!("{summary}");
    assert!(
        after >= 0.4 * before,
        "{summary}: the shop got through less after the overload\n{second}"
    );
    assert!(goodput >= 0.4 * capacity, "{summary}\n{over}");
    assert!(p99 <= 60.0 * unloaded_p99, "{summary}\n{over}");
    // The gateway's brownout took part: adds refused at the edge while orders
    // shed checkouts (a real server's shed answer, through the real client), in
    // this run and not only in the peaks'.
    assert!(
        refused_at_3x > 0.0,
        "{summary}: no add refused at the edge\n{over}"
    );
    // Refused, not left waiting: every failure is a 503 answered at once.
    let kinds = over["steps"]["checkout"]["error_kinds"]
        .as_object()
        .expect("error kinds");
    assert!(
        kinds.keys().all(|k| k.ends_with("HTTP 503")),
        "{summary}\n{over}"
    );
}
