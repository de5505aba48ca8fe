//! The storefront as a shopper and an administrator use it, in a real headless Chromium, against
//! the system started the way the README starts it (the `bookstore` launcher). The steps are in
//! `tests/browser/storefront.mjs` (playwright-core): browse, search, a book's page, register, a
//! cart kept across a reload, settle and pay (PAYED), settle and cancel (CANCEL), the profile,
//! the warehouse refused to a shopper, the administrator emptying a shelf and the shopper told
//! which book is missing, a restock that lets the shopper buy, a product created, edited and
//! deleted, a phone-width page worked by keyboard alone, a payment left to expire (TIMEOUT) once
//! the payment window was shortened in the launcher's `--config` file (live), and, through a
//! second gateway whose warehouse is down, the catalogue's 503 shown as such while logging in
//! still works. Access tokens live 64 s here, so the storefront's refresh (a minute before
//! expiry) runs all along, and a step checks that it replaced the token. Any console error or unexpected 4xx/5xx answer fails it.
//!
//! Needs Node.js 20+, `npm ci` in `launcher/tests/browser` and Chromium (`CHROMIUM`, default
//! `/usr/bin/chromium`): `.ci/run` installs them. Missing, the test fails and says so; it never
//! passes without having driven the browser.

mod common;

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::launcher::{Launcher, http, wait_until_ready};

/// The part of the test's configuration file that stays (`storefront.mjs` rewrites the rest).
const TOKENS: &str = "[gateway.oauth]\naccess_token_seconds = 64\n";

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// A loopback port nothing listens on (bound, then released).
fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// The `gateway` binary beside this test's profile directory, built if `cargo test` did not
/// build it already.
fn gateway_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let binary = profile.join("gateway");
    if !binary.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let built = Command::new(cargo)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .args(["build", "--bin", "gateway", "-p", "gateway"])
            .status()
            .expect("cargo build");
        assert!(built.success(), "cannot build the gateway");
    }
    binary
}

/// A second gateway in front of the launcher's account and payment services, whose warehouse
/// address has nothing listening: the system with its warehouse down.
struct DegradedGateway {
    child: Child,
    address: SocketAddr,
}

impl DegradedGateway {
    fn start(launcher: &Launcher, data_dir: &Path, config_dir: &Path) -> Self {
        let address = free_address();
        let program = |name: &str| launcher.programs[name].to_string();
        let config = format!(
            "[server]\nlisten = \"{address}\"\ndrain_seconds = 1\n\
             [log]\nlevel = \"error\"\n\
             [oauth]\nprivate_key_path = \"{key}\"\n\
             [account.client]\nhostport = [\"{account}\"]\n\
             [warehouse.client]\nhostport = [\"{down}\"]\n\
             [payment.client]\nhostport = [\"{payment}\"]\n",
            key = data_dir.join("keys/token-signing.pem").display(),
            account = program("account"),
            payment = program("payment"),
            down = free_address(),
        );
        let file = config_dir.join("gateway.toml");
        std::fs::write(&file, config).expect("gateway config");
        let mut command = Command::new(gateway_binary());
        command
            .arg("--config")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for key in platform::testing::bookstore_variables() {
            command.env_remove(key);
        }
        let child = command.spawn().expect("start the second gateway");
        let started = Instant::now();
        while http_ok(address, "/healthz").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the second gateway never answered"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, address }
    }
}

impl Drop for DegradedGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_ok(address: SocketAddr, path: &str) -> Option<()> {
    std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    (http(address, "GET", path, &[], "").0 == 200).then_some(())
}

#[test]
fn a_shopper_and_an_administrator_use_the_storefront_in_a_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "Chromium is needed at {chromium} (apt-get install chromium, or set CHROMIUM)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is needed: npm ci --prefix launcher/tests/browser"
    );
    let data = tempfile::tempdir().expect("tempdir");
    // The config file gets a directory of its own, as a ConfigMap mount does: the launcher
    // watches the directory.
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("bookstore.toml");
    // Access tokens that live 64 s: the storefront refreshes them a minute before they expire,
    // so every few seconds during the run.
    std::fs::write(
        &config,
        format!("{TOKENS}[payment.payment]\npayment_window_ms = 120000\n"),
    )
    .expect("config");
    let launcher = Launcher::start_with(data.path(), &["--config".as_ref(), config.as_os_str()]);
    wait_until_ready(launcher.address);
    let degraded = DegradedGateway::start(&launcher, data.path(), config_dir.path());

    let mut command = Command::new("node");
    command
        .arg("storefront.mjs")
        .current_dir(browser_dir())
        .env("BOOKSTORE_URL", format!("http://{}", launcher.address))
        .env("DEGRADED_URL", format!("http://{}", degraded.address))
        .env("CONFIG_FILE", &config)
        .env("CONFIG_KEPT", TOKENS)
        .env("CHROMIUM", &chromium);
    // STOREFRONT_SCREENSHOT=$PWD/docs/storefront.png refreshes the README's picture.
    if let Ok(path) = std::env::var("STOREFRONT_SCREENSHOT") {
        command.env("SCREENSHOT", path);
    }
    let outcome = command
        .output()
        .expect("node is needed for the browser test (Node.js 20 or later)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&outcome.stdout),
        String::from_utf8_lossy(&outcome.stderr)
    );
    println!("{report}");
    assert!(
        outcome.status.success(),
        "the storefront failed in the browser:\n{report}"
    );
    assert!(report.contains("every step passed"), "{report}");
    assert!(
        report.contains("TIMEOUT") && report.contains("warehouse down"),
        "{report}"
    );
    drop(degraded);
    let status = launcher.stop_with("-TERM");
    assert!(status.success(), "the launcher stopped with {status}");
}
