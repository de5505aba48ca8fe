//! The payment service's configuration (`payment.toml`). Every key has a default, so an empty
//! file (or none) runs a development instance; `BOOKSTORE_*` environment variables override keys
//! (`BOOKSTORE_SERVICE_CREDENTIALS__CLIENT_SECRET` is how production sets the secret).
//!
//! Live-reloadable (read at use from the config channel): `[log] level`, every `[payment]` rule,
//! and `[warehouse] hostport`. Everything else is read once at start. An update that breaks a
//! rule of [`Settings::problems`] is refused as a whole (and logged); the last valid
//! configuration stays in force.

use std::{fmt, time::Duration};

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
    pub payment: PaymentRules,
    pub warehouse: WarehouseClientConfig,
    pub service_credentials: ServiceCredentials,
    pub outbox: OutboxConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerConfig::with_listen("0.0.0.0:8830"),
            database: DatabaseConfig {
                url: "sqlite://data/payment.db".into(),
                ..Default::default()
            },
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            payment: PaymentRules::default(),
            warehouse: WarehouseClientConfig::default(),
            service_credentials: ServiceCredentials::default(),
            outbox: OutboxConfig::default(),
        }
    }
}

impl ProgramConfig for Settings {
    const PROGRAM: &'static str = "payment";

    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn metrics(&self) -> &MetricsConfig {
        &self.metrics
    }
}

/// `[payment]`: the business rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentRules {
    /// Added once to every settlement's total, in cents (default 12.00).
    pub shipping_fee_cents: i64,
    /// How long a WAITING payment may be paid, in milliseconds (default 120 s).
    pub payment_window_ms: i64,
    /// The balance a wallet starts with when it is created on first use, in cents.
    pub opening_balance_cents: i64,
    /// How often overdue WAITING payments are turned into TIMEOUT.
    pub expiry_sweep_interval_ms: u64,
    /// When a settlement reserves stock, a release of that reservation is scheduled this far in
    /// the future and cancelled when the WAITING payment is stored. If the process dies or the
    /// reserve call's outcome is unknown, the release runs. Must be well above the warehouse RPC
    /// timeout, so that a reservation still in flight has landed before it is released.
    pub reservation_guard_ms: i64,
    /// How long idempotency keys (and delivered outbox entries) are kept.
    pub idempotency_retention_ms: i64,
}

impl Default for PaymentRules {
    fn default() -> Self {
        Self {
            shipping_fee_cents: 1_200,
            payment_window_ms: 120_000,
            opening_balance_cents: 1_000_000,
            expiry_sweep_interval_ms: 1_000,
            reservation_guard_ms: 30_000,
            idempotency_retention_ms: 24 * 3_600_000,
        }
    }
}

/// `[warehouse]`: how the warehouse service is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarehouseClientConfig {
    /// `host:port` entries (Kubernetes Service names), resolved by DNS; calls are spread over
    /// every address. Live-reloadable.
    pub hostport: Vec<String>,
    /// Deadline of every warehouse call.
    pub rpc_timeout_ms: u64,
    /// How often the addresses are re-resolved.
    pub dns_refresh_ms: u64,
}

impl Default for WarehouseClientConfig {
    fn default() -> Self {
        Self {
            hostport: vec!["warehouse:8820".into()],
            rpc_timeout_ms: 1_000,
            dns_refresh_ms: 10_000,
        }
    }
}

impl WarehouseClientConfig {
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms)
    }
}

/// `[service_credentials]`: the OAuth2 client the payment service authenticates as when it calls
/// the warehouse (client-credentials grant; the token carries scope SERVICE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceCredentials {
    /// The token endpoint (`http://` only; it is cluster-internal).
    pub token_url: String,
    pub client_id: String,
    /// The development default is public knowledge; production sets
    /// `BOOKSTORE_SERVICE_CREDENTIALS__CLIENT_SECRET` from a Kubernetes Secret.
    pub client_secret: Secret,
    /// The scope requested.
    pub scope: String,
    /// Deadline of one token request.
    pub timeout_ms: u64,
}

impl Default for ServiceCredentials {
    fn default() -> Self {
        Self {
            token_url: "http://gateway:8080/oauth/token".into(),
            client_id: "payment_service".into(),
            client_secret: Secret("payment_service_dev_secret".into()),
            scope: platform::tokens::SCOPE_SERVICE.into(),
            timeout_ms: 2_000,
        }
    }
}

