//! The account service's configuration (`account.toml`). Every key has a default; README.md
//! lists them. Environment variables override the file: `BOOKSTORE_ADMIN__PASSWORD` sets
//! `[admin] password`, which is how production supplies the administrator's password from a
//! Kubernetes Secret.

use std::fmt;

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
    /// The administrator seeded into an empty database.
    pub admin: AdminSeed,
    /// How passwords are hashed.
    pub password_hashing: HashingConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_listen("0.0.0.0:8810"),
            database: DatabaseConfig {
                url: "sqlite://data/account.db".into(),
                ..Default::default()
            },
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            admin: AdminSeed::default(),
            password_hashing: HashingConfig::default(),
        }
    }
}

impl ProgramConfig for Settings {
    const PROGRAM: &'static str = "account";

    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn metrics(&self) -> &MetricsConfig {
        &self.metrics
    }
}

/// The development password of the seeded administrator. Anyone who has read this file knows
/// it, so every real deployment must override it (`BOOKSTORE_ADMIN__PASSWORD` from a Secret).
pub const DEVELOPMENT_ADMIN_PASSWORD: &str = "MFfTW3uNI4eqhwDkG7HP9p2mzEUu/r2";

/// `[admin]`: the one administrator written into an empty database at start-up. Once any account
/// exists these values are not read again, so changing them later changes nothing.
///
/// The fields follow the registration rules; empty optional fields mean "absent".
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSeed {
    pub username: String,
    /// The opaque password string as the front-end will send it.
    pub password: String,
    pub name: String,
    pub avatar: String,
    pub telephone: String,
    pub email: String,
    pub location: String,
}

impl Default for AdminSeed {
    /// The administrator of the reference Fenix bookstore, with a development password.
    fn default() -> Self {
        Self {
            username: "icyfenix".into(),
            password: DEVELOPMENT_ADMIN_PASSWORD.into(),
            name: "周志明".into(),
            avatar: "https://www.gravatar.com/avatar/1563e833e42fb64b41eed34c9b66d723?d=mp".into(),
            telephone: "18888888888".into(),
            email: "icyfenix@gmail.com".into(),
            location: "唐家湾港湾大道科技一路3号远光软件股份有限公司".into(),
        }
    }
}

// Settings are logged and printed in error messages; the password must not be.
impl fmt::Debug for AdminSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminSeed")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("name", &self.name)
            .field("avatar", &self.avatar)
            .field("telephone", &self.telephone)
            .field("email", &self.email)
            .field("location", &self.location)
            .finish()
    }
}

/// `[password_hashing]`: Argon2id cost parameters. The defaults are OWASP's minimum
/// recommendation (19 MiB, 2 passes, 1 lane). Stored hashes carry their own parameters, so
/// changing these affects new hashes only; old ones still verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashingConfig {
    /// Memory per hash, in KiB (at least 8 × `parallelism`).
    pub memory_kib: u32,
    /// Passes over the memory (at least 1).
    pub iterations: u32,
    /// Lanes (at least 1).
    pub parallelism: u32,
    /// How many password checks (logins) may run at once. Each takes `memory_kib` of memory and a
    /// CPU core, so a burst of logins queues here instead of exhausting the machine. New hashes
    /// (registrations, password changes) have half as many of their own, so a flood of them
    /// cannot starve logins.
    pub max_concurrent: usize,
    /// How many checks, and how many new hashes, may wait for their turn; more are refused at
    /// once (`Overloaded`; the gateway answers 503 with `Retry-After`).
    pub max_queued: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 4,
            max_queued: 64,
        }
    }
}
