//! The HTTP server: hyper 1 connections (HTTP/1.1 and HTTP/2, auto-detected) on a listener we
//! accept on ourselves, each watched by a [`GracefulShutdown`], so shutdown is explicit:
//!
//! 1. `stop` fires: `/readyz` starts failing, and for `readiness_grace` new connections are still
//!    accepted (a load balancer needs a moment to notice);
//! 2. the listener closes; every connection finishes its request in flight and closes;
//! 3. after `drain`, connections still open are cut.
//!
//! A client that goes away (closes the connection, resets its HTTP/2 stream) drops its request's
//! future. For a read that is what we want: nothing is left to do, and the backend calls it had
//! in flight are cancelled. A write instead runs on to its end on a task of its own (bounded by
//! the request budget that every backend call honours): cancelling it half-way would leave its
//! outcome to chance (a settlement reserved but not stored, to be undone later by the outbox),
//! and every abandoned call would reset a stream on the shared connection to the backend, whose
//! HTTP/2 server treats a flood of resets as an attack and fails the calls of everyone else.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::Request,
    response::{IntoResponse, Response},
};
use http::StatusCode;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use platform::shutdown::CancellationToken;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::{forwarded::TrustedNetwork, readiness::Readiness, throttle::ClientAddress};

pub struct Server {
    pub listener: TcpListener,
    pub router: Router,
    pub stop: CancellationToken,
    pub readiness: Readiness,
    pub readiness_grace: Duration,
    pub drain: Duration,
    /// Whose `X-Forwarded-For` names the client (`[login_throttle] trusted_proxies`).
    pub trusted_proxies: Arc<[TrustedNetwork]>,
}

impl Server {
    pub async fn run(self) {
        let Self {
            listener,
            router,
            stop,
            readiness,
            readiness_grace,
            drain,
            trusted_proxies,
        } = self;
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());

        let accept_until = async {
            stop.cancelled().await;
            readiness.set_draining();
            tracing::info!(
                grace_ms = readiness_grace.as_millis() as u64,
                "shutting down: readiness fails now"
            );
            tokio::time::sleep(readiness_grace).await;
        };
        tokio::pin!(accept_until);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut accept_until => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // A response is written whole; Nagle's algorithm would only hold its tail back
            // waiting for the client's (delayed) acknowledgement.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
            let router = router.clone();
            let trusted_proxies = trusted_proxies.clone();
            let service =
                hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    // The token endpoint slows password guessing per client address.
                    let client = ClientAddress::of(peer, request.headers(), &trusted_proxies);
                    request.extensions_mut().insert(client);
                    respond(router, request)
                });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
        drop(listener);
        tracing::info!(
            open = graceful.count(),
            "listener closed; draining connections"
        );
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                drain_seconds = drain.as_secs_f64(),
                "drain deadline passed; closing remaining connections"
            );
        }
        tracing::info!("gateway server stopped");
    }
}

/// Routes one request: a read in the connection's own future, a write on a task of its own that
/// finishes even when the client leaves (see the module documentation).
async fn respond(
    router: Router,
    request: Request<hyper::body::Incoming>,
) -> Result<Response, Infallible> {
    let request = request.map(Body::new);
    if request.method().is_safe() {
        return router.oneshot(request).await;
    }
    match tokio::spawn(router.oneshot(request)).await {
        Ok(response) => response,
        Err(error) => {
            // A panic in a handler: the same answer a panicking read gets from the connection.
            tracing::error!(%error, "a write request's task failed");
            Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}
