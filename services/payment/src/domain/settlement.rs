//! A settlement request made valid: a non-empty cart of positive amounts (lines naming the same
//! product summed) and a purchase with a recipient, a telephone and a location. Also the total:
//! prices × amounts + shipping fee, in exact cents, refusing overflow rather than wrapping.

use std::collections::BTreeMap;

use super::{FieldErrors, PaymentItem};

/// More distinct products than this in one cart is refused: each one costs a warehouse lookup.
pub const MAX_PRODUCTS_PER_CART: usize = 100;
/// The most lines a request may list (lines naming one product are summed first).
pub const MAX_CART_LINES: usize = 1_000;
/// The longest purchase details, in characters: recipient name, telephone, address, and the
/// payment and delivery methods.
const PURCHASE_FIELD_MAX_CHARS: [(&str, usize); 5] = [
    ("purchase.name", 200),
    ("purchase.telephone", 100),
    ("purchase.location", 500),
    ("purchase.pay", 100),
    ("purchase.delivery", 100),
];

/// Units per product id, ordered by product id; every amount is at least 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart(BTreeMap<i64, i64>);

impl Cart {
    pub fn lines(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.0.iter().map(|(product, amount)| (*product, *amount))
    }

    pub fn product_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.keys().copied()
    }

    /// A stable text form (`product:amount,...`), used to recognise a repeated request.
    pub fn fingerprint(&self) -> String {
        self.lines()
            .map(|(product, amount)| format!("{product}:{amount}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The purchase fields as they arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurchaseInput {
    pub name: String,
    pub telephone: String,
    pub location: String,
    pub pay: String,
    pub delivery: String,
}

/// Who receives the goods and where; `name`, `telephone` and `location` are never blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub name: String,
    pub telephone: String,
    pub location: String,
    /// Free text chosen in the front-end (payment method).
    pub pay: String,
    /// Free text chosen in the front-end (delivery option).
    pub delivery: String,
}

/// A valid settlement request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub cart: Cart,
    pub purchase: Purchase,
}

impl Settlement {
    /// Checks every rule and reports every failure. `items` are `(product_id, amount)` pairs in
    /// request order.
    pub fn parse(
        items: &[(i64, i64)],
        purchase: Option<PurchaseInput>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut cart = BTreeMap::new();
        if items.is_empty() {
            errors.add("items", "must not be empty");
        }
        if items.len() > MAX_CART_LINES {
            return Err(FieldErrors::single(
                "items",
                format!("at most {MAX_CART_LINES} lines"),
            ));
        }
        for (index, &(product_id, amount)) in items.iter().enumerate() {
            let mut valid = true;
            if product_id < 1 {
                errors.add(format!("items[{index}].product_id"), "must be a product id");
                valid = false;
            }
            if amount < 1 {
                errors.add(format!("items[{index}].amount"), "must be at least 1");
                valid = false;
            }
            if valid {
                let total: &mut i64 = cart.entry(product_id).or_default();
                match total.checked_add(amount) {
                    Some(sum) => *total = sum,
                    None => errors.add(format!("items[{index}].amount"), "is too large"),
                }
            }
        }
        if cart.len() > MAX_PRODUCTS_PER_CART {
            errors.add(
                "items",
                format!("at most {MAX_PRODUCTS_PER_CART} different products"),
            );
        }

        let purchase = match purchase {
            None => {
                errors.add("purchase", "is required");
                None
            }
            Some(input) => {
                let required = [
                    ("purchase.name", &input.name),
                    ("purchase.telephone", &input.telephone),
                    ("purchase.location", &input.location),
                ];
                for (field, value) in required {
                    if value.trim().is_empty() {
                        errors.add(field, "must not be empty");
                    }
                }
                let given = [
                    &input.name,
                    &input.telephone,
                    &input.location,
                    &input.pay,
                    &input.delivery,
                ];
                for ((field, max), value) in PURCHASE_FIELD_MAX_CHARS.into_iter().zip(given) {
                    if value.trim().chars().count() > max {
                        errors.add(field, format!("must be at most {max} characters"));
                    }
                }
                Some(Purchase {
                    name: input.name.trim().to_owned(),
                    telephone: input.telephone.trim().to_owned(),
                    location: input.location.trim().to_owned(),
                    pay: input.pay.trim().to_owned(),
                    delivery: input.delivery.trim().to_owned(),
                })
            }
        };

        match purchase {
            Some(purchase) if errors.is_empty() => Ok(Self {
                cart: Cart(cart),
                purchase,
            }),
            _ => Err(errors),
        }
    }

