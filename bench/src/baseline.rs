//! The bare hyper 1 server of the HTTP baseline: it answers every request with one fixed JSON
//! body (the bytes the gateway returned for a product read in the same run), with no routing,
//! no middleware, no backend and no logging. What it costs per request is what hyper itself
//! costs, the floor under any HTTP program on this machine.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use hyper::service::service_fn;
use tokio::net::TcpListener;

/// Serves `body` on every connection `listener` accepts, until the task is dropped.
pub async fn serve(listener: TcpListener, body: Bytes) {
    let json = HeaderValue::from_static("application/json");
    let service = service_fn(move |_request| {
        let mut response = Response::new(Full::new(body.clone()));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, json.clone());
        std::future::ready(Ok::<_, Infallible>(response))
    });
    crate::http_server::serve(listener, service).await;
}
