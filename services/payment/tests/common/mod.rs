//! Shared support for the payment service's integration tests: a real warehouse server, a real
//! payment server, and a small OAuth2 token endpoint, all on 127.0.0.1 port 0, over real
//! databases (SQLite files in a temp dir, or throw-away PostgreSQL databases), called with real
//! volo-grpc clients. [`World::assert_conserved`] checks, at the end of every scenario, that no
//! stock and no money was created or lost.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use payment::configuration::{
    OutboxConfig, PaymentRules, Secret, ServiceCredentials, Settings, WarehouseClientConfig,
};
use platform::{
    configuration::ServerConfig,
    database::DatabaseConfig,
    rpc_metadata::CallMetadata,
    serve::ServeError,
    shutdown::CancellationToken,
    testing::{TestIdentity, TestKeys, TestPostgres},
};
use rpc_idl::{
    payment::{
        ChangePaymentRequest, GetPaymentRequest, GetWalletRequest, PayState, Payment,
        PaymentServiceClient, PaymentServiceClientBuilder, Purchase, SettleRequest, SettlementItem,
        Wallet,
    },
    warehouse::{
        CreateProductRequest, GetStockRequest, ProductInput, SetStockAmountRequest, Stock,
        WarehouseServiceClient, WarehouseServiceClientBuilder,
    },
};
use sqlx::Row;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use volo_grpc::Status;

/// Every call a test makes gives up after this long.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// A whole scenario, including start and stop, must finish within this.
pub const SCENARIO_DEADLINE: Duration = Duration::from_secs(90);
/// Eventual effects (an outbox delivery, a sweep) must show within this.
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(15);
/// What every wallet starts with unless a test says otherwise.
pub const OPENING_BALANCE: i64 = 1_000_000;
pub const SHIPPING_FEE: i64 = 1_200;
pub const CLIENT_ID: &str = "payment_service";
pub const CLIENT_SECRET: &str = "test-secret";

/// Runs a scenario `async fn name(backend: Backend)` once on SQLite and once on PostgreSQL, as
/// tests `name::sqlite` and `name::postgres`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::common::within_deadline(super::$scenario(crate::common::Backend::Sqlite))
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::common::within_deadline(super::$scenario(crate::common::Backend::Postgres))
                    .await;
            }
        }
    )+};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub async fn within_deadline(scenario: impl Future<Output = ()>) {
    tokio::time::timeout(SCENARIO_DEADLINE, scenario)
        .await
        .expect("the scenario finished within its deadline");
}

/// Polls `check` every 25 ms until it returns `Some`, or panics with `what` after
/// [`SETTLE_DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < SETTLE_DEADLINE,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---- the token endpoint ----------------------------------------------------------------------

/// How the test token endpoint answers.
#[derive(Debug, Clone)]
pub struct TokenBehaviour {
    /// `expires_in` of issued tokens, in seconds.
    pub lifetime_secs: i64,
    /// Wait this long before answering.
    pub delay: Duration,
}

/// A tiny OAuth2 token endpoint (`POST /oauth/token`, client-credentials grant only) that signs
/// SERVICE tokens with the test keys, as the gateway does with the real ones.
pub struct TokenEndpoint {
    pub url: String,
    requests: Arc<AtomicUsize>,
    behaviour: Arc<Mutex<TokenBehaviour>>,
    stop: CancellationToken,
}

