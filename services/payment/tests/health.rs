//! The payment binary and server: gRPC health, start-up from a config file, and a clean, bounded
//! shutdown on SIGTERM.

mod common;

use std::time::Duration;

use common::{Backend, World};
use platform::testing::ChildProgram;
use rpc_idl::grpc::health::v1::{
    HealthCheckRequest, HealthClientBuilder, health_check_response::ServingStatus,
};

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_for_the_payment_service() {
    let world = World::new(Backend::Sqlite).await;
    let service = world.start_payment(world.payment_settings()).await;
    let client = HealthClientBuilder::new("payment")
        .address(service.address)
        .build();
    for name in ["", payment::SERVICE_NAME] {
        let status = client
            .check(check(name))
            .await
            .expect("check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::SERVING, "{name:?}");
    }
    let unknown = client.check(check("nope.Nope")).await.expect_err("unknown");
    assert_eq!(unknown.code(), volo_grpc::Code::NotFound);
    service.stop().await;
}

#[test]
fn the_binary_serves_from_its_config_file_and_stops_on_sigterm() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let world = runtime.block_on(World::new(Backend::Sqlite));
    let mut settings = world.payment_settings();
    settings.server.drain_seconds = 1;
    let config = world.dir.path().join("payment.toml");
    std::fs::write(&config, toml::to_string(&settings).expect("toml")).expect("write config");
    let program = ChildProgram::start(env!("CARGO_BIN_EXE_payment"), &config);

    let address = program.address;
    let status = runtime.block_on(async move {
        HealthClientBuilder::new("payment")
            .address(address)
            .build()
            .check(check(payment::SERVICE_NAME))
            .await
            .expect("check")
            .into_inner()
            .status
    });
    assert_eq!(status, ServingStatus::SERVING);

    let (exit, took) = program.terminate(Duration::from_secs(10));
    assert!(exit.success(), "exit status {exit:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