/// A string that never appears in logs or `Debug` output.
///
/// Environment values that look like numbers are parsed as numbers by figment; turning one back
/// into text could change it (`0123`), so such a value is refused with a hint to quote it
/// (`BOOKSTORE_SERVICE_CREDENTIALS__CLIENT_SECRET='"0123"'`).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (quote a secret that looks like a number: '\"123\"')")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
                Ok(Secret(value.to_owned()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[outbox]`: delivery of the warehouse calls recorded with each state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// How often the relay looks for due calls when nothing wakes it.
    pub poll_interval_ms: u64,
    /// The first retry waits this long; each further one twice as long, up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1_000,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
        }
    }
}

impl Settings {
    /// Every rule the values must satisfy, as "key: problem" lines.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let rules = &self.payment;
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_owned());
            }
        };
        check(
            rules.shipping_fee_cents >= 0,
            "payment.shipping_fee_cents: must be >= 0",
        );
        check(
            rules.payment_window_ms > 0,
            "payment.payment_window_ms: must be > 0",
        );
        check(
            rules.opening_balance_cents >= 0,
            "payment.opening_balance_cents: must be >= 0",
        );
        check(
            rules.expiry_sweep_interval_ms > 0,
            "payment.expiry_sweep_interval_ms: must be > 0",
        );
        check(
            rules.idempotency_retention_ms > 0,
            "payment.idempotency_retention_ms: must be > 0",
        );
        check(
            rules.reservation_guard_ms > 2 * self.warehouse.rpc_timeout_ms as i64,
            "payment.reservation_guard_ms: must exceed twice warehouse.rpc_timeout_ms",
        );
        check(
            self.warehouse.rpc_timeout_ms > 0,
            "warehouse.rpc_timeout_ms: must be > 0",
        );
        check(
            self.warehouse.dns_refresh_ms > 0,
            "warehouse.dns_refresh_ms: must be > 0",
        );
        check(
            !self.warehouse.hostport.is_empty(),
            "warehouse.hostport: must name at least one address",
        );
        check(
            self.service_credentials.timeout_ms > 0,
            "service_credentials.timeout_ms: must be > 0",
        );
        check(
            self.outbox.poll_interval_ms > 0,
            "outbox.poll_interval_ms: must be > 0",
        );
        check(
            self.outbox.retry_initial_ms > 0
                && self.outbox.retry_max_ms >= self.outbox.retry_initial_ms,
            "outbox.retry_initial_ms: must be > 0 and <= outbox.retry_max_ms",
        );
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_the_secret_stays_out_of_debug_output() {
        let settings = Settings::default();
        assert_eq!(settings.problems(), Vec::<String>::new());
        assert_eq!(settings.server.listen, "0.0.0.0:8830");
        assert_eq!(settings.payment.shipping_fee_cents, 1_200);
        assert_eq!(settings.payment.payment_window_ms, 120_000);
        let debug = format!("{settings:?}");
        assert!(!debug.contains("payment_service_dev_secret"), "{debug}");
    }

    #[test]
    fn bad_values_are_all_reported() {
        let mut settings = Settings::default();
        settings.payment.payment_window_ms = 0;
        settings.payment.shipping_fee_cents = -1;
        settings.payment.reservation_guard_ms = 1_000;
        settings.warehouse.hostport.clear();
        let problems = settings.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("warehouse.hostport")));
    }

    #[test]
    // `Jail`'s closure must return figment's (large) error type.
    #[allow(clippy::result_large_err)]
    fn the_client_secret_can_come_from_the_environment() {
        fn load() -> Result<Settings, String> {
            platform::configuration::ConfigSource::new(None)
                .load()
                .map_err(|e| e.to_string())
        }
        figment::Jail::expect_with(|jail| {
            let key = "BOOKSTORE_SERVICE_CREDENTIALS__CLIENT_SECRET";
            jail.set_env(key, "from-a-kubernetes-secret");
            let settings = load()?;
            assert_eq!(
                settings.service_credentials.client_secret.expose(),
                "from-a-kubernetes-secret"
            );

            jail.set_env(key, "0123");
            let refused = load().expect_err("a number is not a secret");
            assert!(refused.contains("quote"), "{refused}");
            jail.set_env(key, "\"0123\"");
            assert_eq!(load()?.service_credentials.client_secret.expose(), "0123");
            Ok(())
        });
    }

    #[test]
    fn a_file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("payment.toml");
        std::fs::write(
            &file,
            "[payment]\nshipping_fee_cents = 500\n[warehouse]\nhostport = [\"a:1\", \"b:2\"]\n",
        )
        .expect("write");
        let settings: Settings = platform::configuration::ConfigSource::file_only(&file)
            .load()
            .expect("load");
        assert_eq!(settings.payment.shipping_fee_cents, 500);
        assert_eq!(settings.payment.payment_window_ms, 120_000);
        assert_eq!(settings.warehouse.hostport, vec!["a:1", "b:2"]);

        std::fs::write(&file, "[payment]\nshiping_fee_cents = 500\n").expect("write");
        let refused = platform::configuration::ConfigSource::file_only(&file).load::<Settings>();
        assert!(refused.is_err());
    }
}
