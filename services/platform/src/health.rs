//! The standard gRPC health service (`grpc.health.v1.Health`), which Kubernetes' native `grpc:`
//! probes and stock health clients call. Two answers:
//!
//! - the named service (`payment.PaymentService`; Kubernetes' readiness probe asks for it) is
//!   SERVING while the server is not draining and its database takes writes, as
//!   [`watch_database`] finds every few seconds: a replica whose writes would fail gets no
//!   traffic;
//! - the whole server (`""`; the liveness probe) is SERVING until shutdown begins, and also
//!   turns NOT_SERVING when an embedded SQLite file has refused writes for several probes in a
//!   row: nothing but a restart frees a lock held inside the process. A shared PostgreSQL
//!   server that is down is not cured by restarting its clients, so it only affects readiness.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use rpc_idl::grpc::health::v1::{
    Health, HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use volo_grpc::{BoxStream, Request, Response, Status};

use crate::database::{Backend, Database};

/// The health service's own name, as reflection lists it.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// What the answers are made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Condition {
    draining: bool,
    /// The last database probe succeeded.
    database_ready: bool,
    /// The database has not been wedged for long enough to call for a restart.
    database_live: bool,
}

impl Condition {
    fn status(&self, service: &str) -> ServingStatus {
        let up = !self.draining
            && if service.is_empty() {
                self.database_live
            } else {
                self.database_ready
            };
        if up {
            ServingStatus::SERVING
        } else {
            ServingStatus::NOT_SERVING
        }
    }
}

/// Changes the reported statuses. Dropping it ends every open `Watch` stream.
pub struct HealthReporter {
    condition: watch::Sender<Condition>,
}

impl HealthReporter {
    /// Shutdown has begun: NOT_SERVING from now on, whatever the database does.
    pub fn set_not_serving(&self) {
        self.condition.send_modify(|c| c.draining = true);
    }

    fn set_database(&self, ready: bool, live: bool) {
        self.condition.send_if_modified(|c| {
            let changed = (c.database_ready, c.database_live) != (ready, live);
            c.database_ready = ready;
            c.database_live = live;
            changed
        });
    }
}

/// The `Health` implementation to add to a volo-grpc server.
#[derive(Clone)]
pub struct HealthService {
    condition: watch::Receiver<Condition>,
    /// Fully qualified service names this server hosts; "" (the whole server) is always known.
    services: Arc<[String]>,
}

/// A reporter (initially SERVING) and the service it controls.
pub fn health_service(services: &[&str]) -> (Arc<HealthReporter>, HealthService) {
    let (condition, receiver) = watch::channel(Condition {
        draining: false,
        database_ready: true,
        database_live: true,
    });
    let services = services.iter().map(|s| s.to_string()).collect();
    (
        Arc::new(HealthReporter { condition }),
        HealthService {
            condition: receiver,
            services,
        },
    )
}

impl HealthService {
    fn knows(&self, service: &str) -> bool {
        service.is_empty() || self.services.iter().any(|s| s == service)
    }
}

/// How often the database is probed, and how long a probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_LIMIT: Duration = Duration::from_secs(2);
/// Failed probes in a row after which an embedded database calls for a restart.
const WEDGED_AFTER: u32 = 3;

/// Probes `database` for writes every few seconds until `stop`, and reports what it finds
/// (see the module documentation).
pub fn watch_database(
    reporter: Arc<HealthReporter>,
    database: Database,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(PROBE_EVERY) => {}
            }
            let writable = database.writable(PROBE_LIMIT).await;
            if writable {
                if failures > 0 {
                    tracing::info!(after = failures, "the database takes writes again");
                }
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
                tracing::warn!(failures, "the database did not take a write in time");
            }
            let live = database.backend() != Backend::Sqlite || failures < WEDGED_AFTER;
            reporter.set_database(writable, live);
        }
    })
}

impl Health for HealthService {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &req.get_ref().service;
        if !self.knows(service) {
            return Err(Status::not_found(format!("unknown service {service:?}")));
        }
        Ok(Response::new(HealthCheckResponse {
            status: self.condition.borrow().status(service),
        }))
    }

    async fn watch(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<BoxStream<'static, Result<HealthCheckResponse, Status>>>, Status> {
        if !self.knows(&req.get_ref().service) {
            let unknown = HealthCheckResponse {
                status: ServingStatus::SERVICE_UNKNOWN,
            };
            let stream =
                futures::stream::once(async move { Ok(unknown) }).chain(futures::stream::pending());
            return Ok(Response::new(Box::pin(stream)));
        }
        let service = req.into_inner().service.to_string();
        let mut condition = self.condition.clone();
        condition.mark_changed(); // send the current status first
        let mut last = None;
        let stream = futures::stream::unfold(condition, move |mut condition| {
            let service = service.clone();
            async move {
                condition.changed().await.ok()?;
                let current = condition.borrow_and_update().status(&service);
                Some((current, condition))
            }
        })
        // Only changes of this service's own status are news.
        .filter(move |status| {
            let new = last != Some(*status);
            last = Some(*status);
            futures::future::ready(new)
        })
        .map(|status| HealthCheckResponse { status })
        .map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}
