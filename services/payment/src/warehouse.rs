//! The warehouse as the payment service sees it: prices, and reservations by payment id.
//!
//! Calls go over volo-grpc to every address DNS discovery finds for `[warehouse] hostport`, each
//! with the configured deadline and the payment service's own SERVICE token. Statuses become
//! [`WarehouseError`]s here, once; the rest of the service never sees a gRPC status from the
//! warehouse.

use std::{sync::Arc, time::Duration};

use platform::{discovery::DnsDiscover, rpc_metadata::CallMetadata};
use rpc_idl::warehouse::{
    GetProductRequest, ReservationItem, ReservationRequest, ReserveStockRequest,
    WarehouseServiceClient, WarehouseServiceClientBuilder,
};
use volo::loadbalance::random::WeightedRandomBalance;
use volo_grpc::{Code, Status};

use crate::service_token::{ServiceTokenError, ServiceTokenSource};

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
    pub fn definitely_not_done(&self) -> bool {
        match self {
            Self::NotFound(_)
            | Self::Refused(_)
            | Self::Rejected(_)
            | Self::Identity(_)
            | Self::Token(_) => true,
            Self::Deadline | Self::Unavailable(_) => false,
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
    tokens: Arc<dyn ServiceTokenSource>,
}

impl WarehouseClient {
    /// Calls spread over `discover`'s addresses, each with deadline `rpc_timeout`.
    pub fn new(
        discover: DnsDiscover,
        rpc_timeout: Duration,
        tokens: Arc<dyn ServiceTokenSource>,
    ) -> Self {
        let client = WarehouseServiceClientBuilder::new("warehouse")
            .load_balance(WeightedRandomBalance::<()>::new())
            .discover(discover)
            .rpc_timeout(Some(rpc_timeout))
            .connect_timeout(rpc_timeout)
            .caller_name("payment")
            .build();
        Self { client, tokens }
    }

    /// The unit price of a product, in cents.
    pub async fn price_cents(
        &self,
        product_id: i64,
        request_id: Option<&str>,
    ) -> Result<i64, WarehouseError> {
        let (meta, token) = self.metadata(request_id).await?;
        let answer = self
            .client
            .get_product(meta.grpc_request(GetProductRequest { id: product_id }))
            .await;
        Ok(self.check(answer, &token)?.price_cents)
    }

    /// Reserves `lines` (product id, units) for `pay_id`, all or nothing.
    pub async fn reserve(
        &self,
        pay_id: &str,
        lines: &[(i64, i64)],
        request_id: Option<&str>,
    ) -> Result<(), WarehouseError> {
        let (meta, token) = self.metadata(request_id).await?;
        let request = ReserveStockRequest {
            payment_id: pay_id.to_owned().into(),
            items: lines
                .iter()
                .map(|&(product_id, amount)| ReservationItem { product_id, amount })
                .collect(),
        };
        let answer = self.client.reserve_stock(meta.grpc_request(request)).await;
        self.check(answer, &token).map(drop)
    }

    /// The reserved units of `pay_id` leave for good. Idempotent.
    pub async fn commit(
        &self,
        pay_id: &str,
        request_id: Option<&str>,
    ) -> Result<(), WarehouseError> {
        let (meta, token) = self.metadata(request_id).await?;
        let answer = self
            .client
            .commit_reservation(meta.grpc_request(reservation(pay_id)))
            .await;
        self.check(answer, &token).map(drop)
    }

    /// The reserved units of `pay_id` go back on sale. Idempotent.
    pub async fn release(
        &self,
        pay_id: &str,
        request_id: Option<&str>,
    ) -> Result<(), WarehouseError> {
        let (meta, token) = self.metadata(request_id).await?;
        let answer = self
            .client
            .release_reservation(meta.grpc_request(reservation(pay_id)))
            .await;
        self.check(answer, &token).map(drop)
    }

    async fn metadata(
        &self,
        request_id: Option<&str>,
    ) -> Result<(CallMetadata, String), WarehouseError> {
        let token = self.tokens.token().await?;
        let meta = CallMetadata {
            token: Some(token.clone()),
            request_id: request_id.map(str::to_owned),
        };
        Ok((meta, token))
    }

    fn check<T>(
        &self,
        answer: Result<volo_grpc::Response<T>, Status>,
        token: &str,
    ) -> Result<T, WarehouseError> {
        answer
            .map(volo_grpc::Response::into_inner)
            .map_err(|status| {
                let error = WarehouseError::from_status(&status);
                if matches!(error, WarehouseError::Identity(_)) {
                    self.tokens.invalidate(token);
                }
                error
            })
    }
}

fn reservation(pay_id: &str) -> ReservationRequest {
    ReservationRequest {
        payment_id: pay_id.to_owned().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
