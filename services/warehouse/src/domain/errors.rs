//! What can go wrong in the warehouse, as the RPC layer needs to tell it apart.

use std::fmt;

use super::{PaymentId, ProductId, ReservationState};

/// One rejected input field: `field` names it as the API does (`title`,
/// `specifications[2].item`), `problem` says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

/// Every rejected field of one request, in the order they were checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Just one problem.
    pub fn single(field: impl Into<String>, problem: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(field, problem);
        errors
    }

    pub fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            problem: problem.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was rejected. A parser that recorded no error must have produced
    /// a value; if it did not, that is reported as an error on `field` rather than a panic.
    pub(crate) fn finish<T>(self, value: Option<T>, field: &str) -> Result<T, FieldErrors> {
        match value {
            Some(value) if self.is_empty() => Ok(value),
            Some(_) => Err(self),
            None if self.is_empty() => {
                let mut errors = self;
                errors.add(field, "is invalid");
                Err(errors)
            }
            None => Err(self),
        }
    }
}

/// `field: problem; field2: problem`, the form the API documents.
impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", error.field, error.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

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
