//! Who is calling: bearer tokens (the scheme word in any case), verified with the gateway's own
//! public key, and the role and owner rules the routes apply before any backend is asked.
//!
//! The services check the same token again; the gateway checks first so that a refused call
//! costs no RPC and every refusal has the same shape.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
use platform::{rpc_metadata::strip_bearer, tokens::Caller};

use crate::{AppState, backends::Call, errors::ApiError, metrics::RequestId};

/// The bearer token of a request: `Ok(None)` without an `Authorization` header, an error for one
/// that is not a bearer token.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    match headers.get(header::AUTHORIZATION) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(strip_bearer)
            .map(Some)
            .ok_or_else(ApiError::invalid_token),
    }
}

fn request_id(parts: &Parts) -> String {
    parts
        .extensions
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_else(crate::metrics::new_request_id)
}

/// A call on an endpoint anyone may use. A token, even a bad one, is neither needed nor passed
/// on: public reads do not depend on who asks.
pub struct Public {
    pub call: Call,
}

impl FromRequestParts<AppState> for Public {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self {
            call: state.call(None, request_id(parts)),
        })
    }
}

/// A call with a valid access token (else 401 with `WWW-Authenticate: Bearer`). The token is
/// passed on to every backend the request calls.
pub struct Authenticated {
    pub caller: Caller,
    pub call: Call,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?.ok_or_else(ApiError::authentication_required)?;
        let caller = state.tokens.verify_access(token).map_err(|error| {
            tracing::debug!(%error, "token refused");
            ApiError::invalid_token()
        })?;
        Ok(Self {
            caller,
            call: state.call(Some(token.to_owned()), request_id(parts)),
        })
    }
}

impl Authenticated {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.caller.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this needs the administrator role".into(),
            ))
        }
    }

    /// The account's owner (by username, case-insensitive) or an administrator.
    pub fn require_owner_of_username(&self, username: &str) -> Result<(), ApiError> {
        if self.caller.is_user(username) || self.caller.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this account is not yours".into()))
        }
    }

    /// The account's owner (by id) or an administrator.
    pub fn require_owner_of_account(&self, account_id: i64) -> Result<(), ApiError> {
        if self.caller.account_id == Some(account_id) || self.caller.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this account is not yours".into()))
        }
    }

    /// A token issued to a user (not a service), whose account id is returned.
    pub fn require_user(&self) -> Result<i64, ApiError> {
        self.caller
            .account_id
            .ok_or_else(|| ApiError::Forbidden("this needs a user's token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(authorization),
        );
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["bearer a.b.c", "Bearer a.b.c", "BEARER   a.b.c"] {
            assert_eq!(bearer_token(&headers(value)).ok().flatten(), Some("a.b.c"));
        }
        assert_eq!(bearer_token(&HeaderMap::new()).ok(), Some(None));
        assert!(bearer_token(&headers("Basic Zm9vOmJhcg==")).is_err());
        assert!(bearer_token(&headers("Bearer")).is_err());
    }

    fn authenticated(account_id: Option<i64>, authorities: &[&str]) -> Authenticated {
        Authenticated {
            caller: Caller {
                username: account_id.map(|_| "alice".to_owned()),
                account_id,
                authorities: authorities.iter().map(|a| a.to_string()).collect(),
                scopes: vec!["BROWSER".into()],
                client_id: "bookstore_frontend".into(),
            },
            call: Call::new(None, "r".into(), std::time::Duration::from_secs(1)),
        }
    }

    #[test]
    fn owners_and_admins_pass_others_get_403() {
        let alice = authenticated(Some(7), &["ROLE_USER"]);
        assert!(alice.require_owner_of_username("ALICE").is_ok());
        assert!(alice.require_owner_of_account(7).is_ok());
        assert_eq!(alice.require_user().ok(), Some(7));
        for refused in [
            alice.require_owner_of_username("bob"),
            alice.require_owner_of_account(8),
            alice.require_admin(),
        ] {
            assert!(matches!(refused, Err(ApiError::Forbidden(_))));
        }
        let admin = authenticated(Some(1), &["ROLE_USER", "ROLE_ADMIN"]);
        assert!(admin.require_owner_of_username("bob").is_ok());
        assert!(admin.require_owner_of_account(8).is_ok());
        assert!(admin.require_admin().is_ok());
        let service = authenticated(None, &[]);
        assert!(service.require_user().is_err());
    }
}
