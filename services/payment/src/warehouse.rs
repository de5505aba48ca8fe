//! The warehouse as the payment service sees it: prices, and reservations by payment id.
//!
//! Calls go over volo-grpc to every address DNS discovery finds for `[warehouse] hostport`, each
//! with the configured deadline and the payment service's own SERVICE token. Statuses become
//! [`WarehouseError`]s here, once; the rest of the service never sees a gRPC status from the
//! warehouse.

use std::collections::BTreeMap;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use platform::{discovery::DnsDiscover, metrics, rpc_metadata::CallMetadata, trace_context};
use rpc_idl::warehouse::{
    GetProductRequest, Reservation, ReservationItem, ReservationRequest, ReservationState,
    ReserveStockRequest, WarehouseServiceClient, WarehouseServiceClientBuilder,
};
use tracing::Instrument;
use volo::loadbalance::random::WeightedRandomBalance;
use volo::net::Address;
use volo_grpc::{Code, Status, client::ClientBuilder};

use crate::{
    service_token::{ServiceTokenError, ServiceTokenSource},
    store::OutboxAction,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarehouseError {
    /// NOT_FOUND: the product, or the reservation, does not exist.
    #[error("{0}")]
    NotFound(String),
    /// FAILED_PRECONDITION: not enough stock (the message names the product), or a reservation
    /// in a state that forbids the call.
    #[error("{0}")]
    Refused(String),
    /// INVALID_ARGUMENT: the warehouse found our request malformed.
    #[error("the warehouse rejected the request: {0}")]
    Rejected(String),
    /// UNAUTHENTICATED or PERMISSION_DENIED: our service identity was not accepted.
    #[error("the warehouse refused the payment service's identity: {0}")]
    Identity(String),
    /// No token could be obtained, so no call was made.
    #[error(transparent)]
    Token(#[from] ServiceTokenError),
    /// The reserve call succeeded but the reservation it returned is in this state, not
    /// RESERVED: the units are not held for the payment, and the warehouse does not behave as
    /// its contract says.
    #[error("the warehouse returned a reservation in state {0}, not RESERVED")]
    NotReserved(String),
    /// DEADLINE_EXCEEDED: the call may or may not have taken effect.
    #[error("the warehouse did not answer within the deadline")]
    Deadline,
    /// Anything else (UNAVAILABLE, connection failures, ...): the outcome is unknown.
    #[error("the warehouse is unavailable: {0}")]
    Unavailable(String),
}

impl WarehouseError {
    /// True when the warehouse definitely did not carry out the call; false when it may have
    /// (the answer was lost), in which case a reservation must be assumed to exist.
    /// The error's kind, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Refused(_) => "refused",
            Self::Rejected(_) => "rejected",
            Self::Identity(_) => "identity",
            Self::Token(_) => "token",
            Self::NotReserved(_) => "not_reserved",
            Self::Deadline => "deadline",
            Self::Unavailable(_) => "unavailable",
        }
    }

    pub fn definitely_not_done(&self) -> bool {
        match self {
            Self::NotFound(_)
            | Self::Refused(_)
            | Self::Rejected(_)
            | Self::Identity(_)
            | Self::Token(_) => true,
            // What a warehouse that breaks its contract holds for the payment is unknown; the
            // settlement's guard releases it (a release is idempotent).
            Self::NotReserved(_) | Self::Deadline | Self::Unavailable(_) => false,
        }
    }

    fn from_status(status: &Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => Self::NotFound(message),
            Code::FailedPrecondition => Self::Refused(message),
            Code::InvalidArgument => Self::Rejected(message),
            Code::Unauthenticated | Code::PermissionDenied => Self::Identity(message),
            Code::DeadlineExceeded => Self::Deadline,
            code => Self::Unavailable(format!("{code:?}: {message}")),
        }
    }
}

/// A client of `warehouse.WarehouseService`. Cheap to share behind an `Arc`.
pub struct WarehouseClient {
    client: WarehouseServiceClient,
    discover: DnsDiscover,
    rpc_timeout: Duration,
    tokens: Arc<dyn ServiceTokenSource>,
}

/// What every warehouse client of the payment service says and waits: its caller name, and
/// `rpc_timeout` for a call and for a connect.
fn with_our_settings<IL, OL, C, LB, Req, Resp>(
    builder: ClientBuilder<IL, OL, C, LB, Req, Resp>,
    rpc_timeout: Duration,
) -> ClientBuilder<IL, OL, C, LB, Req, Resp> {
    builder
        .caller_name("payment")
        .rpc_timeout(Some(rpc_timeout))
        .connect_timeout(rpc_timeout)
}

