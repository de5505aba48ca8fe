//! Prometheus metrics: the process-wide recorder every program reports into, the series all
//! programs share, and the metrics listener that serves them apart from the public port.
//!
//! Every series carries `program` (account, warehouse, payment, gateway), so the launcher, which
//! runs all four in one process, serves them from one listener without mixing them up.
//!
//! Shared series (each program's own are documented where they are recorded):
//! - `rpc_server_requests_total{program,method,code}` and
//!   `rpc_server_duration_seconds{program,method}`: calls served (gRPC status code name, or
//!   `ok` / `error` for Thrift);
//! - `rpc_client_requests_total{program,service,method,outcome}` and
//!   `rpc_client_duration_seconds{program,service,method}`: calls made;
//! - `db_pool_connections{program}`, `db_pool_idle_connections{program}` (at scrape time) and
//!   `db_write_wait_seconds{program}`: how long a write waited for its turn and connection;
//! - `config_reloads_total{outcome}` (`accepted`, `refused`);
//! - `token_verification_failures_total{reason}`.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::SharedString;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    connection_watch::{Connections, Silence},
    serve::{BindError, StoppableIncoming, bind, local_address},
};

/// Histogram buckets, in seconds: from a cached read (a millisecond) to a stuck call.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Scrapers at once; one more connection is closed at once.
const MAX_CONNECTIONS: usize = 16;
/// A scraper that sends nothing for this long is disconnected.
const SILENCE: Duration = Duration::from_secs(10);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// Gauges read at scrape time (pool sizes): each refreshes its own values.
static SCRAPE_HOOKS: Mutex<Vec<Box<dyn Fn() + Send>>> = Mutex::new(Vec::new());

/// The process-wide recorder, installed on first use. Everything `metrics::counter!` and friends
/// record anywhere in the process lands here.
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; metrics stay empty");
            }
            // Histograms keep every sample until they are folded into their buckets, which only
            // a render or an upkeep does: without a scraper, memory would grow with traffic.
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = started {
                tracing::warn!(%error, "cannot start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// Runs `refresh` before every scrape (for values cheaper to read than to track).
pub fn on_scrape(refresh: impl Fn() + Send + 'static) {
    recorder();
    if let Ok(mut hooks) = SCRAPE_HOOKS.lock() {
        hooks.push(Box::new(refresh));
    }
}

/// Every series in Prometheus's text format.
pub fn render() -> String {
    let handle = recorder();
    if let Ok(hooks) = SCRAPE_HOOKS.lock() {
        for refresh in hooks.iter() {
            refresh();
        }
    }
    handle.render()
}

/// Records one call served.
pub fn rpc_served(
    program: impl Into<SharedString>,
    method: String,
    code: &'static str,
    elapsed: Duration,
) {
    let program = program.into();
    metrics::counter!(
        "rpc_server_requests_total",
        "program" => program.clone(), "method" => method.clone(), "code" => code,
    )
    .increment(1);
    metrics::histogram!(
        "rpc_server_duration_seconds",
        "program" => program, "method" => method,
    )
    .record(elapsed.as_secs_f64());
}

/// Records one call made to `service`.
pub fn rpc_made(
    program: &'static str,
    service: &'static str,
    method: &'static str,
    outcome: &'static str,
    elapsed: Duration,
) {
    metrics::counter!(
        "rpc_client_requests_total",
        "program" => program, "service" => service, "method" => method, "outcome" => outcome,
    )
    .increment(1);
    metrics::histogram!(
        "rpc_client_duration_seconds",
        "program" => program, "service" => service, "method" => method,
    )
    .record(elapsed.as_secs_f64());
}

/// The running metrics listener.
pub struct MetricsServer {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `listen` and serves `GET /metrics` there until `stop` is cancelled.
    pub async fn start(listen: &str, stop: CancellationToken) -> Result<Self, BindError> {
        let listener: TcpListener = bind(listen).await?;
        let address = local_address(&listener, listen)?;
        recorder();
        let task = tokio::spawn(serve(StoppableIncoming::new(listener, stop)));
        Ok(Self { address, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Waits until the listener has stopped (after `stop`).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

async fn serve(mut incoming: StoppableIncoming) {
    let connections = Connections::new(
        MAX_CONNECTIONS,
        Silence::from_millis(SILENCE.as_millis() as u64, SILENCE.as_millis() as u64),
    );
    let (drain, draining) = watch::channel(());
    while let Some((stream, _)) = incoming.accept_tcp().await {
        let Some(watch) = connections.admit() else {
            continue;
        };
        let calls = watch.calls();
        let stream = watch.wrap(stream);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let _call = calls.call_started();
            std::future::ready(Ok::<_, Infallible>(answer(&request)))
        });
        let draining = draining.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(SILENCE)
                .serve_connection(TokioIo::new(stream), service);
            watch.drive(connection, draining).await;
        });
    }
    drop(draining);
    let _ = drain.send(());
    drain.closed().await;
}

fn answer(request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(render()),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"GET only\n"),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"metrics are at /metrics\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
