//! The payment service over gRPC (volo-grpc; token and request id in the metadata).

use rpc_idl::payment::{
    ChangePaymentRequest, GetPaymentRequest, GetWalletRequest, Payment, PaymentServiceClient,
    PaymentServiceClientBuilder, SettleRequest, Wallet,
};

use super::{
    Call, Idempotency, Link, PAYMENT_SERVICE,
    grpc::{GrpcBackend, service_client},
};
use crate::errors::BackendError;

/// What to do with a WAITING payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentChange {
    Pay,
    Cancel,
}

/// The payment service's client: [`GrpcBackend`] with the payment service's methods.
pub type PaymentBackend = GrpcBackend<PaymentServiceClient>;

impl PaymentBackend {
    pub(crate) fn new(link: Link) -> Self {
        let client = service_client(&link, PaymentServiceClientBuilder::new("payment")).build();
        Self::from_parts(link, client, "payment", PAYMENT_SERVICE)
    }

    /// Never retried: the payment service's idempotency key, not the gateway, makes repeats
    /// safe, and only the client knows whether it wants one.
    pub async fn settle(
        &self,
        call: &Call,
        request: SettleRequest,
    ) -> Result<Payment, BackendError> {
        self.invoke(
            "Settle",
            call,
            Idempotency::Write,
            request,
            |client, request| client.settle(request),
        )
        .await
    }

    pub async fn change(
        &self,
        call: &Call,
        change: PaymentChange,
        request: ChangePaymentRequest,
    ) -> Result<Payment, BackendError> {
        match change {
            PaymentChange::Pay => {
                self.invoke(
                    "Pay",
                    call,
                    Idempotency::Write,
                    request,
                    |client, request| client.pay(request),
                )
                .await
            }
            PaymentChange::Cancel => {
                self.invoke(
                    "Cancel",
                    call,
                    Idempotency::Write,
                    request,
                    |client, request| client.cancel(request),
                )
                .await
            }
        }
    }

    pub async fn get_payment(&self, call: &Call, pay_id: &str) -> Result<Payment, BackendError> {
        let request = GetPaymentRequest {
            pay_id: pay_id.to_owned().into(),
        };
        self.invoke(
            "GetPayment",
            call,
            Idempotency::Read,
            request,
            |client, request| client.get_payment(request),
        )
        .await
    }

    pub async fn get_wallet(&self, call: &Call) -> Result<Wallet, BackendError> {
        self.invoke(
            "GetWallet",
            call,
            Idempotency::Read,
            GetWalletRequest {},
            |client, request| client.get_wallet(request),
        )
        .await
    }
}
