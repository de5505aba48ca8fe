//! The requests the benchmark sends: HTTP through hyper-util's pooled keep-alive client (to the
//! gateway and to the bare hyper baseline), gRPC through a Volo client (warehouse), Thrift
//! through a Volo client (account). Each checks its answer, so a fast error is never counted as
//! a fast success.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use pilota::FastStr;
use platform::rpc_metadata::CallMetadata;
use rpc_idl::{
    account::{AccountServiceClient, AccountServiceClientBuilder, GetAccountByUsernameRequest},
    warehouse::{GetProductRequest, WarehouseServiceClient, WarehouseServiceClientBuilder},
};
use serde::Deserialize;

use crate::load::{CallError, Target};

/// Deadline of every RPC the Volo clients make (the load loops have their own, too).
pub const RPC_DEADLINE: Duration = Duration::from_secs(5);

/// An HTTP/1.1 client with pooled keep-alive connections (one per concurrent request).
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: Arc<str>,
}

/// An HTTP answer, read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    pub fn ok(self) -> Result<Bytes, CallError> {
        if self.status == StatusCode::OK {
            Ok(self.body)
        } else {
            Err(CallError::new(format!(
                "status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )))
        }
    }
}

impl Http {
    pub fn new(address: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        // Small requests must not wait for Nagle's algorithm.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(RPC_DEADLINE));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: format!("http://{address}").into(),
        }
    }

    pub fn uri(&self, path_and_query: &str) -> Result<Uri, CallError> {
        format!("{}{path_and_query}", self.base)
            .parse()
            .map_err(CallError::new)
    }

    /// Sends one request, with a bearer token if given, and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        uri: Uri,
        authorization: Option<&HeaderValue>,
        json: Option<Bytes>,
    ) -> Result<Answer, CallError> {
        let mut request = Request::new(Full::new(json.clone().unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value.clone());
        }
        if json.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let response = self.client.request(request).await.map_err(CallError::new)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(CallError::new)?.to_bytes();
        Ok(Answer {
            status: parts.status,
            body,
        })
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Answer, CallError> {
        let authorization = token.map(bearer).transpose()?;
        self.send(Method::GET, self.uri(path)?, authorization.as_ref(), None)
            .await
    }
}

/// `Authorization: bearer <token>`.
pub fn bearer(token: &str) -> Result<HeaderValue, CallError> {
    HeaderValue::from_str(&format!("bearer {token}")).map_err(CallError::new)
}

/// `GET <path>`, expecting 200 and a body of the expected length (the same product or account
/// every time).
#[derive(Clone)]
pub struct HttpGet {
    http: Http,
    uri: Uri,
    authorization: Option<HeaderValue>,
    expected_len: usize,
}

impl HttpGet {
    pub fn new(
        http: Http,
        path: &str,
        token: Option<&str>,
        expected_len: usize,
    ) -> Result<Self, CallError> {
        Ok(Self {
            uri: http.uri(path)?,
            http,
            authorization: token.map(bearer).transpose()?,
            expected_len,
        })
    }
}

impl Target for HttpGet {
    async fn call(&self) -> Result<(), CallError> {
        let body = self
            .http
            .send(
                Method::GET,
                self.uri.clone(),
                self.authorization.as_ref(),
                None,
            )
            .await?
            .ok()?;
        if body.len() == self.expected_len {
            Ok(())
        } else {
            Err(CallError::new(format!(
                "expected {} bytes, got {}",
                self.expected_len,
                body.len()
            )))
        }
    }
}

/// A Volo gRPC client of the warehouse at `address`, with the tool's deadline.
pub fn warehouse_client(address: SocketAddr) -> WarehouseServiceClient {
    WarehouseServiceClientBuilder::new("warehouse")
        .caller_name("bench")
        .address(address)
        .rpc_timeout(Some(RPC_DEADLINE))
        .connect_timeout(RPC_DEADLINE)
        .build()
}

/// A Volo Thrift client of the account service at `address`, with the tool's deadline.
pub fn account_client(address: SocketAddr) -> AccountServiceClient {
    AccountServiceClientBuilder::new("account")
        .caller_name("bench")
        .address(address)
        .rpc_timeout(Some(RPC_DEADLINE))
        .connect_timeout(Some(RPC_DEADLINE))
        .build()
}

/// `warehouse.WarehouseService/GetProduct`, straight to the warehouse.
#[derive(Clone)]
pub struct GrpcGetProduct {
    client: WarehouseServiceClient,
    id: i64,
}

impl GrpcGetProduct {
    pub fn new(address: SocketAddr, id: i64) -> Self {
        Self {
            client: warehouse_client(address),
            id,
        }
    }
}

