//! One trace across HTTP, gRPC and Thrift: the W3C trace context (`traceparent`, `tracestate`)
//! read where a request enters a program and written where a call leaves it, and the spans at
//! both ends of a call.
//!
//! - HTTP and gRPC carry the context in headers (gRPC metadata are HTTP/2 headers);
//! - Thrift carries it in TTHeader: a Volo client's transient values arrive as upstream values;
//!   Kitex clients (obs-opentelemetry) send the keys in CGI spelling (`TRACEPARENT`), transient
//!   or persistent; all of these are read.
//!
//! The spans are `tracing` spans with OpenTelemetry's special fields (`otel.name`,
//! `otel.kind`); `tracing-opentelemetry` turns them into OpenTelemetry spans when trace export
//! is on ([`crate::telemetry`]). When it is off, no call pays for them: [`server_span`] and
//! [`client_span`] answer a disabled span and nothing is written on the wire.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use metainfo::{Forward, METAINFO};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, TraceContextExt},
};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use volo::context::Context as _;
use volo_thrift::context::ServerContext;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Set once spans are exported (see [`crate::telemetry::init`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Release);
}

/// Whether spans are exported, so that trace context is worth reading and sending.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Acquire)
}

fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// The context a request's HTTP (or gRPC) headers carry, if a valid one.
pub fn from_headers(headers: &http::HeaderMap) -> Option<Context> {
    remote(propagator().extract(&HeaderExtractor(headers)))
}

/// The context the Thrift request being served carries in its TTHeader, if a valid one.
pub fn from_thrift() -> Option<Context> {
    let values = METAINFO
        .try_with(|metainfo| {
            let metainfo = metainfo.borrow();
            let mut values = HashMap::new();
            for key in [TRACEPARENT, TRACESTATE] {
                let upper = key.to_ascii_uppercase();
                let value = metainfo
                    .get_upstream(key)
                    .or_else(|| metainfo.get_persistent(key))
                    .or_else(|| metainfo.get_upstream(&upper))
                    .or_else(|| metainfo.get_persistent(&upper));
                if let Some(value) = value {
                    values.insert(key, value.to_string());
                }
            }
            values
        })
        .unwrap_or_default();
    remote(propagator().extract(&Pairs(values)))
}

/// The context a `traceparent` value stored earlier (the outbox) names, if a valid one.
pub fn from_traceparent(traceparent: &str) -> Option<SpanContext> {
    let values = HashMap::from([(TRACEPARENT, traceparent.to_owned())]);
    remote(propagator().extract(&Pairs(values)))
        .map(|context| context.span().span_context().clone())
}

fn remote(context: Context) -> Option<Context> {
    context.span().span_context().is_valid().then_some(context)
}

/// The current span's context as the `traceparent` and `tracestate` values to send on; none
/// when spans are not exported or the current span is not recorded.
pub fn current() -> Vec<(&'static str, String)> {
    if !exporting() {
        return Vec::new();
    }
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut values = Pairs(HashMap::new());
    propagator().inject_context(&context, &mut values);
    values.0.into_iter().collect()
}

/// The current span's `traceparent`, to store beside work done later on its behalf.
pub fn current_traceparent() -> Option<String> {
    current()
        .into_iter()
        .find_map(|(key, value)| (key == TRACEPARENT).then_some(value))
}

/// Makes `span` (an incoming HTTP request's) a child of the trace its headers name, or the root
/// of a new one, and answers the trace id; `None` when spans are not exported.
pub fn join_trace(span: &Span, headers: &http::HeaderMap) -> Option<String> {
    if !exporting() {
        return None;
    }
    if let Some(parent) = from_headers(headers) {
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let trace_id = context.span().span_context().trace_id();
    (trace_id != opentelemetry::trace::TraceId::INVALID).then(|| trace_id.to_string())
}

/// The span of one call served: named after the method, a child of the caller's span when the
/// request carried its context. Disabled when spans are not exported.
pub fn server_span(system: &'static str, method: &str, parent: Option<Context>) -> Span {
    if !exporting() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "rpc.server",
        otel.name = method,
        otel.kind = "server",
        rpc.system = system,
    );
    if let Some(parent) = parent {
        // Fails only when no OpenTelemetry layer is installed, which `exporting` rules out.
        let _ = span.set_parent(parent);
    }
    span
}

/// The span of one call made to `service`; the context sent with the call names it as the
/// parent of the server's span. Disabled when spans are not exported.
pub fn client_span(system: &'static str, service: &str, method: &str) -> Span {
    if !exporting() {
        return Span::none();
    }
    tracing::info_span!(
        "rpc.client",
        otel.name = format!("{service}/{method}"),
        otel.kind = "client",
        rpc.system = system,
        rpc.service = service,
    )
}

