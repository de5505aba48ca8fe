//! The bare translator baseline: hyper 1 in, one Volo call out, the answer in the gateway's JSON.
//!
//! It does what any REST-to-RPC hop on this stack must do and nothing else: the path's prefix
//! picks the call (no router), the bearer token goes on to the account service unread (no
//! verification, no cache), one try with the clients' fixed deadline (no budget, no retries),
//! no metrics, no spans, no logs. Measured beside the gateway in the same run, it splits what
//! the gateway costs into the hop's own floor on this machine (hyper, a Volo client, JSON) and
//! what the gateway adds on top. Issue 8 quotes such a translator at about 0.38 (gRPC) and 0.35
//! (Thrift) of the direct RPC's throughput.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use gateway::routes::{AccountView, ProductView};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use platform::rpc_metadata::CallMetadata;
use rpc_idl::{
    account::{AccountServiceClient, GetAccountByUsernameRequest},
    warehouse::{GetProductRequest, WarehouseServiceClient},
};
use tokio::net::TcpListener;

use crate::targets::{account_client, warehouse_client};

/// The two clients, shared by every connection.
pub struct Backends {
    warehouse: WarehouseServiceClient,
    account: AccountServiceClient,
}

impl Backends {
    pub fn new(warehouse: SocketAddr, account: SocketAddr) -> Self {
        Self {
            warehouse: warehouse_client(warehouse),
            account: account_client(account),
        }
    }
}

/// A failed translation: the status and a line saying why.
type Failure = (StatusCode, String);

/// Serves until the task is dropped: `GET /restful/products/{id}` (gRPC `GetProduct`),
/// `GET /restful/accounts/{username}` with a bearer token (Thrift `GetAccountByUsername`), and
/// `GET /` (200, for the readiness probe).
pub async fn serve(listener: TcpListener, backends: Arc<Backends>) {
    let service = service_fn(move |request| {
        let backends = backends.clone();
        async move { Ok::<_, Infallible>(answer(&backends, request).await) }
    });
    crate::http_server::serve(listener, service).await;
}

async fn answer(backends: &Backends, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let outcome = if let Some(id) = path.strip_prefix("/restful/products/") {
        product(backends, id).await
    } else if let Some(username) = path.strip_prefix("/restful/accounts/") {
        account(backends, username, bearer_token(&request)).await
    } else if path == "/" {
        Ok(Bytes::from_static(b"{}"))
    } else {
        Err((StatusCode::NOT_FOUND, format!("no route for {path}")))
    };
    match outcome {
        Ok(json) => {
            let mut response = Response::new(Full::new(json));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err((status, message)) => {
            let mut response = Response::new(Full::new(Bytes::from(message)));
            *response.status_mut() = status;
            response
        }
    }
}

async fn product(backends: &Backends, id: &str) -> Result<Bytes, Failure> {
    let id = id
        .parse()
        .map_err(|_| (StatusCode::BAD_REQUEST, format!("bad product id {id:?}")))?;
    let product = backends
        .warehouse
        .get_product(GetProductRequest { id })
        .await
        .map_err(|status| (StatusCode::BAD_GATEWAY, status.to_string()))?
        .into_inner();
    to_json(&ProductView::from(product))
}

async fn account(
    backends: &Backends,
    username: &str,
    token: Option<String>,
) -> Result<Bytes, Failure> {
    let metadata = CallMetadata {
        token,
        request_id: None,
    };
    let request = GetAccountByUsernameRequest {
        username: username.to_owned().into(),
        token: None,
    };
    let answer = metadata
        .thrift_call(backends.account.get_account_by_username(request))
        .await
        .map_err(|error| (StatusCode::BAD_GATEWAY, error.to_string()))?;
    match answer {
        volo_thrift::MaybeException::Ok(account) => to_json(&AccountView::from(account)),
        volo_thrift::MaybeException::Exception(exception) => {
            Err((StatusCode::BAD_GATEWAY, format!("{exception:?}")))
        }
    }
}

/// The token of `Authorization: Bearer <token>` (any case of the scheme), unchecked.
fn bearer_token(request: &Request<Incoming>) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn to_json(view: &impl serde::Serialize) -> Result<Bytes, Failure> {
    serde_json::to_vec(view)
        .map(Bytes::from)
        .map_err(|error| (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
}