impl TokenEndpoint {
    pub async fn start(keys: Arc<TestKeys>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/oauth/token",
            listener.local_addr().expect("address")
        );
        let requests = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Mutex::new(TokenBehaviour {
            lifetime_secs: 3_600,
            delay: Duration::ZERO,
        }));
        let stop = CancellationToken::new();
        let (counter, answers, stopped) = (requests.clone(), behaviour.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = stopped.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let (keys, counter, answers) = (keys.clone(), counter.clone(), answers.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        token_answer(request, keys.clone(), counter.clone(), answers.clone())
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            requests,
            behaviour,
            stop,
        }
    }

    /// How many token requests arrived so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn set_behaviour(&self, behaviour: TokenBehaviour) {
        *self.behaviour.lock().expect("behaviour") = behaviour;
    }

    pub fn credentials(&self) -> ServiceCredentials {
        ServiceCredentials {
            token_url: self.url.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Secret(CLIENT_SECRET.into()),
            timeout_ms: 2_000,
            ..ServiceCredentials::default()
        }
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn token_answer(
    request: Request<Incoming>,
    keys: Arc<TestKeys>,
    counter: Arc<AtomicUsize>,
    behaviour: Arc<Mutex<TokenBehaviour>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    counter.fetch_add(1, Ordering::SeqCst);
    let behaviour = behaviour.lock().expect("behaviour").clone();
    tokio::time::sleep(behaviour.delay).await;
    let json = |status: StatusCode, body: serde_json::Value| {
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        Ok(response)
    };
    let form_ok = request.method() == hyper::Method::POST
        && request.uri().path() == "/oauth/token"
        && request
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .is_some_and(|v| v == "application/x-www-form-urlencoded");
    if !form_ok {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_request"}),
        );
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json(StatusCode::BAD_REQUEST, serde_json::json!({})),
    };
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "unsupported_grant_type"}),
        );
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid_client", "error_description": "bad client credentials"}),
        );
    }
    if field("scope") != Some("SERVICE") {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_scope"}),
        );
    }
    let token = keys.token_expiring_in(TestIdentity::Service, behaviour.lifetime_secs);
    json(
        StatusCode::OK,
        serde_json::json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": behaviour.lifetime_secs,
            "scope": "SERVICE",
            "jti": uuid::Uuid::new_v4().to_string(),
        }),
    )
}

// ---- servers ---------------------------------------------------------------------------------

/// A running warehouse.
pub struct TestWarehouse {
    pub address: SocketAddr,
    pub client: WarehouseServiceClient,
    stop: CancellationToken,
    running: JoinHandle<Result<(), ServeError>>,
}

impl TestWarehouse {
    pub async fn stop(self) {
        self.stop.cancel();
        stop_task(self.running, "warehouse").await;
    }
}

/// A running payment service, whose configuration the test can change live.
pub struct TestPayment {
    pub address: SocketAddr,
    pub client: PaymentServiceClient,
    config: watch::Sender<Settings>,
    stop: CancellationToken,
    running: JoinHandle<Result<(), ServeError>>,
}

async fn stop_task(running: JoinHandle<Result<(), ServeError>>, name: &str) {
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap_or_else(|_| panic!("the {name} stops within its drain deadline"))
        .expect("server task")
        .expect("clean stop");
}

/// A user of the bookstore, as the payment service sees them.
#[derive(Clone)]
pub struct User {
    pub account_id: i64,
    pub meta: CallMetadata,
}

impl TestPayment {
    /// Changes the configuration live, as an edited config file would.
    pub fn reconfigure(&self, change: impl FnOnce(&mut Settings)) {
        self.config.send_modify(change);
    }

    /// Points the warehouse client at `address` (a live `[warehouse] hostport` change).
    pub fn point_at_warehouse(&self, address: SocketAddr) {
        self.config.send_modify(|settings| {
            settings.warehouse.hostport = vec![address.to_string()];
        });
    }

