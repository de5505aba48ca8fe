//! The REST client: [`Rest`] and its [`Reply`], and the request bodies and queries the
//! front-end sends.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, request};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};

/// The front-end's OAuth2 client.
pub const CLIENT_ID: &str = "bookstore_frontend";
pub const CLIENT_SECRET: &str = "bookstore_secret";
/// The administrator every empty account database is seeded with.
pub const ADMIN: &str = "icyfenix";
pub const ADMIN_PASSWORD: &str = account::configuration::DEVELOPMENT_ADMIN_PASSWORD;

/// A client of one gateway. Cloning it shares its connection pool.
#[derive(Clone)]
pub struct Rest {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://address`, for building URLs.
    pub base: String,
    timeout: Duration,
}

/// A whole answer.
#[derive(Debug, Clone)]
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

    /// The header's value, or "" when it is missing or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Panics with the body unless the status is `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        self
    }
}

/// `head` with an `Idempotency-Key`, if there is a key.
fn with_key(head: request::Builder, key: Option<&str>) -> request::Builder {
    match key {
        Some(key) => head.header("idempotency-key", key),
        None => head,
    }
}

/// The answer of a `try_` method, for a test step that needs one.
fn answered(outcome: Result<Reply, String>) -> Reply {
    outcome.unwrap_or_else(|e| panic!("HTTP exchange failed: {e}"))
}

impl Rest {
    /// A client of the gateway at `address`, from 127.0.0.1.
    pub fn new(address: SocketAddr) -> Self {
        Self::from_local_address(address, None)
    }

