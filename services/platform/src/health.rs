//! The standard gRPC health service (`grpc.health.v1.Health`), which Kubernetes' native `grpc:`
//! probes and stock health clients call. The server reports SERVING until shutdown begins, then
//! NOT_SERVING, so readiness fails while it drains.

use std::sync::Arc;

use futures::StreamExt;
use rpc_idl::grpc::health::v1::{
    Health, HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
};
use tokio::sync::watch;
use volo_grpc::{BoxStream, Request, Response, Status};

/// Flips the reported status. Dropping it ends every open `Watch` stream.
pub struct HealthReporter {
    status: watch::Sender<ServingStatus>,
}

impl HealthReporter {
    pub fn set_serving(&self) {
        self.status.send_replace(ServingStatus::SERVING);
    }

    pub fn set_not_serving(&self) {
        self.status.send_replace(ServingStatus::NOT_SERVING);
    }
}

/// The `Health` implementation to add to a volo-grpc server.
#[derive(Clone)]
pub struct HealthService {
    status: watch::Receiver<ServingStatus>,
    /// Fully qualified service names this server hosts; "" (the whole server) is always known.
    services: Arc<[String]>,
}

/// A reporter (initially SERVING) and the service it controls.
pub fn health_service(services: &[&str]) -> (HealthReporter, HealthService) {
    let (status, receiver) = watch::channel(ServingStatus::SERVING);
    let services = services.iter().map(|s| s.to_string()).collect();
    (
        HealthReporter { status },
        HealthService {
            status: receiver,
            services,
        },
    )
}

impl HealthService {
    fn knows(&self, service: &str) -> bool {
        service.is_empty() || self.services.iter().any(|s| s == service)
    }
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
            status: *self.status.borrow(),
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
        let mut status = self.status.clone();
        status.mark_changed(); // send the current status first
        let stream = futures::stream::unfold(status, |mut status| async move {
            status.changed().await.ok()?;
            let current = *status.borrow_and_update();
            Some((Ok(HealthCheckResponse { status: current }), status))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
