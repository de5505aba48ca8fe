//! The middleware that gives every request an id, a span and a line in the metrics, and the
//! gateway's own series (served with every program's on the metrics listener,
//! [`platform::metrics`]):
//!
//! `gateway_http_requests_total{method,route,status}` and
//! `gateway_http_request_duration_seconds{method,route}` (histogram); backend calls as the
//! shared `rpc_client_requests_total{program="gateway",service,method,outcome}` (`outcome` is
//! `ok` or the error's kind). `route` is the route template (`/restful/products/{id}`), never the
//! raw path, so ids cannot explode the series count.

use std::time::{Duration, Instant};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use platform::trace_context;
use tracing::Instrument;

use crate::errors::{BackendError, Service};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the caller's `x-request-id` when it is sensible, else the trace id of a
/// W3C `traceparent` header (so one id follows a trace started elsewhere), else a new UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn from_headers(request_id: Option<&HeaderValue>, traceparent: Option<&HeaderValue>) -> Self {
        let given = request_id
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()));
        // traceparent = version "-" trace-id (32 hex) "-" parent-id "-" flags
        let trace_id = || {
            let value = traceparent?.to_str().ok()?;
            let trace_id = value.split('-').nth(1)?;
            (trace_id.len() == 32
                && trace_id.bytes().all(|b| b.is_ascii_hexdigit())
                && trace_id.bytes().any(|b| b != b'0'))
            .then(|| trace_id.to_ascii_lowercase())
        };
        Self(match given {
            Some(id) => id.to_owned(),
            None => trace_id().unwrap_or_else(new_request_id),
        })
    }
}

/// A new random (version 4) UUID for a request without an id of its own. The bytes come from
/// the thread's CSPRNG rather than a `getrandom` system call per request, as `Uuid::new_v4`
/// would make: a request id is a label, not a secret, and the call showed in the profile.
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// Middleware: request id (echoed in the response), one span per request carrying it, a log
/// line per request (info when it was refused or failed, debug when it succeeded), and the
/// request metrics.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(static)", |path| path.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = tracing::field::Empty,
        method = %method,
        path = %request.uri().path(),
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    let headers = request.headers();
    // With traces exported, the request's id is its trace id (the caller's, when it sent a
    // `traceparent`), so a log line leads to its trace.
    if trace_context::exporting() {
        span.record("otel.name", format!("{method} {route}"));
        span.record("otel.kind", "server");
    }
    let id = match trace_context::join_trace(&span, headers) {
        Some(trace_id) => RequestId(trace_id),
        None => {
            RequestId::from_headers(headers.get(&REQUEST_ID_HEADER), headers.get("traceparent"))
        }
    };
    span.record("request_id", id.0.as_str());
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    // A line per refused or failed request at info; successes only at debug. Formatting and
    // writing a line costs about a tenth of a read's CPU in the gateway (see BENCHMARKS.md),
    // and the metrics already count every request.
    span.in_scope(|| {
        if status.as_u16() < 400 {
            tracing::debug!(
                status = status.as_u16(),
                millis = elapsed.as_millis() as u64,
                "request handled"
            )
        } else {
            tracing::info!(
                status = status.as_u16(),
                millis = elapsed.as_millis() as u64,
                "request handled"
            )
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("gateway_http_requests_total", &labels).increment(1);
    metrics::histogram!("gateway_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    response
}

/// Records one backend call (one try).
pub fn backend_call<T>(
    service: Service,
    method: &'static str,
    outcome: &Result<T, BackendError>,
    elapsed: Duration,
) {
    let outcome = match outcome {
        Ok(_) => "ok",
        Err(error) => error.label(),
    };
    platform::metrics::rpc_made("gateway", service.name(), method, outcome, elapsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_when_sensible_and_made_otherwise() {
        let id = |request_id: Option<&'static str>, traceparent: Option<&'static str>| {
            let request_id = request_id.map(HeaderValue::from_static);
            let traceparent = traceparent.map(HeaderValue::from_static);
            RequestId::from_headers(request_id.as_ref(), traceparent.as_ref()).0
        };
        let trace = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        assert_eq!(id(Some("abc-123"), Some(trace)), "abc-123");
        assert_eq!(id(None, Some(trace)), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(id(Some("has space"), None), "has space");
        let zeros = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_eq!(
            uuid::Uuid::parse_str(&new_request_id()).map(|u| u.get_version_num()),
            Ok(4)
        );
        for made in [
            id(None, None),
            id(None, Some(zeros)),
            id(None, Some("garbage")),
        ] {
            assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
        }
    }
}