    pub async fn settle_with_key(
        &self,
        user: &User,
        items: &[(i64, i64)],
        key: &str,
    ) -> Result<Payment, Status> {
        let request = SettleRequest {
            items: items
                .iter()
                .map(|&(product_id, amount)| SettlementItem { product_id, amount })
                .collect(),
            purchase: Some(purchase()),
            idempotency_key: key.to_owned().into(),
        };
        self.client
            .settle(user.meta.grpc_request(request))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn settle(&self, user: &User, items: &[(i64, i64)]) -> Result<Payment, Status> {
        self.settle_with_key(user, items, "").await
    }

    pub async fn pay_with_key(
        &self,
        user: &User,
        pay_id: &str,
        key: &str,
    ) -> Result<Payment, Status> {
        self.client
            .pay(user.meta.grpc_request(change(pay_id, key)))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn pay(&self, user: &User, pay_id: &str) -> Result<Payment, Status> {
        self.pay_with_key(user, pay_id, "").await
    }

    pub async fn cancel_with_key(
        &self,
        user: &User,
        pay_id: &str,
        key: &str,
    ) -> Result<Payment, Status> {
        self.client
            .cancel(user.meta.grpc_request(change(pay_id, key)))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn cancel(&self, user: &User, pay_id: &str) -> Result<Payment, Status> {
        self.cancel_with_key(user, pay_id, "").await
    }

    pub async fn get(&self, user: &User, pay_id: &str) -> Result<Payment, Status> {
        self.client
            .get_payment(user.meta.grpc_request(GetPaymentRequest {
                pay_id: pay_id.to_owned().into(),
            }))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn wallet(&self, user: &User) -> Wallet {
        self.client
            .get_wallet(user.meta.grpc_request(GetWalletRequest {}))
            .await
            .expect("get wallet")
            .into_inner()
    }

    /// Stops the server and its background tasks, as a shutdown would.
    pub async fn stop(self) {
        self.stop.cancel();
        stop_task(self.running, "payment service").await;
    }
}

pub fn purchase() -> Purchase {
    Purchase {
        name: "Zhou Zhiming".into(),
        telephone: "18888888888".into(),
        location: "Tang Shan, Guangzhou".into(),
        pay: "wechat".into(),
        delivery: "express".into(),
    }
}

fn change(pay_id: &str, key: &str) -> ChangePaymentRequest {
    ChangePaymentRequest {
        pay_id: pay_id.to_owned().into(),
        idempotency_key: key.to_owned().into(),
    }
}

// ---- the world -------------------------------------------------------------------------------

/// Everything one scenario runs against, and what it has put in (so it can check conservation).
pub struct World {
    pub keys: Arc<TestKeys>,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub tokens: TokenEndpoint,
    pub warehouse: Option<TestWarehouse>,
    payment_postgres: Option<TestPostgres>,
    warehouse_postgres: Option<TestPostgres>,
    /// Units put on sale per product.
    stock_put_in: BTreeMap<i64, i64>,
    /// Every payment created, with its owner.
    payments: BTreeMap<String, i64>,
    /// Every account whose wallet was touched.
    accounts: BTreeSet<i64>,
}

impl World {
    /// Starts the token endpoint and a warehouse with an empty catalogue.
    pub async fn new(backend: Backend) -> Self {
        let keys = Arc::new(TestKeys::new());
        let (payment_postgres, warehouse_postgres) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => (
                Some(TestPostgres::create().await),
                Some(TestPostgres::create().await),
            ),
        };
        let mut world = Self {
            tokens: TokenEndpoint::start(keys.clone()).await,
            keys,
            dir: tempfile::tempdir().expect("temp dir"),
            backend,
            warehouse: None,
            payment_postgres,
            warehouse_postgres,
            stock_put_in: BTreeMap::new(),
            payments: BTreeMap::new(),
            accounts: BTreeSet::new(),
        };
        world.start_warehouse().await;
        world
    }

    pub fn payment_database(&self) -> DatabaseConfig {
        match &self.payment_postgres {
            Some(postgres) => DatabaseConfig {
                url: postgres.url.clone(),
                ..DatabaseConfig::default()
            },
            None => DatabaseConfig::sqlite_file(&self.dir.path().join("payment.db")),
        }
    }

    fn warehouse_database(&self) -> DatabaseConfig {
        match &self.warehouse_postgres {
            Some(postgres) => DatabaseConfig {
                url: postgres.url.clone(),
                ..DatabaseConfig::default()
            },
            None => DatabaseConfig::sqlite_file(&self.dir.path().join("warehouse.db")),
        }
    }

    /// Starts a warehouse (again) on its database, on a new port.
    pub async fn start_warehouse(&mut self) -> SocketAddr {
        assert!(self.warehouse.is_none(), "a warehouse is running already");
        let settings = warehouse::configuration::Settings {
            server: ServerConfig {
                drain_seconds: 2,
                ..ServerConfig::with_listen("127.0.0.1:0")
            },
            database: self.warehouse_database(),
            auth: self.keys.auth_config(),
            seed: warehouse::configuration::SeedConfig { demo_data: false },
            ..Default::default()
        };
        let stop = CancellationToken::new();
        let application = warehouse::Application::build(settings, stop.clone())
            .await
            .expect("the warehouse starts");
        let address = application.address();
        let client = WarehouseServiceClientBuilder::new("warehouse")
            .address(address)
            .rpc_timeout(Some(CALL_DEADLINE))
            .build();
        let running = tokio::spawn(application.run_until_stopped());
        self.warehouse = Some(TestWarehouse {
            address,
            client,
            stop,
            running,
        });
        address
    }

    pub async fn stop_warehouse(&mut self) {
        self.warehouse
            .take()
            .expect("a running warehouse")
            .stop()
            .await;
    }

    fn warehouse(&self) -> &TestWarehouse {
        self.warehouse.as_ref().expect("a running warehouse")
    }

    pub fn warehouse_address(&self) -> SocketAddr {
        self.warehouse().address
    }

    /// Payment settings for tests: short intervals, a generous window unless changed.
    pub fn payment_settings(&self) -> Settings {
        Settings {
            server: ServerConfig {
                drain_seconds: 2,
                ..ServerConfig::with_listen("127.0.0.1:0")
            },
            database: self.payment_database(),
            auth: self.keys.auth_config(),
            payment: PaymentRules {
                shipping_fee_cents: SHIPPING_FEE,
                payment_window_ms: 60_000,
                opening_balance_cents: OPENING_BALANCE,
                expiry_sweep_interval_ms: 50,
                ..PaymentRules::default()
            },
            warehouse: WarehouseClientConfig {
                hostport: vec![
                    self.warehouse
                        .as_ref()
                        .map_or_else(|| "127.0.0.1:9".to_owned(), |w| w.address.to_string()),
                ],
                rpc_timeout_ms: 1_000,
                dns_refresh_ms: 200,
            },
            service_credentials: self.tokens.credentials(),
            outbox: OutboxConfig {
                poll_interval_ms: 100,
                retry_initial_ms: 50,
                retry_max_ms: 400,
            },
            ..Settings::default()
        }
    }

    /// Starts a payment service with `settings`.
    pub async fn start_payment(&self, settings: Settings) -> TestPayment {
        let (config, receiver) = watch::channel(settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let stop = CancellationToken::new();
        let application = payment::Application::build_live(receiver, listener, None, stop.clone())
            .await
            .expect("the payment service starts");
        let address = application.address();
        let client = PaymentServiceClientBuilder::new("payment")
            .address(address)
            .rpc_timeout(Some(CALL_DEADLINE))
            .build();
        let running = tokio::spawn(application.run_until_stopped());
        TestPayment {
            address,
            client,
            config,
            stop,
            running,
        }
    }

    pub fn user(&mut self, account_id: i64) -> User {
        self.accounts.insert(account_id);
        user(&self.keys, account_id)
    }

    fn admin(&self) -> CallMetadata {
        CallMetadata {
            token: Some(self.keys.token(TestIdentity::Admin)),
            request_id: None,
        }
    }

    /// Creates a product priced `price_cents` with `stock` units on sale.
    pub async fn product(&mut self, price_cents: i64, stock: i64) -> i64 {
        let input = ProductInput {
            title: format!("Book at {price_cents}").into(),
            price_cents,
            rate: 8.0,
            description: "<p>A book.</p>".into(),
            cover: "/static/cover/book.jpg".into(),
            detail: "/static/desc/book.jpg".into(),
            specifications: vec![],
        };
        let client = &self.warehouse().client;
        let product = client
            .create_product(self.admin().grpc_request(CreateProductRequest {
                product: Some(input),
            }))
            .await
            .expect("create product")
            .into_inner();
        client
            .set_stock_amount(self.admin().grpc_request(SetStockAmountRequest {
                product_id: product.id,
                amount: stock,
            }))
            .await
            .expect("set stock");
        self.stock_put_in.insert(product.id, stock);
        product.id
    }

    pub async fn stock(&self, product_id: i64) -> Stock {
        self.warehouse()
            .client
            .get_stock(self.admin().grpc_request(GetStockRequest { product_id }))
            .await
            .expect("get stock")
            .into_inner()
    }

    /// `(amount, frozen)` of a product.
    pub async fn stock_of(&self, product_id: i64) -> (i64, i64) {
        let stock = self.stock(product_id).await;
        (stock.amount, stock.frozen)
    }

    /// Waits until the product's stock is `(amount, frozen)`.
    pub async fn wait_for_stock(&self, product_id: i64, expected: (i64, i64)) {
        eventually(
            &format!("stock of product {product_id} to become {expected:?}"),
            || async move { (self.stock_of(product_id).await == expected).then_some(()) },
        )
        .await;
    }

    /// Remembers a payment so the conservation check accounts for it.
    pub fn record(&mut self, payment: &Payment) {
        self.payments
            .insert(payment.pay_id.to_string(), payment.account_id);
        self.accounts.insert(payment.account_id);
    }

    /// Records every payment in the database, including those whose callers gave up before the
    /// answer came.
    pub async fn record_every_stored_payment(&mut self) {
        let pool = self.payment_db().await;
        let rows = sqlx::query("SELECT pay_id, account_id FROM payments")
            .fetch_all(&pool)
            .await
            .expect("list payments");
        for row in rows {
            let pay_id: String = row.try_get("pay_id").expect("pay_id");
            let account_id: i64 = row.try_get("account_id").expect("account_id");
            self.payments.insert(pay_id, account_id);
            self.accounts.insert(account_id);
        }
        pool.close().await;
    }

    /// Settles and records; panics on failure.
    pub async fn settle(
        &mut self,
        service: &TestPayment,
        user: &User,
        items: &[(i64, i64)],
    ) -> Payment {
        let payment = service.settle(user, items).await.expect("settle");
        self.record(&payment);
        payment
    }

    /// Waits (bounded) until the warehouse agrees with every payment's state, then checks that
    /// stock and money are conserved: for each product, units put in = amount + frozen + sold,
    /// with frozen = units of WAITING payments and sold = units of PAYED ones; for each account,
    /// opening balance = balance + Σ PAYED totals.
    pub async fn assert_conserved(&self, service: &TestPayment, opening_balance: i64) {
        let mut last = String::new();
        let started = tokio::time::Instant::now();
        let payments = loop {
            let payments = self.all_payments(service).await;
            let (mut sold, mut waiting) = (BTreeMap::new(), BTreeMap::new());
            for payment in &payments {
                let bucket = match payment.pay_state {
                    PayState::PAYED => &mut sold,
                    PayState::WAITING => &mut waiting,
                    _ => continue,
                };
                for item in &payment.items {
                    *bucket.entry(item.product_id).or_insert(0) += item.amount;
                }
            }
            let mut balanced = true;
            last.clear();
            for (&product_id, &put_in) in &self.stock_put_in {
                let (amount, frozen) = self.stock_of(product_id).await;
                let sold = sold.get(&product_id).copied().unwrap_or(0);
                let waiting = waiting.get(&product_id).copied().unwrap_or(0);
                if amount < 0 || frozen != waiting || amount + frozen + sold != put_in {
                    balanced = false;
                }
                last.push_str(&format!(
                    "product {product_id}: put in {put_in}, amount {amount}, frozen {frozen} \
                     (waiting {waiting}), sold {sold}\n"
                ));
            }
            if balanced {
                break payments;
            }
            assert!(
                started.elapsed() < SETTLE_DEADLINE,
                "stock is not conserved:\n{last}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        for &account_id in &self.accounts {
            let paid: i64 = payments
                .iter()
                .filter(|p| p.account_id == account_id && p.pay_state == PayState::PAYED)
                .map(|p| p.total_price_cents)
                .sum();
            let balance = service
                .wallet(&user(&self.keys, account_id))
                .await
                .balance_cents;
            assert!(balance >= 0, "account {account_id}: negative balance");
            assert_eq!(
                balance + paid,
                opening_balance,
                "account {account_id}: balance {balance} + paid {paid} != opening balance"
            );
        }
        assert_eq!(
            self.outbox_count("status = 'DEAD'").await,
            0,
            "no warehouse call may be refused for good"
        );
    }

    async fn all_payments(&self, service: &TestPayment) -> Vec<Payment> {
        let mut all = Vec::new();
        for (pay_id, &owner) in &self.payments {
            let payment = service
                .get(&user(&self.keys, owner), pay_id)
                .await
                .expect("get payment");
            all.push(payment);
        }
        all
    }

    /// Opens the payment database directly, for checks the API does not expose.
    pub async fn payment_db(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.payment_database().url)
            .await
            .expect("open the payment database")
    }

    /// Rows of the warehouse outbox matching `condition` (an SQL expression).
    pub async fn outbox_count(&self, condition: &str) -> i64 {
        let pool = self.payment_db().await;
        let count: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM warehouse_outbox WHERE {condition}"
        ))
        .fetch_one(&pool)
        .await
        .expect("count outbox rows")
        .try_get("n")
        .expect("count");
        pool.close().await;
        count
    }
}

pub fn user(keys: &TestKeys, account_id: i64) -> User {
    let username = format!("user{account_id}");
    User {
        account_id,
        meta: CallMetadata {
            token: Some(keys.token(TestIdentity::User {
                username: &username,
                account_id,
            })),
            request_id: Some(uuid::Uuid::new_v4().to_string()),
        },
    }
}
