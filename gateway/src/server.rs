//! The HTTP server: hyper 1 connections (HTTP/1.1 and HTTP/2, auto-detected) on a listener we
//! accept on ourselves, with the limits of `[server]` (at most `max_connections` open; a
//! connection silent past `handshake_timeout_ms` or, between requests, `idle_timeout_ms` is
//! closed, see `platform::connection_watch`; `max_concurrent_streams` per HTTP/2 connection).
//! Shutdown is explicit:
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
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use platform::{
    connection_watch::{Connections, Silence},
    shutdown::CancellationToken,
};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceExt;

use crate::{
    configuration::HttpServerConfig, forwarded::TrustedNetwork, readiness::Readiness,
    throttle::ClientAddress,
};

/// What one client may cost the server (`[server]`, see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub silence: Silence,
    pub max_concurrent_streams: u32,
}

impl Limits {
    pub fn of(config: &HttpServerConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            silence: Silence::from_millis(config.handshake_timeout_ms, config.idle_timeout_ms),
            max_concurrent_streams: config.max_concurrent_streams,
        }
    }
}

pub struct Server {
    pub listener: TcpListener,
    pub router: Router,
    pub stop: CancellationToken,
    pub readiness: Readiness,
    pub readiness_grace: Duration,
    pub drain: Duration,
    /// Whose `X-Forwarded-For` names the client (`[login_throttle] trusted_proxies`).
    pub trusted_proxies: Arc<[TrustedNetwork]>,
    pub limits: Limits,
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
            limits,
        } = self;
        let connections = Connections::new(limits.max_connections, limits.silence);
        // Shutdown reaches every connection through this channel; each holds a receiver.
        let (draining, drain_started) = watch::channel(());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper's HTTP/1 header-read timer also runs while a kept-alive connection waits for its
        // next request: set to the handshake timeout it would close idle connections under
        // clients that are about to reuse them. The idle timeout bounds a slow request head.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.silence.idle);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_pending_accept_reset_streams(limits.max_concurrent_streams as usize);
        let builder = Arc::new(builder);

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
            let Some(watch) = connections.admit() else {
                continue;
            };
            // A response is written whole; Nagle's algorithm would only hold its tail back
            // waiting for the client's (delayed) acknowledgement.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
            let stream = watch.wrap(stream);
            let router = router.clone();
            let trusted_proxies = trusted_proxies.clone();
            let calls = watch.calls();
            let service =
                hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    let call = calls.call_started();
                    // The token endpoint slows password guessing per client address.
                    let client = ClientAddress::of(peer, request.headers(), &trusted_proxies);
                    request.extensions_mut().insert(client);
                    async move {
                        let response = respond(router, request).await;
                        drop(call);
                        response
                    }
                });
            let builder = builder.clone();
            let drain_started = drain_started.clone();
            tokio::spawn(async move {
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                watch.drive(connection, drain_started).await;
            });
        }
        drop(listener);
        drop(drain_started);
        tracing::info!("listener closed; draining connections");
        let _ = draining.send(());
        // Resolves once every connection task has ended (and dropped its receiver).
        if tokio::time::timeout(drain, draining.closed())
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
