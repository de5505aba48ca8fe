//! Idempotency keys: a client that is unsure whether a settlement, pay or cancel went through
//! repeats it with the same key, and gets the first answer back without anything happening twice.
//! A key belongs to its caller; reusing one for a different request is refused.

use super::{FieldErrors, Payment};

/// The longest key accepted (the REST contract's `Idempotency-Key` limit).
pub const MAX_KEY_CHARS: usize = 255;

/// A non-empty key of at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `Ok(None)` when no key was sent (an empty string is "no key").
    pub fn parse(raw: &str) -> Result<Option<Self>, FieldErrors> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > MAX_KEY_CHARS {
            return Err(FieldErrors::single(
                "idempotency_key",
                format!("at most {MAX_KEY_CHARS} characters"),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldErrors::single(
                "idempotency_key",
                "must not contain control characters",
            ));
        }
        Ok(Some(Self(raw.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The requests that honour idempotency keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Settle,
    Pay,
    Cancel,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Settle => "SETTLE",
            Self::Pay => "PAY",
            Self::Cancel => "CANCEL",
        }
    }
}

/// The first successful answer given for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Which operation the key was first used for (`Operation::as_str`).
    pub operation: String,
    /// What the first request said (see `Settlement::fingerprint`, or the pay id).
    pub fingerprint: String,
    pub payment: Payment,
}

impl Replay {
    /// Whether a repeated request is the same request as the first one.
    pub fn is_for(&self, operation: Operation, fingerprint: &str) -> bool {
        self.operation == operation.as_str() && self.fingerprint == fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_optional_bounded_and_printable() {
        assert_eq!(IdempotencyKey::parse(""), Ok(None));
        let key = IdempotencyKey::parse("order-1")
            .expect("valid")
            .expect("some");
        assert_eq!(key.as_str(), "order-1");
        assert!(IdempotencyKey::parse(&"é".repeat(255)).is_ok());
        let long = IdempotencyKey::parse(&"k".repeat(256)).expect_err("too long");
        assert_eq!(long.to_string(), "idempotency_key: at most 255 characters");
        assert!(IdempotencyKey::parse("a\nb").is_err());
    }
}
