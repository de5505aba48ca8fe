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

/// A database that takes no writes (here: another process holds SQLite's write lock) turns the
/// service NOT_SERVING for the readiness probe, and SERVING again once writes go through, so
/// Kubernetes stops sending it traffic meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_takes_no_writes() {
    let world = World::new(Backend::Sqlite).await;
    let service = world.start_payment(world.payment_settings()).await;
    let client = HealthClientBuilder::new("payment")
        .address(service.address)
        .build();
    let status = |name: &'static str| {
        let client = client.clone();
        async move {
            client
                .check(check(name))
                .await
                .expect("check")
                .into_inner()
                .status
        }
    };
    let wait_for = |expected: ServingStatus| async move {
        common::eventually(&format!("readiness {expected:?}"), || async {
            (status(payment::SERVICE_NAME).await == expected).then_some(())
        })
        .await
    };

    // Someone else takes the write lock and keeps it.
    let outsider = world.payment_db().await;
    let mut holder = outsider.acquire().await.expect("connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .expect("take the write lock");
    wait_for(ServingStatus::NOT_SERVING).await;
    // Liveness holds for a while: one wedged probe is not yet a reason to restart.
    assert_eq!(status("").await, ServingStatus::SERVING);

    sqlx::query("ROLLBACK")
        .execute(&mut *holder)
        .await
        .expect("give the lock back");
    drop(holder);
    wait_for(ServingStatus::SERVING).await;
    outsider.close().await;
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
