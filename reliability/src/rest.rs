//! A small HTTP/1.1 client for the gateway's REST API, as the front-end uses it. Every request
//! has a deadline. [`Rest::send`] reports a transport failure as `Err` (traffic generators count
//! those); the `expect_…` helpers panic with the body, for test set-up.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
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

#[derive(Clone)]
pub struct Rest {
    client: Client<HttpConnector, Full<Bytes>>,
    pub base: String,
    timeout: Duration,
}

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

/// Panics on a transport failure, for set-up steps.
#[track_caller]
pub fn ok(outcome: Result<Reply, String>) -> Reply {
    outcome.unwrap_or_else(|e| panic!("HTTP exchange failed: {e}"))
}

impl Rest {
    /// A client of the gateway at `address`, from 127.0.0.1.
    pub fn new(address: SocketAddr) -> Self {
        Self::from_local_address(address, None)
    }

    /// A client whose connections come from `local` (another loopback address, such as
    /// 127.0.0.2, looks like another client machine to the gateway).
    pub fn from_local_address(address: SocketAddr, local: Option<std::net::IpAddr>) -> Self {
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

    pub async fn raw(&self, request: Request<Full<Bytes>>) -> Result<Reply, String> {
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
    ) -> Result<Reply, String> {
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
            .map_err(|e| format!("request: {e}"))?;
        self.raw(request).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Reply, String> {
        self.send(Method::GET, path, token, &[], None).await
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Reply, String> {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        let bytes = Bytes::from(body.to_string());
        self.send(method, path, token, &all, Some(bytes)).await
    }

    /// The password grant, as the front-end sends it (GET with a query string).
    pub async fn login(&self, username: &str, password: &str) -> Result<Reply, String> {
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
    pub async fn expect_token(&self, username: &str, password: &str) -> String {
        let reply = ok(self.login(username, password).await).expect(200);
        reply.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.expect_token(ADMIN, ADMIN_PASSWORD).await
    }

    /// Registers `username` with `fields` merged over sensible defaults (password
    /// `<username>-pw`) and returns the answer.
    pub async fn register(&self, username: &str, fields: Value) -> Result<Reply, String> {
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
        self.json(Method::POST, "/restful/accounts", None, &[], &body)
            .await
    }

    /// Registers `username` (password `<username>-pw`) and logs in; returns the token.
    pub async fn new_user(&self, username: &str) -> String {
        let reply = ok(self.register(username, json!({})).await).expect(200);
        assert_eq!(reply.json()["code"], 0, "{}", reply.text());
        self.expect_token(username, &format!("{username}-pw")).await
    }

    /// Creates a product priced `price` (a JSON number) with `stock` units; returns its id.
    pub async fn new_product(&self, admin: &str, title: &str, price: Value, stock: i64) -> i64 {
        let body = json!({
            "title": title, "price": price, "rate": 8.5,
            "description": "<p>A book</p>", "cover": "/static/cover/x.jpg",
            "detail": "/static/desc/x.jpg",
            "specifications": [{"item": "Author", "value": "Someone"}],
        });
        let product = ok(self
            .json(Method::POST, "/restful/products", Some(admin), &[], &body)
            .await)
        .expect(200)
        .json();
        let id = product["id"].as_i64().expect("id");
        self.set_stock(admin, id, stock).await;
        id
    }

    pub async fn set_stock(&self, admin: &str, product: i64, amount: i64) {
        ok(self
            .send(
                Method::PATCH,
                &format!("/restful/products/stockpile/{product}?amount={amount}"),
                Some(admin),
                &[],
                None,
            )
            .await)
        .expect(200);
    }

    /// `(amount, frozen)` of a product.
    pub async fn stock(&self, admin: &str, product: i64) -> (i64, i64) {
        let stock = ok(self
            .get(
                &format!("/restful/products/stockpile/{product}"),
                Some(admin),
            )
            .await)
        .expect(200)
        .json();
        (
            stock["amount"].as_i64().expect("amount"),
            stock["frozen"].as_i64().expect("frozen"),
        )
    }

    /// The caller's wallet balance in cents.
    pub async fn balance_cents(&self, token: &str) -> i64 {
        let balance = ok(self.get("/restful/wallet", Some(token)).await)
            .expect(200)
            .json()["balance"]
            .as_f64()
            .expect("balance");
        (balance * 100.0).round() as i64
    }

    /// `POST /restful/settlements` for `items` (product id, units) with an idempotency key.
    pub async fn settle(
        &self,
        token: &str,
        items: &[(i64, i64)],
        key: &str,
    ) -> Result<Reply, String> {
        self.json(
            Method::POST,
            "/restful/settlements",
            Some(token),
            &[("idempotency-key", key)],
            &settlement(items),
        )
        .await
    }

    /// `PATCH /restful/pay/{payId}?state=PAYED|CANCEL` with an idempotency key.
    pub async fn change_payment(
        &self,
        token: &str,
        pay_id: &str,
        state: &str,
        key: &str,
    ) -> Result<Reply, String> {
        self.send(
            Method::PATCH,
            &format!("/restful/pay/{pay_id}?state={state}"),
            Some(token),
            &[("idempotency-key", key)],
            None,
        )
        .await
    }
}

/// `application/x-www-form-urlencoded` text.
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A settlement body as the front-end sends it.
pub fn settlement(items: &[(i64, i64)]) -> Value {
    json!({
        "items": items.iter().map(|(id, amount)| json!({"id": id, "amount": amount})).collect::<Vec<_>>(),
        "purchase": {"name": "Ann", "telephone": "18888888888", "location": "Here 1",
                     "pay": "wechat", "delivery": "express"},
    })
}