    /// A stable text form of the whole request, used to recognise a repeated request.
    pub fn fingerprint(&self) -> String {
        let p = &self.purchase;
        // JSON quoting keeps field boundaries unambiguous whatever the text contains.
        let purchase = serde_json::json!([p.name, p.telephone, p.location, p.pay, p.delivery]);
        format!("{}|{purchase}", self.cart.fingerprint())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotalError {
    #[error("no price for product {0}")]
    MissingPrice(i64),
    #[error("the total is too large")]
    Overflow,
}

/// Prices every line (`prices` maps product id to unit price in cents) and returns the lines
/// with the total: Σ price × amount + `shipping_fee_cents`, exact.
pub fn total_cents(
    cart: &Cart,
    prices: &BTreeMap<i64, i64>,
    shipping_fee_cents: i64,
) -> Result<(Vec<PaymentItem>, i64), TotalError> {
    let mut total = shipping_fee_cents;
    let mut items = Vec::new();
    for (product_id, amount) in cart.lines() {
        let price_cents = *prices
            .get(&product_id)
            .ok_or(TotalError::MissingPrice(product_id))?;
        total = price_cents
            .checked_mul(amount)
            .and_then(|line| total.checked_add(line))
            .ok_or(TotalError::Overflow)?;
        items.push(PaymentItem {
            product_id,
            amount,
            price_cents,
        });
    }
    Ok((items, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase() -> Option<PurchaseInput> {
        Some(PurchaseInput {
            name: " Zhou ".into(),
            telephone: "18888888888".into(),
            location: "Tang Shan".into(),
            pay: "wechat".into(),
            delivery: String::new(),
        })
    }

    #[test]
    fn duplicate_lines_are_summed_and_text_is_trimmed() {
        let settlement = Settlement::parse(&[(2, 1), (1, 3), (2, 4)], purchase()).expect("valid");
        assert_eq!(
            settlement.cart.lines().collect::<Vec<_>>(),
            [(1, 3), (2, 5)]
        );
        assert_eq!(settlement.purchase.name, "Zhou");
        assert_eq!(settlement.cart.fingerprint(), "1:3,2:5");
    }

    #[test]
    fn every_failed_rule_is_reported() {
        let errors = Settlement::parse(&[(1, 0), (-4, 2)], Some(PurchaseInput::default()))
            .expect_err("invalid");
        assert_eq!(
            errors.to_string(),
            "items[0].amount: must be at least 1; items[1].product_id: must be a product id; \
             purchase.name: must not be empty; purchase.telephone: must not be empty; \
             purchase.location: must not be empty"
        );
        let errors = Settlement::parse(&[], None).expect_err("invalid");
        assert_eq!(
            errors.to_string(),
            "items: must not be empty; purchase: is required"
        );
        let errors = Settlement::parse(&[(1, i64::MAX), (1, 1)], purchase()).expect_err("overflow");
        assert_eq!(errors.to_string(), "items[1].amount: is too large");
    }

    #[test]
    fn carts_with_too_many_products_are_refused() {
        let lines: Vec<(i64, i64)> = (1..=MAX_PRODUCTS_PER_CART as i64 + 1)
            .map(|p| (p, 1))
            .collect();
        assert!(Settlement::parse(&lines, purchase()).is_err());
        assert!(Settlement::parse(&lines[1..], purchase()).is_ok());
    }

    #[test]
    fn totals_are_exact_cents_with_the_shipping_fee() {
        let settlement = Settlement::parse(&[(1, 3), (2, 1)], purchase()).expect("valid");
        let prices = BTreeMap::from([(1, 4_990), (2, 10)]);
        let (items, total) = total_cents(&settlement.cart, &prices, 1_200).expect("total");
        assert_eq!(total, 3 * 4_990 + 10 + 1_200);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].price_cents, 4_990);

        let free = BTreeMap::from([(1, 0), (2, 0)]);
        assert_eq!(total_cents(&settlement.cart, &free, 0).expect("total").1, 0);
        assert_eq!(
            total_cents(&settlement.cart, &BTreeMap::from([(1, 1)]), 0),
            Err(TotalError::MissingPrice(2))
        );
        let huge = BTreeMap::from([(1, i64::MAX / 2), (2, 1)]);
        assert_eq!(
            total_cents(&settlement.cart, &huge, 0),
            Err(TotalError::Overflow)
        );
    }

    #[test]
    fn fingerprints_tell_different_purchases_apart() {
        let a = Settlement::parse(&[(1, 1)], purchase()).expect("valid");
        let mut other = purchase().expect("some");
        other.location = "Elsewhere".into();
        let b = Settlement::parse(&[(1, 1)], Some(other)).expect("valid");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(
            a.fingerprint(),
            Settlement::parse(&[(1, 1)], purchase())
                .expect("valid")
                .fingerprint()
        );
    }
}
