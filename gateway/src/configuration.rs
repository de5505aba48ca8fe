//! The gateway's configuration (`gateway.toml`). Every key has a default, so an empty file (or
//! none) runs the gateway against the other programs on their default local ports.
//!
//! Live-reloadable (read from the `watch` channel at use): `[account|warehouse|payment.client]`
//! `hostport` lists and `timeout_ms`, `[request]` budget and retries, `[log] level`. Everything
//! else is read once at start: changing it needs a restart.
//!
//! ```toml
//! [server]
//! listen = "0.0.0.0:8080"
//! drain_seconds = 10
//! readiness_grace_ms = 5000   # keep serving (with /readyz failing) this long after SIGTERM
//! max_body_bytes = 1048576
//!
//! [oauth]
//! private_key_path = "data/keys/token-signing.pem"
//! trusted_public_key_paths = []   # during a key rotation only: see SECURITY.md
//! issuer = "bookstore"
//! access_token_seconds = 10800
//! refresh_token_seconds = 1296000
//! [[oauth.clients]]
//! id = "bookstore_frontend"
//! secret_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! grants = ["password", "refresh_token"]
//! scopes = ["BROWSER"]
//!
//! [account.client]
//! hostport = ["account:8810"]
//! timeout_ms = 1000
//!
//! [request]
//! budget_ms = 3000
//! read_retries = 2
//!
//! [static_files]
//! dir = "static"
//!
//! [login_throttle]            # password guessing: see src/throttle.rs
//! [rate_limits]               # registrations and token requests: see src/rate_limit.rs
//! free_attempts = 5
//! base_delay_ms = 1000
//! max_delay_ms = 300000
//! forget_after_ms = 900000
//! max_entries = 10000
//! trusted_proxies = ["10.0.0.0/8"]   # the ingress: believe its X-Forwarded-For
//! ```

use std::{path::PathBuf, time::Duration};

use platform::configuration::{LogConfig, MetricsConfig, ProgramConfig};
use serde::{Deserialize, Serialize};

use crate::forwarded::TrustedNetwork;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    pub server: HttpServerConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub oauth: OAuthConfig,
    pub request: RequestConfig,
    pub discovery: DiscoveryConfig,
    pub account: BackendConfig,
    pub warehouse: BackendConfig,
    pub payment: BackendConfig,
    pub static_files: StaticFilesConfig,
    pub login_throttle: LoginThrottleConfig,
    pub rate_limits: RateLimitConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            server: HttpServerConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            oauth: OAuthConfig::default(),
            request: RequestConfig::default(),
            discovery: DiscoveryConfig::default(),
            account: BackendConfig::at("127.0.0.1:8810"),
            warehouse: BackendConfig::at("127.0.0.1:8820"),
            payment: BackendConfig::at("127.0.0.1:8830"),
            static_files: StaticFilesConfig::default(),
            login_throttle: LoginThrottleConfig::default(),
            rate_limits: RateLimitConfig::default(),
        }
    }
}

impl ProgramConfig for GatewayConfig {
    const PROGRAM: &'static str = "gateway";

    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn metrics(&self) -> &MetricsConfig {
        &self.metrics
    }
}

/// `[server]`: the HTTP listener. Read once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Socket address to listen on; port 0 picks a free port.
    pub listen: String,
    /// After shutdown begins, how long requests in flight may take before connections are cut.
    pub drain_seconds: u64,
    /// After shutdown begins, keep accepting for this long while `/readyz` fails, so a load
    /// balancer (Kubernetes endpoints) stops sending traffic before the listener closes.
    pub readiness_grace_ms: u64,
    /// Largest accepted request body; bigger ones get 413.
    pub max_body_bytes: usize,
    /// Open connections at most; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A new connection that has not sent a whole request head by then is closed.
    pub handshake_timeout_ms: u64,
    /// A connection with no request in flight that has sent nothing for this long is closed.
    pub idle_timeout_ms: u64,
    /// HTTP/2: requests in flight at once on one connection.
    pub max_concurrent_streams: u32,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            drain_seconds: 10,
            readiness_grace_ms: 0,
            max_body_bytes: 1024 * 1024,
            max_connections: 4_096,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 120_000,
            max_concurrent_streams: 256,
        }
    }
}

