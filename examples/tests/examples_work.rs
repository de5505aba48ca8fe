//! Every example in `examples/` runs against the whole bookstore, started as the README starts
//! it (the launcher, at its default addresses), so none of them can rot: the three Volo
//! clients, the stock Python Thrift clients (Apache `thrift` and thriftpy2, every transport and
//! protocol, authenticated through the request's `token` field) and the grpcio client that
//! learns the warehouse from server reflection.
//!
//! The Python clients need `examples/python/requirements.txt` and Debian's `thrift-compiler`
//! (`.ci/run` installs both); without them this test fails and says so. Set
//! `EXAMPLES_PYTHON` to use another interpreter than `python3`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use bookstore::{LocalConfig, Options, System};
use platform::shutdown::CancellationToken;

/// The launcher's defaults, which the examples assume.
const GATEWAY: &str = "127.0.0.1:8080";
const ACCOUNT: &str = "127.0.0.1:8810";
const WAREHOUSE: &str = "127.0.0.1:8820";
const PAYMENT: &str = "127.0.0.1:8830";

/// One example's whole run, start to exit.
const EXAMPLE_DEADLINE: Duration = Duration::from_secs(120);

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Runs `command` to its end within the deadline; its output either way.
async fn run(command: Command, what: &str) -> Output {
    let child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(EXAMPLE_DEADLINE, child)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {EXAMPLE_DEADLINE:?}"))
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"))
}

fn succeeded(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn python() -> String {
    std::env::var("EXAMPLES_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_works_against_the_launched_system() {
    let data = tempfile::tempdir().expect("temp dir");
    let stop = CancellationToken::new();
    let (_config, config) = tokio::sync::watch::channel(LocalConfig::default());
    let system = System::build(
        Options {
            data_dir: data.path().to_path_buf(),
            listen: GATEWAY.to_owned(),
            account_listen: ACCOUNT.to_owned(),
            warehouse_listen: WAREHOUSE.to_owned(),
            payment_listen: PAYMENT.to_owned(),
            static_dir: None,
            metrics_listen: "127.0.0.1:0".to_owned(),
        },
        config,
        stop.clone(),
    )
    .await
    .expect("the bookstore starts at its default addresses (is another one running?)");
    let running = tokio::spawn(system.run_until_stopped());

    for (example, expected) in [
        ("account", "account 1: "),
        ("warehouse", "stock of #"),
        ("payment", "wallet of account 1: "),
    ] {
        let binary = match example {
            "account" => env!("CARGO_BIN_EXE_account-client"),
            "warehouse" => env!("CARGO_BIN_EXE_warehouse-client"),
            _ => env!("CARGO_BIN_EXE_payment-client"),
        };
        let output = run(Command::new(binary), example).await;
        let stdout = succeeded(&output, example);
        assert!(stdout.contains(expected), "{example} printed:\n{stdout}");
    }

    let python = python();
    let mut probe = Command::new(&python);
    probe.args(["-c", "import thrift, thriftpy2, grpc, grpc_reflection"]);
    let found = run(probe, "the Python check").await;
    assert!(
        found.status.success(),
        "the stock Python clients are missing: `{python} -m pip install -r \
         examples/python/requirements.txt` and `apt-get install thrift-compiler` (.ci/run does \
         both)\n{}",
        String::from_utf8_lossy(&found.stderr)
    );
    for script in ["account_client.py", "warehouse_client.py"] {
        let mut command = Command::new(&python);
        command.arg(examples_dir().join("python").join(script));
        let output = run(command, script).await;
        let stdout = succeeded(&output, script);
        println!("{script}:\n{stdout}");
        if script == "account_client.py" {
            for client in ["apache thrift", "thriftpy2"] {
                for combo in [
                    "framed/binary",
                    "framed/compact",
                    "buffered/binary",
                    "buffered/compact",
                ] {
                    assert!(
                        stdout.contains(&format!("{client} {combo}: account 1 icyfenix")),
                        "{client} {combo} missing from:\n{stdout}"
                    );
                }
            }
        } else {
            assert!(
                stdout.contains("grpc.reflection.v1.ServerReflection")
                    && stdout.contains("GetProduct of a missing product: NOT_FOUND"),
                "{stdout}"
            );
        }
    }

    stop.cancel();
    let clean = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the bookstore stops in time")
        .expect("the system task");
    assert!(clean, "every program stopped cleanly");
}
