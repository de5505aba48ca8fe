//! Listening sockets for Volo servers that can be bound before serving (so tests can bind port 0
//! and learn the port) and that stop accepting when the shutdown token fires.
//!
//! volo-thrift's `Server::run` has no shutdown future of its own: it stops when its incoming
//! stream ends (or on a signal). Ending the stream on our token gives Thrift and gRPC servers the
//! same code-driven shutdown, which the in-process launcher and the tests need.

use std::{future::Future, io, net::SocketAddr, pin::Pin, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::shutdown::with_drain_deadline;
use volo::net::{
    conn::Conn,
    incoming::{DefaultIncoming, Incoming, MakeIncoming},
};

/// Binds `listen` (e.g. `0.0.0.0:8810`, or port 0 for any free port).
pub async fn bind(listen: &str) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}

/// A bound listener whose stream of connections ends when `stop` is cancelled.
#[derive(Debug)]
pub struct StoppableIncoming {
    inner: DefaultIncoming,
    stop: CancellationToken,
}

impl StoppableIncoming {
    pub fn new(listener: TcpListener, stop: CancellationToken) -> Self {
        Self {
            inner: DefaultIncoming::from(listener),
            stop,
        }
    }
}

impl MakeIncoming for StoppableIncoming {
    type Incoming = Self;

    async fn make_incoming(self) -> io::Result<Self::Incoming> {
        Ok(self)
    }
}

impl Incoming for StoppableIncoming {
    async fn accept(&mut self) -> io::Result<Option<Conn>> {
        tokio::select! {
            _ = self.stop.cancelled() => Ok(None),
            conn = self.inner.accept() => conn,
        }
    }
}

/// Resolves when shutdown begins; the form volo-grpc's `run_with_shutdown` wants.
pub type ShutdownSignal = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

#[derive(Debug, thiserror::Error)]
#[error("the {name} server failed: {message}")]
pub struct ServeError {
    name: &'static str,
    message: String,
}

/// A bound RPC server, ready to run until the stop token fires and its drain ends.
pub struct ServerTask {
    name: &'static str,
    address: SocketAddr,
    future: Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>>,
}

impl ServerTask {
    /// `run` starts the Volo server on the given incoming connections; gRPC servers also take
    /// the shutdown signal, Thrift servers stop when the incoming stream ends. `on_shutdown` runs
    /// the moment shutdown begins (to flip health to NOT_SERVING).
    pub fn new<F, E>(
        name: &'static str,
        listener: TcpListener,
        stop: CancellationToken,
        drain: Duration,
        on_shutdown: impl FnOnce() + Send + 'static,
        run: impl FnOnce(StoppableIncoming, ShutdownSignal) -> F,
    ) -> io::Result<Self>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let address = listener.local_addr()?;
        let signal: ShutdownSignal = {
            let stop = stop.clone();
            Box::pin(async move {
                stop.cancelled().await;
                on_shutdown();
                Ok(())
            })
        };
        let server = run(StoppableIncoming::new(listener, stop.clone()), signal);
        let future = async move {
            let served = with_drain_deadline(server, stop, drain).await;
            tracing::info!("{name} server stopped");
            match served {
                Some(Err(error)) => Err(ServeError {
                    name,
                    message: error.to_string(),
                }),
                _ => Ok(()),
            }
        };
        Ok(Self {
            name,
            address,
            future: Box::pin(future),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until stopped; logs the ready line first.
    pub async fn run(self) -> Result<(), ServeError> {
        tracing::info!(address = %self.address, "{} ready", self.name);
        self.future.await
    }
}
