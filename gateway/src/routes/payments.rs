//! `/restful/pay`: read, pay or cancel one's own payment; and `/restful/wallet`, one's balance
//! (an addition to the reference API, read-only, for clients and tests that check money).

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, Method},
};
use rpc_idl::{
    google::protobuf::Timestamp,
    payment::{ChangePaymentRequest, Payment, Wallet},
};
use serde::{Deserialize, Serialize};

use super::{CommandResult, RouteTable};
use crate::{
    AppState,
    auth::Authenticated,
    backends::PaymentChange,
    errors::{ApiError, FieldError},
    input::{Money, PathParam, QueryParams},
};

pub fn routes(table: RouteTable) -> RouteTable {
    table
        .add(Method::GET, "/restful/pay/{payId}", get_payment)
        .add(Method::PATCH, "/restful/pay/{payId}", change)
        .add(Method::GET, "/restful/pay/modify/{payId}", change_by_link)
        .add(Method::GET, "/restful/wallet", wallet)
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The `Idempotency-Key` header, or "" when there is none.
pub fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(String::new());
    };
    match value.to_str() {
        Ok(key) if key.len() <= MAX_IDEMPOTENCY_KEY => Ok(key.trim().to_owned()),
        _ => Err(ApiError::invalid(vec![FieldError::new(
            "Idempotency-Key",
            "must be at most 255 visible ASCII characters",
        )])),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    id: i64,
    pay_id: String,
    create_time: String,
    total_price: Money,
    /// The payment window in milliseconds, relative (the client counts down from its own clock).
    expires: i64,
    payment_link: String,
    pay_state: String,
}

fn rfc3339(timestamp: Option<Timestamp>) -> String {
    let timestamp = timestamp.unwrap_or_default();
    let nanos = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

impl From<Payment> for PaymentView {
    fn from(payment: Payment) -> Self {
        Self {
            id: payment.id,
            pay_id: payment.pay_id.to_string(),
            create_time: rfc3339(payment.create_time),
            total_price: Money::from_cents(payment.total_price_cents),
            expires: payment.expires_millis,
            payment_link: payment.payment_link.to_string(),
            pay_state: payment.pay_state.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletView {
    id: i64,
    account_id: i64,
    balance: Money,
}

impl From<Wallet> for WalletView {
    fn from(wallet: Wallet) -> Self {
        Self {
            id: wallet.id,
            account_id: wallet.account_id,
            balance: Money::from_cents(wallet.balance_cents),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeQuery {
    state: Option<String>,
    account_id: Option<String>,
}

impl ChangeQuery {
    fn change(&self) -> Result<PaymentChange, ApiError> {
        match self.state.as_deref().map(str::trim) {
            Some(state) if state.eq_ignore_ascii_case("PAYED") => Ok(PaymentChange::Pay),
            Some(state) if state.eq_ignore_ascii_case("CANCEL") => Ok(PaymentChange::Cancel),
            _ => Err(ApiError::invalid(vec![FieldError::new(
                "state",
                "must be PAYED or CANCEL",
            )])),
        }
    }
}

async fn get_payment(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParam(pay_id): PathParam<String>,
) -> Result<Json<PaymentView>, ApiError> {
    auth.require_user()?;
    let payment = state
        .backends
        .payment
        .get_payment(&auth.call, &pay_id)
        .await?;
    Ok(Json(payment.into()))
}

async fn apply(
    state: &AppState,
    auth: &Authenticated,
    pay_id: String,
    change: PaymentChange,
    headers: &HeaderMap,
) -> Result<Json<CommandResult>, ApiError> {
    let request = ChangePaymentRequest {
        pay_id: pay_id.into(),
        idempotency_key: idempotency_key(headers)?.into(),
    };
    let payment = state
        .backends
        .payment
        .change(&auth.call, change, request)
        .await?;
    Ok(CommandResult::ok(format!(
        "payment {} is {}",
        payment.pay_id,
        payment.pay_state.to_string()
    )))
}

async fn change(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    PathParam(pay_id): PathParam<String>,
    QueryParams(query): QueryParams<ChangeQuery>,
) -> Result<Json<CommandResult>, ApiError> {
    auth.require_user()?;
    let change = query.change()?;
    apply(&state, &auth, pay_id, change, &headers).await
}

/// The QR-code link: the same change, but the `accountId` in the link must be the caller's.
async fn change_by_link(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    PathParam(pay_id): PathParam<String>,
    QueryParams(query): QueryParams<ChangeQuery>,
) -> Result<Json<CommandResult>, ApiError> {
    let own = auth.require_user()?;
    let change = query.change()?;
    let account_id = query
        .account_id
        .as_deref()
        .and_then(|id| id.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::invalid(vec![FieldError::new("accountId", "must be an account id")])
        })?;
    if account_id != own {
        return Err(ApiError::Forbidden(
            "this payment link belongs to another account".into(),
        ));
    }
    apply(&state, &auth, pay_id, change, &headers).await
}

async fn wallet(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<WalletView>, ApiError> {
    auth.require_user()?;
    let wallet = state.backends.payment.get_wallet(&auth.call).await?;
    Ok(Json(wallet.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_idl::payment::PayState;

    #[test]
    fn a_payment_is_written_in_the_front_ends_shape() {
        let payment = Payment {
            id: 3,
            pay_id: "p-1".into(),
            create_time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            total_price_cents: 14100,
            expires_millis: 120_000,
            payment_link: "/pay/modify/p-1?state=PAYED&accountId=1".into(),
            pay_state: PayState::WAITING,
            ..Default::default()
        };
        let json = serde_json::to_value(PaymentView::from(payment)).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "id": 3, "payId": "p-1", "createTime": "2023-11-14T22:13:20Z",
                "totalPrice": 141.0, "expires": 120000,
                "paymentLink": "/pay/modify/p-1?state=PAYED&accountId=1", "payState": "WAITING"
            })
        );
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).ok().as_deref(), Some(""));
        headers.insert("idempotency-key", "abc".parse().expect("header"));
        assert_eq!(idempotency_key(&headers).ok().as_deref(), Some("abc"));
        headers.insert("idempotency-key", "x".repeat(256).parse().expect("header"));
        assert!(idempotency_key(&headers).is_err());
    }

    #[test]
    fn state_must_be_payed_or_cancel() {
        let query = |state: &str| ChangeQuery {
            state: Some(state.into()),
            account_id: None,
        };
        assert_eq!(query("PAYED").change().ok(), Some(PaymentChange::Pay));
        assert_eq!(query("cancel").change().ok(), Some(PaymentChange::Cancel));
        assert!(query("TIMEOUT").change().is_err());
    }
}
