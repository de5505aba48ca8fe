//! Clients of the three backend services, and what every call to them shares.
//!
//! Each client is built once with a [`DnsDiscover`] fed from the live configuration, so editing
//! `[account.client] hostport` re-points new calls while calls in flight finish on their old
//! connections. Every call:
//!
//! - carries the caller's token and the request id (gRPC metadata / Thrift TTHeader metainfo);
//! - has a deadline: the service's `timeout_ms`, capped by what is left of the request's budget;
//! - if it is an idempotent read and failed transiently (unavailable, deadline), is tried again
//!   at most `read_retries` more times while budget and the retry budget last; writes never are;
//! - is counted and timed in the metrics, by service, method and outcome.

mod account;
mod grpc;
mod payment;
mod probe;
mod warehouse;

use std::{
    cell::RefCell,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use metainfo::{METAINFO, MetaInfo};

use platform::{
    discovery::DnsDiscover, rpc_metadata::CallMetadata, shutdown::CancellationToken, trace_context,
};
use tokio::{sync::watch, time::Instant};
use tracing::Instrument;

pub use account::{AccountBackend, NewAccount, ProfileUpdate};
pub use payment::{PaymentBackend, PaymentChange};
pub use warehouse::WarehouseBackend;

use crate::{
    configuration::{BackendConfig, GatewayConfig},
    errors::{BackendError, Service},
};

/// The gRPC service names the health checks ask about.
pub const WAREHOUSE_SERVICE: &str = "warehouse.WarehouseService";
pub const PAYMENT_SERVICE: &str = "payment.PaymentService";

/// The three backends.
#[derive(Clone)]
pub struct Backends {
    pub account: AccountBackend,
    pub warehouse: WarehouseBackend,
    pub payment: PaymentBackend,
}

impl Backends {
    /// Resolves every backend's addresses once and starts following the configuration.
    pub async fn start(config: watch::Receiver<GatewayConfig>, stop: CancellationToken) -> Self {
        let refresh = Duration::from_secs(config.borrow().discovery.refresh_seconds.max(1));
        let link = |service, select| Link::start(service, select, config.clone(), refresh, &stop);
        let (account, warehouse, payment) = tokio::join!(
            link(Service::Account, |c: &GatewayConfig| &c.account),
            link(Service::Warehouse, |c: &GatewayConfig| &c.warehouse),
            link(Service::Payment, |c: &GatewayConfig| &c.payment),
        );
        Self {
            account: AccountBackend::new(account),
            warehouse: WarehouseBackend::new(warehouse),
            payment: PaymentBackend::new(payment),
        }
    }
}

/// What one REST request hands to every backend call it makes.
#[derive(Debug, Clone)]
pub struct Call {
    /// The token and request id the call carries on.
    pub metadata: CallMetadata,
    /// When the request's budget runs out.
    pub deadline: Instant,
}

impl Call {
    pub fn new(token: Option<String>, request_id: String, budget: Duration) -> Self {
        Self {
            metadata: CallMetadata {
                token,
                request_id: Some(request_id),
            },
            deadline: Instant::now() + budget,
        }
    }

    /// The same request, speaking with another token (the gateway's own, for credential checks).
    pub fn with_token(&self, token: String) -> Self {
        let mut call = self.clone();
        call.metadata.token = Some(token);
        call
    }
}

/// Whether a call may be repeated after a failure that leaves its effect unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    Read,
    Write,
}

/// Everything a backend client shares: its service, live settings, discovery and retry budget.
#[derive(Clone)]
pub(crate) struct Link {
    service: Service,
    config: watch::Receiver<GatewayConfig>,
    select: fn(&GatewayConfig) -> &BackendConfig,
    pub(crate) discover: DnsDiscover,
    retry_budget: Arc<RetryBudget>,
}

impl Link {
    async fn start(
        service: Service,
        select: fn(&GatewayConfig) -> &BackendConfig,
        config: watch::Receiver<GatewayConfig>,
        refresh: Duration,
        stop: &CancellationToken,
    ) -> Self {
        let hostports = follow_hostports(config.clone(), select, stop.clone());
        let discover = DnsDiscover::start(hostports, refresh, stop.clone()).await;
        Self {
            service,
            config,
            select,
            discover,
            retry_budget: Arc::new(RetryBudget::default()),
        }
    }

    fn rpc_timeout(&self) -> Duration {
        (self.select)(&self.config.borrow()).client.timeout()
    }

    /// What a client gets to open a connection: the call's timeout, at most a second.
    fn connect_timeout(&self) -> Duration {
        self.rpc_timeout().min(Duration::from_secs(1))
    }

    fn read_retries(&self) -> u32 {
        self.config.borrow().request.read_retries
    }

