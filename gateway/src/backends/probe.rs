//! Sees a call's real failure before Volo's load balancer hides it, and ejects the address that
//! caused it when nobody was there.
//!
//! When a try fails with an error Volo deems retryable (a refused connection, a gRPC
//! `UNAVAILABLE` or `INTERNAL`), its balancer moves on, and once it runs out of addresses it
//! reports only "load balance retry reaches end" (a Thrift application error or a gRPC
//! `UNKNOWN`). That would turn an outage into a 500. This layer sits below the balancer, notes
//! the last such failure in a task-local slot, and [`observe`] hands it to the caller, which
//! classifies the call by what really happened.

use std::cell::RefCell;
use std::future::Future;

use platform::discovery::DnsDiscover;
use volo::{Layer, Service, context::Context as _, net::Address};

use crate::errors::BackendErrorKind;

tokio::task_local! {
    static OBSERVED: RefCell<Option<BackendErrorKind>>;
}

/// Runs a client call and returns its outcome with the failure the probe saw, if any.
pub async fn observe<F: Future>(call: F) -> (F::Output, Option<BackendErrorKind>) {
    OBSERVED
        .scope(RefCell::new(None), async move {
            let outcome = call.await;
            let observed = OBSERVED.with(|slot| slot.borrow_mut().take());
            (outcome, observed)
        })
        .await
}

/// Errors whose kind the probe records: those Volo's balancer would swallow.
pub trait Observable {
    fn swallowed_kind(&self) -> Option<BackendErrorKind>;

    /// The call never reached a server: a refused or reset connection, a failed connect. (A
    /// status the server itself sent, even UNAVAILABLE, is an answer: someone is there.)
    fn nobody_there(&self) -> bool;
}

impl Observable for volo_grpc::Status {
    fn swallowed_kind(&self) -> Option<BackendErrorKind> {
        volo::loadbalance::error::Retryable::retryable(self)
            .then(|| BackendErrorKind::from_grpc(self))
    }

    fn nobody_there(&self) -> bool {
        matches!(
            crate::errors::transport_failure(self),
            Some(BackendErrorKind::Unavailable(_))
        )
    }
}

impl Observable for volo_thrift::ClientError {
    fn swallowed_kind(&self) -> Option<BackendErrorKind> {
        volo::loadbalance::error::Retryable::retryable(self)
            .then(|| BackendErrorKind::from_thrift(self))
    }

    fn nobody_there(&self) -> bool {
        matches!(self, volo_thrift::ClientError::Transport(transport)
            if transport.kind() != std::io::ErrorKind::TimedOut)
    }
}

/// The address the balancer picked for a call, from its client context.
pub trait Callee {
    fn callee_address(&self) -> Option<Address>;
}

impl Callee for volo_grpc::context::ClientContext {
    fn callee_address(&self) -> Option<Address> {
        self.rpc_info().callee().address()
    }
}

impl Callee for volo_thrift::context::ClientContext {
    fn callee_address(&self) -> Option<Address> {
        self.rpc_info().callee().address()
    }
}

impl Callee for () {
    fn callee_address(&self) -> Option<Address> {
        None
    }
}

/// Add with the client builder's `layer_inner`; it ejects dead addresses from `discover`.
#[derive(Clone)]
pub struct ProbeLayer {
    discover: Option<DnsDiscover>,
}

impl ProbeLayer {
    pub fn ejecting_from(discover: DnsDiscover) -> Self {
        Self {
            discover: Some(discover),
        }
    }
}

impl<S> Layer<S> for ProbeLayer {
    type Service = Probe<S>;

    fn layer(self, inner: S) -> Self::Service {
        Probe {
            inner,
            discover: self.discover,
        }
    }
}

#[derive(Clone)]
pub struct Probe<S> {
    inner: S,
    discover: Option<DnsDiscover>,
}

impl<Cx, Req, S> Service<Cx, Req> for Probe<S>
where
    Cx: Callee + Send + 'static,
    Req: Send + 'static,
    S: Service<Cx, Req> + Send + Sync,
    S::Error: Observable,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, cx: &mut Cx, req: Req) -> Result<Self::Response, Self::Error> {
        let outcome = self.inner.call(cx, req).await;
        if let Err(error) = &outcome {
            if let Some(kind) = error.swallowed_kind() {
                // Outside `observe` (health checks) there is no slot, and nothing to tell.
                let _ = OBSERVED.try_with(|slot| *slot.borrow_mut() = Some(kind));
            }
            // Nobody there: the next pick, this call's retry's or the next call's, goes
            // elsewhere.
            if error.nobody_there()
                && let (Some(discover), Some(address)) = (&self.discover, cx.callee_address())
            {
                discover.eject(&address);
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;

    impl Service<(), ()> for Failing {
        type Response = ();
        type Error = volo_grpc::Status;

        async fn call(&self, _: &mut (), _: ()) -> Result<(), volo_grpc::Status> {
            Err(volo_grpc::Status::unavailable("connection refused"))
        }
    }

    #[tokio::test]
    async fn a_swallowed_failure_reaches_the_caller() {
        let probe = ProbeLayer { discover: None }.layer(Failing);
        let (outcome, observed) = observe(async {
            let _ = probe.call(&mut (), ()).await;
            // What the balancer reports instead of the real failure:
            Err::<(), _>(volo_grpc::Status::unknown("load balance retry reaches end"))
        })
        .await;
        assert!(outcome.is_err());
        assert!(matches!(observed, Some(BackendErrorKind::Unavailable(_))));
    }
}
