//! The whole bookstore as child processes on loopback: account (Thrift), warehouse and payment
//! (gRPC), and the gateway, each from its real binary and a real config directory, on SQLite
//! files in a temp dir or on throw-away PostgreSQL databases. Instances of a backend share its
//! database, so a test can add a replacement, re-point the others at it through their config
//! files and stop the old one, as a rolling update does.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use gateway::{
    configuration::{GatewayConfig, RateLimitConfig},
    testing::{Rest, cheap_client_hash, cheap_password_hashing, static_site},
};
use platform::{
    configuration::{AuthConfig, LogConfig, MetricsConfig, ServerConfig},
    database::DatabaseConfig,
    testing::{TestKeys, TestPostgres},
};
use serde::Serialize;

use crate::{
    conservation::{self, Options, Report, Sources},
    programs::{ConfigDir, Kind, Program, free_port},
    traffic::Shopper,
};

/// What [`Stack::open_shop`] set up.
pub struct Shop {
    pub admin: String,
    pub shoppers: Vec<Shopper>,
    pub products: Vec<i64>,
}

/// The client secret the payment service authenticates with (its hash is in the gateway's
/// configuration).
const PAYMENT_CLIENT_SECRET: &str = "payment_service_test_secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Sqlite,
    Postgres,
}

/// What a test wants from its bookstore.
#[derive(Clone)]
pub struct StackOptions {
    pub storage: Storage,
    /// Instances of each backend (the gateway balances over all of them).
    pub instances: usize,
    pub payment_window_ms: i64,
    /// How long an unconfirmed reservation waits before its guard releases it.
    pub reservation_guard_ms: i64,
    /// Deadline of the payment service's warehouse calls.
    pub warehouse_rpc_timeout_ms: u64,
    /// Serve a static directory (`gateway::testing::static_site`: `index.html` and its assets,
    /// with `secret.txt` beside it, outside).
    pub static_files: bool,
    pub adjust_gateway: fn(&mut GatewayConfig),
    pub adjust_payment: fn(&mut payment::configuration::Settings),
    /// Every program's `[log] otlp_endpoint` (empty: no traces exported).
    pub otlp_endpoint: String,
    /// Give every program a metrics listener (`[metrics] listen`) on a free port.
    pub metrics: bool,
    /// The gateway's `[rate_limits]`.
    pub rate_limits: fn() -> RateLimitConfig,
    /// Lay the keys out as a rotation does (SECURITY.md): the services also trust
    /// [`PREVIOUS_PUBLIC_KEY`], the gateway also [`OTHER_PUBLIC_KEY`], both copies of the
    /// current public key to begin with, all in [`Stack::key_dir`].
    pub key_rotation_files: bool,
}

/// The services' second trusted key file when [`StackOptions::key_rotation_files`] is set.
pub const PREVIOUS_PUBLIC_KEY: &str = "token-signing.previous.pub.pem";
/// The gateway's second trusted key file when [`StackOptions::key_rotation_files`] is set.
pub const OTHER_PUBLIC_KEY: &str = "token-signing.other.pub.pem";

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            storage: Storage::Sqlite,
            instances: 1,
            payment_window_ms: 60_000,
            reservation_guard_ms: 2_500,
            warehouse_rpc_timeout_ms: 1_000,
            static_files: false,
            adjust_gateway: |_| {},
            adjust_payment: |_| {},
            otlp_endpoint: String::new(),
            metrics: false,
            rate_limits: RateLimitConfig::generous,
            key_rotation_files: false,
        }
    }
}

impl StackOptions {
    /// For tests about correctness or liveness under a burst, not latency: every hop of a debug
    /// build gets room (a 30 s request budget, 20 s per backend call, 5 s for the payment
    /// service's warehouse calls).
    pub fn with_room(storage: Storage) -> Self {
        Self {
            storage,
            warehouse_rpc_timeout_ms: 5_000,
            reservation_guard_ms: 15_000,
            adjust_gateway: |config| {
                config.request.budget_ms = 30_000;
                for backend in [
                    &mut config.account,
                    &mut config.warehouse,
                    &mut config.payment,
                ] {
                    backend.client.timeout_ms = 20_000;
                }
            },
            ..Self::default()
        }
    }
}

/// A program with the settings its config directory holds.
pub struct Instance<S> {
    pub program: Program,
    pub settings: S,
}

