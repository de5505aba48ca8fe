//! The whole bookstore in one test process: account (Thrift), warehouse and payment (gRPC) and
//! the gateway, each a real server on its own loopback port, and the REST client of
//! `gateway::testing`. Tests talk to the gateway over HTTP only.

#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use gateway::configuration::GatewayConfig;
use platform::{
    configuration::{AuthConfig, ServerConfig},
    database::DatabaseConfig,
    shutdown::CancellationToken,
    testing::TestKeys,
};
use serde_json::json;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

// The REST client the reliability suite uses too (the crate's `testing` feature, which the
// gateway's own dev-dependency on itself turns on for these tests).
pub use gateway::testing::*;

/// One running program: its address, its stop switch and its task.
pub struct Running {
    pub address: SocketAddr,
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Stops the program and waits (bounded) for it; the value must not be used afterwards.
    pub async fn stop_now(&mut self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("stops within 20 s")
            .expect("task");
    }

    /// Stops the program and waits (bounded) until it has released its port.
    pub async fn shut_down(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("stops within 20 s")
            .expect("task");
    }
}

pub async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Binds `address` again after its previous owner stopped (retrying briefly while the kernel
/// lets go of it).
pub async fn rebind(address: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(address).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {address} again");
}

/// Where each service keeps its data.
#[derive(Clone)]
pub struct Databases {
    pub account: DatabaseConfig,
    pub warehouse: DatabaseConfig,
    pub payment: DatabaseConfig,
}

impl Databases {
    pub fn sqlite(dir: &std::path::Path) -> Self {
        Self {
            account: DatabaseConfig::sqlite_file(&dir.join("account.db")),
            warehouse: DatabaseConfig::sqlite_file(&dir.join("warehouse.db")),
            payment: DatabaseConfig::sqlite_file(&dir.join("payment.db")),
        }
    }
}

pub struct Stack {
    pub keys: TestKeys,
    pub dir: tempfile::TempDir,
    pub databases: Databases,
    pub account: Running,
    pub warehouse: Running,
    pub payment: Running,
    pub gateway: Running,
    /// The gateway's live configuration (what a file edit would publish).
    pub config: watch::Sender<GatewayConfig>,
    pub http: Rest,
}

pub async fn start_account(
    keys: &TestKeys,
    database: DatabaseConfig,
    listener: TcpListener,
) -> Running {
    start_account_trusting(keys.auth_config(), database, listener).await
}

/// The account service with its own `[auth]`, e.g. one trusting several keys.
pub async fn start_account_trusting(
    auth: AuthConfig,
    database: DatabaseConfig,
    listener: TcpListener,
) -> Running {
    let settings = account::configuration::Settings {
        server: ServerConfig::with_listen("127.0.0.1:0"),
        database,
        auth,
        password_hashing: cheap_password_hashing(),
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let app = account::Application::build_with_listener(settings, listener, stop.clone())
        .await
        .expect("account builds");
    let address = app.address();
    let task = tokio::spawn(async move {
        app.run_until_stopped()
            .await
            .expect("account stops cleanly");
    });
    Running {
        address,
        stop,
        task,
    }
}

pub async fn start_warehouse(
    keys: &TestKeys,
    database: DatabaseConfig,
    listener: TcpListener,
) -> Running {
    let settings = warehouse::configuration::Settings {
        server: ServerConfig::with_listen("127.0.0.1:0"),
        database,
        auth: keys.auth_config(),
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let app = warehouse::Application::build_with_listener(settings, listener, stop.clone())
        .await
        .expect("warehouse builds");
    let address = app.address();
    let task = tokio::spawn(async move {
        app.run_until_stopped()
            .await
            .expect("warehouse stops cleanly");
    });
    Running {
        address,
        stop,
        task,
    }
}

pub async fn start_payment(
    keys: &TestKeys,
    database: DatabaseConfig,
    listener: TcpListener,
    warehouse: SocketAddr,
    gateway: SocketAddr,
) -> Running {
    let mut settings = payment::configuration::Settings {
        server: ServerConfig::with_listen("127.0.0.1:0"),
        database,
        auth: keys.auth_config(),
        ..Default::default()
    };
    settings.warehouse.hostport = vec![warehouse.to_string()];
    settings.service_credentials.token_url = format!("http://{gateway}/oauth/token");
    let stop = CancellationToken::new();
    let app = payment::Application::build_with_listener(settings, listener, stop.clone())
        .await
        .expect("payment builds");
    let address = app.address();
    let task = tokio::spawn(async move {
        app.run_until_stopped()
            .await
            .expect("payment stops cleanly");
    });
    Running {
        address,
        stop,
        task,
    }
}

/// The gateway's configuration for a stack; tests adjust it before starting.
pub fn gateway_config(
    keys: &TestKeys,
    account: SocketAddr,
    warehouse: SocketAddr,
    payment: SocketAddr,
) -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.drain_seconds = 2;
    config.oauth.private_key_path = keys.private_key_path();
    config.account.client.hostport = vec![account.to_string()];
    config.warehouse.client.hostport = vec![warehouse.to_string()];
    config.payment.client.hostport = vec![payment.to_string()];
    config.discovery.health_check_seconds = 1;
    // Many registrations and logins from one address (tests of the limits set their own).
    config.rate_limits = gateway::configuration::RateLimitConfig::generous();
    // The same clients and secrets as the development defaults, with cheap hashes.
    for client in &mut config.oauth.clients {
        client.secret_hash = cheap_client_hash(&client.id, "payment_service_dev_secret");
    }
    config
}

pub async fn start_gateway(
    config: watch::Receiver<GatewayConfig>,
    listener: TcpListener,
) -> Running {
    let stop = CancellationToken::new();
    let app = gateway::Application::build_with_listener(config, listener, stop.clone())
        .await
        .expect("gateway builds");
    let address = app.address();
    let task = tokio::spawn(app.run_until_stopped());
    Running {
        address,
        stop,
        task,
    }
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts all four programs on SQLite; `adjust` may change the gateway's configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut GatewayConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let databases = Databases::sqlite(dir.path());
        Self::start_on(dir, databases, adjust).await
    }

    /// Starts all four programs on the given databases.
    pub async fn start_on(
        dir: tempfile::TempDir,
        databases: Databases,
        adjust: impl FnOnce(&mut GatewayConfig),
    ) -> Self {
        let keys = TestKeys::new();
        // The payment service needs the gateway's token endpoint, and the gateway needs the
        // payment service: bind every port first.
        let (account_l, warehouse_l, payment_l, gateway_l) = (
            loopback().await,
            loopback().await,
            loopback().await,
            loopback().await,
        );
        let payment_address = payment_l.local_addr().expect("address");
        let gateway_address = gateway_l.local_addr().expect("address");
        let account = start_account(&keys, databases.account.clone(), account_l).await;
        let warehouse = start_warehouse(&keys, databases.warehouse.clone(), warehouse_l).await;
        let payment = start_payment(
            &keys,
            databases.payment.clone(),
            payment_l,
            warehouse.address,
            gateway_address,
        )
        .await;
        let mut config = gateway_config(&keys, account.address, warehouse.address, payment_address);
        adjust(&mut config);
        let (sender, receiver) = watch::channel(config);
        let gateway = start_gateway(receiver, gateway_l).await;
        let http = Rest::new(gateway.address);
        Self {
            keys,
            dir,
            databases,
            account,
            warehouse,
            payment,
            gateway,
            config: sender,
            http,
        }
    }

    pub async fn shut_down(self) {
        self.gateway.shut_down().await;
        self.payment.shut_down().await;
        self.warehouse.shut_down().await;
        self.account.shut_down().await;
    }
}

/// Registers `username` with a telephone number and an e-mail address, as the front-end's
/// form does, and logs in; returns the token.
pub async fn new_customer(http: &Rest, username: &str, telephone: &str) -> String {
    let contact = json!({"telephone": telephone, "email": format!("{username}@example.com")});
    http.new_user_with(username, contact).await
}
