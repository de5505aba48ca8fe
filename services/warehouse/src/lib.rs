//! The warehouse service: products, specifications, advertisements and stock, served over gRPC
//! (`warehouse.WarehouseService` plus `grpc.health.v1.Health`).
//!
//! Layers: [`rpc`] converts wire types to and from the [`domain`], which holds the rules;
//! [`store`] is the SQL.

pub mod configuration;
mod demo;
mod domain;
mod rpc;
mod store;

use std::net::SocketAddr;

use platform::{
    database::{Database, DatabaseError, Migrations},
    grpc_reflection, grpc_server,
    health::{HEALTH_SERVICE, health_service, watch_database},
    serve::{self, BindError, BoundService, ServeError, ServerTask},
    shutdown::CancellationToken,
    tokens::TokenError,
};
use rpc_idl::{grpc::health::v1::HealthServer, warehouse::WarehouseServiceServer};
use tokio::net::TcpListener;
use volo_grpc::server::{Router, ServiceBuilder};

use crate::{configuration::Settings, store::Store};

/// The gRPC service name, as health checks and probes ask for it.
pub const SERVICE_NAME: &str = "warehouse.WarehouseService";

static MIGRATIONS: Migrations = Migrations {
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
    postgres: &sqlx::migrate!("./migrations/postgres"),
};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("cannot seed the demo catalogue: {0}")]
    Seed(#[source] domain::WarehouseError),
}

/// A bound, ready-to-run warehouse server.
pub struct Application(BoundService);

impl Application {
    /// Binds `settings.server.listen`, connects the database, applies migrations and seeds.
    pub async fn build(settings: Settings, stop: CancellationToken) -> Result<Self, BuildError> {
        let listener = serve::bind(&settings.server.listen).await?;
        Self::build_with_listener(settings, listener, stop).await
    }

    /// As [`Self::build`], on a listener the caller already bound.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> Result<Self, BuildError> {
        let verifier = settings.auth.live_verifier(stop.clone())?;
        let database = Database::connect(&settings.database, MIGRATIONS)
            .await?
            .report_metrics("warehouse");
        let store = Store::new(database.clone());
        if settings.seed.demo_data
            && store
                .seed_demo_catalogue()
                .await
                .map_err(BuildError::Seed)?
        {
            tracing::info!(
                products = demo::BOOKS.len(),
                advertisements = demo::ADVERTISEMENTS.len(),
                "demo catalogue seeded"
            );
        }

        let (health_reporter, health) = health_service(&[SERVICE_NAME]);
        let probe = watch_database(health_reporter.clone(), database.clone(), stop.clone());
        let warehouse = rpc::WarehouseRpc::new(store, verifier);
        let router = Router::new()
            .add_service(ServiceBuilder::new(HealthServer::new(health)).build())
            .add_service(ServiceBuilder::new(WarehouseServiceServer::new(warehouse)).build());
        let router = grpc_reflection::add_to(
            router,
            &[SERVICE_NAME, HEALTH_SERVICE],
            &[
                rpc_idl::warehouse::file_descriptor_warehouse(),
                rpc_idl::grpc::health::v1::file_descriptor_health(),
            ],
        );
        let limits = settings.server.clone();
        let server = ServerTask::new(
            "warehouse",
            listener,
            &settings.server,
            stop,
            move || health_reporter.set_not_serving(),
            |incoming, shutdown| {
                grpc_server::serve("warehouse", router, limits, incoming, shutdown)
            },
        )?;
        Ok(Self(
            BoundService::new(server, database).with_tasks(vec![probe]),
        ))
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn address(&self) -> SocketAddr {
        self.0.address()
    }

    /// Serves until the stop token is cancelled and the drain finishes (or its deadline passes),
    /// then closes the database.
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        self.0.run_until_stopped().await
    }
}