/// The span of work done on behalf of an earlier request (an outbox delivery): inside that
/// request, a child of its span; later (a retry, another process after a restart), the root of
/// a trace of its own, linked to the request's span `cause`.
pub fn follow_up_span(name: &'static str, cause: Option<SpanContext>) -> Span {
    if !exporting() {
        return Span::none();
    }
    let inside_a_request = Span::current().context().span().span_context().is_valid();
    let span = tracing::info_span!("follow_up", otel.name = name, otel.kind = "internal");
    if !inside_a_request {
        let _ = span.set_parent(Context::new());
        if let Some(cause) = cause {
            span.add_link(cause);
        }
    }
    span
}

/// A Volo Thrift server layer for `program`: each call is served inside a span of its own (a
/// child of the caller's when its TTHeader carried the trace context) and counted in the shared
/// RPC server metrics ([`crate::metrics`]).
#[derive(Debug, Clone, Copy)]
pub struct ThriftCalls {
    program: &'static str,
    /// Methods served without a span (health probes would fill the collector with one-span
    /// traces).
    untraced: &'static [&'static str],
}

impl ThriftCalls {
    pub fn of(program: &'static str) -> Self {
        Self {
            program,
            untraced: &[],
        }
    }

    pub fn untraced(self, untraced: &'static [&'static str]) -> Self {
        Self { untraced, ..self }
    }
}

impl<S> volo::Layer<S> for ThriftCalls {
    type Service = ThriftCall<S>;

    fn layer(self, inner: S) -> Self::Service {
        ThriftCall { inner, layer: self }
    }
}

/// [`ThriftCalls`] around a service.
#[derive(Debug, Clone)]
pub struct ThriftCall<S> {
    inner: S,
    layer: ThriftCalls,
}

impl<S, Req> volo::Service<ServerContext, Req> for ThriftCall<S>
where
    S: volo::Service<ServerContext, Req> + Send + Sync,
    Req: Send,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, cx: &mut ServerContext, req: Req) -> Result<S::Response, S::Error> {
        let method = cx.rpc_info().method().clone();
        let span = if exporting() && !self.layer.untraced.contains(&method.as_str()) {
            server_span("thrift", &method, from_thrift())
        } else {
            Span::none()
        };
        let started = Instant::now();
        let outcome = self.inner.call(cx, req).instrument(span).await;
        let code = if outcome.is_ok() { "ok" } else { "error" };
        crate::metrics::rpc_served(
            self.layer.program,
            method.to_string(),
            code,
            started.elapsed(),
        );
        outcome
    }
}

/// Key–value pairs as a propagation carrier.
struct Pairs(HashMap<&'static str, String>);

impl Extractor for Pairs {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().copied().collect()
    }
}

impl Injector for Pairs {
    fn set(&mut self, key: &str, value: String) {
        let key = match key {
            TRACEPARENT => TRACEPARENT,
            TRACESTATE => TRACESTATE,
            _ => return,
        };
        self.0.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_from_headers_and_a_broken_one_is_not() {
        let mut headers = http::HeaderMap::new();
        headers.insert(TRACEPARENT, PARENT.parse().expect("header"));
        let context = from_headers(&headers).expect("valid");
        assert_eq!(
            context.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        headers.insert(
            TRACEPARENT,
            "00-zz-00f067aa0ba902b7-01".parse().expect("header"),
        );
        assert!(from_headers(&headers).is_none());
        assert!(from_headers(&http::HeaderMap::new()).is_none());
    }

    #[tokio::test]
    async fn thrift_context_is_read_in_volo_and_kitex_spellings() {
        use std::cell::RefCell;

        use metainfo::MetaInfo;

        for (persistent, key) in [(false, TRACEPARENT), (true, "TRACEPARENT")] {
            let mut metainfo = MetaInfo::new();
            if persistent {
                metainfo.set_persistent(key, PARENT);
            } else {
                metainfo.set_upstream(key, PARENT);
            }
            let context = METAINFO
                .scope(RefCell::new(metainfo), async { from_thrift() })
                .await
                .expect("read");
            assert_eq!(
                context.span().span_context().span_id().to_string(),
                "00f067aa0ba902b7"
            );
        }
        assert!(
            from_thrift().is_none(),
            "outside a Thrift call there is none"
        );
    }

    #[test]
    fn a_stored_traceparent_names_its_span() {
        let span = from_traceparent(PARENT).expect("valid");
        assert_eq!(span.span_id().to_string(), "00f067aa0ba902b7");
        assert!(from_traceparent("garbage").is_none());
    }
}
