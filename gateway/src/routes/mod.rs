//! The REST API's routes, one module per resource, registered through a [`RouteTable`] that
//! remembers every method and path, so a test can hold the OpenAPI document against the routes
//! the server really has.

mod accounts;
mod advertisements;
mod oauth;
mod ops;
mod payments;
mod products;
mod settlements;

/// The JSON shapes of a product and an account, for programs that must answer with the same
/// bytes (the benchmark's bare translator).
pub use accounts::AccountView;
pub use products::ProductView;

use axum::{
    Json, Router,
    handler::Handler,
    http::Method,
    routing::{MethodFilter, on},
};
use serde::Serialize;

use crate::{AppState, errors::ApiError};

/// A router that records what it routes.
pub struct RouteTable {
    router: Router<AppState>,
    routes: Vec<(Method, &'static str)>,
}

impl RouteTable {
    fn new() -> Self {
        Self {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match MethodFilter::try_from(method.clone()) {
            Ok(filter) => filter,
            // Only the standard methods are used below; anything else is a programming error
            // that the route-table test catches.
            Err(_) => return self,
        };
        self.router = self.router.route(path, on(filter, handler));
        self.routes.push((method, path));
        self
    }

    /// Every method and path served, in registration order.
    pub fn routes(&self) -> &[(Method, &'static str)] {
        &self.routes
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// Every API, OAuth and operations route.
pub fn table() -> RouteTable {
    let table = RouteTable::new();
    let table = accounts::routes(table);
    let table = products::routes(table);
    let table = advertisements::routes(table);
    let table = settlements::routes(table);
    let table = payments::routes(table);
    let table = oauth::routes(table);
    ops::routes(table)
}

/// `200 {"code":0,"message":"..."}`: the answer to a command that returns no entity.
#[derive(Debug, Serialize)]
pub struct CommandResult {
    code: i32,
    message: String,
}

impl CommandResult {
    pub fn ok(message: impl Into<String>) -> Json<Self> {
        Json(Self {
            code: 0,
            message: message.into(),
        })
    }
}

/// Unknown paths under `/restful` and `/oauth`: a 404 in the API's shape, never a static file.
pub async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint".into())
}

/// A known path with a method it does not have.
pub async fn method_not_allowed() -> impl axum::response::IntoResponse {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({"code": 1, "message": "method not allowed"})),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The OpenAPI document served at `/openapi.json` lists exactly the routes the router has.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let document: serde_json::Value =
            serde_json::from_str(ops::OPENAPI_DOCUMENT).expect("valid JSON");
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.")),
            "an OpenAPI 3 document"
        );
        let mut documented = BTreeSet::new();
        let paths = document["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let table = table();
        let routed: BTreeSet<(String, String)> = table
            .routes()
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(routed.len(), table.routes().len(), "no route twice");
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from the document: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
    }
}
