//! Sending finished spans to an OpenTelemetry collector over OTLP/HTTP (protobuf).
//!
//! Off unless an endpoint is configured (`[log] otlp_endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`). When on, every span `tracing` records becomes an OpenTelemetry
//! span (through `tracing-opentelemetry`), and the SDK's batch processor hands them to the
//! exporter from a thread of its own, so a request never waits for the collector:
//!
//! - the queue holds at most [`MAX_QUEUED_SPANS`]; past that, spans are dropped and counted (the
//!   SDK reports the count when the provider shuts down), never waited for;
//! - one export may take at most [`EXPORT_TIMEOUT`], and a dead collector costs one failed
//!   connection attempt per batch.
//!
//! The SDK's export thread is not a Tokio thread, and hyper's client needs Tokio's reactor: so
//! [`TokioHttpClient`] runs each export on the program's runtime and waits for its answer there.

use std::{env, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider},
};

use crate::configuration::LogConfig;

/// Spans waiting for export at most; more are dropped (and counted) rather than held.
pub const MAX_QUEUED_SPANS: usize = 4096;
/// How long one export to the collector may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long spans wait to be sent in a batch.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// The largest collector answer read (an OTLP answer is a few bytes; a partial-success message
/// a few hundred).
const MAX_ANSWER_BYTES: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum TraceExportError {
    #[error("unsupported OTLP protocol {0:?}: this program exports http/protobuf")]
    Protocol(String),
    #[error("invalid trace sampler {sampler:?} (argument {argument:?})")]
    Sampler { sampler: String, argument: String },
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("trace export needs a Tokio runtime")]
    NoRuntime,
}

/// Where and what to export, after the standard `OTEL_*` variables have had their say.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    /// The full URL spans are posted to (`…/v1/traces`).
    pub endpoint: String,
    pub service_name: String,
    pub sampler: String,
    pub sampler_arg: String,
}

impl ExportSettings {
    /// `None` when no endpoint is configured anywhere (export off).
    pub fn resolve(config: &LogConfig, program: &str) -> Result<Option<Self>, TraceExportError> {
        Self::resolve_with(config, program, |name| {
            env::var(name).ok().filter(|value| !value.trim().is_empty())
        })
    }

    fn resolve_with(
        config: &LogConfig,
        program: &str,
        variable: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TraceExportError> {
        let protocol = variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| variable("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(protocol) = protocol
            && protocol.trim() != "http/protobuf"
        {
            return Err(TraceExportError::Protocol(protocol));
        }
        // The signal's own variable is a full URL; the general one and ours are a base.
        let endpoint = match variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url,
            None => match variable("OTEL_EXPORTER_OTLP_ENDPOINT")
                .or_else(|| Some(config.otlp_endpoint.clone()).filter(|url| !url.is_empty()))
            {
                Some(base) => format!("{}/v1/traces", base.trim_end_matches('/')),
                None => return Ok(None),
            },
        };
        let service_name = variable("OTEL_SERVICE_NAME")
            .or_else(|| Some(config.service_name.clone()).filter(|name| !name.is_empty()))
            .unwrap_or_else(|| program.to_owned());
        let (sampler, sampler_arg) = match variable("OTEL_TRACES_SAMPLER") {
            Some(sampler) => (
                sampler,
                variable("OTEL_TRACES_SAMPLER_ARG").unwrap_or_else(|| "1.0".to_owned()),
            ),
            None => (
                config.trace_sampler.clone(),
                config.trace_sampler_arg.clone(),
            ),
        };
        let settings = Self {
            endpoint,
            service_name,
            sampler,
            sampler_arg,
        };
        settings.sampler()?;
        Ok(Some(settings))
    }

    fn sampler(&self) -> Result<Sampler, TraceExportError> {
        let invalid = || TraceExportError::Sampler {
            sampler: self.sampler.clone(),
            argument: self.sampler_arg.clone(),
        };
        let ratio = || {
            self.sampler_arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|ratio| (0.0..=1.0).contains(ratio))
                .ok_or_else(invalid)
        };
        Ok(match self.sampler.trim() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
            "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            "parentbased_traceidratio" => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
            }
            _ => return Err(invalid()),
        })
    }

    /// A tracer provider exporting in batches from its own thread. Needs a Tokio runtime (the
    /// exports run on it).
    pub fn provider(&self) -> Result<SdkTracerProvider, TraceExportError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TraceExportError::NoRuntime)?;
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(TokioHttpClient::new(runtime))
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(self.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let batches = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(MAX_QUEUED_SPANS)
                    .with_scheduled_delay(EXPORT_DELAY)
                    .build(),
            )
            .build();
        Ok(SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_sampler(self.sampler()?)
            .with_resource(
                Resource::builder()
                    .with_service_name(self.service_name.clone())
                    .build(),
            )
            .build())
    }
}