    /// Runs `attempt` with a deadline, retrying reads as the module documentation says.
    /// `attempt` gets the deadline of the try, to pass on to the service where the protocol can.
    pub(crate) async fn invoke<T, F, Fut>(
        &self,
        method: &'static str,
        call: &Call,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T, BackendError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        self.retry_budget.deposit();
        let mut retries_left = match idempotency {
            Idempotency::Read => self.read_retries(),
            Idempotency::Write => 0,
        };
        let mut backoff = Duration::from_millis(20);
        loop {
            let outcome = self.try_once(method, call, &mut attempt).await;
            let retry = match &outcome {
                Err(error) if error.is_transient() && retries_left > 0 => {
                    let left = call.deadline.saturating_duration_since(Instant::now());
                    left > backoff && self.retry_budget.withdraw()
                }
                _ => false,
            };
            if !retry {
                return outcome;
            }
            retries_left -= 1;
            tracing::debug!(service = %self.service, method, "retrying a read");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    async fn try_once<T, F, Fut>(
        &self,
        method: &'static str,
        call: &Call,
        attempt: &mut F,
    ) -> Result<T, BackendError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let started = Instant::now();
        let left = call.deadline.saturating_duration_since(started);
        let outcome = if left.is_zero() {
            Err(BackendError::deadline(self.service))
        } else if self.discover.addresses().is_empty() {
            // Volo's balancer would report an empty list as an internal error; it is an outage.
            Err(BackendError::unavailable(
                self.service,
                "no backend address",
            ))
        } else {
            let deadline = self.rpc_timeout().min(left);
            // The attempt builds its request (with the trace context) inside the client span.
            let span =
                trace_context::client_span(self.service.protocol(), self.service.name(), method);
            let attempt = span.in_scope(|| attempt(deadline)).instrument(span);
            match tokio::time::timeout(deadline, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => Err(BackendError::deadline(self.service)),
            }
        };
        crate::metrics::backend_call(self.service, method, &outcome, started.elapsed());
        outcome
    }

    /// Runs one gRPC call that tells the server how long the caller will wait
    /// (`grpc-timeout`), classifying a failure with what the probe saw below the balancer.
    ///
    /// Volo's client takes a per-call timeout from the task's metainfo: setting it there keeps
    /// the shared client as it is, where a per-call option would clone its whole service stack
    /// for every call.
    pub(crate) async fn grpc<T, Fut>(
        &self,
        deadline: Duration,
        call: Fut,
    ) -> Result<T, BackendError>
    where
        Fut: Future<Output = Result<volo_grpc::Response<T>, volo_grpc::Status>>,
    {
        // Volo's call futures are kilobytes large, and every wrapper below (the metainfo scope,
        // the probe, the deadline) would move one again: a pointer moves instead.
        let call = Box::pin(call);
        let mut metainfo = MetaInfo::new();
        metainfo.insert(deadline);
        let call = METAINFO.scope(RefCell::new(metainfo), call);
        let (outcome, observed) = probe::observe(call).await;
        outcome
            .map(volo_grpc::Response::into_inner)
            .map_err(|status| match observed {
                Some(kind) => BackendError::new(self.service, kind),
                None => BackendError::from_grpc(self.service, &status),
            })
    }

    /// Runs one Thrift call with the request's metadata in its TTHeader; a declared exception
    /// becomes the matching [`crate::errors::BackendErrorKind`].
    pub(crate) async fn thrift<T, E, Fut>(
        &self,
        metadata: &CallMetadata,
        call: Fut,
    ) -> Result<T, BackendError>
    where
        Fut: Future<Output = Result<volo_thrift::MaybeException<T, E>, volo_thrift::ClientError>>,
        E: Into<crate::errors::BackendErrorKind>,
    {
        // As in `grpc`: move a pointer, not the kilobytes of Volo's call future.
        let call = Box::pin(call);
        let (outcome, observed) = probe::observe(metadata.thrift_call(call)).await;
        match outcome {
            Ok(volo_thrift::MaybeException::Ok(value)) => Ok(value),
            Ok(volo_thrift::MaybeException::Exception(exception)) => {
                Err(BackendError::new(self.service, exception.into()))
            }
            Err(error) => Err(match observed {
                Some(kind) => BackendError::new(self.service, kind),
                None => BackendError::from_thrift(self.service, &error),
            }),
        }
    }

    /// Whether the service answered a health check within its timeout.
    pub(crate) async fn healthy<Fut>(&self, check: impl FnOnce() -> Fut) -> bool
    where
        Fut: Future<Output = bool>,
    {
        if self.discover.addresses().is_empty() {
            return false;
        }
        tokio::time::timeout(self.rpc_timeout(), check())
            .await
            .unwrap_or(false)
    }
}

/// The backend's `hostport` list, following the live configuration.
fn follow_hostports(
    mut config: watch::Receiver<GatewayConfig>,
    select: fn(&GatewayConfig) -> &BackendConfig,
    stop: CancellationToken,
) -> watch::Receiver<Vec<String>> {
    let initial = select(&config.borrow_and_update()).client.hostport.clone();
    let (sender, receiver) = watch::channel(initial);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = config.changed() => if changed.is_err() { break },
            }
            let next = select(&config.borrow_and_update()).client.hostport.clone();
            sender.send_if_modified(|current| {
                let changed = *current != next;
                if changed {
                    tracing::info!(hostport = ?next, "backend hostport list changed");
                    *current = next;
                }
                changed
            });
        }
    });
    receiver
}

