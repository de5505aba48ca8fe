//! What can go wrong in the warehouse, as the RPC layer needs to tell it apart.

use super::{PaymentId, ProductId, ReservationState};

pub use platform::validation::FieldErrors;

/// The storage layer failed for a reason that is not the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum StorageFailure {
    /// The database cannot be reached or has no free connection; retrying later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else: a failed statement, or data that breaks an invariant.
    #[error("storage failure: {0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a warehouse operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("{0}")]
    Invalid(#[from] FieldErrors),
    #[error("product {0} does not exist")]
    ProductNotFound(ProductId),
    #[error("no reservation exists for payment {0}")]
    ReservationNotFound(PaymentId),
    #[error(
        "insufficient stock for product {product_id} \"{title}\": {requested} requested, {available} available"
    )]
    InsufficientStock {
        product_id: ProductId,
        title: String,
        requested: i64,
        available: i64,
    },
    /// Commit after release, or release after commit.
    #[error("the reservation for payment {payment_id} is {state} and cannot be {action}")]
    WrongState {
        payment_id: PaymentId,
        state: ReservationState,
        action: &'static str,
    },
    /// The payment id already holds a reservation of other items.
    #[error("payment {0} already holds a reservation of different items")]
    ReservationConflict(PaymentId),
    #[error(transparent)]
    Storage(#[from] StorageFailure),
}
