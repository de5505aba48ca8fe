//! Shared support for the warehouse's integration tests: a real server on 127.0.0.1:0 over a
//! real database (SQLite in a temp dir, or a throw-away PostgreSQL database), a real volo-grpc
//! client, and tokens for every kind of caller.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::{path::Path, time::Duration};

use platform::{
    configuration::ServerConfig,
    database::DatabaseConfig,
    rpc_metadata::CallMetadata,
    serve::ServeError,
    shutdown::CancellationToken,
    testing::{TestIdentity, TestKeys, TestPostgres},
};
use rpc_idl::warehouse::{
    CreateProductRequest, GetProductRequest, GetStockRequest, ListProductsRequest, Product,
    ProductInput, SetStockAmountRequest, SpecificationInput, Stock, WarehouseServiceClient,
    WarehouseServiceClientBuilder,
};
use tokio::task::JoinHandle;
use volo_grpc::{Code, Status};
use warehouse::{
    Application,
    configuration::{SeedConfig, Settings},
};

/// Every call a test makes gives up after this long.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// A whole scenario, including start and stop, must finish within this.
pub const SCENARIO_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `scenario` once on SQLite and once on PostgreSQL:
/// `on_both_backends!(name);` makes tests `name::sqlite` and `name::postgres` that call
/// `async fn name(database: DatabaseConfig)`.
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().expect("temp dir");
                let database = crate::common::sqlite_config(dir.path());
                crate::common::within_deadline(super::$scenario(database)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let postgres = platform::testing::TestPostgres::create().await;
                let database = crate::common::postgres_config(&postgres);
                crate::common::within_deadline(super::$scenario(database)).await;
            }
        }
    )+};
}

pub fn sqlite_config(dir: &Path) -> DatabaseConfig {
    DatabaseConfig::sqlite_file(&dir.join("warehouse.db"))
}

pub fn postgres_config(postgres: &TestPostgres) -> DatabaseConfig {
    DatabaseConfig {
        url: postgres.url.clone(),
        ..DatabaseConfig::default()
    }
}

pub async fn within_deadline(scenario: impl Future<Output = ()>) {
    tokio::time::timeout(SCENARIO_DEADLINE, scenario)
        .await
        .expect("the scenario finished within its deadline");
}

/// A running warehouse and a client connected to it.
pub struct TestServer {
    pub client: WarehouseServiceClient,
    pub address: std::net::SocketAddr,
    keys: TestKeys,
    stop: CancellationToken,
    running: JoinHandle<Result<(), ServeError>>,
}

/// Starts a warehouse with an empty catalogue.
pub async fn start(database: DatabaseConfig) -> TestServer {
    start_seeded(database, false).await
}

/// Starts a warehouse, loading the demo catalogue if `seed` is set.
pub async fn start_seeded(database: DatabaseConfig, seed: bool) -> TestServer {
    let keys = TestKeys::new();
    let settings = Settings {
        server: ServerConfig::with_listen("127.0.0.1:0"),
        database,
        auth: keys.auth_config(),
        seed: SeedConfig { demo_data: seed },
        ..Settings::default()
    };
    let stop = CancellationToken::new();
    let application = Application::build(settings, stop.clone())
        .await
        .expect("the warehouse starts");
    let address = application.address();
    let client = WarehouseServiceClientBuilder::new("warehouse")
        .address(address)
        .rpc_timeout(Some(CALL_DEADLINE))
        .build();
    let running = tokio::spawn(application.run_until_stopped());
    TestServer {
        client,
        address,
        keys,
        stop,
        running,
    }
}

impl TestServer {
    pub fn anonymous(&self) -> CallMetadata {
        CallMetadata::default()
    }

    pub fn admin(&self) -> CallMetadata {
        self.acting_as(TestIdentity::Admin)
    }

    /// An ordinary logged-in customer.
    pub fn user(&self) -> CallMetadata {
        self.acting_as(TestIdentity::User {
            username: "reader",
            account_id: 42,
        })
    }

    /// The payment service.
    pub fn service(&self) -> CallMetadata {
        self.acting_as(TestIdentity::Service)
    }

    /// An administrator whose token expired a minute ago.
    pub fn expired_admin(&self) -> CallMetadata {
        CallMetadata {
            token: Some(self.keys.token_expiring_in(TestIdentity::Admin, -60)),
            ..CallMetadata::default()
        }
    }

    /// A well-formed administrator token signed by somebody else's key.
    pub fn forged_admin(&self) -> CallMetadata {
        CallMetadata {
            token: Some(TestKeys::new().token(TestIdentity::Admin)),
            ..CallMetadata::default()
        }
    }

    fn acting_as(&self, who: TestIdentity<'_>) -> CallMetadata {
        CallMetadata {
            token: Some(self.keys.token(who)),
            request_id: Some(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// Creates a product as the administrator and puts `stock` units on sale.
    pub async fn product_with_stock(&self, title: &str, price_cents: i64, stock: i64) -> Product {
        let product = self
            .client
            .create_product(self.admin().grpc_request(CreateProductRequest {
                product: Some(product_input(title, price_cents, &[("ISBN", "0000")])),
            }))
            .await
            .expect("create product")
            .into_inner();
        self.set_stock(product.id, stock).await;
        product
    }

    pub async fn set_stock(&self, product_id: i64, amount: i64) -> Stock {
        self.client
            .set_stock_amount(
                self.admin()
                    .grpc_request(SetStockAmountRequest { product_id, amount }),
            )
            .await
            .expect("set stock")
            .into_inner()
    }

    pub async fn stock(&self, product_id: i64) -> Stock {
        self.client
            .get_stock(self.admin().grpc_request(GetStockRequest { product_id }))
            .await
            .expect("get stock")
            .into_inner()
    }

    /// `GetProduct`, as a shopper.
    pub async fn product(&self, id: i64) -> Result<Product, Status> {
        self.client
            .get_product(self.anonymous().grpc_request(GetProductRequest { id }))
            .await
            .map(|r| r.into_inner())
    }

    /// `ListProducts`, as a shopper.
    pub async fn products(&self) -> Vec<Product> {
        self.client
            .list_products(self.anonymous().grpc_request(ListProductsRequest {}))
            .await
            .expect("list products")
            .into_inner()
            .products
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.running)
            .await
            .expect("the server stops within its drain deadline")
            .expect("server task")
            .expect("clean stop");
    }
}

pub fn product_input(title: &str, price_cents: i64, specs: &[(&str, &str)]) -> ProductInput {
    ProductInput {
        title: title.to_owned().into(),
        price_cents,
        rate: 8.5,
        description: format!("<p>{title}</p>").into(),
        cover: "/static/cover/test.jpg".into(),
        detail: "/static/desc/test.jpg".into(),
        specifications: specs
            .iter()
            .map(|(item, value)| SpecificationInput {
                item: (*item).to_owned().into(),
                value: (*value).to_owned().into(),
            })
            .collect(),
    }
}

/// The status of a call that must fail, with a readable panic when it succeeded.
pub fn refused<T: std::fmt::Debug>(result: Result<T, Status>, what: &str) -> Status {
    match result {
        Ok(answer) => panic!("{what}: expected an error, got {answer:?}"),
        Err(status) => status,
    }
}

/// Asserts that a call failed with `code`, and returns the status for further checks.
pub fn assert_code<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    what: &str,
) -> Status {
    let status = refused(result, what);
    assert_eq!(status.code(), code, "{what}: {}", status.message());
    status
}
