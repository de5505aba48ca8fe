//! `/oauth/token`: the token endpoint (implemented in [`crate::oauth`]).

use axum::http::Method;

use super::RouteTable;
use crate::oauth::token_endpoint;

pub fn routes(table: RouteTable) -> RouteTable {
    table.add(Method::GET, "/oauth/token", token_endpoint).add(
        Method::POST,
        "/oauth/token",
        token_endpoint,
    )
}
