//! The one place where failures become HTTP statuses and error bodies.
//!
//! Two conversions live here, each done exactly once:
//!
//! 1. What a backend answered (a Thrift exception, a gRPC status, or no answer at all) becomes a
//!    [`BackendError`], which no longer knows which protocol it came from (`backend.rs`).
//! 2. A [`BackendError`] or a failure the gateway found itself becomes an [`ApiError`], which
//!    renders as `{"code":1,"message":"..."}` with the status from the REST contract's table,
//!    or an [`OAuthError`], which renders as an RFC 6749 error body.
//!
//! Nothing else in the gateway picks status codes for failures, and nothing parses the messages
//! a backend sent: they are passed on to the client for 4xx answers and never for 5xx ones.

mod backend;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use backend::rest_field;
pub use backend::{BackendError, BackendErrorKind, FieldError, Service, transport_failure};

/// A failure of a REST call, as the client will see it.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400: malformed JSON, failed validation, bad path or query parameter.
    BadRequest {
        message: String,
        errors: Vec<FieldError>,
    },
    /// 401, with `WWW-Authenticate: Bearer`.
    Unauthenticated {
        message: String,
        invalid_token: bool,
    },
    /// 403.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 409: a uniqueness conflict, or a state that forbids the action.
    Conflict(String),
    /// 413.
    PayloadTooLarge,
    /// 422: a business rule refused the request.
    Unprocessable(String),
    /// 429, with `Retry-After`: this client, or everybody, asked too often.
    TooManyRequests(std::time::Duration),
    /// 503: a backend is down or refused the connection.
    Unavailable(Service),
    /// 504: a deadline passed.
    DeadlineExceeded(Service),
    /// 500: logged where it happened; the client learns nothing more.
    Internal,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// A validation failure listing every failed rule.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let message = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::BadRequest { message, errors }
    }

    pub fn authentication_required() -> Self {
        Self::Unauthenticated {
            message: "authentication required".into(),
            invalid_token: false,
        }
    }

    pub fn invalid_token() -> Self {
        Self::Unauthenticated {
            message: "the access token is invalid or expired".into(),
            invalid_token: true,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::BadRequest { message, .. }
            | Self::Unauthenticated { message, .. }
            | Self::Forbidden(message)
            | Self::NotFound(message)
            | Self::Conflict(message)
            | Self::Unprocessable(message) => message.clone(),
            Self::PayloadTooLarge => "the request body is too large".into(),
            Self::TooManyRequests(wait) => format!(
                "too many requests; try again in {} s",
                retry_after_seconds(*wait)
            ),
            Self::Unavailable(service) => {
                format!("the {service} service is unavailable; try again later")
            }
            Self::DeadlineExceeded(service) => {
                format!("the {service} service did not answer in time")
            }
            Self::Internal => "internal error".into(),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        let service = error.service;
        match error.kind {
            // The service that owns the data decided; the gateway only renames its fields to
            // the REST body's and says the same.
            BackendErrorKind::InvalidInput { message, errors } if errors.is_empty() => {
                Self::BadRequest { message, errors }
            }
            BackendErrorKind::InvalidInput { errors, .. } => {
                Self::invalid(errors.into_iter().map(rest_field).collect())
            }
            BackendErrorKind::NotFound(message) => Self::NotFound(message),
            BackendErrorKind::Conflict(message) | BackendErrorKind::WrongState(message) => {
                Self::Conflict(message)
            }
            BackendErrorKind::Refused(message) => Self::Unprocessable(message),
            // Only the token endpoint checks credentials; anywhere else it is a gateway bug.
            BackendErrorKind::BadCredentials => {
                tracing::error!(%service, "unexpected bad-credentials answer");
                Self::Internal
            }
            BackendErrorKind::Unauthenticated(message) => Self::Unauthenticated {
                message,
                invalid_token: true,
            },
            BackendErrorKind::PermissionDenied(message) => Self::Forbidden(message),
            BackendErrorKind::Unavailable(detail) => {
                tracing::warn!(%service, %detail, "backend unavailable");
                Self::Unavailable(service)
            }
            BackendErrorKind::DeadlineExceeded => {
                tracing::warn!(%service, "backend deadline exceeded");
                Self::DeadlineExceeded(service)
            }
            BackendErrorKind::Internal(detail) => {
                tracing::error!(%service, %detail, "backend failed");
                Self::Internal
            }
        }
    }
}

/// The REST contract's error body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

