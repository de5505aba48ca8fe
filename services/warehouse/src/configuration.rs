//! The warehouse's configuration (`warehouse.toml`). Every key has a default; see README.md.

use platform::{
    configuration::{AuthConfig, LogConfig, MetricsConfig, ProgramConfig, ServerConfig},
    database::DatabaseConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub seed: SeedConfig,
}

/// `[seed]`: the demo catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedConfig {
    /// Load the demo catalogue into an empty database at start.
    pub demo_data: bool,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self { demo_data: true }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_listen("0.0.0.0:8820"),
            database: DatabaseConfig {
                url: "sqlite://data/warehouse.db".into(),
                ..Default::default()
            },
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            seed: SeedConfig::default(),
        }
    }
}

impl ProgramConfig for Settings {
    const PROGRAM: &'static str = "warehouse";

    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn metrics(&self) -> &MetricsConfig {
        &self.metrics
    }
}
