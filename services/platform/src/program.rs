//! The start-up every binary shares: parse `--config`, load configuration, install telemetry,
//! arm the shutdown signal, start the metrics listener and the config watcher (whose log level is
//! applied live).

use clap::Parser;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    configuration::{Cli, ConfigError, ConfigSource, ProgramConfig},
    metrics::MetricsServer,
    reload::{ReloadError, ReloadTiming, watch_config},
    serve::BindError,
    shutdown, telemetry,
};

/// A program ready to build its application.
pub struct Started<C> {
    /// The current configuration, updated when the file changes.
    pub config: watch::Receiver<C>,
    /// Cancelled on SIGTERM or SIGINT.
    pub stop: CancellationToken,
    /// Logs and traces; [`telemetry::Telemetry::shutdown`] sends the last spans at exit.
    pub telemetry: telemetry::Telemetry,
    /// The metrics listener (`[metrics] listen`), serving until `stop`.
    pub metrics: Option<MetricsServer>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Reload(#[from] ReloadError),
    #[error("metrics listener: {0}")]
    Metrics(#[from] BindError),
}

/// Runs the shared start-up for a program whose configuration type is `C`.
pub async fn start<C: ProgramConfig>() -> Result<Started<C>, StartError> {
    let source = ConfigSource::from_cli(Cli::parse().config);
    let config: C = source.load()?;
    let telemetry = telemetry::init(config.log(), C::PROGRAM);
    if let Some(file) = &source.file {
        tracing::info!(file = %file.display(), "configuration loaded");
    }
    let stop = shutdown::token_cancelled_on_signal();
    let metrics = match config.metrics().listen.as_str() {
        "" => None,
        listen => {
            let server = MetricsServer::start(listen, stop.clone()).await?;
            tracing::info!(address = %server.address(), "serving metrics at /metrics");
            Some(server)
        }
    };
    let config = watch_config(source, config, ReloadTiming::default(), stop.clone())?;
    telemetry
        .log
        .clone()
        .follow(config.clone(), |c: &C| c.log().level.as_str());
    Ok(Started {
        config,
        stop,
        telemetry,
        metrics,
    })
}