/// `[oauth]`: the token endpoint. Read once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// PKCS#8 PEM file with the Ed25519 private key that signs every token. Only the gateway
    /// has it; the services get the public half.
    pub private_key_path: PathBuf,
    /// Public keys (PEM) whose tokens are accepted besides those of `private_key_path`'s own
    /// public half: during a key rotation, the new key while the gateway still signs with the
    /// old one, then the old key until its last refresh token has expired (SECURITY.md).
    pub trusted_public_key_paths: Vec<PathBuf>,
    /// The `iss` claim of issued tokens (what the services' `[auth] issuer` expects).
    pub issuer: String,
    pub access_token_seconds: i64,
    pub refresh_token_seconds: i64,
    /// Lifetime of the tokens the gateway mints for itself (credential checks, account reads
    /// during refresh).
    pub internal_token_seconds: i64,
    /// At most this many client-secret checks (argon2, deliberately slow) run at once.
    pub max_concurrent_secret_checks: usize,
    pub clients: Vec<OAuthClientConfig>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            private_key_path: "data/keys/token-signing.pem".into(),
            trusted_public_key_paths: Vec::new(),
            issuer: "bookstore".into(),
            access_token_seconds: 3 * 60 * 60,
            refresh_token_seconds: 15 * 24 * 60 * 60,
            internal_token_seconds: 60,
            max_concurrent_secret_checks: 2,
            clients: OAuthClientConfig::development_defaults(),
        }
    }
}

/// `[[oauth.clients]]`: one OAuth2 client. In Kubernetes this list comes from a mounted Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientConfig {
    pub id: String,
    /// The client secret's argon2 PHC string (`$argon2id$v=19$...`); the secret itself is never
    /// stored.
    pub secret_hash: String,
    /// Grant types the client may use: `password`, `refresh_token`, `client_credentials`.
    pub grants: Vec<String>,
    /// Scopes the client may ask for; the default when it asks for none.
    pub scopes: Vec<String>,
}

impl OAuthClientConfig {
    /// The two clients of a local run: the web front-end (`bookstore_frontend` /
    /// `bookstore_secret`, which ships in its JavaScript and so is no secret) and the payment
    /// service (`payment_service` / `payment_service_dev_secret`). Production overrides both.
    pub fn development_defaults() -> Vec<Self> {
        vec![
            Self {
                id: "bookstore_frontend".into(),
                secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$6mfy5EJFBRWiuYt3kWufpA$17FU6VlSk119tlECa1tMBcLQipjBZg4uBrIvzx05rj8".into(),
                grants: vec!["password".into(), "refresh_token".into()],
                scopes: vec![platform::tokens::SCOPE_BROWSER.into()],
            },
            Self {
                id: "payment_service".into(),
                secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$de6XBaBQxUvR4GPj6YFW7w$LCNP1bLyFyG4zbsqyadDe/kPzuZdy/nFchIdjgTQ88c".into(),
                grants: vec!["client_credentials".into()],
                scopes: vec![platform::tokens::SCOPE_SERVICE.into()],
            },
        ]
    }
}

/// `[request]`: per-request limits. Live-reloadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestConfig {
    /// Total time one REST request may spend on backend calls, retries included.
    pub budget_ms: u64,
    /// How many more times an idempotent read is tried after a transient failure.
    pub read_retries: u32,
}

impl RequestConfig {
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms)
    }
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            budget_ms: 3_000,
            read_retries: 2,
        }
    }
}

/// `[discovery]`: DNS re-resolution of backend host names. Read once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Re-resolve every backend name this often (new pods of a headless Service appear).
    pub refresh_seconds: u64,
    /// Check every backend's health this often, for `/readyz`.
    pub health_check_seconds: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            refresh_seconds: 10,
            health_check_seconds: 2,
        }
    }
}

/// `[account]`, `[warehouse]`, `[payment]`: one backend service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    pub client: ClientConfig,
}

impl BackendConfig {
    pub fn at(hostport: &str) -> Self {
        Self {
            client: ClientConfig {
                hostport: vec![hostport.into()],
                ..ClientConfig::default()
            },
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self::at("127.0.0.1:0")
    }
}

/// `[<service>.client]`, as in the Kitex samples. Live-reloadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// `host:port` entries, resolved by DNS; calls are spread over every address found.
    pub hostport: Vec<String>,
    /// Deadline of one RPC (further capped by what is left of the request budget).
    pub timeout_ms: u64,
}

impl ClientConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            hostport: Vec::new(),
            timeout_ms: 1_000,
        }
    }
}

/// `[static_files]`: the front-end. Read once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticFilesConfig {
    /// Directory served for every path outside `/restful` and `/oauth` (`/` gives
    /// `index.html`). Without one, such paths are 404.
    pub dir: Option<PathBuf>,
}

