//! The warehouse answers the standard gRPC health protocol and shuts down within its drain
//! deadline, also while a client holds a `Watch` stream open.

use std::time::Duration;

use futures::StreamExt;
use platform::{
    configuration::ServerConfig,
    database::DatabaseConfig,
    shutdown::CancellationToken,
    testing::{ChildProgram, TestKeys},
};
use rpc_idl::grpc::health::v1::{
    HealthCheckRequest, HealthClientBuilder, health_check_response::ServingStatus,
};
use warehouse::{Application, SERVICE_NAME, configuration::Settings};

fn settings(keys: &TestKeys, dir: &std::path::Path) -> Settings {
    Settings {
        server: ServerConfig::with_listen("127.0.0.1:0"),
        database: DatabaseConfig::sqlite_file(&dir.join("warehouse.db")),
        auth: keys.auth_config(),
        ..Settings::default()
    }
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned().into(),
    }
}

#[tokio::test]
async fn health_check_reports_serving_until_shutdown() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let stop = CancellationToken::new();
    let app = Application::build(settings(&keys, dir.path()), stop.clone())
        .await
        .expect("build");
    let address = app.address();
    let running = tokio::spawn(app.run_until_stopped());

    let client = HealthClientBuilder::new("warehouse")
        .address(address)
        .build();
    for service in ["", SERVICE_NAME] {
        let status = client
            .check(check(service))
            .await
            .expect("check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::SERVING, "service {service:?}");
    }
    let unknown = client
        .check(check("nope.Nope"))
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), volo_grpc::Code::NotFound);

    let mut watch = client.watch(check("")).await.expect("watch").into_inner();
    let first = watch.next().await.expect("first message").expect("status");
    assert_eq!(first.status, ServingStatus::SERVING);

    stop.cancel();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a message after shutdown");
    if let Some(Ok(message)) = next {
        assert_eq!(message.status, ServingStatus::NOT_SERVING);
    }
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("stops within the drain deadline")
        .expect("task")
        .expect("clean stop");
}

#[test]
fn sigterm_stops_the_binary_within_its_drain_deadline_despite_an_open_stream() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("warehouse.toml");
    let mut settings = settings(&keys, dir.path());
    settings.server.drain_seconds = 1;
    std::fs::write(&config, toml::to_string(&settings).expect("toml")).expect("write config");
    let program = ChildProgram::start(env!("CARGO_BIN_EXE_warehouse"), &config);

    // Hold a Watch stream open from another thread's runtime while the process is told to stop.
    let address = program.address;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (watching, is_watching) = std::sync::mpsc::channel();
    let stream_task = runtime.spawn(async move {
        let client = HealthClientBuilder::new("warehouse")
            .address(address)
            .build();
        let mut watch = client.watch(check("")).await.expect("watch").into_inner();
        let first = watch.next().await.expect("first").expect("status");
        assert_eq!(first.status, ServingStatus::SERVING);
        let _ = watching.send(());
        while let Some(Ok(_)) = watch.next().await {}
    });
    is_watching
        .recv_timeout(Duration::from_secs(10))
        .expect("stream open");

    let (status, took) = program.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    stream_task.abort();
}
