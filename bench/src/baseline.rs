//! The bare hyper 1 server of the HTTP baseline: it answers every request with one fixed JSON
//! body (the bytes the gateway returned for a product read in the same run), with no routing,
//! no middleware, no backend and no logging. What it costs per request is what hyper itself
//! costs, the floor under any HTTP program on this machine.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves `body` on every connection `listener` accepts, until the task is dropped.
pub async fn serve(listener: TcpListener, body: Bytes) {
    let json = HeaderValue::from_static("application/json");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors and the like: a short pause instead of a busy loop.
                eprintln!("baseline: accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let (body, json) = (body.clone(), json.clone());
        let service = service_fn(move |_request| {
            let mut response = Response::new(Full::new(body.clone()));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, json.clone());
            std::future::ready(Ok::<_, Infallible>(response))
        });
        tokio::spawn(async move {
            // A client closing its connection mid-request is not worth reporting.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
