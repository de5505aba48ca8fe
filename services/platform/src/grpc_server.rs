//! The gRPC servers' accept loop, with the limits volo-grpc's own `Server::run` cannot be given.
//!
//! volo-grpc hands each connection straight to hyper with settings we cannot reach: an unlimited
//! number of streams per connection, a 16 MiB header list, h2's limit of 20 streams reset by the
//! client before the server took them (past which the whole connection is closed, failing every
//! other caller on it: a gateway whose users give up would do that), no idle or handshake
//! timeout, no limit on connections or messages, and an accept error ends the server. So this
//! module runs the loop itself, over the same public pieces (`Router`, `MetaService`), with:
//!
//! - at most `max_connections` connections; one more is closed at once;
//! - a connection that has not sent a complete request within `handshake_timeout_ms`, or that
//!   has no call in flight and has sent nothing for `idle_timeout_ms`, is closed
//!   ([`crate::connection_watch`]);
//! - HTTP/2 only, at most `max_concurrent_streams` calls per connection, header lists of at most
//!   16 KiB, resets by the client tolerated up to the stream limit;
//! - messages of at most `max_message_bytes`, refused with `RESOURCE_EXHAUSTED` before any of
//!   the message is buffered (see [`crate::grpc_message_limit`]);
//! - accept errors (out of file descriptors, say) logged and retried after a pause.

use std::{convert::Infallible, io, sync::Arc, time::Instant};

use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::sync::watch;
use tracing::Instrument;
use volo::Service;
use volo_grpc::{
    Request, Response, Status,
    body::{BoxBody, boxed},
    context::ServerContext,
    metadata::HEADER_TRANS_REMOTE_ADDR,
    server::MetaService,
    tracing::DefaultProvider,
};

use crate::{
    configuration::ServerConfig,
    connection_watch::{Connections, Silence},
    grpc_message_limit::LimitedBody,
    metrics,
    serve::StoppableIncoming,
    trace_context,
};

/// The span of one call, a child of the caller's when it sent its trace context. Health checks
/// and reflection are not traced: probes would fill the collector with one-span traces.
fn call_span<B>(request: &hyper::Request<B>) -> tracing::Span {
    let method = request.uri().path();
    if method.starts_with("/grpc.") {
        return tracing::Span::none();
    }
    trace_context::server_span(
        "grpc",
        method,
        trace_context::from_headers(request.headers()),
    )
}

/// The call's gRPC status name, as its answer's headers say: a failed unary call answers with
/// headers only; a successful one has its status in the trailers, after the body (OK).
fn status_of<B>(response: &hyper::Response<B>) -> &'static str {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(0);
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code).copied().unwrap_or("UNKNOWN")
}

/// The largest header list a call may send (hyper's own default; volo-grpc sets 16 MiB).
const MAX_HEADER_LIST_BYTES: u32 = 16 << 10;

/// Serves `program`'s `router` on `incoming` with the limits of `config` until `shutdown` resolves, then
/// asks every connection to finish its calls and close, and waits for them (the caller bounds
/// that wait with the drain deadline).
pub async fn serve<S>(
    program: &'static str,
    router: S,
    config: ServerConfig,
    mut incoming: StoppableIncoming,
    shutdown: impl Future<Output = io::Result<()>>,
) -> io::Result<()>
where
    S: Service<ServerContext, Request<BoxBody>, Response = Response<BoxBody>, Error = Status>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let service = MetaService::new(router, DefaultProvider);
    // Shared, not a captured `&str`: with one, rustc cannot prove the connection futures `Send`
    // for every lifetime (a known limitation with references in nested async closures).
    let program: Arc<str> = Arc::from(program);
    let connections = Connections::new(
        config.max_connections,
        Silence::from_millis(config.handshake_timeout_ms, config.idle_timeout_ms),
    );
    let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_pending_accept_reset_streams(config.max_concurrent_streams as usize)
        .max_header_list_size(MAX_HEADER_LIST_BYTES);
    let builder = Arc::new(builder);
    // Shutdown reaches every connection through this channel; each holds a receiver.
    let (drain, draining) = watch::channel(());
    tokio::pin!(shutdown);
    // `shutdown` runs the server's shutdown hook (health turns NOT_SERVING): it must complete
    // even when the listener's own stop is what ends the loop.
    let mut shutdown_seen = false;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => {
                shutdown_seen = true;
                break;
            }
            accepted = incoming.accept_tcp() => accepted,
        };
        let Some((stream, peer)) = accepted else {
            break;
        };
        let Some(watch) = connections.admit() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stream = watch.wrap(stream);
        let max_message = config.max_message_bytes;
        let service = service.clone();
        let program = Arc::clone(&program);
        let calls = watch.calls();
        let handle = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let mut service = service.clone();
            let call = calls.call_started();
            if let Ok(address) = peer.to_string().parse() {
                request
                    .headers_mut()
                    .insert(HEADER_TRANS_REMOTE_ADDR, address);
            }
            let program = Arc::clone(&program);
            let span = call_span(&request);
            let method = request.uri().path().to_owned();
            let request = request.map(|body| boxed(LimitedBody::new(body, max_message)));
            async move {
                let started = Instant::now();
                let response = tower::Service::call(&mut service, request).await;
                drop(call);
                let response = response.unwrap_or_else(Status::to_http);
                let code = status_of(&response);
                metrics::rpc_served(program, method, code, started.elapsed());
                Ok::<_, Infallible>(response)
            }
            .instrument(span)
        });
        let builder = builder.clone();
        let draining = draining.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), handle);
            watch.drive(connection, draining).await;
        });
    }
    if !shutdown_seen {
        let _ = shutdown.await;
    }
    drop(draining);
    let _ = drain.send(());
    // Resolves once every connection task has ended (and dropped its receiver).
    drain.closed().await;
    Ok(())
}
