//! Layered configuration: defaults in code, then a TOML file, then `BOOKSTORE_*` environment
//! variables (`__` separates nesting levels: `BOOKSTORE_DATABASE__URL` sets `[database] url`).
//!
//! Each program owns one typed config struct with `#[serde(default, deny_unknown_fields)]`, so a
//! misspelt key is an error that names the file and the key instead of being silently ignored.

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Environment variables with this prefix override file values.
pub const ENV_PREFIX: &str = "BOOKSTORE_";
/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_PATH_ENV: &str = "CONFIG_PATH";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    MissingFile { path: PathBuf },
    /// figment's message names the key, the problem and the source (file or env variable).
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

/// Where a program's configuration comes from. Cheap to clone; the hot reloader keeps one to
/// re-read the same layers.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The TOML file, if any. Without one, defaults and environment variables apply.
    pub file: Option<PathBuf>,
    /// Whether `BOOKSTORE_*` environment variables are applied (off in tests).
    pub use_env: bool,
    /// When set, only variables under these top-level sections apply (`BOOKSTORE_PAYMENT__…`
    /// for `payment`): the launcher's file has a section per program, and other `BOOKSTORE_*`
    /// variables in the same shell are not its keys.
    pub env_sections: Option<&'static [&'static str]>,
}

impl ConfigSource {
    /// A file plus environment overrides: what the real binaries use.
    pub fn new(file: Option<PathBuf>) -> Self {
        Self {
            file,
            use_env: true,
            env_sections: None,
        }
    }

    /// Only the given file, no environment: for tests and embedding.
    pub fn file_only(file: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(file.into()),
            use_env: false,
            env_sections: None,
        }
    }

    /// `--config PATH` if given, else `$CONFIG_PATH`, else no file.
    pub fn from_cli(config_flag: Option<PathBuf>) -> Self {
        let file = config_flag.or_else(|| std::env::var_os(CONFIG_PATH_ENV).map(PathBuf::from));
        Self::new(file)
    }

    /// Reads every layer into `T`. The file is re-opened by path on every call, so a Kubernetes
    /// ConfigMap's symlinks resolve to the current version.
    pub fn load<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = &self.file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile { path: path.clone() });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        if self.use_env {
            let sections = self.env_sections;
            let env = Env::prefixed(ENV_PREFIX).filter(move |key| {
                sections.is_none_or(|sections| {
                    let key = key.as_str().to_ascii_lowercase();
                    sections.iter().any(|s| key.starts_with(&format!("{s}__")))
                })
            });
            figment = figment.merge(env.split("__"));
        }
        figment
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))
    }

    /// The directory holding the config file (what the hot reloader watches).
    pub fn directory(&self) -> Option<&Path> {
        self.file.as_deref().and_then(Path::parent).map(|dir| {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        })
    }
}

/// Command-line arguments shared by every program.
#[derive(Debug, clap::Parser)]
pub struct Cli {
    /// Path to the TOML config file (default: $CONFIG_PATH, else built-in defaults).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// `[log]`: shared by every program. `level` is live-reloadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// An `EnvFilter` directive such as `info` or `info,warehouse=debug`. Live-reloadable.
    pub level: String,
    /// `human` (coloured lines for a terminal) or `json` (one object per line, for Kubernetes).
    pub format: LogFormat,
    /// Where to send traces over OTLP/HTTP (protobuf), e.g. `http://otel-collector:4318`
    /// (`/v1/traces` is added); empty sends none. `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as it is) wins when set.
    pub otlp_endpoint: String,
    /// The `service.name` of this program's spans; empty means the program's own name.
    /// `OTEL_SERVICE_NAME` wins when set.
    pub service_name: String,
    /// Which traces to record: `always_on`, `always_off`, `traceidratio`,
    /// `parentbased_always_on`, `parentbased_always_off` or `parentbased_traceidratio`.
    /// `OTEL_TRACES_SAMPLER` wins when set.
    pub trace_sampler: String,
    /// The ratio for the `*traceidratio` samplers, 0 to 1. `OTEL_TRACES_SAMPLER_ARG` wins.
    pub trace_sampler_arg: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Human,
            otlp_endpoint: String::new(),
            service_name: String::new(),
            trace_sampler: "parentbased_always_on".into(),
            trace_sampler_arg: "1.0".into(),
        }
    }
}

