//! The payment service over gRPC (volo-grpc; token and request id in the metadata).

use std::time::Duration;

use rpc_idl::{
    grpc::health::v1::{
        HealthCheckRequest, HealthClient, HealthClientBuilder, health_check_response::ServingStatus,
    },
    payment::{
        ChangePaymentRequest, GetPaymentRequest, GetWalletRequest, Payment, PaymentServiceClient,
        PaymentServiceClientBuilder, SettleRequest, Wallet,
    },
};

use volo::loadbalance::random::WeightedRandomBalance;

use super::{Call, Idempotency, Link, probe::ProbeLayer};
use crate::errors::BackendError;

/// What to do with a WAITING payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentChange {
    Pay,
    Cancel,
}

#[derive(Clone)]
pub struct PaymentBackend {
    link: Link,
    client: PaymentServiceClient,
    health: HealthClient,
}

impl PaymentBackend {
    pub(crate) fn new(link: Link) -> Self {
        let connect = link.rpc_timeout().min(Duration::from_secs(1));
        let client = PaymentServiceClientBuilder::new("payment")
            .caller_name("gateway")
            .load_balance(WeightedRandomBalance::<()>::new())
            .discover(link.discover.clone())
            .connect_timeout(connect)
            .layer_inner(ProbeLayer)
            .build();
        let health = HealthClientBuilder::new("payment")
            .caller_name("gateway")
            .load_balance(WeightedRandomBalance::<()>::new())
            .discover(link.discover.clone())
            .connect_timeout(connect)
            .build();
        Self {
            link,
            client,
            health,
        }
    }

    /// Never retried: the payment service's idempotency key, not the gateway, makes repeats
    /// safe, and only the client knows whether it wants one.
    pub async fn settle(
        &self,
        call: &Call,
        request: SettleRequest,
    ) -> Result<Payment, BackendError> {
        self.link
            .invoke("Settle", call, Idempotency::Write, |deadline| {
                let request = call.metadata.grpc_request(request.clone());
                self.link.grpc(deadline, self.client.settle(request))
            })
            .await
    }

    pub async fn change(
        &self,
        call: &Call,
        change: PaymentChange,
        request: ChangePaymentRequest,
    ) -> Result<Payment, BackendError> {
        let method = match change {
            PaymentChange::Pay => "Pay",
            PaymentChange::Cancel => "Cancel",
        };
        self.link
            .invoke(method, call, Idempotency::Write, |deadline| {
                let request = call.metadata.grpc_request(request.clone());
                async move {
                    match change {
                        PaymentChange::Pay => {
                            self.link.grpc(deadline, self.client.pay(request)).await
                        }
                        PaymentChange::Cancel => {
                            self.link.grpc(deadline, self.client.cancel(request)).await
                        }
                    }
                }
            })
            .await
    }

    pub async fn get_payment(&self, call: &Call, pay_id: &str) -> Result<Payment, BackendError> {
        let pay_id = pilota::FastStr::from(pay_id.to_owned());
        self.link
            .invoke("GetPayment", call, Idempotency::Read, |deadline| {
                let request = call.metadata.grpc_request(GetPaymentRequest {
                    pay_id: pay_id.clone(),
                });
                self.link.grpc(deadline, self.client.get_payment(request))
            })
            .await
    }

    pub async fn get_wallet(&self, call: &Call) -> Result<Wallet, BackendError> {
        self.link
            .invoke("GetWallet", call, Idempotency::Read, |deadline| {
                let request = call.metadata.grpc_request(GetWalletRequest {});
                self.link.grpc(deadline, self.client.get_wallet(request))
            })
            .await
    }

    pub async fn healthy(&self) -> bool {
        self.link
            .healthy(|| async {
                let request = HealthCheckRequest {
                    service: crate::backends::PAYMENT_SERVICE.into(),
                };
                matches!(
                    self.health.check(request).await,
                    Ok(response) if response.get_ref().status == ServingStatus::SERVING
                )
            })
            .await
    }
}