impl WarehouseClient {
    /// Calls spread over `discover`'s addresses, each with deadline `rpc_timeout`.
    pub fn new(
        discover: DnsDiscover,
        rpc_timeout: Duration,
        tokens: Arc<dyn ServiceTokenSource>,
    ) -> Self {
        let client =
            with_our_settings(WarehouseServiceClientBuilder::new("warehouse"), rpc_timeout)
                .load_balance(WeightedRandomBalance::<()>::new())
                .discover(discover.clone())
                .build();
        Self {
            client,
            discover,
            rpc_timeout,
            tokens,
        }
    }

    /// The unit price of a product, in cents.
    pub async fn price_cents(
        &self,
        product_id: i64,
        request_id: Option<&str>,
    ) -> Result<i64, WarehouseError> {
        let request = GetProductRequest { id: product_id };
        let product = self
            .call_repeatable(
                "GetProduct",
                request_id,
                request,
                async |client, request| client.get_product(request).await,
            )
            .await?;
        Ok(product.price_cents)
    }

    /// Reserves `lines` (product id, units) for `pay_id`, all or nothing. Answers the unit price
    /// (cents) each product was reserved at, by product id; a warehouse that predates recorded
    /// prices answers none.
    pub async fn reserve(
        &self,
        pay_id: &str,
        lines: &[(i64, i64)],
        request_id: Option<&str>,
    ) -> Result<BTreeMap<i64, i64>, WarehouseError> {
        let request = ReserveStockRequest {
            payment_id: pay_id.to_owned().into(),
            items: lines
                .iter()
                .map(|&(product_id, amount)| ReservationItem { product_id, amount })
                .collect(),
        };
        // The warehouse keys reservations by payment id: asking twice reserves once.
        let reservation = self
            .call_repeatable(
                "ReserveStock",
                request_id,
                request,
                async |client, request| client.reserve_stock(request).await,
            )
            .await?;
        require_reserved(&reservation)?;
        Ok(reservation
            .unit_prices
            .iter()
            .map(|price| (price.product_id, price.unit_price_cents))
            .collect())
    }

    /// Carries out an owed `action` on the reservation of `pay_id`: commit (the units leave for
    /// good) or release (they go back on sale). Both are idempotent.
    pub async fn finish(
        &self,
        action: OutboxAction,
        pay_id: &str,
        request_id: Option<&str>,
    ) -> Result<(), WarehouseError> {
        let request = ReservationRequest {
            payment_id: pay_id.to_owned().into(),
        };
        let method = match action {
            OutboxAction::Commit => "CommitReservation",
            OutboxAction::Release => "ReleaseReservation",
        };
        self.call(
            method,
            request_id,
            request,
            &self.client,
            async |client, request| match action {
                OutboxAction::Commit => client.commit_reservation(request).await,
                OutboxAction::Release => client.release_reservation(request).await,
            },
        )
        .await
        .map(drop)
    }

    /// A call the warehouse may safely see twice. When the balancer's pick answered UNAVAILABLE
    /// quickly (a refused or reset connection: a replica that has just gone away, before DNS
    /// discovery drops it), the call goes to each replica in turn until one answers otherwise.
    /// Volo's gRPC balancer makes one pick and does not say which one, so the failed replica may
    /// be asked again; it fails as fast. Only while less than half the
    /// deadline is spent: a settlement's reservation guard allows a little more than two
    /// deadlines for the reserve call.
    async fn call_repeatable<Request, Answer>(
        &self,
        method: &'static str,
        request_id: Option<&str>,
        request: Request,
        rpc: impl AsyncFn(
            &WarehouseServiceClient,
            volo_grpc::Request<Request>,
        ) -> Result<volo_grpc::Response<Answer>, Status>,
    ) -> Result<Answer, WarehouseError>
    where
        Request: Clone,
    {
        let started = Instant::now();
        let mut outcome = self
            .call(method, request_id, request.clone(), &self.client, &rpc)
            .await;
        for address in self.discover.addresses() {
            if !matches!(outcome, Err(WarehouseError::Unavailable(_)))
                || started.elapsed() >= self.rpc_timeout / 2
            {
                break;
            }
            tracing::debug!(%address, "warehouse unavailable; asking another replica");
            let pinned = self.client_of(address.clone());
            outcome = self
                .call(method, request_id, request.clone(), &pinned, &rpc)
                .await;
            if matches!(outcome, Err(WarehouseError::Unavailable(_))) {
                // This replica failed too: out of the balancer's list for a while.
                self.discover.eject(&address);
            }
        }
        outcome
    }

