//! The four programs' effective configuration: a ConfigMap's TOML parsed by the program's real
//! configuration type, with the container's `BOOKSTORE_*` environment layered on top the way
//! `platform::configuration::ConfigSource` does it.

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use platform::configuration::{ConfigSource, ENV_PREFIX, LogFormat};
use serde::de::DeserializeOwned;

/// Parses a config file plus environment variables into a program's effective configuration.
pub type Loader = fn(&Path, &[(String, String)]) -> Result<Effective, String>;

/// A program's effective configuration, in its own type.
pub enum Effective {
    Account(account::configuration::Settings),
    Warehouse(warehouse::configuration::Settings),
    Payment(payment::configuration::Settings),
    Gateway(gateway::configuration::GatewayConfig),
}

impl From<account::configuration::Settings> for Effective {
    fn from(settings: account::configuration::Settings) -> Self {
        Self::Account(settings)
    }
}

impl From<warehouse::configuration::Settings> for Effective {
    fn from(settings: warehouse::configuration::Settings) -> Self {
        Self::Warehouse(settings)
    }
}

impl From<payment::configuration::Settings> for Effective {
    fn from(settings: payment::configuration::Settings) -> Self {
        Self::Payment(settings)
    }
}

impl From<gateway::configuration::GatewayConfig> for Effective {
    fn from(settings: gateway::configuration::GatewayConfig) -> Self {
        Self::Gateway(settings)
    }
}

/// `host:port` lists (or URLs) a program connects to, and the Service each must name.
pub struct Backend {
    pub key: &'static str,
    pub service: &'static str,
    pub hostports: Vec<String>,
}

/// What the checks need to know about one program, whatever its configuration type.
pub struct View {
    pub listen: String,
    /// How long shutdown may take after SIGTERM, in milliseconds.
    pub shutdown_ms: u64,
    pub log_format: LogFormat,
    /// `[metrics] listen`.
    pub metrics_listen: String,
    /// Files the program reads, by config key.
    pub key_files: Vec<(&'static str, PathBuf)>,
    pub issuer: String,
    pub database_url: Option<String>,
    pub backends: Vec<Backend>,
    /// Rules the program's own validation reports as broken (it would refuse to start).
    pub rule_problems: Vec<String>,
}

impl Effective {
    pub fn view(&self) -> View {
        match self {
            Self::Account(s) => View {
                listen: s.server.listen.clone(),
                shutdown_ms: s.server.drain_seconds * 1000,
                log_format: s.log.format,
                metrics_listen: s.metrics.listen.clone(),
                key_files: vec![("[auth] public_key_path", s.auth.public_key_path.clone())],
                issuer: s.auth.issuer.clone(),
                database_url: Some(s.database.url.clone()),
                backends: vec![],
                rule_problems: vec![],
            },
            Self::Warehouse(s) => View {
                listen: s.server.listen.clone(),
                shutdown_ms: s.server.drain_seconds * 1000,
                log_format: s.log.format,
                metrics_listen: s.metrics.listen.clone(),
                key_files: vec![("[auth] public_key_path", s.auth.public_key_path.clone())],
                issuer: s.auth.issuer.clone(),
                database_url: Some(s.database.url.clone()),
                backends: vec![],
                rule_problems: vec![],
            },
            Self::Payment(s) => View {
                listen: s.server.listen.clone(),
                shutdown_ms: s.server.drain_seconds * 1000,
                log_format: s.log.format,
                metrics_listen: s.metrics.listen.clone(),
                key_files: vec![("[auth] public_key_path", s.auth.public_key_path.clone())],
                issuer: s.auth.issuer.clone(),
                database_url: Some(s.database.url.clone()),
                backends: vec![
                    Backend {
                        key: "[warehouse] hostport",
                        service: "warehouse",
                        hostports: s.warehouse.hostport.clone(),
                    },
                    Backend {
                        key: "[service_credentials] token_url",
                        service: "gateway",
                        hostports: vec![s.service_credentials.token_url.clone()],
                    },
                ],
                rule_problems: s.problems(),
            },
            Self::Gateway(s) => View {
                listen: s.server.listen.clone(),
                shutdown_ms: s.server.readiness_grace_ms + s.server.drain_seconds * 1000,
                log_format: s.log.format,
                metrics_listen: s.metrics.listen.clone(),
                key_files: vec![("[oauth] private_key_path", s.oauth.private_key_path.clone())],
                issuer: s.oauth.issuer.clone(),
                database_url: None,
                backends: vec![
                    Backend {
                        key: "[account.client] hostport",
                        service: "account",
                        hostports: s.account.client.hostport.clone(),
                    },
                    Backend {
                        key: "[warehouse.client] hostport",
                        service: "warehouse",
                        hostports: s.warehouse.client.hostport.clone(),
                    },
                    Backend {
                        key: "[payment.client] hostport",
                        service: "payment",
                        hostports: s.payment.client.hostport.clone(),
                    },
                ],
                rule_problems: vec![],
            },
        }
    }
}

/// Parses `file` with the program's type: the file alone (as `ConfigSource::file_only` loads it,
/// so unknown keys fail), then with the `BOOKSTORE_*` variables of `env` on top, the way
/// `ConfigSource::load` layers figment's `Env` provider: prefix stripped, lower-cased, `__`
/// splitting levels, values parsed by figment's own value parser.
pub fn load_as<T>(file: &Path, env: &[(String, String)]) -> Result<Effective, String>
where
    T: DeserializeOwned + Into<Effective>,
{
    ConfigSource::file_only(file)
        .load::<T>()
        .map_err(|e| format!("the ConfigMap's TOML alone: {e}"))?;
    let mut figment = Figment::new().merge(Toml::file_exact(file));
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = key.to_ascii_lowercase().replace("__", ".");
        let value: figment::value::Value = match value.parse() {
            Ok(value) => value,
            Err(never) => match never {},
        };
        figment = figment.merge(Serialized::default(&key, value));
    }
    figment
        .extract::<T>()
        .map(Into::into)
        .map_err(|e| format!("with the container's environment: {e}"))
}
/// The four programs, in start-up order (the gateway needs the other three, payment needs the
/// warehouse). Each one's Deployment, container, ConfigMap (`<name>-config`, key `<name>.toml`)
/// and binary carry this name.
pub const PROGRAM_NAMES: [&str; 4] = ["account", "warehouse", "payment", "gateway"];

/// The loader for the program called `name`.
pub fn loader(name: &str) -> Option<Loader> {
    match name {
        "account" => Some(load_as::<account::configuration::Settings>),
        "warehouse" => Some(load_as::<warehouse::configuration::Settings>),
        "payment" => Some(load_as::<payment::configuration::Settings>),
        "gateway" => Some(load_as::<gateway::configuration::GatewayConfig>),
        _ => None,
    }
}
