//! Logs and spans with `tracing`: human-readable lines on a terminal, one JSON object per line in
//! Kubernetes, a log level that can change at run time (from a hot-reloaded config), and spans
//! exported to an OpenTelemetry collector when one is configured ([`crate::trace_export`]).

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::sync::watch;
use tracing_subscriber::{
    EnvFilter, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

use crate::{
    configuration::{LogConfig, LogFormat},
    trace_context,
    trace_export::{self, ExportSettings},
};

/// Changes the active log filter. Cheap to clone.
#[derive(Clone)]
pub struct LogLevelHandle {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl LogLevelHandle {
    /// Applies a new filter directive such as `debug` or `info,gateway=trace`.
    pub fn set_level(&self, level: &str) {
        match EnvFilter::try_new(level) {
            Ok(filter) => match self.filter.reload(filter) {
                Ok(()) => tracing::info!(level, "log level changed"),
                Err(error) => tracing::debug!(%error, "log filter not installed here"),
            },
            Err(error) => tracing::warn!(level, %error, "invalid log level; keeping the old one"),
        }
    }

    /// Follows `level` in a config channel until the channel closes.
    pub fn follow<T: Send + Sync + 'static>(
        self,
        mut config: watch::Receiver<T>,
        level_of: fn(&T) -> &str,
    ) {
        tokio::spawn(async move {
            let mut current = level_of(&config.borrow_and_update()).to_owned();
            while config.changed().await.is_ok() {
                let next = level_of(&config.borrow_and_update()).to_owned();
                if next != current {
                    self.set_level(&next);
                    current = next;
                }
            }
        });
    }
}

/// What [`init`] installed: the log level's handle and, when traces are exported, the tracer
/// provider, to be flushed at exit with [`Telemetry::shutdown`].
pub struct Telemetry {
    pub log: LogLevelHandle,
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still queued (within the export timeout) and stops the export thread.
    pub async fn shutdown(self) {
        let Some(provider) = self.traces else {
            return;
        };
        // The provider's shutdown blocks its caller while the last batch goes out.
        let flushed = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(trace_export::EXPORT_TIMEOUT)
        })
        .await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "the last spans could not be exported");
        }
    }
}

/// Installs the global subscriber: logs and, when an OTLP endpoint is configured (see
/// [`trace_export`]), spans exported as `program`. `RUST_LOG`, when set, wins over
/// `config.level` at start. Calling it again (tests, the launcher) leaves the first subscriber in
/// place. Must run inside a Tokio runtime when traces are exported.
pub fn init(config: &LogConfig, program: &str) -> Telemetry {
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| config.level.clone());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let (traces, trace_problem) = match ExportSettings::resolve(config, program)
        .and_then(|settings| settings.map(|settings| settings.provider()).transpose())
    {
        Ok(provider) => (provider, None),
        Err(error) => (None, Some(error)),
    };
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(program.to_owned()))
            .with_tracked_inactivity(false)
            .with_threads(false)
    });
    let registry = tracing_subscriber::registry().with(filter).with(spans);
    let installed = match config.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Human => registry
            .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal()))
            .try_init(),
    };
    let traces = match installed {
        Ok(()) => traces,
        Err(_) => {
            tracing::debug!("a global subscriber was already installed");
            None
        }
    };
    if let Some(error) = trace_problem {
        tracing::warn!(%error, "traces are not exported");
    }
    if traces.is_some() {
        trace_context::set_exporting();
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Telemetry {
        log: LogLevelHandle { filter: handle },
        traces,
    }
}
