//! Property-based fuzzing of the REST API from its own OpenAPI document: Schemathesis (PyPI)
//! generates valid and invalid requests for every documented operation, against the real
//! binaries, with a bounded number of examples and a fixed seed. It fails on any 5xx, on a
//! status the document does not list for the operation, on a body that does not match the
//! documented schema (every error must be `{"code":1,"message":…}`), and on an endpoint that
//! answers without the authentication it declares.
//!
//! Needs the `st` command: `reliability/schemathesis.sh` installs it into a virtualenv and runs
//! this test with `SCHEMATHESIS=<path to st>`. It is ignored by a plain `cargo test`, which
//! cannot be expected to have Python packages.

use std::time::Duration;

use reliability::stack::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Schemathesis; run by reliability/schemathesis.sh"]
async fn the_rest_api_survives_fuzzing_from_its_openapi_document() {
    let st = std::env::var("SCHEMATHESIS")
        .expect("SCHEMATHESIS must name the `st` command (reliability/schemathesis.sh sets it)");
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".into());
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261126".into());
    let stack = Stack::start(StackOptions::default()).await;
    let shop = stack.open_shop(1, &[1_000]).await;
    let report = stack.dir.path().join("schemathesis");
    let mut command = tokio::process::Command::new(&st);
    command
        .arg("run")
        .arg(format!("{}/openapi.json", stack.rest.base))
        .args(["--url", &stack.rest.base])
        .args(["--header", &format!("Authorization: Bearer {}", shop.admin)])
        .args(["--checks", "all"])
        // The contract makes input lenient (unknown fields ignored, numeric strings accepted),
        // so "invalid" data that is accepted is by design; and examples that the generator
        // thinks valid may still break a business rule (a product that does not exist).
        .args([
            "--exclude-checks",
            "negative_data_rejection,positive_data_acceptance,use_after_free,\
             ensure_resource_availability",
        ])
        .args(["--max-examples", &examples])
        .args(["--seed", &seed])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "10"])
        .args(["--max-time", "80"])
        .args(["--no-color"])
        .arg("--report-dir")
        .arg(&report)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("Schemathesis finished within 4 minutes")
        .expect("run Schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "Schemathesis found problems (see above)"
    );
    // Nothing it sent took a process down.
    let mut stack = stack;
    for kind in [
        reliability::programs::Kind::Account,
        reliability::programs::Kind::Warehouse,
        reliability::programs::Kind::Payment,
        reliability::programs::Kind::Gateway,
    ] {
        assert!(stack.program(kind, 0).is_running(), "{kind:?} died");
    }
    stack.assert_conserved(Duration::from_secs(15)).await;
    stack.shut_down().await;
}