impl<S> Instance<S> {
    pub fn address(&self) -> SocketAddr {
        self.program.address()
    }
}

impl<S: Serialize> Instance<S> {
    /// Writes the settings as a new version of the config directory.
    pub fn publish(&self) {
        let text = toml::to_string(&self.settings).expect("settings serialise to TOML");
        self.program
            .config
            .publish(&text)
            .expect("write the config directory");
    }
}

/// Where each service keeps its data.
#[derive(Debug, Clone)]
pub struct Databases {
    pub account: DatabaseConfig,
    pub warehouse: DatabaseConfig,
    pub payment: DatabaseConfig,
}

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub keys: TestKeys,
    pub options: StackOptions,
    pub databases: Databases,
    pub accounts: Vec<Instance<account::configuration::Settings>>,
    pub warehouses: Vec<Instance<warehouse::configuration::Settings>>,
    pub payments: Vec<Instance<payment::configuration::Settings>>,
    pub gateway: Instance<GatewayConfig>,
    pub rest: Rest,
    /// The static directory, when served.
    pub static_dir: Option<PathBuf>,
    /// Instances made so far, for unique names.
    spawned: usize,
    _postgres: Vec<TestPostgres>,
}

impl Stack {
    /// Starts `options.instances` of each backend and one gateway, and waits until the gateway
    /// reports every backend ready.
    pub async fn start(options: StackOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = TestKeys::new();
        if options.key_rotation_files {
            let dir = keys.public_key_path().parent().map(Path::to_path_buf);
            for slot in [PREVIOUS_PUBLIC_KEY, OTHER_PUBLIC_KEY] {
                let copy = dir.as_deref().unwrap_or(Path::new(".")).join(slot);
                std::fs::copy(keys.public_key_path(), copy).expect("copy the public key");
            }
        }
        let (databases, postgres) = match options.storage {
            Storage::Sqlite => {
                let path = |name: &str| DatabaseConfig::sqlite_file(&dir.path().join(name));
                (
                    Databases {
                        account: path("account.db"),
                        warehouse: path("warehouse.db"),
                        payment: path("payment.db"),
                    },
                    Vec::new(),
                )
            }
            Storage::Postgres => {
                let (a, w, p) = (
                    TestPostgres::create().await,
                    TestPostgres::create().await,
                    TestPostgres::create().await,
                );
                let url = |db: &TestPostgres| DatabaseConfig {
                    url: db.url.clone(),
                    ..DatabaseConfig::default()
                };
                (
                    Databases {
                        account: url(&a),
                        warehouse: url(&w),
                        payment: url(&p),
                    },
                    vec![a, w, p],
                )
            }
        };
        let static_dir = options.static_files.then(|| static_site(dir.path()));
        // The payment service must know the token endpoint before the gateway starts.
        let gateway_address = free_port();
        let gateway_settings = GatewayConfig::default();
        let gateway = Instance {
            program: program(&dir, "gateway", Kind::Gateway),
            settings: gateway_settings,
        };
        let mut stack = Self {
            rest: Rest::new(gateway_address),
            dir,
            keys,
            options,
            databases,
            accounts: Vec::new(),
            warehouses: Vec::new(),
            payments: Vec::new(),
            gateway,
            static_dir,
            spawned: 0,
            _postgres: postgres,
        };
        for _ in 0..stack.options.instances {
            stack.spawn(Kind::Account).await;
            stack.spawn(Kind::Warehouse).await;
        }
        for _ in 0..stack.options.instances {
            stack.spawn(Kind::Payment).await;
        }
        stack.gateway.settings = stack.gateway_settings(gateway_address);
        stack.gateway.publish();
        let address = stack.gateway.program.start().await;
        stack.gateway.settings.server.listen = address.to_string();
        stack.gateway.publish();
        stack.wait_until_ready().await;
        stack
    }

