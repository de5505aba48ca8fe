//! Reservations: stock held for one payment, then committed (sold) or released (back on sale).
//!
//! A reservation is keyed by the payment's id, which makes every step idempotent: the payment
//! service can repeat a call after a timeout without holding or returning stock twice.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use super::{FieldErrors, ProductId};

/// Longest payment id accepted (a UUID needs 36).
pub const MAX_PAYMENT_ID_CHARS: usize = 64;
/// The most lines one reservation may list.
pub const MAX_RESERVATION_LINES: usize = 1_000;

/// The id of the payment a reservation belongs to: 1 to 64 characters, no whitespace or control
/// characters (it is compared exactly, so invisible differences must not exist).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaymentId(String);

impl PaymentId {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let id = Self::collect(field, raw, &mut errors);
        errors.finish(id, field)
    }

    pub(crate) fn collect(field: &str, raw: &str, errors: &mut FieldErrors) -> Option<Self> {
        if raw.is_empty() {
            errors.add(field, "must not be empty");
        } else if raw.chars().count() > MAX_PAYMENT_ID_CHARS {
            errors.add(
                field,
                format!("must be at most {MAX_PAYMENT_ID_CHARS} characters"),
            );
        } else if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.add(field, "must not contain whitespace or control characters");
        } else {
            return Some(Self(raw.to_owned()));
        }
        None
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One requested line before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UncheckedItem {
    pub product_id: i64,
    pub amount: i64,
}

/// Units of one product held by a reservation (always at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationLine {
    pub product_id: ProductId,
    pub amount: i64,
}

/// The lines of a reservation: at least one, one per product (duplicates summed), ordered by
/// product id. The order doubles as the order rows are locked in, so two reservations touching
/// the same products can never wait for each other in a cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationItems(Vec<ReservationLine>);

impl ReservationItems {
    #[cfg(test)]
    pub fn parse(items: &[UncheckedItem]) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let parsed = Self::collect(items, &mut errors);
        errors.finish(parsed, "items")
    }

    pub(crate) fn collect(items: &[UncheckedItem], errors: &mut FieldErrors) -> Option<Self> {
        if items.is_empty() {
            errors.add("items", "must not be empty");
            return None;
        }
        if items.len() > MAX_RESERVATION_LINES {
            errors.add("items", format!("at most {MAX_RESERVATION_LINES} lines"));
            return None;
        }
        let mut summed: BTreeMap<ProductId, i64> = BTreeMap::new();
        let mut overflowed = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let product_id =
                ProductId::collect(&format!("items[{i}].product_id"), item.product_id, errors);
            if item.amount < 1 {
                errors.add(format!("items[{i}].amount"), "must be at least 1");
                continue;
            }
            if let Some(product_id) = product_id {
                let total = summed.entry(product_id).or_insert(0);
                match total.checked_add(item.amount) {
                    Some(sum) => *total = sum,
                    None => {
                        overflowed.insert(product_id);
                    }
                }
            }
        }
        for product_id in overflowed {
            errors.add(
                "items",
                format!("the total amount of product {product_id} is too large"),
            );
        }
        errors.is_empty().then(|| {
            Self(
                summed
                    .into_iter()
                    .map(|(product_id, amount)| ReservationLine { product_id, amount })
                    .collect(),
            )
        })
    }

    pub fn lines(&self) -> &[ReservationLine] {
        &self.0
    }
}

/// A request to hold stock for a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockReservation {
    pub payment_id: PaymentId,
    pub items: ReservationItems,
}

impl StockReservation {
    /// Checks the payment id and every item, reporting every problem together.
    pub fn parse(payment_id: &str, items: &[UncheckedItem]) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let payment_id = PaymentId::collect("payment_id", payment_id, &mut errors);
        let items = ReservationItems::collect(items, &mut errors);
        let parsed = payment_id
            .zip(items)
            .map(|(payment_id, items)| Self { payment_id, items });
        errors.finish(parsed, "items")
    }
}

/// Where a reservation stands. RESERVED moves to COMMITTED or RELEASED, never further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    Reserved,
    Committed,
    Released,
}

impl ReservationState {
    /// The spelling stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "RESERVED",
            Self::Committed => "COMMITTED",
            Self::Released => "RELEASED",
        }
    }

    pub fn from_stored(value: &str) -> Option<Self> {
        match value {
            "RESERVED" => Some(Self::Reserved),
            "COMMITTED" => Some(Self::Committed),
            "RELEASED" => Some(Self::Released),
            _ => None,
        }
    }

    /// What a caller asking to move to `self` is doing, for error messages.
    pub fn action(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Committed => "committed",
            Self::Released => "released",
        }
    }
}

impl fmt::Display for ReservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reservation as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub payment_id: PaymentId,
    pub state: ReservationState,
    /// Ordered by product id.
    pub lines: Vec<ReservationLine>,
    /// The unit price each product was reserved at, in cents (none for lines reserved before
    /// prices were recorded).
    pub unit_prices: BTreeMap<ProductId, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(product_id: i64, amount: i64) -> UncheckedItem {
        UncheckedItem { product_id, amount }
    }

    #[test]
    fn duplicates_are_summed_and_lines_ordered_by_product() {
        let items = ReservationItems::parse(&[item(9, 1), item(2, 3), item(9, 4)]).expect("valid");
        let lines: Vec<(i64, i64)> = items
            .lines()
            .iter()
            .map(|l| (l.product_id.get(), l.amount))
            .collect();
        assert_eq!(lines, vec![(2, 3), (9, 5)]);
    }

    #[test]
    fn every_bad_item_and_the_payment_id_are_listed() {
        let errors = StockReservation::parse("", &[item(0, 1), item(3, 0), item(-1, -1)])
            .expect_err("invalid");
        assert_eq!(
            errors.to_string(),
            "payment_id: must not be empty; items[0].product_id: must be a positive product id; \
             items[1].amount: must be at least 1; items[2].product_id: must be a positive product id; \
             items[2].amount: must be at least 1"
        );
        let errors = StockReservation::parse("p-1", &[]).expect_err("no items");
        assert_eq!(errors.to_string(), "items: must not be empty");
    }

    #[test]
    fn sums_that_overflow_are_refused_not_wrapped() {
        let errors =
            ReservationItems::parse(&[item(1, i64::MAX), item(1, 1)]).expect_err("overflow");
        assert_eq!(
            errors.to_string(),
            "items: the total amount of product 1 is too large"
        );
    }

    #[test]
    fn payment_ids_are_short_and_visible() {
        assert!(PaymentId::parse("payment_id", "6f1c6a53-64f4-4f54-9a44-4a2a8f1f3c1b").is_ok());
        let long = "x".repeat(MAX_PAYMENT_ID_CHARS + 1);
        for bad in ["", " p", "p\n", long.as_str()] {
            assert!(PaymentId::parse("payment_id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn states_round_trip_through_their_stored_spelling() {
        for state in [
            ReservationState::Reserved,
            ReservationState::Committed,
            ReservationState::Released,
        ] {
            assert_eq!(ReservationState::from_stored(state.as_str()), Some(state));
        }
        assert_eq!(ReservationState::from_stored("PAID"), None);
    }
}
