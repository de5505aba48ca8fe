//! Why a benchmark run could not be completed. Slow numbers are never errors: the tool reports
//! them; only a run that cannot measure (a program that does not start, a setup request that is
//! refused, a load generator that sees only failures) fails.

use std::{path::PathBuf, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the configuration of {program}: {source}")]
    Config {
        program: &'static str,
        #[source]
        source: toml::ser::Error,
    },
    #[error("{program} exited during start-up ({status}); see its log {}", log.display())]
    Exited {
        program: &'static str,
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    #[error("{program} was not ready within {waited:?}; see its log {}", log.display())]
    NotReady {
        program: &'static str,
        waited: Duration,
        log: PathBuf,
    },
    #[error("setting up the benchmark data failed: {0}")]
    Setup(String),
    #[error("the pinned RPC client (client-side cost) failed: {0}")]
    Client(String),
    #[error("the {path} benchmark produced no successful request; first error: {first_error}")]
    NothingMeasured { path: String, first_error: String },
}

impl BenchError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