    /// The gateway's `/readyz` says every backend answers (ready, and not degraded).
    pub async fn wait_until_ready(&self) {
        let started = std::time::Instant::now();
        loop {
            if let Ok(reply) = self.rest.try_get("/readyz", None).await
                && reply.status == 200
                && reply.json()["degraded"] == false
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the gateway did not become ready:\n{}",
                self.gateway.program.log.tail(30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn auth(&self) -> AuthConfig {
        let mut auth = self.keys.auth_config();
        if self.options.key_rotation_files {
            auth.previous_public_key_paths = vec![self.key_dir().join(PREVIOUS_PUBLIC_KEY)];
        }
        auth
    }

    /// The directory of the token keys' files (a Secret's mount, in Kubernetes).
    pub fn key_dir(&self) -> PathBuf {
        let public = self.keys.public_key_path();
        public
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    fn server(&self) -> ServerConfig {
        ServerConfig {
            drain_seconds: 3,
            // Short, so the tests can watch a silent client being dropped.
            handshake_timeout_ms: 2_000,
            ..ServerConfig::with_listen("127.0.0.1:0")
        }
    }

    fn log(&self) -> LogConfig {
        LogConfig {
            level: "info".into(),
            otlp_endpoint: self.options.otlp_endpoint.clone(),
            ..LogConfig::default()
        }
    }

    /// A metrics listener on a port of its own, when the options ask for them.
    fn metrics(&self) -> MetricsConfig {
        MetricsConfig {
            listen: if self.options.metrics {
                free_port().to_string()
            } else {
                String::new()
            },
        }
    }

    /// Indexes of the running instances of a backend.
    pub fn running(&mut self, kind: Kind) -> Vec<usize> {
        fn running<S>(instances: &mut [Instance<S>]) -> Vec<usize> {
            (0..instances.len())
                .filter(|&i| instances[i].program.is_running())
                .collect()
        }
        match kind {
            Kind::Account => running(&mut self.accounts),
            Kind::Warehouse => running(&mut self.warehouses),
            Kind::Payment => running(&mut self.payments),
            Kind::Gateway => vec![0],
        }
    }

    /// `host:port` of the given instances of a backend.
    pub fn address_list(&mut self, kind: Kind, indexes: &[usize]) -> Vec<String> {
        indexes
            .iter()
            .map(|&i| self.program(kind, i).address().to_string())
            .collect()
    }

    /// Addresses of the running instances of a backend.
    pub fn addresses(&mut self, kind: Kind) -> Vec<String> {
        let running = self.running(kind);
        self.address_list(kind, &running)
    }

    /// Starts one more instance of a backend on its shared database; returns its index.
    pub async fn spawn(&mut self, kind: Kind) -> usize {
        self.spawned += 1;
        let name = format!("{}-{}", kind.binary_name(), self.spawned);
        let program = program(&self.dir, &name, kind);
        match kind {
            Kind::Account => {
                let settings = account::configuration::Settings {
                    server: self.server(),
                    database: self.databases.account.clone(),
                    auth: self.auth(),
                    log: self.log(),
                    metrics: self.metrics(),
                    password_hashing: cheap_password_hashing(),
                    ..Default::default()
                };
                self.accounts.push(start(program, settings).await);
                self.accounts.len() - 1
            }
            Kind::Warehouse => {
                let settings = warehouse::configuration::Settings {
                    server: self.server(),
                    database: self.databases.warehouse.clone(),
                    auth: self.auth(),
                    log: self.log(),
                    metrics: self.metrics(),
                    seed: warehouse::configuration::SeedConfig { demo_data: false },
                };
                self.warehouses.push(start(program, settings).await);
                self.warehouses.len() - 1
            }
            Kind::Payment => {
                let mut settings = payment::configuration::Settings {
                    server: self.server(),
                    database: self.databases.payment.clone(),
                    auth: self.auth(),
                    log: self.log(),
                    metrics: self.metrics(),
                    ..Default::default()
                };
                let rules = &mut settings.payment;
                rules.payment_window_ms = self.options.payment_window_ms;
                rules.reservation_guard_ms = self.options.reservation_guard_ms;
                rules.expiry_sweep_interval_ms = 100;
                settings.warehouse.hostport = self.addresses(Kind::Warehouse);
                settings.warehouse.rpc_timeout_ms = self.options.warehouse_rpc_timeout_ms;
                settings.warehouse.dns_refresh_ms = 1_000;
                settings.service_credentials.token_url = format!("{}/oauth/token", self.rest.base);
                settings.service_credentials.client_secret =
                    payment::configuration::Secret(PAYMENT_CLIENT_SECRET.into());
                settings.outbox.poll_interval_ms = 200;
                settings.outbox.retry_initial_ms = 100;
                settings.outbox.retry_max_ms = 1_000;
                (self.options.adjust_payment)(&mut settings);
                self.payments.push(start(program, settings).await);
                self.payments.len() - 1
            }
            Kind::Gateway => panic!("a stack has one gateway"),
        }
    }

    fn gateway_settings(&mut self, listen: SocketAddr) -> GatewayConfig {
        let mut config = GatewayConfig::default();
        config.server.listen = listen.to_string();
        config.server.drain_seconds = 3;
        // Short, so the tests can watch a silent client being dropped.
        config.server.handshake_timeout_ms = 2_000;
        config.log = self.log();
        config.metrics = self.metrics();
        // The tests register and log in many users from one address (reliability/tests/
        // rate_limits.rs sets its own limits).
        config.rate_limits = (self.options.rate_limits)();
        config.oauth.private_key_path = self.keys.private_key_path();
        if self.options.key_rotation_files {
            config.oauth.trusted_public_key_paths = vec![self.key_dir().join(OTHER_PUBLIC_KEY)];
        }
        config.account.client.hostport = self.addresses(Kind::Account);
        config.warehouse.client.hostport = self.addresses(Kind::Warehouse);
        config.payment.client.hostport = self.addresses(Kind::Payment);
        config.discovery.health_check_seconds = 1;
        for client in &mut config.oauth.clients {
            client.secret_hash = cheap_client_hash(&client.id, PAYMENT_CLIENT_SECRET);
        }
        config.static_files.dir = self.static_dir.clone();
        (self.options.adjust_gateway)(&mut config);
        config
    }

    /// Points the gateway's backends at the given instances with one edit of its config file
    /// (a symlink swap, as a ConfigMap update does), and waits until its discovery uses exactly
    /// those addresses.
    pub async fn point_gateway(&mut self, targets: &[(Kind, Vec<usize>)]) {
        let mark = self.gateway.program.log.mark();
        let mut expected = Vec::new();
        for (kind, indexes) in targets {
            let addresses = self.address_list(*kind, indexes);
            let client = match kind {
                Kind::Account => &mut self.gateway.settings.account.client,
                Kind::Warehouse => &mut self.gateway.settings.warehouse.client,
                Kind::Payment => &mut self.gateway.settings.payment.client,
                Kind::Gateway => panic!("the gateway is not its own backend"),
            };
            if client.hostport != addresses {
                client.hostport = addresses.clone();
                expected.push(addresses);
            }
        }
        self.gateway.publish();
        for addresses in expected {
            wait_for_addresses(&self.gateway.program, mark, &addresses).await;
        }
    }

    /// Points every running payment instance at the given warehouses.
    pub async fn point_payments(&mut self, warehouses: &[usize]) {
        let addresses = self.address_list(Kind::Warehouse, warehouses);
        for instance in &mut self.payments {
            if !instance.program.is_running() || instance.settings.warehouse.hostport == addresses {
                continue;
            }
            let mark = instance.program.log.mark();
            instance.settings.warehouse.hostport = addresses.clone();
            instance.publish();
            wait_for_addresses(&instance.program, mark, &addresses).await;
        }
    }

    /// SIGTERM to an instance; it must drain and exit cleanly within its drain deadline.
    pub async fn terminate(&mut self, kind: Kind, index: usize) -> Duration {
        let program = self.program(kind, index);
        let name = program.name.clone();
        let (status, took) = program.terminate(Duration::from_secs(10)).await;
        assert!(status.success(), "{name} exited with {status:?}");
        took
    }

    /// The program of instance `index` of `kind`.
    pub fn program(&mut self, kind: Kind, index: usize) -> &mut Program {
        match kind {
            Kind::Account => &mut self.accounts[index].program,
            Kind::Warehouse => &mut self.warehouses[index].program,
            Kind::Payment => &mut self.payments[index].program,
            Kind::Gateway => &mut self.gateway.program,
        }
    }

    /// Restarts a stopped instance on the address it had.
    pub async fn restart(&mut self, kind: Kind, index: usize) {
        let program = self.program(kind, index);
        let address = program.address();
        // The config already names the port it first got; the programs bind with SO_REUSEADDR.
        let started = program.start().await;
        assert_eq!(started, address, "restarted on its old address");
    }

    /// Logs in the administrator, registers `shoppers` users and creates one product (priced
    /// 10.00) per entry of `stocks`, with that many units.
    pub async fn open_shop(&self, shoppers: usize, stocks: &[i64]) -> Shop {
        let admin = self.rest.admin_token().await;
        let mut products = Vec::new();
        for (index, &stock) in stocks.iter().enumerate() {
            let title = format!("Book {index}");
            products.push(
                self.rest
                    .new_product(&admin, &title, serde_json::json!(10), stock)
                    .await,
            );
        }
        let mut registered = Vec::new();
        for index in 0..shoppers {
            let username = format!("shopper{index}");
            let token = self.rest.new_user(&username).await;
            registered.push(Shopper { username, token });
        }
        Shop {
            admin,
            shoppers: registered,
            products,
        }
    }

    pub fn sources(&self) -> Sources {
        Sources {
            warehouse_db: self.databases.warehouse.url.clone(),
            payment_db: self.databases.payment.url.clone(),
        }
    }

    /// Runs the conservation audit until it is clean (at most `deadline`); panics with the
    /// report otherwise.
    pub async fn assert_conserved(&self, deadline: Duration) -> Report {
        let report = conservation::verify(&self.sources(), &Options::default(), deadline)
            .await
            .expect("the databases can be read");
        assert!(report.is_clean(), "the books do not balance:\n{report}");
        report
    }

    /// Waits (at most `deadline`) until the books balance and every payment is final; panics
    /// with the report otherwise.
    pub async fn assert_all_final(&self, deadline: Duration) -> Report {
        let options = Options {
            stuck_after: Duration::from_secs(5),
        };
        let report = conservation::verify_final(&self.sources(), &options, deadline)
            .await
            .expect("the databases can be read");
        assert!(
            report.is_final(),
            "not every payment reached a final state with balanced books:\n{report}"
        );
        report
    }

    /// Stops everything: SIGTERM to each program, in reverse order of dependency.
    pub async fn shut_down(mut self) {
        let limit = Duration::from_secs(15);
        if self.gateway.program.is_running() {
            self.gateway.program.terminate(limit).await;
        }
        for instance in self.payments.iter_mut() {
            if instance.program.is_running() {
                instance.program.terminate(limit).await;
            }
        }
        for instance in self.warehouses.iter_mut() {
            if instance.program.is_running() {
                instance.program.terminate(limit).await;
            }
        }
        for instance in self.accounts.iter_mut() {
            if instance.program.is_running() {
                instance.program.terminate(limit).await;
            }
        }
    }
}

fn program(dir: &tempfile::TempDir, name: &str, kind: Kind) -> Program {
    let config = ConfigDir::new(dir.path().join("config").join(name)).expect("config dir");
    Program::new(name, kind, config, dir.path())
}

/// Publishes the settings, starts the program, and pins its listen address for restarts.
async fn start<S: Serialize + HasListen>(program: Program, settings: S) -> Instance<S> {
    let mut instance = Instance { program, settings };
    instance.publish();
    let address = instance.program.start().await;
    instance.settings.set_listen(address);
    instance.publish();
    instance
}

/// Settings whose listen address can be pinned.
pub trait HasListen {
    fn set_listen(&mut self, address: SocketAddr);
}

impl HasListen for account::configuration::Settings {
    fn set_listen(&mut self, address: SocketAddr) {
        self.server.listen = address.to_string();
    }
}

impl HasListen for warehouse::configuration::Settings {
    fn set_listen(&mut self, address: SocketAddr) {
        self.server.listen = address.to_string();
    }
}

impl HasListen for payment::configuration::Settings {
    fn set_listen(&mut self, address: SocketAddr) {
        self.server.listen = address.to_string();
    }
}

/// Waits until `program` logs that its discovery now uses exactly `addresses`.
async fn wait_for_addresses(program: &Program, mark: usize, addresses: &[String]) {
    let started = std::time::Instant::now();
    // Each backend's discovery logs its own line; look for one naming exactly our set.
    let exactly_ours = |line: &String| {
        line.contains("backend addresses changed")
            && line.matches("127.0.0.1:").count() == addresses.len()
            && addresses.iter().all(|a| line.contains(a.as_str()))
    };
    while !program.log.lines_since(mark).iter().any(exactly_ours) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} did not switch to {addresses:?}:\n{}",
            program.name,
            program.log.tail(20)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The balancer hears of the change through a channel; give it a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
}
