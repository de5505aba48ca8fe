//! The whole bookstore in one test process: account (Thrift), warehouse and payment (gRPC) and
//! the gateway, each a real server on its own loopback port, and a small HTTP client. Tests
//! talk to the gateway over HTTP only.

#![allow(dead_code)]

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use bytes::Bytes;
use gateway::configuration::GatewayConfig;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use platform::{
    configuration::ServerConfig, database::DatabaseConfig, shutdown::CancellationToken,
    testing::TestKeys,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// The administrator every account database is seeded with.
pub const ADMIN: &str = "icyfenix";
pub const ADMIN_PASSWORD: &str = account::configuration::DEVELOPMENT_ADMIN_PASSWORD;
pub const CLIENT_ID: &str = "bookstore_frontend";
pub const CLIENT_SECRET: &str = "bookstore_secret";

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
    pub http: Http,
}

pub async fn start_account(
    keys: &TestKeys,
    database: DatabaseConfig,
    listener: TcpListener,
) -> Running {
    let settings = account::configuration::Settings {
        server: ServerConfig::with_listen("127.0.0.1:0"),
        database,
        auth: keys.auth_config(),
        // Unoptimised test builds make the production argon2 cost take seconds; the hashing
        // itself is the account service's to test.
        password_hashing: account::configuration::HashingConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 4,
        },
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
    // The same clients as the development defaults, with cheap hashes: unoptimised test builds
    // make the production argon2 cost take a large part of a second per token request.
    for client in &mut config.oauth.clients {
        let secret = match client.id.as_str() {
            "bookstore_frontend" => CLIENT_SECRET,
            _ => "payment_service_dev_secret",
        };
        client.secret_hash = cheap_hash(secret);
    }
    config
}

pub fn cheap_hash(secret: &str) -> String {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version, password_hash::SaltString};
    let params = Params::new(1024, 1, 1, None).expect("params");
    let salt = SaltString::encode_b64(b"gateway-test-salt").expect("salt");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(secret.as_bytes(), &salt)
        .expect("hash")
        .to_string()
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
        let http = Http::new(gateway.address);
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

/// An HTTP/1.1 client for the gateway; every request has a 15 s deadline.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    pub base: String,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Panics with the body when the status is not the expected one.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        self
    }
}

impl Http {
    pub fn new(address: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{address}"),
        }
    }

    pub async fn raw(&self, request: Request<Full<Bytes>>) -> Reply {
        let response = tokio::time::timeout(Duration::from_secs(15), self.client.request(request))
            .await
            .expect("answer within 15 s")
            .expect("HTTP exchange");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A request with an optional bearer token, extra headers and raw body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .expect("request");
        self.raw(request).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, &[], None).await
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Reply {
        let bytes = Bytes::from(serde_json::to_vec(body).expect("json"));
        self.send(
            method,
            path,
            token,
            &[("content-type", "application/json")],
            Some(bytes),
        )
        .await
    }

    /// The password grant, as the front-end sends it (GET with a query string).
    pub async fn login(&self, username: &str, password: &str) -> Reply {
        let query = form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]);
        self.get(&format!("/oauth/token?{query}"), None).await
    }

    /// Logs in and returns the access token.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let reply = self.login(username, password).await.expect(200);
        reply.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN, ADMIN_PASSWORD).await
    }

    /// Registers `username` (password = username + "-pw") and logs in; returns the token.
    pub async fn new_user(&self, username: &str, telephone: &str) -> String {
        let body = json!({
            "username": username,
            "password": format!("{username}-pw"),
            "name": format!("User {username}"),
            "telephone": telephone,
            "email": format!("{username}@example.com"),
            "location": "Somewhere 1",
        });
        let reply = self
            .json(Method::POST, "/restful/accounts", None, &body)
            .await
            .expect(200);
        assert_eq!(reply.json()["code"], 0);
        self.token(username, &format!("{username}-pw")).await
    }

    /// Creates a product priced `price` with `stock` units; returns its id.
    pub async fn new_product(&self, admin: &str, title: &str, price: Value, stock: i64) -> i64 {
        let body = json!({
            "title": title, "price": price, "rate": 8.5,
            "description": "<p>A book</p>", "cover": "/static/cover/x.jpg", "detail": "/static/desc/x.jpg",
            "specifications": [{"item": "Author", "value": "Someone"}],
        });
        let product = self
            .json(Method::POST, "/restful/products", Some(admin), &body)
            .await
            .expect(200)
            .json();
        let id = product["id"].as_i64().expect("id");
        self.send(
            Method::PATCH,
            &format!("/restful/products/stockpile/{id}?amount={stock}"),
            Some(admin),
            &[],
            None,
        )
        .await
        .expect(200);
        id
    }

    pub async fn stock(&self, admin: &str, product: i64) -> (i64, i64) {
        let stock = self
            .get(
                &format!("/restful/products/stockpile/{product}"),
                Some(admin),
            )
            .await
            .expect(200)
            .json();
        (
            stock["amount"].as_i64().expect("amount"),
            stock["frozen"].as_i64().expect("frozen"),
        )
    }

    pub async fn balance(&self, token: &str) -> f64 {
        self.get("/restful/wallet", Some(token))
            .await
            .expect(200)
            .json()["balance"]
            .as_f64()
            .expect("balance")
    }
}

/// `application/x-www-form-urlencoded` text.
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub fn settlement(items: &[(i64, i64)]) -> Value {
    json!({
        "items": items.iter().map(|(id, amount)| json!({"id": id, "amount": amount})).collect::<Vec<_>>(),
        "purchase": {"name": "Ann", "telephone": "18888888888", "location": "Here 1", "pay": "wechat", "delivery": "express"},
    })
}

pub fn static_dir(dir: &std::path::Path) -> PathBuf {
    let root = dir.join("static");
    std::fs::create_dir_all(root.join("static/css")).expect("mkdir");
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>Fenix</title>",
    )
    .expect("write");
    std::fs::write(root.join("static/css/app.css"), "body{}").expect("write");
    std::fs::write(root.join("static/app.js"), "console.log(1)").expect("write");
    std::fs::write(dir.join("secret.txt"), "outside").expect("write");
    root
}