impl Target for GrpcGetProduct {
    async fn call(&self) -> Result<(), CallError> {
        let product = self
            .client
            .get_product(GetProductRequest { id: self.id })
            .await
            .map_err(CallError::new)?
            .into_inner();
        if product.id == self.id && !product.specifications.is_empty() {
            Ok(())
        } else {
            Err(CallError::new(format!("unexpected product {}", product.id)))
        }
    }
}

/// `AccountService.GetAccountByUsername`, straight to the account service, with the token in
/// the TTHeader as the gateway sends it.
#[derive(Clone)]
pub struct ThriftGetAccount {
    client: AccountServiceClient,
    metadata: Arc<CallMetadata>,
    username: FastStr,
}

impl ThriftGetAccount {
    pub fn new(address: SocketAddr, token: &str, username: &str) -> Self {
        Self {
            client: account_client(address),
            metadata: Arc::new(CallMetadata {
                token: Some(token.to_owned()),
                request_id: None,
            }),
            username: FastStr::from(username.to_owned()),
        }
    }
}

impl Target for ThriftGetAccount {
    async fn call(&self) -> Result<(), CallError> {
        let request = GetAccountByUsernameRequest {
            username: self.username.clone(),
            token: None,
        };
        let answer = self
            .metadata
            .thrift_call(self.client.get_account_by_username(request))
            .await
            .map_err(CallError::new)?;
        match answer {
            volo_thrift::MaybeException::Ok(account) if account.username == self.username => Ok(()),
            volo_thrift::MaybeException::Ok(account) => Err(CallError::new(format!(
                "asked for {}, got {}",
                self.username, account.username
            ))),
            volo_thrift::MaybeException::Exception(exception) => {
                Err(CallError::new(format!("{exception:?}")))
            }
        }
    }
}

/// The write path: `POST /restful/settlements` for one unit of a product, then
/// `PATCH /restful/pay/{payId}?state=PAYED`. One "request" is the pair.
#[derive(Clone)]
pub struct SettleAndPay {
    http: Http,
    settle: Uri,
    /// Who buys, in turn.
    buyers: Arc<[HeaderValue]>,
    next: Arc<AtomicUsize>,
    cart: Bytes,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentAnswer {
    pay_id: String,
    pay_state: String,
}

#[derive(Deserialize)]
struct CommandAnswer {
    code: i64,
    message: String,
}

impl SettleAndPay {
    pub fn new(http: Http, token: &str, product_id: i64) -> Result<Self, CallError> {
        let cart = serde_json::json!({
            "items": [{"id": product_id, "amount": 1}],
            "purchase": {
                "name": "Bench Buyer",
                "telephone": "18800000000",
                "location": "Loopback Lane 1",
                "pay": "wallet",
                "delivery": "express",
            },
        });
        Ok(Self {
            settle: http.uri("/restful/settlements")?,
            http,
            buyers: Arc::new([bearer(token)?]),
            next: Arc::default(),
            cart: Bytes::from(cart.to_string()),
        })
    }

    /// The same purchase, made by each of `tokens`' users in turn (so that no one wallet has
    /// to pay for every purchase of a long run).
    pub fn by_turns(http: Http, tokens: &[String], product_id: i64) -> Result<Self, CallError> {
        let first = tokens.first().ok_or_else(|| CallError::new("no buyers"))?;
        let mut target = Self::new(http, first, product_id)?;
        target.buyers = tokens
            .iter()
            .map(|token| bearer(token))
            .collect::<Result<Vec<_>, _>>()?
            .into();
        Ok(target)
    }
}

impl Target for SettleAndPay {
    async fn call(&self) -> Result<(), CallError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.buyers.len();
        let authorization = &self.buyers[turn];
        let body = self
            .http
            .send(
                Method::POST,
                self.settle.clone(),
                Some(authorization),
                Some(self.cart.clone()),
            )
            .await?
            .ok()?;
        let payment: PaymentAnswer = serde_json::from_slice(&body).map_err(CallError::new)?;
        if payment.pay_state != "WAITING" {
            return Err(CallError::new(format!("settled as {}", payment.pay_state)));
        }
        let pay = self
            .http
            .uri(&format!("/restful/pay/{}?state=PAYED", payment.pay_id))?;
        let body = self
            .http
            .send(Method::PATCH, pay, Some(authorization), None)
            .await?
            .ok()?;
        let answer: CommandAnswer = serde_json::from_slice(&body).map_err(CallError::new)?;
        if answer.code == 0 && answer.message.ends_with("PAYED") {
            Ok(())
        } else {
            Err(CallError::new(format!("pay answered {}", answer.message)))
        }
    }
}
