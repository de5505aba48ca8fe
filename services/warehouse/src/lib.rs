//! The warehouse service: products, specifications, advertisements and stock, served over gRPC
//! (`warehouse.WarehouseService` plus `grpc.health.v1.Health`).
//!
//! Layers: [`rpc`] converts wire types to and from the [`domain`], which holds the rules;
//! [`store`] is the SQL.

pub mod configuration;
mod demo;
pub mod domain;
mod rpc;
mod store;

use std::{net::SocketAddr, time::Duration};

use platform::{
    database::{Database, DatabaseError, Migrations},
    health::health_service,
    serve::{self, ServeError, ServerTask},
    shutdown::CancellationToken,
    tokens::TokenError,
};
use rpc_idl::{grpc::health::v1::HealthServer, warehouse::WarehouseServiceServer};
use tokio::net::TcpListener;
use volo_grpc::server::{Server, ServiceBuilder};

use crate::{configuration::Settings, store::Store};

/// The gRPC service name, as health checks and probes ask for it.
pub const SERVICE_NAME: &str = "warehouse.WarehouseService";

static MIGRATIONS: Migrations = Migrations {
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
    postgres: &sqlx::migrate!("./migrations/postgres"),
};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("cannot seed the demo catalogue: {0}")]
    Seed(#[source] domain::WarehouseError),
}

/// A bound, ready-to-run warehouse server.
pub struct Application {
    server: ServerTask,
    database: Database,
}

impl Application {
    /// Binds `settings.server.listen`, connects the database, applies migrations and seeds.
    pub async fn build(settings: Settings, stop: CancellationToken) -> Result<Self, BuildError> {
        let listen = settings.server.listen.clone();
        let (listener, _) = serve::bind(&listen)
            .await
            .map_err(|source| BuildError::Bind { listen, source })?;
        Self::build_with_listener(settings, listener, stop).await
    }

    /// As [`Self::build`], on a listener the caller already bound.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> Result<Self, BuildError> {
        let verifier = settings.auth.verifier()?;
        let database = Database::connect(&settings.database, MIGRATIONS).await?;
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
        let warehouse = rpc::WarehouseRpc::new(store, verifier);
        let server = Server::new()
            .add_service(ServiceBuilder::new(HealthServer::new(health)).build())
            .add_service(ServiceBuilder::new(WarehouseServiceServer::new(warehouse)).build());

        let drain = Duration::from_secs(settings.server.drain_seconds);
        let server = ServerTask::new(
            "warehouse",
            listener,
            stop,
            drain,
            move || health_reporter.set_not_serving(),
            |incoming, shutdown| server.run_with_shutdown(incoming, shutdown),
        )
        .map_err(|source| BuildError::Bind {
            listen: settings.server.listen,
            source,
        })?;
        Ok(Self { server, database })
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// Serves until the stop token is cancelled and the drain finishes (or its deadline passes).
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        let served = self.server.run().await;
        self.database.close().await;
        served
    }
}
