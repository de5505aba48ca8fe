//! The use cases: settle, pay, cancel, read a payment, read a wallet. Each one combines the
//! domain rules, the store's transactions and the warehouse, and reports failures as one typed
//! [`PaymentError`] (which `rpc.rs` turns into a gRPC status).
//!
//! Settlement and the warehouse cannot share a transaction, so a settlement is made safe in
//! three steps: (1) a *guard* (a release of the reservation about to be made) is written to the
//! outbox, due `reservation_guard_ms` later; (2) the stock is reserved; (3) the WAITING payment
//! is stored and the guard deleted in one transaction. If the process dies between (2) and (3),
//! or the reserve call's answer is lost, the guard releases whatever was reserved.

use std::{collections::BTreeMap, sync::Arc};

use futures::{StreamExt, TryStreamExt};
use platform::clock::now_ms;
use tokio::sync::watch;

use crate::{
    configuration::Settings,
    domain::{
        FieldErrors, IdempotencyKey, Operation, PayState, Payment, Replay, Settlement, TotalError,
        Wallet, total_cents,
    },
    outbox::Relay,
    store::{Change, ChangeOutcome, CreateOutcome, KeyedRequest, NewPayment, Store, StoreError},
    warehouse::{WarehouseClient, WarehouseError},
};

/// Price lookups in flight at once during a settlement (only for a warehouse that does not
/// answer a reservation with its prices).
const PRICE_LOOKUPS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error("payment {0} not found")]
    PaymentNotFound(String),
    #[error("product {0} not found")]
    ProductNotFound(i64),
    /// A product vanished between pricing and reservation (the warehouse's words name it).
    #[error("{0}")]
    ProductGone(String),
    /// The warehouse's own words, which name the product.
    #[error("{0}")]
    InsufficientStock(String),
    #[error("insufficient balance")]
    InsufficientBalance,
    #[error("payment {pay_id} is {state}, not WAITING")]
    NotWaiting { pay_id: String, state: PayState },
    #[error("the payment belongs to another account")]
    NotOwner,
    #[error("idempotency_key: already used for a different request")]
    KeyReused,
    #[error("{0}")]
    WarehouseUnavailable(String),
    #[error("the warehouse did not answer in time")]
    WarehouseDeadline,
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// A broken invariant: logged, reported without details.
    #[error("{0}")]
    Internal(String),
}