/// `[metrics]`: shared by every program. Read at start only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to serve `GET /metrics` (Prometheus text), e.g. `0.0.0.0:9090`; never the public
    /// port. Empty serves none.
    pub listen: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// `[server]`: where an RPC server listens, how long it may drain on shutdown, and what one
/// client may cost it (SECURITY.md lists every limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address to listen on; port 0 picks a free port.
    pub listen: String,
    /// After SIGTERM, how long in-flight requests may run before the process exits anyway.
    pub drain_seconds: u64,
    /// Open connections at most; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// The largest message (gRPC message, Thrift frame or message) a client may send.
    pub max_message_bytes: u32,
    /// gRPC only: calls in flight at once on one connection.
    pub max_concurrent_streams: u32,
    /// A new connection that has not sent a whole request by then is closed.
    pub handshake_timeout_ms: u64,
    /// A connection with no call in flight that has sent nothing for this long is closed.
    pub idle_timeout_ms: u64,
}

impl ServerConfig {
    pub fn with_listen(listen: &str) -> Self {
        Self {
            listen: listen.into(),
            drain_seconds: 10,
            max_connections: 1_024,
            max_message_bytes: 4 << 20,
            max_concurrent_streams: 256,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::with_listen("0.0.0.0:0")
    }
}

/// `[auth]`: how a program verifies the JWTs its callers present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// PEM file with the token issuer's Ed25519 public key.
    pub public_key_path: PathBuf,
    /// Public keys whose tokens are still accepted during a key rotation (PEM files, like
    /// `public_key_path`). SECURITY.md, "Rotating the token-signing key", says when to list
    /// which key and when to remove it.
    pub previous_public_key_paths: Vec<PathBuf>,
    /// The `iss` claim tokens must carry.
    pub issuer: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            public_key_path: "data/keys/token-signing.pub.pem".into(),
            previous_public_key_paths: Vec::new(),
            issuer: "bookstore".into(),
        }
    }
}

impl AuthConfig {
    /// The current key's file, then every previous one's.
    pub fn key_paths(&self) -> Vec<PathBuf> {
        std::iter::once(&self.public_key_path)
            .chain(&self.previous_public_key_paths)
            .cloned()
            .collect()
    }

    /// Trusts the current key and every previous one; a missing or malformed file is an error,
    /// so a mistyped path stops the program at start instead of refusing tokens later.
    pub fn verifier(&self) -> Result<crate::tokens::TokenVerifier, crate::tokens::TokenError> {
        let keys = crate::key_watch::read_public_keys(&self.key_paths())?;
        Ok(crate::tokens::TokenVerifier::new(keys, &self.issuer))
    }

    /// As [`Self::verifier`], and the keys follow their files until `stop` (a rotation by
    /// changing a mounted Secret, [`crate::key_watch`]).
    pub fn live_verifier(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> Result<crate::tokens::TokenVerifier, crate::tokens::TokenError> {
        let verifier = self.verifier()?;
        crate::key_watch::follow_public_keys(
            verifier.clone(),
            self.key_paths(),
            crate::reload::ReloadTiming::default(),
            stop,
        )?;
        Ok(verifier)
    }
}

/// What every program's top-level config exposes to the shared start-up code.
pub trait ProgramConfig: DeserializeOwned + PartialEq + Clone + Send + Sync + 'static {
    /// The program's name: its binary, its logs' target and its spans' default `service.name`.
    const PROGRAM: &'static str;

    fn log(&self) -> &LogConfig;

    fn metrics(&self) -> &MetricsConfig;
}
