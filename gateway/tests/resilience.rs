//! End-to-end: backends going away and coming back, deadlines, re-pointing a backend by editing
//! the configuration file while requests run, and graceful shutdown. HTTP only, against the four
//! real programs.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use gateway::configuration::GatewayConfig;
use platform::{
    configuration::ConfigSource,
    database::DatabaseConfig,
    reload::{ReloadTiming, watch_config},
    shutdown::CancellationToken,
};
use tokio::net::TcpListener;

/// Polls `probe` every 50 ms until it is true, for at most `limit`.
async fn eventually(limit: Duration, mut probe: impl AsyncFnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_stopped_backend_is_a_fast_503_and_service_resumes_when_it_returns() {
    let mut stack = Stack::start().await;
    let http = stack.http.clone();
    let admin = http.admin_token().await;
    http.get("/restful/products", None).await.expect(200);

    // Warehouse (gRPC) down: 503 well within the 1 s deadline, for reads (retried) and writes.
    let address = stack.warehouse.address;
    stack.warehouse.stop_now().await;
    let started = Instant::now();
    let reply = http.get("/restful/products", None).await.expect(503);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    let message = reply.json()["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(message.contains("warehouse"), "{message}");
    http.set_stock(&admin, 1, 3).await.expect(503);

    // Back on the same address: the gateway finds it again by itself.
    let listener = rebind(address).await;
    stack.warehouse =
        start_warehouse(&stack.keys, stack.databases.warehouse.clone(), listener).await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            http.get("/restful/products", None).await.status == 200
        })
        .await,
        "the gateway did not recover"
    );

    // Account (Thrift) down: API calls and logins are 503, not 500 or invalid_grant.
    let address = stack.account.address;
    stack.account.stop_now().await;
    let started = Instant::now();
    http.get("/restful/accounts/icyfenix", Some(&admin))
        .await
        .expect(503);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    let login = http.login(ADMIN, ADMIN_PASSWORD).await.expect(503);
    assert_eq!(login.json()["error"], "temporarily_unavailable");
    let listener = rebind(address).await;
    stack.account = start_account(&stack.keys, stack.databases.account.clone(), listener).await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            http.login(ADMIN, ADMIN_PASSWORD).await.status == 200
        })
        .await,
        "logins did not recover"
    );
    stack.shut_down().await;
}

#[tokio::test]
async fn a_backend_that_does_not_answer_is_a_504_within_the_request_budget() {
    let stack = Stack::start().await;
    let http = stack.http.clone();
    // Accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_address = silent.local_addr().expect("address");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let good = stack.config.borrow().warehouse.client.hostport.clone();
    stack.config.send_modify(|config: &mut GatewayConfig| {
        config.warehouse.client.hostport = vec![silent_address.to_string()];
        config.warehouse.client.timeout_ms = 300;
        config.request.budget_ms = 1_000;
    });
    // Give discovery a moment to switch.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let reply = http.get("/restful/products", None).await.expect(504);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1_600),
        "took {took:?}"
    );
    assert_eq!(reply.json()["code"], 1);

    // Pointing back recovers without a restart.
    stack.config.send_modify(|config: &mut GatewayConfig| {
        config.warehouse.client.hostport = good.clone();
    });
    assert!(
        eventually(Duration::from_secs(5), async || {
            http.get("/restful/products", None).await.status == 200
        })
        .await
    );
    holder.abort();
    stack.shut_down().await;
}

