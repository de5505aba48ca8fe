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
    input::{JsonBody, lenient_i64, lenient_string, non_blank},
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
    fn into_request(self, idempotency_key: String) -> Result<SettleRequest, ApiError> {
        let mut errors = Vec::new();
        let items = self.items.unwrap_or_default();
        if items.is_empty() {
            errors.push(FieldError::new("items", "must not be empty"));
        }
        for (index, item) in items.iter().enumerate() {
            if item.id.is_none() {
                errors.push(FieldError::new(
                    format!("items[{index}].id"),
                    "must be given",
                ));
            }
            if item.amount.is_none_or(|a| a < 1) {
                let field = format!("items[{index}].amount");
                errors.push(FieldError::new(field, "must be at least 1"));
            }
        }
        let purchase = self.purchase.unwrap_or_default();
        for (field, value) in [
            ("purchase.name", &purchase.name),
            ("purchase.telephone", &purchase.telephone),
            ("purchase.location", &purchase.location),
        ] {
            if non_blank(value).is_none() {
                errors.push(FieldError::new(field, "must not be empty"));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        let text = |value: &Option<String>| non_blank(value).unwrap_or_default().to_owned().into();
        Ok(SettleRequest {
            items: items
                .iter()
                .map(|item| SettlementItem {
                    product_id: item.id.unwrap_or_default(),
                    amount: item.amount.unwrap_or_default(),
                })
                .collect(),
            purchase: Some(Purchase {
                name: text(&purchase.name),
                telephone: text(&purchase.telephone),
                location: text(&purchase.location),
                pay: text(&purchase.pay),
                delivery: text(&purchase.delivery),
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
    fn every_missing_part_of_a_cart_is_named() {
        let body: SettlementBody =
            serde_json::from_str(r#"{"items":[{"amount":0}],"purchase":{"name":" "}}"#)
                .expect("json");
        let Err(ApiError::BadRequest { errors, .. }) = body.into_request(String::new()) else {
            panic!("expected 400");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].id",
                "items[0].amount",
                "purchase.name",
                "purchase.telephone",
                "purchase.location"
            ]
        );
        let empty: SettlementBody = serde_json::from_str("{}").expect("json");
        assert!(empty.into_request(String::new()).is_err());
    }
}
