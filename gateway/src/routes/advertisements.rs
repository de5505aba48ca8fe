//! `/restful/advertisements`: the carousel on the front page.

use axum::{Json, extract::State, http::Method};
use rpc_idl::warehouse::Advertisement;
use serde::Serialize;

use super::RouteTable;
use crate::{AppState, auth::Public, errors::ApiError};

pub fn routes(table: RouteTable) -> RouteTable {
    table.add(Method::GET, "/restful/advertisements", list)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvertisementView {
    id: i64,
    image: String,
    product_id: i64,
}

impl From<Advertisement> for AdvertisementView {
    fn from(advertisement: Advertisement) -> Self {
        Self {
            id: advertisement.id,
            image: advertisement.image.to_string(),
            product_id: advertisement.product_id,
        }
    }
}

async fn list(
    State(state): State<AppState>,
    public: Public,
) -> Result<Json<Vec<AdvertisementView>>, ApiError> {
    let advertisements = state
        .backends
        .warehouse
        .list_advertisements(&public.call)
        .await?;
    Ok(Json(
        advertisements
            .into_iter()
            .map(AdvertisementView::from)
            .collect(),
    ))
}
