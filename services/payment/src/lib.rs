//! The payment service: turns a cart into a payment and sees it through to PAYED, CANCEL or
//! TIMEOUT, and owns the wallets. Served over gRPC (`payment.PaymentService` plus
//! `grpc.health.v1.Health`); calls the warehouse over gRPC with its own SERVICE token.
//!
//! Layers: [`rpc`] converts wire types and maps errors; [`payments`] holds the use cases;
//! [`domain`] the rules; [`store`] the SQL; [`warehouse`] the warehouse client; [`outbox`]
//! delivers owed warehouse calls; [`expiry`] times out unpaid payments; [`service_token`] gets
//! the service's own access token.
//!
//! Background tasks (outbox relay, expiry sweeper, DNS discovery, config follower) are started
//! by [`Application::build`] and stop when the stop token is cancelled.

pub mod configuration;
mod domain;
mod expiry;
mod outbox;
mod payments;
mod rpc;
pub mod service_token;
mod store;
mod warehouse;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use platform::{
    database::{Database, DatabaseError, Migrations},
    discovery::DnsDiscover,
    grpc_reflection, grpc_server,
    health::{HEALTH_SERVICE, health_service, watch_database},
    reload::follow,
    serve::{self, BindError, BoundService, ServeError, ServerTask},
    shutdown::CancellationToken,
    tokens::TokenError,
};
use rpc_idl::{grpc::health::v1::HealthServer, payment::PaymentServiceServer};
use tokio::{net::TcpListener, sync::watch};
use volo_grpc::server::{Router, ServiceBuilder};

use crate::{
    configuration::Settings,
    outbox::Relay,
    payments::Payments,
    service_token::{ClientCredentials, ServiceTokenError, ServiceTokenSource},
    store::Store,
    warehouse::WarehouseClient,
};

/// The gRPC service name, as health checks and probes ask for it.
pub const SERVICE_NAME: &str = "payment.PaymentService";

static MIGRATIONS: Migrations = Migrations {
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
    postgres: &sqlx::migrate!("./migrations/postgres"),
};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    ServiceCredentials(#[from] ServiceTokenError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

/// A bound, ready-to-run payment server with its background tasks running.
pub struct Application {
    service: BoundService,
    /// Keeps a fixed configuration's channel open (a closed one would stop DNS refreshes).
    _fixed_config: Option<watch::Sender<Settings>>,
}

impl Application {
    /// Binds `settings.server.listen`, connects the database, applies migrations, and starts the
    /// background tasks. The configuration stays as given.
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
        let (sender, config) = watch::channel(settings);
        let mut application = Self::build_live(config, listener, None, stop).await?;
        application._fixed_config = Some(sender);
        Ok(application)
    }

    /// Builds from a configuration channel, following its live-reloadable keys (see
    /// [`configuration`]). `tokens` replaces the configured client-credentials token source,
    /// for programs that embed the service.
    pub async fn build_live(
        config: watch::Receiver<Settings>,
        listener: TcpListener,
        tokens: Option<Arc<dyn ServiceTokenSource>>,
        stop: CancellationToken,
    ) -> Result<Self, BuildError> {
        let settings = config.borrow().clone();
        let problems = settings.problems();
        if !problems.is_empty() {
            return Err(BuildError::Config(problems));
        }
        let verifier = settings.auth.live_verifier(stop.clone())?;
        let tokens = match tokens {
            Some(tokens) => tokens,
            None => Arc::new(ClientCredentials::new(&settings.service_credentials)?),
        };
        let database = Database::connect(&settings.database, MIGRATIONS)
            .await?
            .report_metrics("payment");
        let store = Store::new(database.clone());

        let config = validated(config, settings.clone(), stop.clone());
        let hostports = follow(
            config.clone(),
            settings.warehouse.hostport.clone(),
            stop.clone(),
            |settings: &Settings| Some(settings.warehouse.hostport.clone()),
        );
        let refresh = Duration::from_millis(settings.warehouse.dns_refresh_ms);
        let discover = DnsDiscover::start(hostports, refresh, stop.clone()).await;
        let warehouse = Arc::new(WarehouseClient::new(
            discover,
            settings.warehouse.rpc_timeout(),
            tokens,
        ));
        let relay = Arc::new(Relay::new(
            store.clone(),
            warehouse.clone(),
            settings.outbox.clone(),
            settings.warehouse.rpc_timeout(),
        ));
        let mut tasks = vec![
            tokio::spawn(relay.clone().run(stop.clone())),
            tokio::spawn(expiry::run(
                store.clone(),
                relay.clone(),
                config.clone(),
                stop.clone(),
            )),
        ];

        let payments = Arc::new(Payments::new(store, warehouse, relay, config));
        let (health_reporter, health) = health_service(&[SERVICE_NAME]);
        tasks.push(watch_database(
            health_reporter.clone(),
            database.clone(),
            stop.clone(),
        ));
        let router = Router::new()
            .add_service(ServiceBuilder::new(HealthServer::new(health)).build())
            .add_service(
                ServiceBuilder::new(PaymentServiceServer::new(rpc::PaymentRpc::new(
                    payments, verifier,
                )))
                .build(),
            );
        let router = grpc_reflection::add_to(
            router,
            &[SERVICE_NAME, HEALTH_SERVICE],
            &[
                rpc_idl::payment::file_descriptor_payment(),
                rpc_idl::grpc::health::v1::file_descriptor_health(),
            ],
        );
        let limits = settings.server.clone();
        let server = ServerTask::new(
            "payment",
            listener,
            &settings.server,
            stop,
            move || health_reporter.set_not_serving(),
            |incoming, shutdown| grpc_server::serve("payment", router, limits, incoming, shutdown),
        )?;
        Ok(Self {
            service: BoundService::new(server, database).with_tasks(tasks),
            _fixed_config: None,
        })
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn address(&self) -> SocketAddr {
        self.service.address()
    }

    /// Serves until the stop token is cancelled and the drain finishes (or its deadline passes),
    /// then waits for the background tasks and closes the database.
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        self.service.run_until_stopped().await
    }
}

/// Only configuration updates that pass [`Settings::problems`] reach the service; a bad edit
/// is logged and the last valid configuration stays in force.
fn validated(
    config: watch::Receiver<Settings>,
    initial: Settings,
    stop: CancellationToken,
) -> watch::Receiver<Settings> {
    follow(config, initial, stop, |update: &Settings| {
        let problems = update.problems();
        if problems.is_empty() {
            Some(update.clone())
        } else {
            tracing::warn!(
                ?problems,
                "configuration update refused; keeping the last valid one"
            );
            None
        }
    })
}