    /// A client of one replica only. Built afresh (with its own connection) on the rare path
    /// that needs it: a per-call address on the shared client would make another kind of client.
    fn client_of(&self, address: Address) -> WarehouseServiceClient {
        with_our_settings(
            WarehouseServiceClientBuilder::new("warehouse"),
            self.rpc_timeout,
        )
        .address(address)
        .build()
    }

    /// Makes one call with the service's token, `request_id` and the trace context in its
    /// metadata, in a client span of its own. A status becomes a [`WarehouseError`]; one that
    /// refuses our identity also drops the cached token, so that the next call fetches a fresh
    /// one.
    async fn call<Request, Answer>(
        &self,
        method: &'static str,
        request_id: Option<&str>,
        request: Request,
        client: &WarehouseServiceClient,
        rpc: impl AsyncFnOnce(
            &WarehouseServiceClient,
            volo_grpc::Request<Request>,
        ) -> Result<volo_grpc::Response<Answer>, Status>,
    ) -> Result<Answer, WarehouseError> {
        let span = trace_context::client_span("grpc", "warehouse.WarehouseService", method);
        let started = Instant::now();
        let outcome = async {
            let token = self.tokens.token().await?;
            let meta = CallMetadata {
                token: Some(token.clone()),
                request_id: request_id.map(str::to_owned),
            };
            rpc(client, meta.grpc_request(request))
                .await
                .map(volo_grpc::Response::into_inner)
                .map_err(|status| {
                    let error = WarehouseError::from_status(&status);
                    if matches!(error, WarehouseError::Identity(_)) {
                        self.tokens.invalidate(&token);
                    }
                    error
                })
        }
        .instrument(span)
        .await;
        let label = outcome
            .as_ref()
            .map_or_else(WarehouseError::label, |_| "ok");
        metrics::rpc_made("payment", "warehouse", method, label, started.elapsed());
        outcome
    }
}

/// A reserve call that succeeds returns the payment's reservation as it is now. A fresh payment
/// id can only come back RESERVED; anything else means the units are not held for this payment.
fn require_reserved(reservation: &Reservation) -> Result<(), WarehouseError> {
    if reservation.state == ReservationState::RESERVED {
        Ok(())
    } else {
        Err(WarehouseError::NotReserved(reservation.state.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_answer_counts_only_when_the_reservation_is_reserved() {
        let answer = |state| Reservation {
            payment_id: "9c1f".into(),
            state,
            items: vec![ReservationItem {
                product_id: 7,
                amount: 1,
            }],
            unit_prices: vec![],
        };
        assert_eq!(
            require_reserved(&answer(ReservationState::RESERVED)),
            Ok(())
        );
        for state in [
            ReservationState::COMMITTED,
            ReservationState::RELEASED,
            ReservationState::RESERVATION_STATE_UNSPECIFIED,
            ReservationState::from(9),
        ] {
            let error = require_reserved(&answer(state)).expect_err("not RESERVED");
            assert_eq!(error, WarehouseError::NotReserved(state.to_string()));
            // The settlement keeps its guard, which releases whatever the warehouse holds.
            assert!(!error.definitely_not_done(), "{state:?}");
        }
    }

    #[test]
    fn statuses_map_to_errors_and_say_whether_the_call_may_have_happened() {
        let cases = [
            (Code::NotFound, true),
            (Code::FailedPrecondition, true),
            (Code::InvalidArgument, true),
            (Code::Unauthenticated, true),
            (Code::PermissionDenied, true),
            (Code::DeadlineExceeded, false),
            (Code::Unavailable, false),
            (Code::Internal, false),
            (Code::Unknown, false),
        ];
        for (code, definite) in cases {
            let error = WarehouseError::from_status(&Status::new(code, "product 7: out of stock"));
            assert_eq!(error.definitely_not_done(), definite, "{code:?}");
        }
        assert_eq!(
            WarehouseError::from_status(&Status::failed_precondition("product 7: out of stock")),
            WarehouseError::Refused("product 7: out of stock".into())
        );
    }
}