/// Caps retries at a fraction of calls, so a struggling backend is not hit with three times the
/// traffic: each call earns a fifth of a retry, each retry spends one, and unused retries
/// accumulate up to a small reserve.
#[derive(Debug)]
struct RetryBudget {
    balance: Mutex<f64>,
}

const RETRY_RATIO: f64 = 0.2;
const RETRY_RESERVE: f64 = 10.0;

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            balance: Mutex::new(RETRY_RESERVE),
        }
    }
}

impl RetryBudget {
    fn deposit(&self) {
        if let Ok(mut balance) = self.balance.lock() {
            *balance = (*balance + RETRY_RATIO).min(RETRY_RESERVE);
        }
    }

    fn withdraw(&self) -> bool {
        match self.balance.lock() {
            Ok(mut balance) if *balance >= 1.0 => {
                *balance -= 1.0;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::errors::BackendErrorKind;

    async fn link(config: GatewayConfig) -> Link {
        // The sender may go: a closed channel keeps its last value, which is all these tests need.
        let (_, receiver) = watch::channel(config);
        Link::start(
            Service::Warehouse,
            |c| &c.warehouse,
            receiver,
            Duration::from_secs(3600),
            &CancellationToken::new(),
        )
        .await
    }

    fn config_with(hostport: &str, timeout_ms: u64) -> GatewayConfig {
        let mut config = GatewayConfig::default();
        config.warehouse.client.hostport = vec![hostport.into()];
        config.warehouse.client.timeout_ms = timeout_ms;
        config
    }

    fn call(budget_ms: u64) -> Call {
        Call::new(None, "test".into(), Duration::from_millis(budget_ms))
    }

    #[tokio::test]
    async fn reads_are_retried_twice_at_most_and_writes_never() {
        let link = link(config_with("127.0.0.1:9", 1_000)).await;
        for (idempotency, expected) in [(Idempotency::Read, 3), (Idempotency::Write, 1)] {
            let attempts = AtomicU32::new(0);
            let outcome: Result<(), _> = link
                .invoke("Test", &call(3_000), idempotency, |_| async {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    Err(BackendError::unavailable(Service::Warehouse, "refused"))
                })
                .await;
            assert!(outcome.is_err());
            assert_eq!(attempts.load(Ordering::SeqCst), expected, "{idempotency:?}");
        }
    }

    #[tokio::test]
    async fn business_failures_are_not_retried() {
        let link = link(config_with("127.0.0.1:9", 1_000)).await;
        let attempts = AtomicU32::new(0);
        let outcome: Result<(), _> = link
            .invoke("Test", &call(3_000), Idempotency::Read, |_| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err(BackendError::new(
                    Service::Warehouse,
                    BackendErrorKind::NotFound("no".into()),
                ))
            })
            .await;
        assert!(matches!(
            outcome.map_err(|e| e.kind),
            Err(BackendErrorKind::NotFound(_))
        ));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn each_try_gets_the_rpc_timeout_capped_by_the_budget_and_then_504() {
        let link = link(config_with("127.0.0.1:9", 200)).await;
        let seen = Mutex::new(Vec::new());
        let started = std::time::Instant::now();
        let outcome: Result<(), _> = link
            .invoke("Test", &call(500), Idempotency::Read, |deadline| {
                if let Ok(mut seen) = seen.lock() {
                    seen.push(deadline);
                }
                std::future::pending()
            })
            .await;
        let took = started.elapsed();
        assert_eq!(
            outcome.map_err(|e| e.kind),
            Err(BackendErrorKind::DeadlineExceeded)
        );
        assert!(took < Duration::from_millis(900), "took {took:?}");
        let seen = seen.into_inner().expect("lock");
        assert!(seen.len() >= 2, "{seen:?}");
        assert_eq!(seen[0], Duration::from_millis(200));
        assert!(seen.iter().all(|d| *d <= Duration::from_millis(200)));
    }

    #[tokio::test]
    async fn no_configured_address_is_a_fast_unavailable() {
        let mut config = GatewayConfig::default();
        config.warehouse.client.hostport.clear();
        let link = link(config).await;
        let started = std::time::Instant::now();
        let outcome: Result<(), _> = link
            .invoke("Test", &call(3_000), Idempotency::Read, |_| async {
                Ok(())
            })
            .await;
        assert!(matches!(
            outcome.map_err(|e| e.kind),
            Err(BackendErrorKind::Unavailable(_))
        ));
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn the_retry_budget_runs_dry_and_refills_with_traffic() {
        let budget = RetryBudget::default();
        let mut granted = 0;
        while budget.withdraw() {
            granted += 1;
        }
        assert_eq!(granted, RETRY_RESERVE as i32);
        for _ in 0..5 {
            budget.deposit();
        }
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
    }
}
