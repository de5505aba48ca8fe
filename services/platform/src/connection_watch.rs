//! What every hyper server connection of ours shares (the gRPC services' and the gateway's): a
//! limit on open connections, and closing a connection that says nothing.
//!
//! hyper has no idle timeout, and its header-read timeout covers HTTP/1 only; a client that
//! opens a connection, sends a few bytes and waits would hold a task and a file descriptor
//! forever. A [`Watched`] stream records when bytes last arrived, the connection's calls say
//! when they start and end ([`Watch::call_started`]), and [`Watch::drive`] runs the connection
//! until it ends, asking it to finish (HTTP/2 GOAWAY, HTTP/1 close after the response) when:
//!
//! - the server drains (shutdown);
//! - no request arrived within the handshake timeout of the connection's start;
//! - nothing arrived for the idle timeout while no call was in flight.
//!
//! A connection asked to finish for silence that still has not ended a second later is cut.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use hyper_util::server::graceful::GracefulConnection;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch},
};

/// How long a connection may stay silent.
#[derive(Debug, Clone, Copy)]
pub struct Silence {
    /// From the connection's start to its first request.
    pub handshake: Duration,
    /// Between calls.
    pub idle: Duration,
}

impl Silence {
    /// From the `handshake_timeout_ms` and `idle_timeout_ms` of a server's configuration.
    pub fn from_millis(handshake_ms: u64, idle_ms: u64) -> Self {
        Self {
            handshake: Duration::from_millis(handshake_ms.max(1)),
            idle: Duration::from_millis(idle_ms.max(1)),
        }
    }
}

/// The connections of one listener: how many may be open, and for how long they may be quiet.
#[derive(Clone)]
pub struct Connections {
    open: Arc<Semaphore>,
    limit: usize,
    silence: Silence,
}

impl Connections {
    pub fn new(limit: usize, silence: Silence) -> Self {
        let limit = limit.max(1);
        Self {
            open: Arc::new(Semaphore::new(limit)),
            limit,
            silence,
        }
    }

    /// A watch for one more connection, or `None` when `limit` are open already.
    pub fn admit(&self) -> Option<Watch> {
        match self.open.clone().try_acquire_owned() {
            Ok(permit) => Some(Watch {
                activity: Arc::new(Activity::new()),
                silence: self.silence,
                _permit: permit,
            }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                tracing::warn!(limit = self.limit, "connection refused: too many open");
                None
            }
        }
    }
}

/// One admitted connection; holds its place among the open ones until dropped.
pub struct Watch {
    activity: Arc<Activity>,
    silence: Silence,
    _permit: OwnedSemaphorePermit,
}

impl Watch {
    /// `stream`, recording when bytes arrive.
    pub fn wrap<S>(&self, stream: S) -> Watched<S> {
        Watched {
            inner: stream,
            activity: self.activity.clone(),
        }
    }

    /// Marks a call in flight on this connection until the guard is dropped (give a clone of it
    /// to the connection's service).
    pub fn calls(&self) -> CallCounter {
        CallCounter(self.activity.clone())
    }

    /// Runs `connection` to its end (see the module documentation); `drain` fires on shutdown.
    pub async fn drive<C>(self, connection: C, mut drain: watch::Receiver<()>)
    where
        C: GracefulConnection,
        C::Error: std::fmt::Display,
    {
        tokio::pin!(connection);
        let tick = (self.silence.handshake.min(self.silence.idle) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut finishing = false;
        let mut cut_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                _ = drain.changed(), if !finishing => {
                    finishing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = tokio::time::sleep(tick), if !finishing => {
                    if let Some(why) = self.expired() {
                        tracing::debug!(why, "closing a quiet connection");
                        finishing = true;
                        cut_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                        connection.as_mut().graceful_shutdown();
                    }
                }
                _ = sleep_until(cut_at) => return,
            }
        }
    }

    fn expired(&self) -> Option<&'static str> {
        let activity = &self.activity;
        let age = activity.opened.elapsed();
        if activity.calls_seen.load(Ordering::Relaxed) == 0 {
            return (age > self.silence.handshake)
                .then_some("no request within the handshake timeout");
        }
        let last_read = Duration::from_millis(activity.last_read_ms.load(Ordering::Relaxed));
        let quiet = age.saturating_sub(last_read);
        (activity.in_flight.load(Ordering::Relaxed) == 0 && quiet > self.silence.idle)
            .then_some("idle")
    }
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
}

/// Hands out a [`CallGuard`] per call of one connection.
#[derive(Clone)]
pub struct CallCounter(Arc<Activity>);

impl CallCounter {
    pub fn call_started(&self) -> CallGuard {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        self.0.calls_seen.fetch_add(1, Ordering::Relaxed);
        CallGuard(self.0.clone())
    }
}

/// Counts a call in flight for as long as it lives.
pub struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when it last received bytes.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
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

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
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
