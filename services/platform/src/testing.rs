//! Test support shared by every crate's integration tests: a throw-away PostgreSQL database.
//!
//! The server comes from `BOOKSTORE_TEST_POSTGRES_URL` (default: the local server CI provides,
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test creates its own database and drops
//! it afterwards, so tests never see each other's data.

use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A PostgreSQL database that exists for the lifetime of this value.
pub struct TestPostgres {
    admin_url: String,
    name: String,
    /// URL of the new database, for `DatabaseConfig::url`.
    pub url: String,
}

impl TestPostgres {
    /// Creates a fresh, empty database. Panics with a clear message when no server answers:
    /// PostgreSQL is part of the test environment, and silently skipping would hide failures.
    pub async fn create() -> Self {
        let admin_url = std::env::var("BOOKSTORE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        Self::create_on(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is needed for this test: {e}"))
    }

    /// Creates a fresh, empty database on the server that `admin_url` (any database there, as
    /// a user that may `CREATE DATABASE`) reaches.
    pub async fn create_on(admin_url: &str) -> Result<Self, sqlx::Error> {
        let name = format!("bookstore_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url).await?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime; a separate thread with its own runtime can block.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A throw-away signing key pair on disk, and a way to mint tokens with it, so tests can act as
/// an administrator, a user or a service without running the gateway.
pub struct TestKeys {
    dir: tempfile::TempDir,
    signer: crate::tokens::TokenSigner,
}

/// Who a test token speaks for.
pub enum TestIdentity<'a> {
    Admin,
    User { username: &'a str, account_id: i64 },
    Service,
}

impl TestKeys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for keys");
        let (private, _) =
            crate::tokens::KeyPairPem::ensure_files(dir.path()).expect("write test keys");
        let signer = crate::tokens::TokenSigner::from_pem_file(&private).expect("read test key");
        Self { dir, signer }
    }

    /// The `[auth]` section that verifies these keys' tokens.
    pub fn auth_config(&self) -> crate::configuration::AuthConfig {
        crate::configuration::AuthConfig {
            public_key_path: self.public_key_path(),
            ..Default::default()
        }
    }

    pub fn public_key_path(&self) -> std::path::PathBuf {
        self.dir.path().join("token-signing.pub.pem")
    }

    pub fn private_key_path(&self) -> std::path::PathBuf {
        self.dir.path().join("token-signing.pem")
    }

    /// A valid access token for `who`, expiring in an hour.
    pub fn token(&self, who: TestIdentity<'_>) -> String {
        self.token_expiring_in(who, 3600)
    }

    pub fn token_expiring_in(&self, who: TestIdentity<'_>, seconds: i64) -> String {
        use crate::tokens::*;
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let (username, account_id, authorities, scope) = match who {
            TestIdentity::Admin => (
                Some("admin"),
                Some(1),
                vec![ROLE_USER, ROLE_ADMIN],
                vec![SCOPE_BROWSER],
            ),
            TestIdentity::User {
                username,
                account_id,
            } => (
                Some(username),
                Some(account_id),
                vec![ROLE_USER],
                vec![SCOPE_BROWSER],
            ),
            TestIdentity::Service => (None, None, vec![], vec![SCOPE_SERVICE]),
        };
        let claims = Claims {
            user_name: username.map(str::to_owned),
            username: username.map(str::to_owned),
            account_id,
            authorities: authorities.into_iter().map(str::to_owned).collect(),
            scope: scope.into_iter().map(str::to_owned).collect(),
            client_id: "test".into(),
            jti: uuid::Uuid::new_v4().to_string(),
            token_use: TokenUse::Access,
            iss: "bookstore".into(),
            iat: now,
            exp: now + seconds,
        };
        self.signer.sign(&claims).expect("sign test token")
    }
}

impl Default for TestKeys {
    fn default() -> Self {
        Self::new()
    }
}

/// This process's `BOOKSTORE_*` environment variables, for a test to remove from a program it
/// starts: the programs read such variables as configuration keys, and the test's own
/// (such as `BOOKSTORE_TEST_POSTGRES_URL`) would be unknown keys there.
pub fn bookstore_variables() -> impl Iterator<Item = std::ffi::OsString> {
    std::env::vars_os().map(|(key, _)| key).filter(|key| {
        key.to_string_lossy()
            .starts_with(crate::configuration::ENV_PREFIX)
    })
}

/// A program binary started as a child process, for tests of signals and real start-up.
pub struct ChildProgram {
    pub child: std::process::Child,
    /// The address from the program's "<name> ready" log line.
    pub address: std::net::SocketAddr,
}

impl ChildProgram {
    /// Starts `binary --config <config>` and waits (up to 30 s) for its `ready` log line, which
    /// carries `address=<ip:port>`.
    pub fn start(binary: &str, config: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut command = std::process::Command::new(binary);
        command
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        for key in bookstore_variables() {
            command.env_remove(key);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(" ready") {
                    let address = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("address="))
                        .and_then(|a| a.trim_matches('"').parse::<std::net::SocketAddr>().ok());
                    if let Some(address) = address {
                        let _ = tx.send(address);
                    }
                }
                println!("{line}");
            }
        });
        let address = match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("{binary} did not report ready within 30 s");
            }
        };
        Self { child, address }
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; returns the exit status and how long
    /// it took, or panics (after SIGKILL) when the limit passes.
    pub fn terminate(
        mut self,
        limit: std::time::Duration,
    ) -> (std::process::ExitStatus, std::time::Duration) {
        let started = std::time::Instant::now();
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("process {pid} did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for ChildProgram {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