    /// A client whose connections come from `local` (another loopback address, such as
    /// 127.0.0.2, looks like another client machine to the gateway).
    pub fn from_local_address(address: SocketAddr, local: Option<IpAddr>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(local);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: format!("http://{address}"),
            timeout: Duration::from_secs(15),
        }
    }

    /// The same client with another per-request deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The head of a request to `path`: method, URI and bearer token.
    fn head(&self, method: Method, path: &str, token: Option<&str>) -> request::Builder {
        let head = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        match token {
            Some(token) => head.header("authorization", format!("bearer {token}")),
            None => head,
        }
    }

    /// Sends `head` with `body` and reads the whole answer, within the deadline.
    async fn try_exchange(
        &self,
        head: request::Builder,
        body: Option<Bytes>,
    ) -> Result<Reply, String> {
        let request = head
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| format!("request: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.timeout)))
    }

    /// A request with an optional bearer token, extra headers and a raw body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Reply {
        let head = headers
            .iter()
            .fold(self.head(method, path, token), |head, (name, value)| {
                head.header(*name, *value)
            });
        answered(self.try_exchange(head, body).await)
    }

    pub async fn try_get(&self, path: &str, token: Option<&str>) -> Result<Reply, String> {
        self.try_exchange(self.head(Method::GET, path, token), None)
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        answered(self.try_get(path, token).await)
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let head = self.head(Method::DELETE, path, token);
        answered(self.try_exchange(head, None).await)
    }

    async fn try_json(
        &self,
        head: request::Builder,
        key: Option<&str>,
        body: &Value,
    ) -> Result<Reply, String> {
        let head = with_key(head.header("content-type", "application/json"), key);
        let body = Bytes::from(body.to_string());
        self.try_exchange(head, Some(body)).await
    }

    /// A JSON body, with its Content-Type.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Reply {
        let head = self.head(method, path, token);
        answered(self.try_json(head, None, body).await)
    }

    /// The password grant, as the front-end sends it (GET with a query string).
    pub async fn login(&self, username: &str, password: &str) -> Reply {
        let grant = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        self.get(&format!("/oauth/token?{}", token_query(&grant)), None)
            .await
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

    /// Registers `username` with `fields` merged over sensible defaults (password
    /// `<username>-pw`) and returns the answer.
    pub async fn register(&self, username: &str, fields: Value) -> Reply {
        let mut body = json!({
            "username": username,
            "password": format!("{username}-pw"),
            "name": format!("User {username}"),
            "location": "Somewhere 1",
        });
        if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
            for (key, value) in fields {
                body.insert(key.clone(), value.clone());
            }
        }
        self.json(Method::POST, "/restful/accounts", None, &body)
            .await
    }

    /// Registers `username` (password `<username>-pw`) and logs in; returns the token.
    pub async fn new_user(&self, username: &str) -> String {
        self.new_user_with(username, json!({})).await
    }

    /// As [`Self::new_user`], with `fields` merged over the defaults of [`Self::register`].
    pub async fn new_user_with(&self, username: &str, fields: Value) -> String {
        let reply = self.register(username, fields).await.expect(200);
        assert_eq!(reply.json()["code"], 0, "{}", reply.text());
        self.token(username, &format!("{username}-pw")).await
    }

    /// Creates a product priced `price` (a JSON number) with `stock` units; returns its id.
    pub async fn new_product(&self, admin: &str, title: &str, price: Value, stock: i64) -> i64 {
        let body = json!({
            "title": title, "price": price, "rate": 8.5,
            "description": "<p>A book</p>", "cover": "/static/cover/x.jpg",
            "detail": "/static/desc/x.jpg",
            "specifications": [{"item": "Author", "value": "Someone"}],
        });
        let product = self
            .json(Method::POST, "/restful/products", Some(admin), &body)
            .await
            .expect(200)
            .json();
        let id = product["id"].as_i64().expect("id");
        self.set_stock(admin, id, stock).await.expect(200);
        id
    }

    /// `PATCH /restful/products/stockpile/{product}?amount={amount}`.
    pub async fn set_stock(&self, token: &str, product: i64, amount: i64) -> Reply {
        let path = format!("/restful/products/stockpile/{product}?amount={amount}");
        self.send(Method::PATCH, &path, Some(token), &[], None)
            .await
    }

    /// `(amount, frozen)` of a product.
    pub async fn stock(&self, admin: &str, product: i64) -> (i64, i64) {
        let path = format!("/restful/products/stockpile/{product}");
        let stock = self.get(&path, Some(admin)).await.expect(200).json();
        (
            stock["amount"].as_i64().expect("amount"),
            stock["frozen"].as_i64().expect("frozen"),
        )
    }

    /// The caller's wallet balance in cents.
    pub async fn balance_cents(&self, token: &str) -> i64 {
        let balance = self
            .get("/restful/wallet", Some(token))
            .await
            .expect(200)
            .json()["balance"]
            .as_f64()
            .expect("balance");
        (balance * 100.0).round() as i64
    }

    /// `POST /restful/settlements` of `cart` (see [`settlement`]), with an idempotency key or
    /// without.
    pub async fn try_settle(
        &self,
        token: &str,
        cart: &Value,
        key: Option<&str>,
    ) -> Result<Reply, String> {
        let head = self.head(Method::POST, "/restful/settlements", Some(token));
        self.try_json(head, key, cart).await
    }

    pub async fn settle(&self, token: &str, cart: &Value, key: Option<&str>) -> Reply {
        answered(self.try_settle(token, cart, key).await)
    }

    /// `PATCH /restful/pay/{payId}?state=…` (`PAYED`, `CANCEL`), with an idempotency key or
    /// without.
    pub async fn try_change_payment(
        &self,
        token: &str,
        pay_id: &str,
        state: &str,
        key: Option<&str>,
    ) -> Result<Reply, String> {
        let path = format!("/restful/pay/{pay_id}?state={state}");
        let head = self.head(Method::PATCH, &path, Some(token));
        self.try_exchange(with_key(head, key), None).await
    }

    pub async fn change_payment(
        &self,
        token: &str,
        pay_id: &str,
        state: &str,
        key: Option<&str>,
    ) -> Reply {
        answered(self.try_change_payment(token, pay_id, state, key).await)
    }
}

/// `application/x-www-form-urlencoded` text.
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The query of a token request by the front-end: `grant` and its client credentials.
pub fn token_query(grant: &[(&str, &str)]) -> String {
    let mut pairs = grant.to_vec();
    pairs.extend([("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)]);
    form(&pairs)
}

/// A settlement body as the front-end sends it, for `items` (product id, units).
pub fn settlement(items: &[(i64, i64)]) -> Value {
    json!({
        "items": items.iter().map(|(id, amount)| json!({"id": id, "amount": amount})).collect::<Vec<_>>(),
        "purchase": {"name": "Ann", "telephone": "18888888888", "location": "Here 1",
                     "pay": "wechat", "delivery": "express"},
    })
}
