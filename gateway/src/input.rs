//! Lenient input and exact money.
//!
//! The front-end sends many fields the API does not use, numbers as strings (`"79"`), and PATCH
//! or DELETE requests with no body and no Content-Type. The types here accept all of that, and
//! still refuse what is really malformed with a 400 that says what was wrong.

use std::fmt;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::{StatusCode, request::Parts},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use serde_json::Value;

use crate::errors::ApiError;

/// A JSON body, whatever the Content-Type says. Unknown fields are ignored by the target types.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("the request body could not be read")
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("a JSON request body is required"));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| ApiError::bad_request(format!("malformed JSON: {error}")))
    }
}

/// Query parameters, with a 400 in the contract's shape when they do not parse.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// A path parameter, with a 400 in the contract's shape when it does not parse (`/products/abc`).
pub struct PathParam<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParam(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// An amount of money, exact to the cent. Read from a JSON number or a numeric string (`129`,
/// `69.5`, `"19.99"`); written as a JSON number (`129.0`, `69.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money {
    pub cents: i64,
}

impl Money {
    pub fn from_cents(cents: i64) -> Self {
        Self { cents }
    }

    /// Parses a plain decimal such as `-12`, `69.5` or `19.99`; more than two decimals (other
    /// than trailing zeros) are refused rather than rounded.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && fraction.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || fraction.len() > 2 && fraction[2..].bytes().any(|b| b != b'0')
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut fraction_cents = 0;
        for (index, digit) in fraction.bytes().take(2).enumerate() {
            let weight = if index == 0 { 10 } else { 1 };
            fraction_cents += i64::from(digit - b'0') * weight;
        }
        let cents = whole.checked_mul(100)?.checked_add(fraction_cents)?;
        Some(Self::from_cents(if negative { -cents } else { cents }))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // An integer divided by 100 in floating point is the double nearest to the exact
        // decimal, and JSON writers print that double as the short decimal (19.99, 129.0).
        serializer.serialize_f64(self.cents as f64 / 100.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let text = match &value {
            // A float's shortest round-trip form is the decimal the client wrote.
            Value::Number(number) => number.to_string(),
            Value::String(text) => text.clone(),
            _ => return Err(serde::de::Error::custom("expected an amount of money")),
        };
        Money::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text} is not an amount of money with at most two decimals"
            ))
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.cents < 0 { "-" } else { "" };
        let cents = self.cents.unsigned_abs();
        write!(f, "{sign}{}.{:02}", cents / 100, cents % 100)
    }
}

fn number_from(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn integer_from(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// For `#[serde(default, deserialize_with = "...")]` on `Option<i64>` fields: a JSON integer
/// or a numeric string; `null` is `None`.
pub fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => integer_from(&value)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{value} is not an integer"))),
    }
}

/// As [`lenient_i64`], for `Option<f64>` fields.
pub fn lenient_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => number_from(&value)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{value} is not a number"))),
    }
}

/// For optional text fields: a string, or a number written as one (telephone numbers arrive
/// both ways); `null` is `None`.
pub fn lenient_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        Value::Number(number) => Ok(Some(number.to_string())),
        Value::Bool(flag) => Ok(Some(flag.to_string())),
        other => Err(serde::de::Error::custom(format!("{other} is not text"))),
    }
}

/// A present, non-blank string, trimmed.
pub fn non_blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "lenient_i64")]
        amount: Option<i64>,
        #[serde(default, deserialize_with = "lenient_f64")]
        rate: Option<f64>,
        price: Option<Money>,
        #[serde(default, deserialize_with = "lenient_string")]
        telephone: Option<String>,
    }

    #[test]
    fn numbers_arrive_as_numbers_or_strings_and_unknown_fields_are_ignored() {
        let sample: Sample = serde_json::from_str(
            r#"{"amount":"79","rate":"7.5","price":"129","telephone":18888888888,"desc":"x"}"#,
        )
        .expect("lenient");
        assert_eq!(sample.amount, Some(79));
        assert_eq!(sample.rate, Some(7.5));
        assert_eq!(sample.price, Some(Money::from_cents(12900)));
        assert_eq!(sample.telephone.as_deref(), Some("18888888888"));

        let empty: Sample = serde_json::from_str("{}").expect("all optional");
        assert_eq!(empty.amount, None);
        assert!(serde_json::from_str::<Sample>(r#"{"amount":"seven"}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"amount":1.5}"#).is_err());
        let whole: Sample = serde_json::from_str(r#"{"amount":2.0}"#).expect("integral float");
        assert_eq!(whole.amount, Some(2));
    }

    #[test]
    fn money_is_exact_to_the_cent() {
        let parse = |json: &str| serde_json::from_str::<Money>(json).map(|m| m.cents).ok();
        assert_eq!(parse("69.5"), Some(6950));
        assert_eq!(parse("19.99"), Some(1999));
        assert_eq!(parse("0.1"), Some(10));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("\"12.50\""), Some(1250));
        assert_eq!(parse("\"12.500\""), Some(1250));
        assert_eq!(parse("-3.05"), Some(-305));
        assert_eq!(parse("1.005"), None);
        assert_eq!(parse("\"abc\""), None);
        assert_eq!(parse("\"1e3\""), None);
        assert_eq!(parse("true"), None);

        let written = |cents| serde_json::to_string(&Money::from_cents(cents)).expect("json");
        assert_eq!(written(12900), "129.0");
        assert_eq!(written(6950), "69.5");
        assert_eq!(written(1999), "19.99");
        assert_eq!(written(0), "0.0");
        assert_eq!(Money::from_cents(-305).to_string(), "-3.05");
    }

    #[test]
    fn every_cent_value_round_trips_through_its_json_number() {
        for cents in (0..200_000).step_by(7) {
            let json = serde_json::to_string(&Money::from_cents(cents)).expect("json");
            let back: Money = serde_json::from_str(&json).expect("parse");
            assert_eq!(back.cents, cents, "{json}");
        }
    }
}
