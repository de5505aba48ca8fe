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
//!   has no call in flight and has sent nothing for `idle_timeout_ms`, is closed;
//! - HTTP/2 only, at most `max_concurrent_streams` calls per connection, header lists of at most
//!   16 KiB, resets by the client tolerated up to the stream limit;
//! - messages of at most `max_message_bytes`, refused with `RESOURCE_EXHAUSTED` before any of
//!   the message is buffered (see [`crate::grpc_message_limit`]);
//! - accept errors (out of file descriptors, say) logged and retried after a pause.

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{Semaphore, watch},
};
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
    configuration::ServerConfig, grpc_message_limit::LimitedBody, serve::StoppableIncoming,
};

/// The largest header list a call may send (hyper's own default; volo-grpc sets 16 MiB).
const MAX_HEADER_LIST_BYTES: u32 = 16 << 10;

/// Serves `router` on `incoming` with the limits of `config` until `shutdown` resolves, then
/// asks every connection to finish its calls and close, and waits for them (the caller bounds
/// that wait with the drain deadline).
pub async fn serve<S>(
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
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_pending_accept_reset_streams(config.max_concurrent_streams as usize)
        .max_header_list_size(MAX_HEADER_LIST_BYTES);
    let builder = Arc::new(builder);
    // Shutdown reaches every connection through this channel; each holds a receiver.
    let (drain, draining_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = incoming.accept_tcp() => accepted,
        };
        let Some((stream, peer)) = accepted else {
            break;
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = config.max_connections, "connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let stream = Watched {
            inner: stream,
            activity: activity.clone(),
        };
        let max_message = config.max_message_bytes;
        let service = service.clone();
        let calls = activity.clone();
        let handle = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let mut service = service.clone();
            let calls = calls.clone();
            if let Ok(address) = peer.to_string().parse() {
                request
                    .headers_mut()
                    .insert(HEADER_TRANS_REMOTE_ADDR, address);
            }
            let request = request.map(|body| boxed(LimitedBody::new(body, max_message)));
            async move {
                let _call = calls.call_started();
                let response = tower::Service::call(&mut service, request).await;
                Ok::<_, Infallible>(response.unwrap_or_else(Status::to_http))
            }
        });
        let builder = builder.clone();
        let mut drain_started = draining_rx.clone();
        let timeouts = Timeouts::of(&config);
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), handle);
            tokio::pin!(connection);
            let mut draining = false;
            // Set when the connection is closed for silence: it gets a moment to go quietly.
            let mut cut_at: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "gRPC connection ended with an error");
                        }
                        break;
                    }
                    _ = drain_started.changed(), if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    _ = tokio::time::sleep(timeouts.tick), if !draining => {
                        if let Some(why) = timeouts.expired(&activity) {
                            tracing::debug!(%peer, why, "closing a gRPC connection");
                            draining = true;
                            cut_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                    _ = sleep_until(cut_at) => break,
                }
            }
            drop(permit);
        });
    }
    drop(draining_rx);
    let _ = drain.send(());
    // Resolves once every connection task has ended (and dropped its receiver).
    drain.closed().await;
    Ok(())
}

/// Sleeps until `at`, or forever when there is no `at`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A connection's last signs of life, shared between its stream and its calls.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last byte received.
    last_read_ms: AtomicU64,
    in_flight: AtomicUsize,
    calls_seen: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            calls_seen: AtomicUsize::new(0),
        }
    }

    fn read_now(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_read_ms.store(now, Ordering::Relaxed);
    }

    fn call_started(self: &Arc<Self>) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.calls_seen.fetch_add(1, Ordering::Relaxed);
        CallGuard(self.clone())
    }
}

/// Counts a call in flight for as long as it lives.
struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// When a connection is closed for saying nothing.
#[derive(Clone, Copy)]
struct Timeouts {
    handshake: Duration,
    idle: Duration,
    tick: Duration,
}

impl Timeouts {
    fn of(config: &ServerConfig) -> Self {
        let handshake = Duration::from_millis(config.handshake_timeout_ms.max(1));
        let idle = Duration::from_millis(config.idle_timeout_ms.max(1));
        Self {
            handshake,
            idle,
            tick: (handshake.min(idle) / 4)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
        }
    }

    fn expired(&self, activity: &Activity) -> Option<&'static str> {
        let age = activity.opened.elapsed();
        if activity.calls_seen.load(Ordering::Relaxed) == 0 {
            return (age > self.handshake).then_some("no call within the handshake timeout");
        }
        let quiet = age.saturating_sub(Duration::from_millis(
            activity.last_read_ms.load(Ordering::Relaxed),
        ));
        (activity.in_flight.load(Ordering::Relaxed) == 0 && quiet > self.idle).then_some("idle")
    }
}

/// A TCP stream that records when it last received bytes.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_now();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
