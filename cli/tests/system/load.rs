//! `emporium load` against the real shop: the journeys it claims to make, measured.

use std::process::Command;

use serde_json::Value;

use crate::Up;

/// Runs `emporium load` with `args` against `up`; its JSON report.
pub(crate) fn load(up: &Up, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args([
            "load",
            "--base",
            &up.base,
            "--json",
            "--admin",
            "boss@example.com",
        ])
        .arg("--data-dir")
        .arg(&up.data)
        .args(args)
        .output()
        .expect("emporium load runs");
    assert!(
        out.status.success(),
        "emporium load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boutique_mix_makes_every_journey_and_an_open_loop_keeps_its_rate() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());

    let closed = load(&up, &["--users", "4", "--seconds", "3", "--warmup", "1"]);
    assert_eq!(closed["mode"], "closed");
    assert_eq!(closed["errors"], 0, "{closed}");
    let steps = closed["steps"].as_object().expect("steps");
    for step in [
        "sign_up",
        "sign_in",
        "index",
        "browse_product",
        "view_cart",
        "add_to_cart",
        "checkout",
        "search_word",
        "search_typo",
    ] {
        let s = &steps[step];
        assert!(s["count"].as_u64().is_some_and(|n| n > 0), "{step}: {s}");
        assert!(s["p50_ms"].as_f64() <= s["p99_ms"].as_f64(), "{step}: {s}");
        assert!(s["p99_ms"].as_f64() <= s["max_ms"].as_f64(), "{step}: {s}");
    }
    // 4 shoppers and the admin signed up, once each.
    assert_eq!(steps["sign_up"]["count"], 5);
    // Online Boutique's weights: browsing 10 for every checkout.
    let count = |s: &str| steps[s]["count"].as_f64().expect("count");
    let ratio = count("browse_product") / count("checkout");
    assert!((4.0..25.0).contains(&ratio), "browse/checkout = {ratio}");
    assert!(closed["confirmed"].as_u64().is_some_and(|n| n > 0));

    // Open loop: journeys start on schedule, whatever their latency.
    let open = load(
        &up,
        &[
            "--mix",
            "checkout",
            "--users",
            "4",
            "--seconds",
            "2",
            "--rate",
            "10",
        ],
    );
    assert_eq!(open["mode"], "open");
    let journeys = open["journeys"].as_u64().expect("journeys");
    assert!((18..=21).contains(&journeys), "10/s for 2 s: {open}");
    assert_eq!(open["confirmed"], journeys, "{open}");
    assert_eq!(
        open["steps"]["browse_product"],
        Value::Null,
        "checkouts only"
    );
}
