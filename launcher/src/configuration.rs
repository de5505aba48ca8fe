//! `bookstore --config FILE`: the local system's settings in one TOML file, a section per program
//! (`[account]`, `[warehouse]`, `[payment]`, `[gateway]`) holding exactly the keys of that
//! program's own configuration (its Kubernetes ConfigMap), so `[payment.payment]
//! payment_window_ms = 30000` here is `[payment] payment_window_ms = 30000` there. Unknown keys
//! are refused with their name. Environment variables override the file per program:
//! `BOOKSTORE_PAYMENT__PAYMENT__PAYMENT_WINDOW_MS=30000`; other `BOOKSTORE_*` variables are not
//! the launcher's.
//!
//! The launcher still decides what wires the programs together on one machine: every listen
//! address (its flags), the payment service's warehouse addresses and token URL, the gateway's
//! backends, and, unless the file names others, the SQLite files and the development key pair
//! under `--data-dir`. The file is watched like a mounted ConfigMap: log levels and whatever the
//! payment service and the gateway reload in Kubernetes change live; the rest at the next start.

use std::path::PathBuf;

use platform::configuration::ConfigSource;
use serde::{Deserialize, Serialize};

/// The file's sections, one per program.
const SECTIONS: &[&str] = &["account", "warehouse", "payment", "gateway"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    pub account: account::configuration::Settings,
    pub warehouse: warehouse::configuration::Settings,
    pub payment: payment::configuration::Settings,
    pub gateway: gateway::configuration::GatewayConfig,
}

/// Where the launcher's configuration comes from: `file` (if any), then `BOOKSTORE_<PROGRAM>__…`.
pub fn source(file: Option<PathBuf>) -> ConfigSource {
    ConfigSource {
        env_sections: Some(SECTIONS),
        ..ConfigSource::new(file)
    }
}

impl LocalConfig {
    /// The process's one log filter: `base` (the `--log-level` flag), then each program's own
    /// `[<program>.log] level` where it differs from the default, scoped to that program's
    /// code (`debug` under `[payment.log]` becomes `payment=debug`).
    pub fn log_filter(&self, base: &str) -> String {
        let default = platform::configuration::LogConfig::default().level;
        let levels = [
            ("account", &self.account.log.level),
            ("warehouse", &self.warehouse.log.level),
            ("payment", &self.payment.log.level),
            ("gateway", &self.gateway.log.level),
        ];
        let mut filter = base.to_owned();
        for (program, level) in levels {
            if *level == default {
                continue;
            }
            let scoped = level
                .split(',')
                .map(str::trim)
                .filter(|directive| !directive.is_empty())
                .map(|directive| {
                    if directive.contains('=') {
                        directive.to_owned()
                    } else {
                        format!("{program}={directive}")
                    }
                });
            for directive in scoped {
                filter.push(',');
                filter.push_str(&directive);
            }
        }
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<LocalConfig, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("bookstore.toml");
        std::fs::write(&file, text).map_err(|e| e.to_string())?;
        ConfigSource::file_only(file)
            .load()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_section_takes_its_programs_own_keys() {
        let config = load(
            "[payment.payment]\npayment_window_ms = 30000\n\
             [gateway.server]\nmax_body_bytes = 4096\n\
             [account.password_hashing]\niterations = 3\n",
        )
        .expect("valid");
        assert_eq!(config.payment.payment.payment_window_ms, 30_000);
        assert_eq!(config.gateway.server.max_body_bytes, 4096);
        assert_eq!(config.account.password_hashing.iterations, 3);
        assert_eq!(
            config.warehouse,
            warehouse::configuration::Settings::default()
        );
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let error = load("[payment.payment]\npayment_window = 30000\n").expect_err("refused");
        assert!(error.contains("payment_window"), "{error}");
        let error = load("[shop]\nname = \"x\"\n").expect_err("refused");
        assert!(error.contains("shop"), "{error}");
    }

    #[test]
    fn program_log_levels_are_scoped_to_their_program() {
        let mut config = LocalConfig::default();
        assert_eq!(config.log_filter("info"), "info");
        config.payment.log.level = "debug".into();
        config.gateway.log.level = "warn,hyper=info".into();
        assert_eq!(
            config.log_filter("info"),
            "info,payment=debug,gateway=warn,hyper=info"
        );
    }
}
