//! Operations endpoints: liveness, readiness and the OpenAPI document. (Metrics are served on
//! the metrics listener, `[metrics] listen`, not on the public port.)

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::RouteTable;
use crate::AppState;

/// The OpenAPI 3 document of the REST API, checked against the routes by a test.
pub const OPENAPI_DOCUMENT: &str = include_str!("../../openapi.json");

pub fn routes(table: RouteTable) -> RouteTable {
    table
        .add(Method::GET, "/healthz", healthz)
        .add(Method::GET, "/readyz", readyz)
        .add(Method::GET, "/openapi.json", openapi)
}

/// The process is alive and serving HTTP.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "UP"}))
}

/// 200 while the gateway can serve (not draining), with the per-backend picture: a backend that
/// is down makes the report `degraded`, not the gateway unready (see `readiness.rs`). 503 once
/// draining.
async fn readyz(State(state): State<AppState>) -> Response {
    let report = state.readiness.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn openapi() -> Response {
    let mut response = OPENAPI_DOCUMENT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