/// `[login_throttle]`: how repeated failed logins for one username from one client address are
/// slowed down (see `src/throttle.rs`). Read once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginThrottleConfig {
    /// Failed logins in a row that cost nothing; the next try must wait.
    pub free_attempts: u32,
    /// The first wait; every further failure doubles it.
    pub base_delay_ms: u64,
    /// The longest wait, however many failures.
    pub max_delay_ms: u64,
    /// A username and client with no login attempt for this long start afresh.
    pub forget_after_ms: u64,
    /// At most this many (username, client) pairs are remembered.
    pub max_entries: usize,
    /// The proxies in front of the gateway (CIDR networks or single addresses). For a request
    /// from one of them the client is the address their `X-Forwarded-For` names (see
    /// `src/forwarded.rs`). Empty, the default, trusts no header: the client is the TCP peer.
    pub trusted_proxies: Vec<TrustedNetwork>,
}

impl LoginThrottleConfig {
    pub fn base_delay(&self) -> Duration {
        Duration::from_millis(self.base_delay_ms)
    }

    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms.max(self.base_delay_ms))
    }

    pub fn forget_after(&self) -> Duration {
        Duration::from_millis(self.forget_after_ms)
    }
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        Self {
            free_attempts: 5,
            base_delay_ms: 1_000,
            max_delay_ms: 5 * 60 * 1_000,
            forget_after_ms: 15 * 60 * 1_000,
            max_entries: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[rate_limits]`: how often one client address, and everybody together, may register and ask
/// for tokens (see `src/rate_limit.rs`). Read once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `POST /restful/accounts` (each one an Argon2 hash).
    pub registration: RatePair,
    /// Every grant of `/oauth/token` (each one an Argon2 check of the client's secret).
    pub token: RatePair,
    /// Client addresses remembered per operation at most.
    pub max_clients: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            registration: RatePair {
                per_client_per_minute: 20,
                global_per_second: 20,
            },
            token: RatePair {
                per_client_per_minute: 300,
                global_per_second: 200,
            },
            max_clients: 10_000,
        }
    }
}

impl RateLimitConfig {
    /// Limits no test or benchmark reaches (they register and log in thousands of users from
    /// one address).
    pub fn generous() -> Self {
        let pair = RatePair {
            per_client_per_minute: 1_000_000,
            global_per_second: 1_000_000,
        };
        Self {
            registration: pair.clone(),
            token: pair,
            max_clients: 10_000,
        }
    }
}

/// A rate per client address (a burst of that many, refilled over a minute) and one for
/// everybody together (a burst of that many, refilled each second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePair {
    pub per_client_per_minute: u32,
    pub global_per_second: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{Argon2, PasswordHash, PasswordVerifier};

    #[test]
    fn development_client_hashes_match_their_documented_secrets() {
        let secrets = ["bookstore_secret", "payment_service_dev_secret"];
        for (client, secret) in OAuthClientConfig::development_defaults()
            .iter()
            .zip(secrets)
        {
            let hash = PasswordHash::new(&client.secret_hash).expect("PHC string");
            assert!(
                Argon2::default()
                    .verify_password(secret.as_bytes(), &hash)
                    .is_ok(),
                "{}",
                client.id
            );
        }
    }

    #[test]
    fn a_kitex_style_file_parses_and_unknown_keys_are_refused() {
        let config: GatewayConfig = toml::from_str(
            r#"
            [account.client]
            hostport = ["account:8810", "account-2:8810"]
            timeout_ms = 250
            [request]
            budget_ms = 900
            "#,
        )
        .expect("valid");
        assert_eq!(config.account.client.hostport.len(), 2);
        assert_eq!(config.account.client.timeout(), Duration::from_millis(250));
        assert_eq!(config.warehouse, GatewayConfig::default().warehouse);
        assert_eq!(config.request.read_retries, 2);

        let typo = toml::from_str::<GatewayConfig>("[account.client]\nhost_port = []\n");
        assert!(typo.is_err());
    }

    /// Start-up and every hot reload read the file through the same loader, so a bad network is
    /// refused at start and a bad reload keeps the last good configuration.
    #[test]
    fn a_trusted_proxy_that_is_no_network_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gateway.toml");
        let source = platform::configuration::ConfigSource::file_only(&file);
        let write = |proxies: &str| {
            std::fs::write(
                &file,
                format!("[login_throttle]\ntrusted_proxies = {proxies}\n"),
            )
            .expect("write")
        };

        write(r#"["10.0.0.0/8", "192.0.2.7", "fd00::/8"]"#);
        let config: GatewayConfig = source.load().expect("valid");
        let shown: Vec<String> = config
            .login_throttle
            .trusted_proxies
            .iter()
            .map(|network| network.to_string())
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);

        write(r#"["10.0.0.0/8", "10.0.0.0/33"]"#);
        let error = source
            .load::<GatewayConfig>()
            .expect_err("refused")
            .to_string();
        assert!(error.contains("login_throttle.trusted_proxies"), "{error}");
        assert!(
            error.contains("`10.0.0.0/33` is not an IP network"),
            "{error}"
        );
    }
}
