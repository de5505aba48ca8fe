//! Configuration layering (defaults < file < environment), clear errors for unknown keys and
//! broken TOML, and hot reload across Kubernetes-style `..data` symlink swaps.

// figment's `Jail` fixes the closure's error type to `figment::Error`, which is large.
#![allow(clippy::result_large_err)]

use std::{path::Path, time::Duration};

use figment::Jail;
use platform::{
    configuration::{AuthConfig, ConfigError, ConfigSource},
    reload::{ReloadTiming, watch_config},
    shutdown::CancellationToken,
};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    server: Server,
    log: Log,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Server {
    listen: String,
    drain_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Log {
    level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: Server::default(),
            log: Log {
                level: "info".into(),
            },
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:1".into(),
            drain_seconds: 10,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

#[test]
fn defaults_then_file_then_environment() {
    Jail::expect_with(|jail| {
        let source = ConfigSource::new(Some(jail.directory().join("app.toml")));
        jail.create_file("app.toml", "[server]\nlisten = \"127.0.0.1:9000\"\n")?;
        let from_file: Settings = source.load().expect("load");
        assert_eq!(from_file.server.listen, "127.0.0.1:9000");
        assert_eq!(
            from_file.server.drain_seconds, 10,
            "untouched keys keep their defaults"
        );

        jail.set_env("BOOKSTORE_SERVER__LISTEN", "10.0.0.1:1234");
        jail.set_env("BOOKSTORE_LOG__LEVEL", "debug");
        let overridden: Settings = source.load().expect("load");
        assert_eq!(overridden.server.listen, "10.0.0.1:1234");
        assert_eq!(overridden.log.level, "debug");

        let without_env: Settings = ConfigSource::file_only(jail.directory().join("app.toml"))
            .load()
            .expect("load");
        assert_eq!(without_env.server.listen, "127.0.0.1:9000");

        let no_file: Settings = ConfigSource::new(None).load().expect("load");
        assert_eq!(no_file.server.listen, "10.0.0.1:1234");
        Ok(())
    });
}

#[test]
fn unknown_keys_and_broken_toml_are_clear_errors() {
    Jail::expect_with(|jail| {
        jail.create_file("typo.toml", "[server]\nlisen = \"x\"\n")?;
        let error = ConfigSource::file_only(jail.directory().join("typo.toml"))
            .load::<Settings>()
            .expect_err("typo");
        let message = error.to_string();
        assert!(message.contains("lisen"), "names the key: {message}");
        assert!(message.contains("typo.toml"), "names the file: {message}");

        jail.create_file("broken.toml", "[server\nlisten = 1\n")?;
        let error = ConfigSource::file_only(jail.directory().join("broken.toml"))
            .load::<Settings>()
            .expect_err("bad toml");
        assert!(error.to_string().contains("broken.toml"), "{error}");

        jail.create_file("type.toml", "[server]\ndrain_seconds = \"soon\"\n")?;
        let error = ConfigSource::file_only(jail.directory().join("type.toml"))
            .load::<Settings>()
            .expect_err("type");
        assert!(error.to_string().contains("drain_seconds"), "{error}");

        let missing =
            ConfigSource::file_only(jail.directory().join("nope.toml")).load::<Settings>();
        assert!(matches!(missing, Err(ConfigError::MissingFile { .. })));
        Ok(())
    });
}

/// A program with only `[auth]`, for the list-valued key.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WithAuth {
    auth: AuthConfig,
}

#[test]
fn previous_public_keys_are_a_toml_list_or_one_environment_variable_in_inline_syntax() {
    Jail::expect_with(|jail| {
        let source = ConfigSource::new(Some(jail.directory().join("app.toml")));
        jail.create_file(
            "app.toml",
            "[auth]\npublic_key_path = \"new.pem\"\nprevious_public_key_paths = [\"old.pem\"]\n",
        )?;
        let from_file: WithAuth = source.load().expect("load");
        assert_eq!(
            from_file.auth.previous_public_key_paths,
            [Path::new("old.pem")]
        );

        // What docs/CONFIGURATION.md tells Kubernetes users to write.
        jail.set_env(
            "BOOKSTORE_AUTH__PREVIOUS_PUBLIC_KEY_PATHS",
            r#"["/run/keys/a.pub.pem", "/run/keys/b.pub.pem"]"#,
        );
        let from_env: WithAuth = source.load().expect("load");
        assert_eq!(
            from_env.auth.previous_public_key_paths,
            [
                Path::new("/run/keys/a.pub.pem"),
                Path::new("/run/keys/b.pub.pem")
            ]
        );
        assert_eq!(from_env.auth.public_key_path, Path::new("new.pem"));

        jail.set_env("BOOKSTORE_AUTH__PREVIOUS_PUBLIC_KEY_PATHS", "[]");
        let emptied: WithAuth = source.load().expect("load");
        assert!(emptied.auth.previous_public_key_paths.is_empty());
        Ok(())
    });
}

/// Re-enacts kubelet's AtomicWriter: write a new timestamped directory, point `..data_tmp` at
/// it, rename it over `..data`, remove the old directory. `config.toml -> ..data/config.toml`.
struct ConfigMapVolume {
    dir: tempfile::TempDir,
    generation: u32,
}

impl ConfigMapVolume {
    fn new(content: &str) -> Self {
        let volume = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            generation: 0,
        };
        let first = volume.write_generation(1, content);
        std::os::unix::fs::symlink(&first, volume.path().join("..data")).expect("..data");
        std::os::unix::fs::symlink("..data/config.toml", volume.path().join("config.toml"))
            .expect("config.toml");
        Self {
            generation: 1,
            ..volume
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_generation(&self, generation: u32, content: &str) -> String {
        let name = format!("..2026_11_26_00_00_0{generation}.123456");
        std::fs::create_dir(self.path().join(&name)).expect("timestamped dir");
        std::fs::write(self.path().join(&name).join("config.toml"), content).expect("payload");
        name
    }

    fn update(&mut self, content: &str) {
        let old = format!("..2026_11_26_00_00_0{}.123456", self.generation);
        self.generation += 1;
        let new = self.write_generation(self.generation, content);
        std::os::unix::fs::symlink(&new, self.path().join("..data_tmp")).expect("..data_tmp");
        std::fs::rename(self.path().join("..data_tmp"), self.path().join("..data")).expect("swap");
        std::fs::remove_dir_all(self.path().join(old)).expect("remove old");
    }
}

fn level(name: &str) -> String {
    format!("[log]\nlevel = \"{name}\"\n")
}

#[tokio::test]
async fn symlink_swaps_reload_and_a_broken_file_keeps_the_last_good_config() {
    let mut volume = ConfigMapVolume::new(&level("info"));
    let source = ConfigSource::file_only(volume.path().join("config.toml"));
    let initial: Settings = source.load().expect("initial");
    let stop = CancellationToken::new();
    // A poll interval far beyond the test's length: every reload here comes from inotify.
    let timing = ReloadTiming {
        debounce: Duration::from_millis(100),
        poll_interval: Duration::from_secs(3600),
    };
    let mut config = watch_config(source, initial, timing, stop.clone()).expect("watch");
    assert_eq!(config.borrow_and_update().log.level, "info");

    for next in ["debug", "warn", "trace"] {
        volume.update(&level(next));
        tokio::time::timeout(Duration::from_secs(5), config.changed())
            .await
            .unwrap_or_else(|_| panic!("no reload for {next}"))
            .expect("channel open");
        assert_eq!(config.borrow_and_update().log.level, next);
    }

    volume.update("[log\nlevel = ");
    let reloaded = tokio::time::timeout(Duration::from_millis(800), config.changed()).await;
    assert!(reloaded.is_err(), "a broken file must not be published");
    assert_eq!(config.borrow().log.level, "trace");

    volume.update(&level("error"));
    tokio::time::timeout(Duration::from_secs(5), config.changed())
        .await
        .expect("reload after fix")
        .expect("open");
    assert_eq!(config.borrow_and_update().log.level, "error");

    // An identical rewrite is not a change.
    volume.update(&level("error"));
    assert!(
        tokio::time::timeout(Duration::from_millis(800), config.changed())
            .await
            .is_err()
    );
    stop.cancel();
}
