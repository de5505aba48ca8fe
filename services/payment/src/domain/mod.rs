//! The payment service's rules, free of wire types and SQL: what a valid settlement is, how a
//! total is computed, which states a payment moves through, and what an idempotency key is.

mod idempotency;
mod payment;
mod settlement;

pub use idempotency::{IdempotencyKey, Operation, Replay};
pub use payment::{Move, PayState, Payment, PaymentItem, Wallet};
pub use platform::validation::FieldErrors;
pub use settlement::{Purchase, PurchaseInput, Settlement, TotalError, total_cents};

/// Parses a payment id (a UUID in any of its usual spellings) into its canonical, lower-case,
/// hyphenated form.
pub fn parse_pay_id(raw: &str) -> Result<String, FieldErrors> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| FieldErrors::single("pay_id", "must be a payment id (a UUID)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pay_ids_are_canonicalised_and_garbage_is_refused() {
        let id = uuid::Uuid::new_v4();
        let upper = id.hyphenated().to_string().to_uppercase();
        assert_eq!(
            parse_pay_id(&upper).expect("valid"),
            id.hyphenated().to_string()
        );
        assert_eq!(
            parse_pay_id(&id.simple().to_string()).expect("valid"),
            id.hyphenated().to_string()
        );
        let error = parse_pay_id("42; DROP TABLE payments").expect_err("invalid");
        assert_eq!(error.to_string(), "pay_id: must be a payment id (a UUID)");
    }
}
