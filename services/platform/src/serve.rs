//! Listening sockets for Volo servers that can be bound before serving (so tests can bind port 0
//! and learn the port) and that stop accepting when the shutdown token fires, and the bound
//! service every RPC program's `Application` wraps: its server, its database and its background
//! tasks, stopped in that order.
//!
//! volo-thrift's `Server::run` has no shutdown future of its own: it stops when its incoming
//! stream ends (or on a signal). Ending the stream on our token gives Thrift and gRPC servers the
//! same code-driven shutdown, which the in-process launcher and the tests need.

use std::{future::Future, io, net::SocketAddr, pin::Pin, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{configuration::ServerConfig, database::Database, shutdown::with_drain_deadline};
use volo::net::{
    conn::Conn,
    incoming::{Incoming, MakeIncoming},
};

/// A listen address that could not be bound (or whose bound address could not be read).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen}: {source}")]
pub struct BindError {
    pub listen: String,
    pub source: io::Error,
}

/// Binds `listen` (e.g. `0.0.0.0:8810`, or port 0 for any free port).
pub async fn bind(listen: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| bind_error(listen, source))
}

/// The address `listener` really got (the port, when it was bound to port 0); `listen` is what
/// it was asked for, to name it in the error.
pub fn local_address(listener: &TcpListener, listen: &str) -> Result<SocketAddr, BindError> {
    listener
        .local_addr()
        .map_err(|source| bind_error(listen, source))
}

fn bind_error(listen: &str, source: io::Error) -> BindError {
    BindError {
        listen: listen.to_owned(),
        source,
    }
}

/// A bound listener whose stream of connections ends when `stop` is cancelled. An accept error
/// (out of file descriptors, say) is logged and retried after a pause: Volo's own incoming
/// passes it up, and its servers then stop for good.
#[derive(Debug)]
pub struct StoppableIncoming {
    listener: TcpListener,
    stop: CancellationToken,
}

impl StoppableIncoming {
    pub fn new(listener: TcpListener, stop: CancellationToken) -> Self {
        Self { listener, stop }
    }

    /// The next connection, or `None` once `stop` is cancelled.
    pub async fn accept_tcp(&mut self) -> Option<(TcpStream, SocketAddr)> {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => return Some(accepted),
                    Err(error) => {
                        tracing::warn!(%error, "accept failed; retrying");
                        tokio::select! {
                            _ = self.stop.cancelled() => return None,
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                    }
                },
            }
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
        Ok(self
            .accept_tcp()
            .await
            .map(|(stream, _)| Conn::from(stream)))
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
    /// the moment shutdown begins (to flip health to NOT_SERVING). `server` gives the drain
    /// deadline, and the listen address that errors name.
    pub fn new<F, E>(
        name: &'static str,
        listener: TcpListener,
        server: &ServerConfig,
        stop: CancellationToken,
        on_shutdown: impl FnOnce() + Send + 'static,
        run: impl FnOnce(StoppableIncoming, ShutdownSignal) -> F,
    ) -> Result<Self, BindError>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let address = local_address(&listener, &server.listen)?;
        let drain = Duration::from_secs(server.drain_seconds);
        let signal: ShutdownSignal = {
            let stop = stop.clone();
            Box::pin(async move {
                stop.cancelled().await;
                on_shutdown();
                Ok(())
            })
        };
        let serving = run(StoppableIncoming::new(listener, stop.clone()), signal);
        let future = async move {
            let served = with_drain_deadline(serving, stop, drain).await;
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

/// A service's bound server, the database it serves from and the background tasks that work
/// alongside it; each service's `Application` holds one.
pub struct BoundService {
    server: ServerTask,
    database: Database,
    tasks: Vec<JoinHandle<()>>,
}

impl BoundService {
    pub fn new(server: ServerTask, database: Database) -> Self {
        Self {
            server,
            database,
            tasks: Vec::new(),
        }
    }

    /// Tasks that watch the same stop token as the server; [`Self::run_until_stopped`] waits for
    /// them before it closes the database they use.
    pub fn with_tasks(mut self, tasks: Vec<JoinHandle<()>>) -> Self {
        self.tasks.extend(tasks);
        self
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// Serves until the stop token is cancelled and the drain finishes (or its deadline passes),
    /// then waits for the background tasks and closes the database.
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        let served = self.server.run().await;
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a background task failed");
            }
        }
        self.database.close().await;
        served
    }
}
