//! `/oauth/token`, the token endpoint (implemented in [`crate::oauth`]), and
//! `/.well-known/jwks.json`, the public keys its tokens are signed with, for outside verifiers.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, Method, header},
    response::{IntoResponse, Response},
};

use super::RouteTable;
use crate::{AppState, oauth::token_endpoint};

pub fn routes(table: RouteTable) -> RouteTable {
    table
        .add(Method::GET, "/oauth/token", token_endpoint)
        .add(Method::POST, "/oauth/token", token_endpoint)
        .add(Method::GET, "/.well-known/jwks.json", jwks)
}

/// The current signing key's public half and the other keys of a rotation, with their `kid`s.
/// Cacheable for five minutes: a new key is trusted (listed) well before it signs (SECURITY.md,
/// "Rotating the token-signing key").
async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.tokens.public_keys()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
