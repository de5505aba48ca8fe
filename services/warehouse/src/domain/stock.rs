//! Stock: `amount` can still be sold, `frozen` is held by payments not yet settled.

use super::{FieldErrors, ProductId};

/// A sellable amount an administrator may set: zero or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockAmount(i64);

impl StockAmount {
    #[cfg(test)]
    pub fn parse(field: &str, raw: i64) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let amount = Self::collect(field, raw, &mut errors);
        errors.finish(amount, field)
    }

    pub(crate) fn collect(field: &str, raw: i64, errors: &mut FieldErrors) -> Option<Self> {
        if raw >= 0 {
            Some(Self(raw))
        } else {
            errors.add(field, "must not be negative");
            None
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// An administrator's new sellable amount for one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockChange {
    pub product_id: ProductId,
    pub amount: StockAmount,
}

impl StockChange {
    pub fn parse(product_id: i64, amount: i64) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let product_id = ProductId::collect("product_id", product_id, &mut errors);
        let amount = StockAmount::collect("amount", amount, &mut errors);
        let change = product_id
            .zip(amount)
            .map(|(product_id, amount)| Self { product_id, amount });
        errors.finish(change, "amount")
    }
}

/// The stock row of one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    pub id: i64,
    pub product_id: ProductId,
    pub amount: i64,
    pub frozen: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_must_not_be_negative() {
        assert_eq!(StockAmount::parse("amount", 0).map(StockAmount::get), Ok(0));
        let errors = StockAmount::parse("amount", -3).expect_err("negative");
        assert_eq!(errors.to_string(), "amount: must not be negative");
    }

    #[test]
    fn a_change_lists_both_fields() {
        let errors = StockChange::parse(0, -1).expect_err("invalid");
        assert_eq!(
            errors.to_string(),
            "product_id: must be a positive product id; amount: must not be negative"
        );
        let change = StockChange::parse(4, 0).expect("valid");
        assert_eq!((change.product_id.get(), change.amount.get()), (4, 0));
    }
}
