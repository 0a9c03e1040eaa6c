//! Schemathesis (property-based API testing) against the combined OpenAPI document
//! the gateway serves, signed in as an admin so that every operation is reachable:
//! examples, boundary values, fuzzed inputs and stateful sequences, with every
//! check on. No answer may be a server error; every status, media type, header and
//! body must be the documented ones; a request the document allows must be
//! accepted and one it forbids refused (the few operations that also answer for
//! facts no schema states are listed, with the reason, in `schemathesis.toml`;
//! `schemathesis_hooks.py` leaves opaque cursors to the listings' API tests).
//! `EMPORIUM_FUZZ_EXAMPLES` sets the examples per operation (50).

use std::process::Command;

use super::{Up, token};

/// Runs the `schemathesis` CLI (`st`) with `args`, through Python so that where
/// pip put its scripts does not matter; `None` when it is not installed.
/// It runs in `cwd`, where it keeps its cache (`.schemathesis`, `.hypothesis`).
fn schemathesis(cwd: &std::path::Path, args: &[String]) -> Option<std::process::Output> {
    let installed = Command::new("python3")
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return None;
    }
    let run = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())";
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/system/schemathesis.toml"
    );
    Some(
        Command::new("python3")
            .args(["-c", run, "--config-file", config])
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env(
                "SCHEMATHESIS_HOOKS",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/system/schemathesis_hooks.py"
                ),
            )
            .output()
            .expect("python3 runs"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_api_does_what_its_document_says() {
    let data = tempfile::tempdir().expect("data dir");
    let up = Up::start(data.path());
    let admin = token(&up, "boss@example.com").await;
    // More examples find more; CI runs 50 per operation.
    let examples = std::env::var("EMPORIUM_FUZZ_EXAMPLES").unwrap_or_else(|_| "50".into());
    let args: Vec<String> = [
        "run",
        &up.at("/api/openapi.json"),
        "-H",
        &format!("Authorization: Bearer {admin}"),
        "--checks",
        "all",
        "--max-examples",
        &examples,
        "--workers",
        "2",
        "--request-timeout",
        "15",
    ]
    .map(String::from)
    .to_vec();
    let cwd = tempfile::tempdir().expect("a folder for schemathesis");
    let at = cwd.path().to_path_buf();
    let Some(out) = tokio::task::spawn_blocking(move || schemathesis(&at, &args))
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
        "schemathesis found the API and its document at odds:\n{report}\n{}",
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
