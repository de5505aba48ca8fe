//! The whole bookstore in one process: account, warehouse, payment and gateway, each built by
//! its own crate's `Application` (the same code the separate binaries run), on loopback, with
//! SQLite files and a development signing key under one data directory.
//!
//! The three RPC services listen on the ports of the Kubernetes Services and the README
//! (account 8810, warehouse 8820, payment 8830), so direct Thrift and gRPC callers know where to
//! find them; each address can be changed (port 0 picks a free port). All listeners are bound
//! first, so every program can be told where the others are. What else each program does comes
//! from [`configuration::LocalConfig`] (`--config FILE`), wired together by [`Wiring`].

pub mod configuration;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use gateway::configuration::GatewayConfig;
use platform::{
    configuration::AuthConfig,
    database::DatabaseConfig,
    metrics::MetricsServer,
    reload::follow,
    serve::{self, BindError},
    shutdown::CancellationToken,
    tokens::KeyPairPem,
};
use tokio::{net::TcpListener, sync::watch};

pub use crate::configuration::LocalConfig;

/// What the user can choose about a local run besides the configuration file.
#[derive(Debug, Clone)]
pub struct Options {
    /// SQLite files and the development key pair live here (created if missing).
    pub data_dir: PathBuf,
    /// The gateway's listen address; port 0 picks a free port.
    pub listen: String,
    /// The RPC services' listen addresses.
    pub account_listen: String,
    pub warehouse_listen: String,
    pub payment_listen: String,
    /// A built front-end (e.g. the Fenix bookstore's `dist/`) to serve at `/` instead of the
    /// storefront; wins over `[gateway.static_files] dir`.
    pub static_dir: Option<PathBuf>,
    /// Where to serve all four programs' metrics (`GET /metrics`); each program's own
    /// `[metrics] listen` is not used here.
    pub metrics_listen: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source} (choose another address with {flag})")]
    Bind {
        flag: &'static str,
        source: BindError,
    },
    #[error("the account service failed to start: {0}")]
    Account(#[from] account::BuildError),
    #[error("the warehouse service failed to start: {0}")]
    Warehouse(#[from] warehouse::BuildError),
    #[error("the payment service failed to start: {0}")]
    Payment(#[from] payment::BuildError),
    #[error("the gateway failed to start: {0}")]
    Gateway(#[from] gateway::BuildError),
}

/// The four programs, built and bound, ready to run.
pub struct System {
    metrics: MetricsServer,
    account: account::Application,
    warehouse: warehouse::Application,
    payment: payment::Application,
    gateway: gateway::Application,
}

impl System {
    /// Prepares `data_dir`, binds every listener and builds the four applications from
    /// `config` (the current file, and its later versions).
    pub async fn build(
        options: Options,
        config: watch::Receiver<LocalConfig>,
        stop: CancellationToken,
    ) -> Result<Self, LaunchError> {
        let data = &options.data_dir;
        let data_dir_error = |source| LaunchError::DataDir {
            path: data.clone(),
            source,
        };
        std::fs::create_dir_all(data).map_err(data_dir_error)?;
        let (private_key, public_key) =
            KeyPairPem::ensure_files(&data.join("keys")).map_err(data_dir_error)?;

        let (account_listener, account) = bind(&options.account_listen, "--account-listen").await?;
        let (warehouse_listener, warehouse) =
            bind(&options.warehouse_listen, "--warehouse-listen").await?;
        let (payment_listener, payment) = bind(&options.payment_listen, "--payment-listen").await?;
        let (gateway_listener, gateway) = bind(&options.listen, "--listen").await?;
        let metrics = MetricsServer::start(&options.metrics_listen, stop.clone())
            .await
            .map_err(|source| LaunchError::Bind {
                flag: "--metrics-listen",
                source,
            })?;
        let wiring = Arc::new(Wiring {
            data_dir: data.clone(),
            private_key,
            public_key,
            static_dir: options.static_dir.clone(),
            account,
            warehouse,
            payment,
            gateway,
        });
        let current = config.borrow().clone();

        let account = account::Application::build_with_listener(
            wiring.account(current.account),
            account_listener,
            stop.clone(),
        )
        .await?;
        let warehouse = warehouse::Application::build_with_listener(
            wiring.warehouse(current.warehouse),
            warehouse_listener,
            stop.clone(),
        )
        .await?;
        let payment_config = {
            let wiring = wiring.clone();
            follow(
                config.clone(),
                wiring.payment(current.payment),
                stop.clone(),
                move |c: &LocalConfig| Some(wiring.payment(c.payment.clone())),
            )
        };
        let payment =
            payment::Application::build_live(payment_config, payment_listener, None, stop.clone())
                .await?;
        let gateway_config = {
            let wiring = wiring.clone();
            follow(
                config,
                wiring.gateway(current.gateway),
                stop.clone(),
                move |c: &LocalConfig| Some(wiring.gateway(c.gateway.clone())),
            )
        };
        let gateway =
            gateway::Application::build_with_listener(gateway_config, gateway_listener, stop)
                .await?;

        Ok(Self {
            metrics,
            account,
            warehouse,
            payment,
            gateway,
        })
    }

    /// Where the REST API and the front-end are served.
    pub fn gateway_address(&self) -> SocketAddr {
        self.gateway.address()
    }

    /// Every listener, with what it speaks, for the banner.
    pub fn addresses(&self) -> [(&'static str, &'static str, SocketAddr); 5] {
        [
            (
                "gateway",
                "HTTP: storefront, REST API, OAuth2 tokens",
                self.gateway.address(),
            ),
            (
                "account",
                "Thrift (TTHeader, framed or buffered)",
                self.account.address(),
            ),
            ("warehouse", "gRPC", self.warehouse.address()),
            ("payment", "gRPC", self.payment.address()),
            (
                "metrics",
                "HTTP: Prometheus /metrics of all four",
                self.metrics.address(),
            ),
        ]
    }

    /// Runs all four until the stop token fires and each has drained. Errors are logged by
    /// the program that had them; this reports whether all stopped cleanly.
    pub async fn run_until_stopped(self) -> bool {
        let (account, warehouse, payment, ()) = tokio::join!(
            self.account.run_until_stopped(),
            self.warehouse.run_until_stopped(),
            self.payment.run_until_stopped(),
            self.gateway.run_until_stopped(),
        );
        let failures = [
            account.err().map(|e| e.to_string()),
            warehouse.err().map(|e| e.to_string()),
            payment.err().map(|e| e.to_string()),
        ];
        for failure in failures.iter().flatten() {
            tracing::error!(%failure, "a program did not stop cleanly");
        }
        failures.iter().all(Option::is_none)
    }
}

/// What ties the four programs together on this machine, laid over each program's own settings:
/// the bound addresses, who calls whom, and (unless the file chose others) the data directory's
/// SQLite files and development key pair.
struct Wiring {
    data_dir: PathBuf,
    private_key: PathBuf,
    public_key: PathBuf,
    static_dir: Option<PathBuf>,
    account: SocketAddr,
    warehouse: SocketAddr,
    payment: SocketAddr,
    gateway: SocketAddr,
}

impl Wiring {
    fn account(
        &self,
        mut settings: account::configuration::Settings,
    ) -> account::configuration::Settings {
        settings.server.listen = self.account.to_string();
        self.database(
            &mut settings.database,
            &account::configuration::Settings::default().database,
            "account",
        );
        self.auth(&mut settings.auth);
        settings
    }

    fn warehouse(
        &self,
        mut settings: warehouse::configuration::Settings,
    ) -> warehouse::configuration::Settings {
        settings.server.listen = self.warehouse.to_string();
        self.database(
            &mut settings.database,
            &warehouse::configuration::Settings::default().database,
            "warehouse",
        );
        self.auth(&mut settings.auth);
        settings
    }

    fn payment(
        &self,
        mut settings: payment::configuration::Settings,
    ) -> payment::configuration::Settings {
        settings.server.listen = self.payment.to_string();
        self.database(
            &mut settings.database,
            &payment::configuration::Settings::default().database,
            "payment",
        );
        self.auth(&mut settings.auth);
        settings.warehouse.hostport = vec![self.warehouse.to_string()];
        // The payment service gets its SERVICE token from the gateway, like in Kubernetes.
        settings.service_credentials.token_url = format!("http://{}/oauth/token", self.gateway);
        settings
    }

    fn gateway(&self, mut settings: GatewayConfig) -> GatewayConfig {
        settings.server.listen = self.gateway.to_string();
        settings.account.client.hostport = vec![self.account.to_string()];
        settings.warehouse.client.hostport = vec![self.warehouse.to_string()];
        settings.payment.client.hostport = vec![self.payment.to_string()];
        if settings.oauth.private_key_path == GatewayConfig::default().oauth.private_key_path {
            settings.oauth.private_key_path = self.private_key.clone();
        }
        if self.static_dir.is_some() {
            settings.static_files.dir = self.static_dir.clone();
        }
        settings
    }

    /// The program's SQLite file under the data directory, unless the file named a database
    /// other than the program's default.
    fn database(&self, database: &mut DatabaseConfig, default: &DatabaseConfig, program: &str) {
        if database.url == default.url {
            let file = self.data_dir.join(format!("{program}.db"));
            database.url = DatabaseConfig::sqlite_file(&file).url;
        }
    }

    /// The data directory's development key, unless the file named another.
    fn auth(&self, auth: &mut AuthConfig) {
        if auth.public_key_path == AuthConfig::default().public_key_path {
            auth.public_key_path = self.public_key.clone();
        }
    }
}

/// Binds `listen`; an error names `flag`, the option that chooses another address.
async fn bind(listen: &str, flag: &'static str) -> Result<(TcpListener, SocketAddr), LaunchError> {
    let bound = async {
        let listener = serve::bind(listen).await?;
        let address = serve::local_address(&listener, listen)?;
        Ok((listener, address))
    };
    bound
        .await
        .map_err(|source| LaunchError::Bind { flag, source })
}
