//! Carrying the caller's token, the request id and the trace context ([`trace_context`]) across
//! RPCs.
//!
//! gRPC: metadata keys `authorization` (`Bearer <jwt>`) and `x-request-id`.
//! Thrift: TTHeader metainfo. A Volo client's *transient* values arrive at the server as
//! *upstream* values, under the same keys; Kitex clients send them as `RPC_TRANSIT_authorization`
//! (transient) or `RPC_PERSIST_authorization` (persistent), and both are read.
//!
//! A token is read as `Bearer <jwt>` or as the bare JWT. Whatever else a caller sends under the
//! key is kept as it is, so that verification refuses it (`Unauthenticated`): a present but
//! unreadable token never makes a call anonymous.

use std::{cell::RefCell, future::Future};

use metainfo::{Forward, METAINFO, MetaInfo};
use volo_grpc::metadata::MetadataValue;

use crate::{
    tokens::{Caller, TokenError, TokenVerifier},
    trace_context,
};

pub const AUTHORIZATION: &str = "authorization";
pub const REQUEST_ID: &str = "x-request-id";

/// The credentials and trace id a call carries on to the next service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallMetadata {
    /// The raw JWT (without the `Bearer ` prefix).
    pub token: Option<String>,
    pub request_id: Option<String>,
}

/// Why an RPC's caller could not be established.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("{0}")]
    Invalid(#[from] TokenError),
}

/// Extracts the token from `Bearer <jwt>`; the scheme word is case-insensitive.
pub fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The token an `authorization` value carries: after `Bearer `, or the whole value when it has
/// no scheme. Anything else comes back whole, for verification to refuse.
pub fn token_of(value: &str) -> String {
    strip_bearer(value).unwrap_or(value.trim()).to_owned()
}

impl CallMetadata {
    /// What an incoming gRPC request carries.
    pub fn from_grpc<T>(req: &volo_grpc::Request<T>) -> Self {
        let get = |key: &str| {
            req.metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            // A value that is not text is kept as an empty token: refused, not anonymous.
            token: req
                .metadata()
                .get(AUTHORIZATION)
                .map(|value| value.to_str().map(token_of).unwrap_or_default()),
            request_id: get(REQUEST_ID),
        }
    }

    /// What the Thrift request being served carries (empty outside a Thrift handler).
    pub fn from_thrift() -> Self {
        METAINFO
            .try_with(|mi| {
                let mi = mi.borrow();
                Self {
                    token: mi
                        .get_upstream(AUTHORIZATION)
                        .or_else(|| mi.get_persistent(AUTHORIZATION))
                        .as_deref()
                        .map(token_of),
                    request_id: mi.get_upstream(REQUEST_ID).map(|v| v.to_string()),
                }
            })
            .unwrap_or_default()
    }

    /// Verifies the token, if any: `Ok(None)` for an anonymous call, `Err` for a bad token.
    pub fn caller(&self, verifier: &TokenVerifier) -> Result<Option<Caller>, TokenError> {
        self.token
            .as_deref()
            .map(|t| verifier.verify_access(t))
            .transpose()
    }

    /// Like [`Self::caller`], but an anonymous call is an error too.
    pub fn require_caller(&self, verifier: &TokenVerifier) -> Result<Caller, AuthError> {
        self.caller(verifier)?.ok_or(AuthError::Missing)
    }

    /// Wraps a message in a gRPC request carrying this metadata.
    pub fn grpc_request<T>(&self, message: T) -> volo_grpc::Request<T> {
        let mut request = volo_grpc::Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(Ok(value)) = self
            .token
            .as_ref()
            .map(|t| format!("Bearer {t}").parse::<MetadataValue<_>>())
        {
            metadata.insert(AUTHORIZATION, value);
        }
        if let Some(Ok(value)) = self
            .request_id
            .as_deref()
            .map(str::parse::<MetadataValue<_>>)
        {
            metadata.insert(REQUEST_ID, value);
        }
        for (key, value) in trace_context::current() {
            if let Ok(value) = value.parse::<MetadataValue<_>>() {
                metadata.insert(key, value);
            }
        }
        request
    }

    /// Runs a Volo Thrift client call with this metadata in its TTHeader.
    pub async fn thrift_call<F: Future>(&self, call: F) -> F::Output {
        let mut mi = MetaInfo::new();
        if let Some(token) = &self.token {
            mi.set_transient(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(id) = &self.request_id {
            mi.set_transient(REQUEST_ID, id.clone());
        }
        for (key, value) in trace_context::current() {
            mi.set_transient(key, value);
        }
        METAINFO.scope(RefCell::new(mi), call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(strip_bearer("bearer abc"), Some("abc"));
        assert_eq!(strip_bearer("BEARER  abc "), Some("abc"));
        assert_eq!(strip_bearer("Basic abc"), None);
        assert_eq!(strip_bearer("Bearer "), None);
        assert_eq!(strip_bearer("abc"), None);
    }

    #[test]
    fn grpc_metadata_round_trips() {
        let sent = CallMetadata {
            token: Some("t.o.k".into()),
            request_id: Some("r-1".into()),
        };
        let request = sent.grpc_request(());
        assert_eq!(CallMetadata::from_grpc(&request), sent);
    }
}
