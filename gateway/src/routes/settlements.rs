//! `/restful/settlements`: turn a cart into a WAITING payment (stock reserved).

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, Method},
};
use rpc_idl::payment::{Purchase, SettleRequest, SettlementItem};
use serde::Deserialize;

use super::{
    RouteTable,
    payments::{PaymentView, idempotency_key},
};
use crate::{
    AppState,
    auth::Authenticated,
    errors::{ApiError, FieldError},
    input::{JsonBody, lenient_i64, lenient_string},
};

pub fn routes(table: RouteTable) -> RouteTable {
    table.add(Method::POST, "/restful/settlements", settle)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody {
    /// The product id (the front-end calls it `id`).
    #[serde(default, deserialize_with = "lenient_i64")]
    id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    amount: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PurchaseBody {
    #[serde(default, deserialize_with = "lenient_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    telephone: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    location: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pay: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    delivery: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettlementBody {
    #[serde(default)]
    items: Option<Vec<ItemBody>>,
    #[serde(default)]
    purchase: Option<PurchaseBody>,
}

impl SettlementBody {
    /// The payment service's request. Only what JSON cannot say is checked here (each line
    /// names its product); every rule about a cart is the payment service's, whose per-field
    /// verdicts come back as the 400's `errors`.
    fn into_request(self, idempotency_key: String) -> Result<SettleRequest, ApiError> {
        let items = self.items.unwrap_or_default();
        let unnamed: Vec<FieldError> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| item.id.is_none())
            .map(|(index, _)| FieldError::new(format!("items[{index}].id"), "must be given"))
            .collect();
        if !unnamed.is_empty() {
            return Err(ApiError::invalid(unnamed));
        }
        let text = |value: Option<String>| value.unwrap_or_default().into();
        Ok(SettleRequest {
            items: items
                .iter()
                .map(|item| SettlementItem {
                    product_id: item.id.unwrap_or_default(),
                    amount: item.amount.unwrap_or_default(),
                })
                .collect(),
            purchase: self.purchase.map(|purchase| Purchase {
                name: text(purchase.name),
                telephone: text(purchase.telephone),
                location: text(purchase.location),
                pay: text(purchase.pay),
                delivery: text(purchase.delivery),
            }),
            idempotency_key: idempotency_key.into(),
        })
    }
}

async fn settle(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SettlementBody>,
) -> Result<Json<PaymentView>, ApiError> {
    auth.require_user()?;
    let request = body.into_request(idempotency_key(&headers)?)?;
    let payment = state.backends.payment.settle(&auth.call, request).await?;
    Ok(Json(payment.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cart_from_the_front_end_becomes_a_settle_request() {
        let body: SettlementBody = serde_json::from_str(
            r#"{"items":[{"id":"1","amount":2,"title":"x"},{"id":2,"amount":"1"}],
                "purchase":{"name":"Ann","telephone":"18888888888","location":"Here",
                            "pay":"wechat","delivery":true,"account":{"id":1}}}"#,
        )
        .expect("json");
        let request = body.into_request("k".into()).expect("valid");
        assert_eq!(request.items.len(), 2);
        assert_eq!(request.items[0].product_id, 1);
        assert_eq!(request.items[0].amount, 2);
        assert_eq!(request.idempotency_key, "k");
        let purchase = request.purchase.expect("purchase");
        assert_eq!(purchase.delivery, "true");
    }

    #[test]
    fn only_lines_without_a_product_are_refused_here() {
        let body: SettlementBody =
            serde_json::from_str(r#"{"items":[{"amount":0},{"id":3}],"purchase":{"name":" "}}"#)
                .expect("json");
        let Err(ApiError::BadRequest { errors, .. }) = body.into_request(String::new()) else {
            panic!("expected 400");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["items[0].id"]);
        // The rest (an empty cart, amounts, the purchase's fields) is the payment service's.
        let empty: SettlementBody = serde_json::from_str("{}").expect("json");
        let request = empty.into_request(String::new()).expect("passed on");
        assert!(request.items.is_empty() && request.purchase.is_none());
    }
}