/// `Retry-After` of a 503: about one round of the backend health checks.
const RETRY_UNAVAILABLE: &str = "2";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let errors: &[FieldError] = match &self {
            Self::BadRequest { errors, .. } => errors,
            _ => &[],
        };
        let body = ErrorBody {
            code: 1,
            message: self.message(),
            errors,
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::Unavailable(_) = self {
            // The health checker looks again within a couple of seconds.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_UNAVAILABLE),
            );
        }
        if let Self::TooManyRequests(wait) = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_seconds(wait).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let Self::Unauthenticated { invalid_token, .. } = self {
            let challenge = if invalid_token {
                "Bearer error=\"invalid_token\""
            } else {
                "Bearer"
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// RFC 6749 section 5.2 errors of the token endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum OAuthError {
    /// 400: a required parameter is missing or repeated, or the request is malformed.
    InvalidRequest(String),
    /// 401: unknown client, wrong secret, or no client authentication.
    InvalidClient,
    /// 400: wrong username or password, or an invalid/expired/foreign refresh token.
    InvalidGrant(String),
    /// 400: the client may not use this grant type.
    UnauthorizedClient,
    /// 400.
    UnsupportedGrantType,
    /// 400: a scope the client may not have.
    InvalidScope,
    /// 503 (or 504 for a deadline): the account service did not answer.
    Backend(ApiError),
    /// 429 with `Retry-After`: too many failed logins for this username from this client.
    SlowDown(std::time::Duration),
    /// 429 with `Retry-After`: this client, or everybody, asked for tokens too often.
    RateLimited(std::time::Duration),
    /// 500.
    Internal,
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

/// Whole seconds to wait, rounded up (never 0, which would invite an immediate retry).
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0 || wait.is_zero())
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::SlowDown(wait) | Self::RateLimited(wait) => {
                HeaderValue::from_str(&retry_after_seconds(*wait).to_string()).ok()
            }
            Self::Backend(ApiError::Unavailable(_)) => {
                Some(HeaderValue::from_static(RETRY_UNAVAILABLE))
            }
            _ => None,
        };
        let (status, error, description) = match self {
            Self::InvalidRequest(description) => {
                (StatusCode::BAD_REQUEST, "invalid_request", description)
            }
            Self::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed".into(),
            ),
            Self::InvalidGrant(description) => {
                (StatusCode::BAD_REQUEST, "invalid_grant", description)
            }
            Self::UnauthorizedClient => (
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "the client may not use this grant type".into(),
            ),
            Self::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the grant type is not supported".into(),
            ),
            Self::InvalidScope => (
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "the requested scope is invalid or not allowed for this client".into(),
            ),
            Self::Backend(api) => {
                let status = api.status();
                (status, "temporarily_unavailable", api.message())
            }
            Self::SlowDown(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                format!(
                    "too many failed logins; try again in {} s",
                    retry_after_seconds(wait)
                ),
            ),
            Self::RateLimited(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                format!(
                    "too many token requests; try again in {} s",
                    retry_after_seconds(wait)
                ),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error".into(),
            ),
        };
        let body = OAuthErrorBody {
            error,
            error_description: description,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth\""),
            );
        }
        if let Some(retry_after) = retry_after {
            headers.insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn every_backend_failure_has_its_status_and_a_code_1_body() {
        use BackendErrorKind as K;
        let cases = [
            (
                K::InvalidInput {
                    message: "name: empty".into(),
                    errors: vec![FieldError::new("name", "empty")],
                },
                400,
            ),
            (K::NotFound("no product 9".into()), 404),
            (K::Conflict("email is taken".into()), 409),
            (K::WrongState("payment is CANCEL".into()), 409),
            (K::Refused("insufficient stock of product 1".into()), 422),
            (K::Unauthenticated("expired".into()), 401),
            (K::PermissionDenied("not yours".into()), 403),
            (K::Unavailable("connection refused".into()), 503),
            (K::DeadlineExceeded, 504),
            (K::Internal("db exploded at 10.0.0.7".into()), 500),
        ];
        for (kind, status) in cases {
            let api = ApiError::from(BackendError::new(Service::Warehouse, kind.clone()));
            let response = api.into_response();
            assert_eq!(response.status().as_u16(), status, "{kind:?}");
            let www = response.headers().get(header::WWW_AUTHENTICATE).cloned();
            assert_eq!(www.is_some(), status == 401, "{kind:?}");
            let body = body_of(response).await;
            assert_eq!(body["code"], 1);
            let message = body["message"].as_str().expect("message");
            assert!(!message.is_empty());
            assert!(!message.contains("10.0.0.7"), "leaks internals: {message}");
            assert!(!message.contains("connection refused"), "leaks: {message}");
        }
    }

    #[tokio::test]
    async fn validation_errors_list_every_rule() {
        let api = ApiError::invalid(vec![
            FieldError::new("title", "must not be empty"),
            FieldError::new("price", "must be at least 0"),
        ]);
        let body = body_of(api.into_response()).await;
        assert_eq!(
            body["message"],
            "title: must not be empty; price: must be at least 0"
        );
        assert_eq!(body["errors"][1]["field"], "price");
    }

    #[tokio::test]
    async fn oauth_errors_follow_rfc_6749() {
        let response = OAuthError::InvalidClient.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(body_of(response).await["error"], "invalid_client");

        let response = OAuthError::InvalidGrant("bad credentials".into()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_of(response).await;
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], "bad credentials");

        let response =
            OAuthError::SlowDown(std::time::Duration::from_millis(2_100)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(body_of(response).await["error"], "slow_down");
    }
}
