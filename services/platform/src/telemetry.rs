//! Logs and spans with `tracing`: human-readable lines on a terminal, one JSON object per line in
//! Kubernetes, and a log level that can change at run time (from a hot-reloaded config).

use std::io::IsTerminal;

use tokio::sync::watch;
use tracing_subscriber::{
    EnvFilter, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

use crate::configuration::{LogConfig, LogFormat};

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

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `config.level` at start.
/// Calling it again (tests, the launcher) leaves the first subscriber in place.
pub fn init(config: &LogConfig) -> LogLevelHandle {
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| config.level.clone());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
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
    if installed.is_err() {
        tracing::debug!("a global subscriber was already installed");
    }
    LogLevelHandle { filter: handle }
}
