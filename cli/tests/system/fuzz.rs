//! Schemathesis (property-based API testing) against the combined OpenAPI document
//! the gateway serves, signed in as an admin so that every operation is reachable:
//! examples, boundary values, fuzzed inputs and stateful sequences, and no answer
//! may be a server error.

use std::process::Command;

use super::{Up, token};

/// Runs the `schemathesis` CLI (`st`) with `args`, through Python so that where
/// pip put its scripts does not matter; `None` when it is not installed.
fn schemathesis(args: &[String]) -> Option<std::process::Output> {
    let installed = Command::new("python3")
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return None;
    }
    let run = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())";
    Some(
        Command::new("python3")
            .args(["-c", run])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("python3 runs"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_in_the_public_api() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    let admin = token(&up, "boss@example.com").await;
    let args: Vec<String> = [
        "run",
        &up.at("/api/openapi.json"),
        "-H",
        &format!("Authorization: Bearer {admin}"),
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "50",
        "--workers",
        "2",
        "--request-timeout",
        "15",
    ]
    .map(String::from)
    .to_vec();
    let Some(out) = tokio::task::spawn_blocking(move || schemathesis(&args))
        .await
        .expect("join")
    else {
        assert!(
            std::env::var_os("EMPORIUM_REQUIRE_BACKENDS").is_none(),
            "schemathesis is not installed (scripts/test installs it with pip)"
        );
        eprintln!("skipped: schemathesis is not installed");
        return;
    };
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found server errors:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tested: usize = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        tested >= 30,
        "schemathesis tested {tested} operations:\n{report}"
    );
}