impl From<FieldErrors> for PaymentError {
    fn from(errors: FieldErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl From<WarehouseError> for PaymentError {
    fn from(error: WarehouseError) -> Self {
        match error {
            WarehouseError::Refused(message) => Self::InsufficientStock(message),
            WarehouseError::Deadline => Self::WarehouseDeadline,
            WarehouseError::NotFound(message) => Self::ProductGone(message),
            WarehouseError::Rejected(message) => {
                Self::Internal(format!("the warehouse rejected a request: {message}"))
            }
            error @ WarehouseError::NotReserved(_) => Self::Internal(error.to_string()),
            other @ (WarehouseError::Identity(_)
            | WarehouseError::Token(_)
            | WarehouseError::Unavailable(_)) => Self::WarehouseUnavailable(other.to_string()),
        }
    }
}

/// Counts a payment that reached `state` (`payment_payments_total{state}`).
pub(crate) fn payment_reached(state: PayState) {
    metrics::counter!("payment_payments_total", "state" => state.as_str()).increment(1);
}

pub struct Payments {
    store: Store,
    warehouse: Arc<WarehouseClient>,
    relay: Arc<Relay>,
    config: watch::Receiver<Settings>,
}

impl Payments {
    pub fn new(
        store: Store,
        warehouse: Arc<WarehouseClient>,
        relay: Arc<Relay>,
        config: watch::Receiver<Settings>,
    ) -> Self {
        Self {
            store,
            warehouse,
            relay,
            config,
        }
    }

    /// Reserves the cart's stock, prices it at the unit prices the reservation answers (one
    /// warehouse call), and stores a WAITING payment owned by `account_id`.
    pub async fn settle(
        &self,
        account_id: i64,
        settlement: Settlement,
        key: Option<IdempotencyKey>,
        request_id: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let fingerprint = settlement.fingerprint();
        if let Some(key) = &key
            && let Some(replay) = self.store.replay(account_id, key).await?
        {
            return replayed(replay, Operation::Settle, &fingerprint);
        }
        let rules = self.config.borrow().payment.clone();
        let pay_id = uuid::Uuid::new_v4().hyphenated().to_string();
        let now = now_ms();
        let guard = self
            .store
            .insert_guard(&pay_id, now.saturating_add(rules.reservation_guard_ms), now)
            .await?;
        let lines: Vec<(i64, i64)> = settlement.cart.lines().collect();
        let mut prices = match self.warehouse.reserve(&pay_id, &lines, request_id).await {
            Ok(prices) => prices,
            Err(error) => {
                if error.definitely_not_done() {
                    if let Err(store_error) = self.store.drop_guard(guard).await {
                        // Harmless: releasing a reservation that does not exist is a no-op.
                        tracing::warn!(%pay_id, error = %store_error, "cannot drop an unneeded reservation guard");
                    }
                } else {
                    tracing::warn!(%pay_id, %error, "reservation outcome unknown; its release is scheduled");
                }
                return Err(error.into());
            }
        };
        // The reservation answers the prices it was taken at; only a warehouse that predates
        // that leaves any to look up.
        let priced = self
            .missing_prices(&settlement, &mut prices, request_id)
            .await;
        let total = priced.and_then(|()| {
            total_cents(&settlement.cart, &prices, rules.shipping_fee_cents).map_err(|error| {
                match error {
                    TotalError::Overflow => {
                        FieldErrors::single("items", "the total is too large").into()
                    }
                    TotalError::MissingPrice(product) => {
                        PaymentError::Internal(format!("no price for product {product}"))
                    }
                }
            })
        });
        let (items, total) = match total {
            Ok(priced) => priced,
            Err(error) => {
                self.abandon(guard, &pay_id).await;
                return Err(error);
            }
        };

        let created_ms = now_ms();
        let new = NewPayment {
            pay_id: pay_id.clone(),
            account_id,
            items,
            total_cents: total,
            purchase: settlement.purchase,
            created_ms,
            expires_ms: created_ms.saturating_add(rules.payment_window_ms),
        };
        let keyed = key.map(|key| KeyedRequest {
            key,
            operation: Operation::Settle,
            fingerprint: fingerprint.clone(),
        });
        let outcome = self.store.create_payment(new, guard, keyed).await;
        match outcome {
            Ok(CreateOutcome::Created(payment)) => {
                tracing::info!(%pay_id, account_id, total_cents = total, "payment created");
                payment_reached(payment.state);
                Ok(payment)
            }
            Ok(CreateOutcome::GuardFired) => Err(PaymentError::WarehouseDeadline),
            Ok(CreateOutcome::KeyTaken(replay)) => {
                self.abandon(guard, &pay_id).await;
                replayed(replay, Operation::Settle, &fingerprint)
            }
            Err(error) => {
                self.abandon(guard, &pay_id).await;
                Err(error.into())
            }
        }
    }

    /// Pays a WAITING payment from its owner's wallet, then commits its stock.
    pub async fn pay(
        &self,
        account_id: i64,
        pay_id: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<Payment, PaymentError> {
        let opening_balance_cents = self.config.borrow().payment.opening_balance_cents;
        let change = Change::Pay {
            opening_balance_cents,
        };
        self.change(account_id, pay_id, change, Operation::Pay, key)
            .await
    }

    /// Cancels a WAITING payment, then releases its stock.
    pub async fn cancel(
        &self,
        account_id: i64,
        pay_id: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<Payment, PaymentError> {
        self.change(account_id, pay_id, Change::Cancel, Operation::Cancel, key)
            .await
    }

    /// One payment, as it is now; an overdue WAITING payment is timed out first.
    pub async fn payment(&self, account_id: i64, pay_id: &str) -> Result<Payment, PaymentError> {
        let not_found = || PaymentError::PaymentNotFound(pay_id.to_owned());
        let mut payment = self.store.payment(pay_id).await?.ok_or_else(not_found)?;
        if !payment.is_owned_by(account_id) {
            return Err(PaymentError::NotOwner);
        }
        if payment.is_overdue(now_ms()) {
            if self.store.time_out(pay_id, now_ms()).await?.is_some() {
                self.relay.wake();
            }
            payment = self.store.payment(pay_id).await?.ok_or_else(not_found)?;
        }
        Ok(payment)
    }

    /// The caller's wallet, opened on first use.
    pub async fn wallet(&self, account_id: i64) -> Result<Wallet, PaymentError> {
        let opening_balance_cents = self.config.borrow().payment.opening_balance_cents;
        Ok(self
            .store
            .wallet(account_id, opening_balance_cents, now_ms())
            .await?)
    }

    async fn change(
        &self,
        account_id: i64,
        pay_id: &str,
        change: Change,
        operation: Operation,
        key: Option<IdempotencyKey>,
    ) -> Result<Payment, PaymentError> {
        let keyed = key.clone().map(|key| KeyedRequest {
            key,
            operation,
            fingerprint: pay_id.to_owned(),
        });
        let outcome = self
            .store
            .change_state(pay_id, account_id, change, now_ms(), keyed)
            .await?;
        let not_waiting = |state| PaymentError::NotWaiting {
            pay_id: pay_id.to_owned(),
            state,
        };
        match outcome {
            ChangeOutcome::Changed { payment, call } => {
                tracing::info!(%pay_id, state = %payment.state, "payment changed");
                payment_reached(payment.state);
                // Deliver now so the usual case is finished when we answer; if the warehouse is
                // down, the relay keeps trying.
                if let Err(error) = self.relay.deliver(&call).await {
                    tracing::warn!(%pay_id, %error, "cannot record a warehouse call attempt");
                }
                Ok(payment)
            }
            ChangeOutcome::Replayed(replay) => replayed(replay, operation, pay_id),
            ChangeOutcome::NotFound => Err(PaymentError::PaymentNotFound(pay_id.to_owned())),
            ChangeOutcome::NotOwner => Err(PaymentError::NotOwner),
            ChangeOutcome::NotWaiting(state) => {
                // On PostgreSQL a concurrent repeat with the same key waits for the first one's
                // row lock and then finds the payment changed; the first answer is its answer.
                if let Some(key) = &key
                    && let Some(replay) = self.store.replay(account_id, key).await?
                {
                    return replayed(replay, operation, pay_id);
                }
                Err(not_waiting(state))
            }
            ChangeOutcome::TimedOut { call } => {
                if call.is_some() {
                    tracing::info!(%pay_id, "payment timed out");
                    self.relay.wake();
                }
                Err(not_waiting(PayState::Timeout))
            }
            ChangeOutcome::InsufficientBalance => Err(PaymentError::InsufficientBalance),
        }
    }

    /// Looks up the unit prices a reservation did not answer (only a warehouse that predates
    /// recorded prices leaves any out).
    async fn missing_prices(
        &self,
        settlement: &Settlement,
        prices: &mut BTreeMap<i64, i64>,
        request_id: Option<&str>,
    ) -> Result<(), PaymentError> {
        let missing: Vec<i64> = settlement
            .cart
            .product_ids()
            .filter(|product_id| !prices.contains_key(product_id))
            .collect();
        let lookups = missing.into_iter().map(|product_id| async move {
            match self.warehouse.price_cents(product_id, request_id).await {
                Ok(price) => Ok((product_id, price)),
                Err(WarehouseError::NotFound(_)) => Err(PaymentError::ProductNotFound(product_id)),
                Err(error) => Err(error.into()),
            }
        });
        let found: Vec<(i64, i64)> = futures::stream::iter(lookups)
            .buffered(PRICE_LOOKUPS)
            .try_collect()
            .await?;
        prices.extend(found);
        Ok(())
    }

    /// Releases a reservation whose settlement will not be stored: its guard becomes due now.
    async fn abandon(&self, guard: i64, pay_id: &str) {
        match self.store.expedite_guard(guard, now_ms()).await {
            Ok(()) => self.relay.wake(),
            Err(error) => {
                tracing::warn!(%pay_id, %error, "cannot expedite a reservation release; it runs when its guard is due")
            }
        }
    }
}

/// The first answer for a repeated request, or a refusal if the key was used for another one.
fn replayed(
    replay: Replay,
    operation: Operation,
    fingerprint: &str,
) -> Result<Payment, PaymentError> {
    if replay.is_for(operation, fingerprint) {
        Ok(replay.payment)
    } else {
        Err(PaymentError::KeyReused)
    }
}