/// An OTLP exporter's HTTP client: hyper on the program's Tokio runtime.
#[derive(Debug, Clone)]
struct TokioHttpClient {
    runtime: tokio::runtime::Handle,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TokioHttpClient {
    fn new(runtime: tokio::runtime::Handle) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(EXPORT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        Self { runtime, client }
    }
}

#[async_trait::async_trait]
impl HttpClient for TokioHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let exchange = async move {
            let answer = client.request(request.map(Full::new)).await?;
            let (parts, body) = answer.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
            Ok::<_, HttpError>(Response::from_parts(parts, body.to_bytes()))
        };
        // The timer is made on the runtime too: this thread has no Tokio context to make it in.
        let exchange = self
            .runtime
            .spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, exchange).await });
        match exchange.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the collector did not answer in time".into()),
            Err(error) => Err(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(config: &LogConfig, env: &[(&str, &str)]) -> Option<ExportSettings> {
        let env: HashMap<_, _> = env.iter().copied().collect();
        ExportSettings::resolve_with(config, "warehouse", |name| {
            env.get(name).map(|value| (*value).to_owned())
        })
        .expect("valid settings")
    }

    #[test]
    fn export_is_off_without_an_endpoint() {
        assert_eq!(resolve(&LogConfig::default(), &[]), None);
    }

    #[test]
    fn the_standard_variables_win_over_the_config_keys() {
        let config = LogConfig {
            otlp_endpoint: "http://config:4318/".into(),
            service_name: "from-config".into(),
            ..LogConfig::default()
        };
        let from_config = resolve(&config, &[]).expect("on");
        assert_eq!(from_config.endpoint, "http://config:4318/v1/traces");
        assert_eq!(from_config.service_name, "from-config");
        assert_eq!(from_config.sampler, "parentbased_always_on");

        let from_env = resolve(
            &config,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_SERVICE_NAME", "shop-warehouse"),
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ],
        )
        .expect("on");
        assert_eq!(from_env.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(from_env.service_name, "shop-warehouse");
        assert_eq!(
            (from_env.sampler.as_str(), from_env.sampler_arg.as_str()),
            ("traceidratio", "0.25")
        );

        let signal = resolve(
            &LogConfig::default(),
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom")],
        )
        .expect("on");
        assert_eq!(signal.endpoint, "http://c:4318/custom");
        assert_eq!(signal.service_name, "warehouse");
    }

    #[test]
    fn unsupported_protocols_and_samplers_are_refused() {
        let config = LogConfig {
            otlp_endpoint: "http://c:4318".into(),
            ..LogConfig::default()
        };
        let refused = |env: &[(&str, &str)]| {
            let env: HashMap<_, _> = env.iter().copied().collect();
            ExportSettings::resolve_with(&config, "x", |name| {
                env.get(name).map(|v| (*v).to_owned())
            })
            .is_err()
        };
        assert!(refused(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]));
        assert!(refused(&[("OTEL_TRACES_SAMPLER", "sometimes")]));
        assert!(refused(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2")
        ]));
        assert!(!refused(&[(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/protobuf"
        )]));
    }
}
