//! `payment.PaymentService` on the wire: checks the caller's token, turns wire messages into
//! domain values (every validation failure reported at once), calls the use cases, and maps
//! [`PaymentError`] to gRPC statuses (the only place that does).

use std::{future::Future, sync::Arc};

use platform::{
    rpc_metadata::{AuthError, CallMetadata},
    tokens::TokenVerifier,
};
use rpc_idl::{
    google::protobuf::Timestamp,
    payment::{
        self as wire, ChangePaymentRequest, GetPaymentRequest, GetWalletRequest, PaymentService,
        SettleRequest,
    },
};
use tracing::Instrument;
use volo_grpc::{Request, Response, Status};

use crate::{
    domain::{
        FieldErrors, IdempotencyKey, PayState, Payment, PurchaseInput, Settlement, Wallet,
        parse_pay_id,
    },
    payments::{PaymentError, Payments},
    store::StoreError,
};

pub struct PaymentRpc {
    payments: Arc<Payments>,
    verifier: TokenVerifier,
}

impl PaymentRpc {
    pub fn new(payments: Arc<Payments>, verifier: TokenVerifier) -> Self {
        Self { payments, verifier }
    }

    /// The account the verified token speaks for. Service tokens have none and are refused:
    /// every method acts for a user.
    fn account_id(&self, meta: &CallMetadata) -> Result<i64, Unauthorized> {
        let caller = meta
            .require_caller(&self.verifier)
            .map_err(|error| match error {
                AuthError::Missing => Unauthorized::NoToken,
                AuthError::Invalid(error) => Unauthorized::BadToken(error.to_string()),
            })?;
        caller.account_id.ok_or(Unauthorized::NotAUser)
    }
}

/// Why a call is refused before it reaches the use cases.
#[derive(Debug)]
enum Unauthorized {
    NoToken,
    BadToken(String),
    NotAUser,
}

impl From<Unauthorized> for Status {
    fn from(refusal: Unauthorized) -> Self {
        match refusal {
            Unauthorized::NoToken => Status::unauthenticated("authentication required"),
            Unauthorized::BadToken(why) => Status::unauthenticated(why),
            Unauthorized::NotAUser => Status::permission_denied("a user's token is required"),
        }
    }
}

