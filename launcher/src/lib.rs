//! The whole bookstore in one process: account, warehouse, payment and gateway, each built by
//! its own crate's `Application` (the same code the separate binaries run), on loopback, with
//! SQLite files and a development signing key under one data directory.
//!
//! The three RPC services listen on the ports of the Kubernetes Services and the README
//! (account 8810, warehouse 8820, payment 8830), so direct Thrift and gRPC callers know where to
//! find them; each address can be changed (port 0 picks a free port). All listeners are bound
//! first, so every program can be told where the others are.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use gateway::configuration::{BackendConfig, GatewayConfig};
use platform::{
    configuration::{AuthConfig, LogConfig, ServerConfig},
    database::DatabaseConfig,
    serve::{self, BindError},
    shutdown::CancellationToken,
    tokens::KeyPairPem,
};
use tokio::{net::TcpListener, sync::watch};

/// What the user can choose about a local run.
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
    /// A built front-end (e.g. the Fenix bookstore's `dist/`) to serve at `/`.
    pub static_dir: Option<PathBuf>,
    pub log: LogConfig,
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
    account: account::Application,
    warehouse: warehouse::Application,
    payment: payment::Application,
    gateway: gateway::Application,
    /// Keeps the gateway's configuration channel open (nothing edits it in a local run).
    _gateway_config: watch::Sender<GatewayConfig>,
}

impl System {
    /// Prepares `data_dir`, binds every listener and builds the four applications.
    pub async fn build(options: Options, stop: CancellationToken) -> Result<Self, LaunchError> {
        let data = &options.data_dir;
        let data_dir_error = |source| LaunchError::DataDir {
            path: data.clone(),
            source,
        };
        std::fs::create_dir_all(data).map_err(data_dir_error)?;
        let (private_key, public_key) =
            KeyPairPem::ensure_files(&data.join("keys")).map_err(data_dir_error)?;
        let auth = AuthConfig {
            public_key_path: public_key,
            ..AuthConfig::default()
        };

        let (account_listener, account_address) =
            bind(&options.account_listen, "--account-listen").await?;
        let (warehouse_listener, warehouse_address) =
            bind(&options.warehouse_listen, "--warehouse-listen").await?;
        let (payment_listener, payment_address) =
            bind(&options.payment_listen, "--payment-listen").await?;
        let (gateway_listener, gateway_address) = bind(&options.listen, "--listen").await?;

        let account = account::Application::build_with_listener(
            account::configuration::Settings {
                server: loopback(account_address),
                database: sqlite(data, "account"),
                auth: auth.clone(),
                log: options.log.clone(),
                ..Default::default()
            },
            account_listener,
            stop.clone(),
        )
        .await?;

        let warehouse = warehouse::Application::build_with_listener(
            warehouse::configuration::Settings {
                server: loopback(warehouse_address),
                database: sqlite(data, "warehouse"),
                auth: auth.clone(),
                log: options.log.clone(),
                ..Default::default()
            },
            warehouse_listener,
            stop.clone(),
        )
        .await?;

        let mut payment_settings = payment::configuration::Settings {
            server: loopback(payment_address),
            database: sqlite(data, "payment"),
            auth: auth.clone(),
            log: options.log.clone(),
            ..Default::default()
        };
        payment_settings.warehouse.hostport = vec![warehouse_address.to_string()];
        // The payment service gets its SERVICE token from the gateway, like in Kubernetes.
        payment_settings.service_credentials.token_url =
            format!("http://{gateway_address}/oauth/token");
        let payment = payment::Application::build_with_listener(
            payment_settings,
            payment_listener,
            stop.clone(),
        )
        .await?;

        let mut gateway_settings = GatewayConfig {
            server: gateway::configuration::HttpServerConfig {
                listen: gateway_address.to_string(),
                ..Default::default()
            },
            log: options.log.clone(),
            account: BackendConfig::at(&account_address.to_string()),
            warehouse: BackendConfig::at(&warehouse_address.to_string()),
            payment: BackendConfig::at(&payment_address.to_string()),
            ..Default::default()
        };
        gateway_settings.oauth.private_key_path = private_key;
        gateway_settings.static_files.dir = options.static_dir.clone();
        let (gateway_config, gateway_config_rx) = watch::channel(gateway_settings);
        let gateway =
            gateway::Application::build_with_listener(gateway_config_rx, gateway_listener, stop)
                .await?;

        Ok(Self {
            account,
            warehouse,
            payment,
            gateway,
            _gateway_config: gateway_config,
        })
    }

    /// Where the REST API and the front-end are served.
    pub fn gateway_address(&self) -> SocketAddr {
        self.gateway.address()
    }

    /// Every listener, with what it speaks, for the banner.
    pub fn addresses(&self) -> [(&'static str, &'static str, SocketAddr); 4] {
        [
            (
                "gateway",
                "HTTP: REST API, OAuth2 tokens, web front-end",
                self.gateway.address(),
            ),
            (
                "account",
                "Thrift (TTHeader, framed or buffered)",
                self.account.address(),
            ),
            ("warehouse", "gRPC", self.warehouse.address()),
            ("payment", "gRPC", self.payment.address()),
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

fn loopback(address: SocketAddr) -> ServerConfig {
    ServerConfig {
        drain_seconds: 5,
        ..ServerConfig::with_listen(&address.to_string())
    }
}

fn sqlite(data_dir: &Path, program: &str) -> DatabaseConfig {
    DatabaseConfig::sqlite_file(&data_dir.join(format!("{program}.db")))
}