#[tokio::test]
async fn editing_the_hostport_in_the_file_moves_traffic_with_no_failed_request() {
    let keys = platform::testing::TestKeys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (account_l, first_l, second_l, payment_l, gateway_l) = (
        loopback().await,
        loopback().await,
        loopback().await,
        loopback().await,
        loopback().await,
    );
    let gateway_address = gateway_l.local_addr().expect("address");
    let databases = Databases::sqlite(dir.path());
    let account = start_account(&keys, databases.account, account_l).await;
    let first = start_warehouse(&keys, databases.warehouse, first_l).await;
    let second_database = DatabaseConfig::sqlite_file(&dir.path().join("second.db"));
    let second = start_warehouse(&keys, second_database, second_l).await;
    let payment = start_payment(
        &keys,
        databases.payment,
        payment_l,
        first.address,
        gateway_address,
    )
    .await;

    // The gateway reads its configuration from a file and follows edits to it.
    let file = dir.path().join("gateway.toml");
    let mut config = gateway_config(&keys, account.address, first.address, payment.address);
    let write = |config: &GatewayConfig| {
        let text = toml::to_string(config).expect("toml");
        // Write-then-rename, as a ConfigMap update does: readers never see half a file.
        let temporary = dir.path().join("gateway.toml.new");
        std::fs::write(&temporary, text).expect("write");
        std::fs::rename(&temporary, &file).expect("rename");
    };
    write(&config);
    let reload_stop = CancellationToken::new();
    let timing = ReloadTiming {
        debounce: Duration::from_millis(50),
        poll_interval: Duration::from_millis(500),
    };
    let source = ConfigSource::file_only(&file);
    let initial: GatewayConfig = source.load().expect("config");
    let live = watch_config(source, initial, timing, reload_stop.clone()).expect("watch");
    let gateway = start_gateway(live, gateway_l).await;
    let http = Rest::new(gateway.address);
    let admin = http.admin_token().await;

    // Mark the first instance: product 1 has 111 units there.
    http.set_stock(&admin, 1, 111).await.expect(200);
    assert_eq!(http.stock(&admin, 1).await.0, 111);

    // Readers hammer the gateway while the file changes.
    let running = Arc::new(AtomicBool::new(true));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut readers = Vec::new();
    for worker in 0..4 {
        let (http, admin, running, done, failed) = (
            http.clone(),
            admin.clone(),
            running.clone(),
            done.clone(),
            failed.clone(),
        );
        readers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while running.load(Ordering::Relaxed) && Instant::now() < deadline {
                let reply = if worker % 2 == 0 {
                    http.get("/restful/products/stockpile/1", Some(&admin))
                        .await
                } else {
                    http.get("/restful/products", None).await
                };
                if reply.status != 200 {
                    eprintln!("failed request: {} {}", reply.status, reply.text());
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    config.warehouse.client.hostport = vec![second.address.to_string()];
    write(&config);
    assert!(
        eventually(Duration::from_secs(10), async || {
            http.stock(&admin, 1).await.0 != 111
        })
        .await,
        "traffic did not move to the second instance"
    );
    // Once traffic has moved, the first instance can go away without anyone noticing.
    let before = done.load(Ordering::Relaxed);
    first.shut_down().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("reader");
    }
    let total = done.load(Ordering::Relaxed);
    assert!(total > before, "requests kept flowing after the switch");
    assert!(total >= 20, "only {total} requests ran");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {total} requests");
    assert_ne!(http.stock(&admin, 1).await.0, 111);

    gateway.shut_down().await;
    reload_stop.cancel();
    payment.shut_down().await;
    second.shut_down().await;
    account.shut_down().await;
}

#[tokio::test]
async fn shutdown_fails_readiness_first_then_drains() {
    let stack = Stack::start_with(|config| config.server.readiness_grace_ms = 1_500).await;
    let http = stack.http.clone();
    assert!(
        eventually(Duration::from_secs(10), async || {
            http.get("/readyz", None).await.status == 200
        })
        .await
    );
    let Stack {
        gateway,
        account,
        warehouse,
        payment,
        ..
    } = stack;
    gateway.stop.cancel();
    // During the grace period new requests are still served, but readiness says no.
    let draining = http.get("/readyz", None).await.expect(503).json();
    assert_eq!(draining["draining"], true);
    http.get("/healthz", None).await.expect(200);
    tokio::time::timeout(Duration::from_secs(10), gateway.task)
        .await
        .expect("the gateway stops within grace + drain")
        .expect("task");
    // The listener is closed.
    let refused = tokio::net::TcpStream::connect(http.base.trim_start_matches("http://")).await;
    assert!(refused.is_err());
    payment.shut_down().await;
    warehouse.shut_down().await;
    account.shut_down().await;
}

#[test]
fn the_binary_serves_and_stops_on_sigterm_within_its_drain_deadline() {
    let keys = platform::testing::TestKeys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let unused = "127.0.0.1:1".parse().expect("address");
    let mut config = gateway_config(&keys, unused, unused, unused);
    config.server.drain_seconds = 1;
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, toml::to_string(&config).expect("toml")).expect("write");
    let program = platform::testing::ChildProgram::start(env!("CARGO_BIN_EXE_gateway"), &file);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let http = Rest::new(program.address);
    runtime.block_on(async {
        http.get("/healthz", None).await.expect(200);
        // No backend is up: still ready (it serves what it can), degraded, and API calls are a
        // fast 503 that says when to try again.
        let ready = http.get("/readyz", None).await.expect(200).json();
        assert_eq!(ready["degraded"], true, "{ready}");
        let refused = http.get("/restful/products", None).await.expect(503);
        assert_eq!(refused.header("retry-after"), "2");
    });
    let (status, took) = program.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