/// Runs one RPC inside a span carrying its name and request id.
async fn traced<T>(
    method: &'static str,
    meta: &CallMetadata,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<Response<T>, Status> {
    let span = tracing::info_span!(
        "rpc",
        method,
        request_id = meta.request_id.as_deref().unwrap_or("")
    );
    call.instrument(span).await.map(Response::new)
}

impl PaymentService for PaymentRpc {
    async fn settle(&self, req: Request<SettleRequest>) -> Result<Response<wire::Payment>, Status> {
        let meta = CallMetadata::from_grpc(&req);
        traced("Settle", &meta, async {
            let account_id = self.account_id(&meta)?;
            let req = req.into_inner();
            let lines: Vec<(i64, i64)> = req
                .items
                .iter()
                .map(|item| (item.product_id, item.amount))
                .collect();
            let purchase = req.purchase.map(|p| PurchaseInput {
                name: p.name.to_string(),
                telephone: p.telephone.to_string(),
                location: p.location.to_string(),
                pay: p.pay.to_string(),
                delivery: p.delivery.to_string(),
            });
            let mut errors = FieldErrors::default();
            let settlement = Settlement::parse(&lines, purchase)
                .map_err(|e| errors.extend(e))
                .ok();
            let key = IdempotencyKey::parse(&req.idempotency_key)
                .map_err(|e| errors.extend(e))
                .ok()
                .flatten();
            let Some(settlement) = settlement.filter(|_| errors.is_empty()) else {
                return Err(to_status(PaymentError::Invalid(errors)));
            };
            self.payments
                .settle(account_id, settlement, key, meta.request_id.as_deref())
                .await
                .map(|payment| to_wire(&payment))
                .map_err(to_status)
        })
        .await
    }

    async fn pay(
        &self,
        req: Request<ChangePaymentRequest>,
    ) -> Result<Response<wire::Payment>, Status> {
        let meta = CallMetadata::from_grpc(&req);
        traced("Pay", &meta, async {
            let account_id = self.account_id(&meta)?;
            let (pay_id, key) = change_request(req.into_inner()).map_err(to_status)?;
            self.payments
                .pay(account_id, &pay_id, key)
                .await
                .map(|payment| to_wire(&payment))
                .map_err(to_status)
        })
        .await
    }

    async fn cancel(
        &self,
        req: Request<ChangePaymentRequest>,
    ) -> Result<Response<wire::Payment>, Status> {
        let meta = CallMetadata::from_grpc(&req);
        traced("Cancel", &meta, async {
            let account_id = self.account_id(&meta)?;
            let (pay_id, key) = change_request(req.into_inner()).map_err(to_status)?;
            self.payments
                .cancel(account_id, &pay_id, key)
                .await
                .map(|payment| to_wire(&payment))
                .map_err(to_status)
        })
        .await
    }

    async fn get_payment(
        &self,
        req: Request<GetPaymentRequest>,
    ) -> Result<Response<wire::Payment>, Status> {
        let meta = CallMetadata::from_grpc(&req);
        traced("GetPayment", &meta, async {
            let account_id = self.account_id(&meta)?;
            let pay_id = parse_pay_id(&req.get_ref().pay_id)
                .map_err(|e| to_status(PaymentError::Invalid(e)))?;
            self.payments
                .payment(account_id, &pay_id)
                .await
                .map(|payment| to_wire(&payment))
                .map_err(to_status)
        })
        .await
    }

    async fn get_wallet(
        &self,
        req: Request<GetWalletRequest>,
    ) -> Result<Response<wire::Wallet>, Status> {
        let meta = CallMetadata::from_grpc(&req);
        traced("GetWallet", &meta, async {
            let account_id = self.account_id(&meta)?;
            self.payments
                .wallet(account_id)
                .await
                .map(|wallet| wallet_to_wire(&wallet))
                .map_err(to_status)
        })
        .await
    }
}

fn change_request(
    req: ChangePaymentRequest,
) -> Result<(String, Option<IdempotencyKey>), PaymentError> {
    let mut errors = FieldErrors::default();
    let pay_id = parse_pay_id(&req.pay_id).map_err(|e| errors.extend(e)).ok();
    let key = IdempotencyKey::parse(&req.idempotency_key)
        .map_err(|e| errors.extend(e))
        .ok()
        .flatten();
    match pay_id {
        Some(pay_id) if errors.is_empty() => Ok((pay_id, key)),
        _ => Err(PaymentError::Invalid(errors)),
    }
}

/// The one place payment failures become statuses (see the header of payment.proto).
fn to_status(error: PaymentError) -> Status {
    match error {
        PaymentError::Invalid(errors) => platform::grpc_error_details::invalid_argument(&errors),
        e @ (PaymentError::PaymentNotFound(_)
        | PaymentError::ProductNotFound(_)
        | PaymentError::ProductGone(_)) => Status::not_found(e.to_string()),
        e @ (PaymentError::InsufficientStock(_) | PaymentError::InsufficientBalance) => {
            Status::failed_precondition(e.to_string())
        }
        e @ PaymentError::NotWaiting { .. } => Status::aborted(e.to_string()),
        e @ PaymentError::NotOwner => Status::permission_denied(e.to_string()),
        e @ PaymentError::KeyReused => Status::invalid_argument(e.to_string()),
        PaymentError::WarehouseUnavailable(message) => {
            tracing::warn!(error = %message, "warehouse unavailable");
            Status::unavailable(message)
        }
        e @ PaymentError::WarehouseDeadline => {
            tracing::warn!("warehouse deadline exceeded");
            Status::deadline_exceeded(e.to_string())
        }
        PaymentError::Storage(error) => storage_status(&error),
        PaymentError::Internal(message) => {
            tracing::error!(error = %message, "internal error");
            Status::internal("internal error")
        }
    }
}

fn storage_status(error: &StoreError) -> Status {
    if matches!(error, StoreError::Sql(sql) if sql.is_unavailable()) {
        tracing::warn!(%error, "database unavailable");
        Status::unavailable("the payment database is unavailable")
    } else {
        tracing::error!(%error, "database error");
        Status::internal("internal error")
    }
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1_000),
        // In 0..1_000_000_000, so the cast cannot truncate.
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

fn state_to_wire(state: PayState) -> wire::PayState {
    match state {
        PayState::Waiting => wire::PayState::WAITING,
        PayState::Cancel => wire::PayState::CANCEL,
        PayState::Payed => wire::PayState::PAYED,
        PayState::Timeout => wire::PayState::TIMEOUT,
    }
}

fn to_wire(payment: &Payment) -> wire::Payment {
    wire::Payment {
        id: payment.id,
        pay_id: payment.pay_id.clone().into(),
        create_time: Some(timestamp(payment.created_ms)),
        total_price_cents: payment.total_cents,
        expires_millis: payment.window_ms(),
        payment_link: payment.payment_link().into(),
        pay_state: state_to_wire(payment.state),
        account_id: payment.account_id,
        expire_time: Some(timestamp(payment.expires_ms)),
        items: payment
            .items
            .iter()
            .map(|item| wire::PaymentItem {
                product_id: item.product_id,
                amount: item.amount,
                price_cents: item.price_cents,
            })
            .collect(),
    }
}

fn wallet_to_wire(wallet: &Wallet) -> wire::Wallet {
    wire::Wallet {
        id: wallet.id,
        account_id: wallet.account_id,
        balance_cents: wallet.balance_cents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::sql::SqlError;

    #[test]
    fn timestamps_split_milliseconds_exactly() {
        let t = timestamp(1_700_000_000_123);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        let before_epoch = timestamp(-1);
        assert_eq!(
            (before_epoch.seconds, before_epoch.nanos),
            (-1, 999_000_000)
        );
    }

    #[test]
    fn errors_map_to_the_documented_statuses() {
        use volo_grpc::Code;
        let cases = [
            (
                PaymentError::Invalid(FieldErrors::single("items", "must not be empty")),
                Code::InvalidArgument,
            ),
            (PaymentError::PaymentNotFound("x".into()), Code::NotFound),
            (PaymentError::ProductNotFound(4), Code::NotFound),
            (PaymentError::InsufficientBalance, Code::FailedPrecondition),
            (
                PaymentError::InsufficientStock("product 4: 1 left".into()),
                Code::FailedPrecondition,
            ),
            (
                PaymentError::NotWaiting {
                    pay_id: "x".into(),
                    state: PayState::Timeout,
                },
                Code::Aborted,
            ),
            (PaymentError::NotOwner, Code::PermissionDenied),
            (
                PaymentError::WarehouseUnavailable("down".into()),
                Code::Unavailable,
            ),
            (PaymentError::WarehouseDeadline, Code::DeadlineExceeded),
            (
                PaymentError::Storage(StoreError::Sql(SqlError::Unavailable("busy".into()))),
                Code::Unavailable,
            ),
            (PaymentError::Internal("bug".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            assert_eq!(to_status(error).code(), code, "{text}");
        }
        let aborted = to_status(PaymentError::NotWaiting {
            pay_id: "p".into(),
            state: PayState::Payed,
        });
        assert!(aborted.message().contains("PAYED"), "{}", aborted.message());
        assert_eq!(
            to_status(PaymentError::InsufficientBalance).message(),
            "insufficient balance"
        );
    }
}
