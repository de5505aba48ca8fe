//! The account service answers Ping with SERVING, switches to NOT_SERVING when shutdown begins,
//! and the binary exits on SIGTERM within its drain deadline even while a client holds a
//! connection open.

use std::time::Duration;

use account::{Application, configuration::Settings};
use platform::{
    configuration::ServerConfig,
    database::DatabaseConfig,
    shutdown::CancellationToken,
    testing::{ChildProgram, TestKeys},
};
use rpc_idl::account::{AccountServiceClient, AccountServiceClientBuilder, PingRequest};

fn settings(keys: &TestKeys, dir: &std::path::Path) -> Settings {
    let mut settings = Settings {
        server: ServerConfig::with_listen("127.0.0.1:0"),
        database: DatabaseConfig::sqlite_file(&dir.join("account.db")),
        auth: keys.auth_config(),
        ..Settings::default()
    };
    settings.password_hashing.memory_kib = 64;
    settings.password_hashing.iterations = 1;
    settings
}

fn client(address: std::net::SocketAddr) -> AccountServiceClient {
    AccountServiceClientBuilder::new("account")
        .address(address)
        .rpc_timeout(Some(Duration::from_secs(5)))
        .build()
}

async fn ping(client: &AccountServiceClient) -> String {
    client
        .ping(PingRequest {})
        .await
        .expect("ping")
        .status
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_reports_serving_until_shutdown_begins() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let stop = CancellationToken::new();
    let app = Application::build(settings(&keys, dir.path()), stop.clone())
        .await
        .expect("build");
    let address = app.address();
    let running = tokio::spawn(app.run_until_stopped());

    let client = client(address);
    assert_eq!(ping(&client).await, "SERVING");

    stop.cancel();
    // The pooled connection stays open during the drain; calls on it learn that the service is
    // going away, so a load balancer's probe stops sending new work.
    // The server may also close that connection (Volo tells drained connections to go) before
    // a ping on it answers; a new connection is then refused. Either way it takes no new work.
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match client.ping(PingRequest {}).await {
                Ok(answer) if answer.status != "SERVING" => return answer.status.to_string(),
                Ok(_) => tokio::task::yield_now().await,
                Err(_) => return "connection closed".to_owned(),
            }
        }
    })
    .await
    .expect("NOT_SERVING, or the connection closed, soon after shutdown began");
    assert!(
        status == "NOT_SERVING" || status == "connection closed",
        "{status}"
    );

    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("stops within the drain deadline")
        .expect("task")
        .expect("clean stop");
}

#[test]
fn sigterm_stops_the_binary_within_its_drain_deadline_despite_an_open_connection() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("account.toml");
    let mut settings = settings(&keys, dir.path());
    settings.server.drain_seconds = 1;
    std::fs::write(&config, toml::to_string(&settings).expect("toml")).expect("write config");
    let program = ChildProgram::start(env!("CARGO_BIN_EXE_account"), &config);

    // Keep a pooled client connection open (from another thread's runtime) during the SIGTERM.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _in_runtime = runtime.enter();
    let client = client(program.address);
    let status = runtime.block_on(ping(&client));
    assert_eq!(status, "SERVING");

    let (status, took) = program.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(client);
}
