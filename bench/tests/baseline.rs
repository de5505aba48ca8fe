//! The tool's own moving parts against real sockets: the bare hyper baseline (in-process and as
//! the pinned child process the benchmark starts), the HTTP target's answer checks, and both
//! load loops.

use std::time::Duration;

use bookstore_bench::{
    load::{self, ClosedLoop, OpenLoop, Target},
    machine,
    programs::{Hashing, Layout, Program},
    targets::{Http, HttpGet},
};
use bytes::Bytes;

const BODY: &str = r#"{"id":1,"title":"A book","price":12.5,"specifications":[]}"#;

async fn in_process_baseline() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(bookstore_bench::baseline::serve(
        listener,
        Bytes::from_static(BODY.as_bytes()),
    ));
    address
}

#[tokio::test(flavor = "current_thread")]
async fn both_loops_drive_the_baseline_and_count_every_answer() {
    let address = in_process_baseline().await;
    let target =
        HttpGet::new(Http::new(address), "/restful/products/1", None, BODY.len()).expect("target");

    let closed = load::closed_loop(
        &target,
        &ClosedLoop {
            concurrency: 8,
            duration: Duration::from_secs(20),
            max_requests: 400,
            timeout: Duration::from_secs(5),
        },
    )
    .await;
    assert_eq!(
        (closed.ok, closed.errors),
        (400, 0),
        "{:?}",
        closed.first_error
    );
    assert_eq!(closed.latency.len(), 400);
    assert!(closed.throughput() > 0.0);

    let open = load::open_loop(
        &target,
        &OpenLoop {
            rate: 1_000.0,
            duration: Duration::from_millis(200),
            max_requests: 10_000,
            timeout: Duration::from_secs(5),
            max_in_flight: 64,
        },
    )
    .await;
    assert_eq!((open.sent, open.ok, open.errors), (200, 200, 0));
    assert_eq!(open.latency.len(), 200);
}

#[tokio::test(flavor = "current_thread")]
async fn a_wrong_answer_is_an_error_not_a_fast_success() {
    let address = in_process_baseline().await;
    let http = Http::new(address);
    let wrong_length = HttpGet::new(http.clone(), "/", None, BODY.len() + 1).expect("target");
    let error = wrong_length.call().await.expect_err("length differs");
    assert!(error.0.contains("expected"), "{error:?}");

    // Nothing listens on port 9 of the loopback: a refused connection is an error too.
    let nowhere = HttpGet::new(
        Http::new("127.0.0.1:9".parse().expect("addr")),
        "/",
        None,
        1,
    )
    .expect("target");
    assert!(nowhere.call().await.is_err());
}

/// The benchmark's own way of starting a program: this tool's binary in `baseline-server` mode,
/// pinned with `taskset`, ready once it answers over HTTP.
#[tokio::test(flavor = "current_thread")]
async fn the_baseline_child_runs_pinned_and_serves_the_file_it_was_given() {
    machine::check_taskset().expect("taskset is installed");
    let dir = tempfile::tempdir().expect("tempdir");
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, BODY).expect("write body");
    let layout = Layout {
        bin_dir: dir.path().to_path_buf(),
        bench_exe: env!("CARGO_BIN_EXE_bookstore-bench").into(),
        work: dir.path().to_path_buf(),
        core: 0,
        hashing: Hashing::Cheap,
    };
    let running = layout
        .start_baseline(&body_file, dir.path())
        .await
        .expect("baseline starts");
    assert_eq!(running.program, Program::Baseline);
    assert!(running.ready_after < Duration::from_secs(30));

    let status = std::fs::read_to_string(format!("/proc/{}/status", running.pid)).expect("status");
    let allowed = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim);
    assert_eq!(allowed, Some("0"), "the program runs on core 0 only");

    let answer = Http::new(running.address)
        .get("/anything", None)
        .await
        .expect("answer");
    assert_eq!(answer.ok().expect("200"), BODY.as_bytes());
    running.stop(Duration::from_secs(2));
}
