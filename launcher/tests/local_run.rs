//! The README's run command works: the launcher binary starts all four programs on loopback with
//! fresh SQLite files, prints the gateway's address, serves the demo catalogue, a user can log in
//! and see it, and Ctrl-C (SIGINT) or SIGTERM stops everything cleanly.

mod common;

use std::time::Instant;

use common::launcher::{Launcher, http, wait_until_ready};

#[test]
fn the_launcher_serves_the_whole_system_and_stops_cleanly() {
    let data = tempfile::tempdir().expect("tempdir");
    let launcher = Launcher::start(data.path());
    let started = Instant::now();
    wait_until_ready(launcher.address);
    eprintln!(
        "ready {:?} after the address was printed",
        started.elapsed()
    );

    let (status, catalogue) = http(launcher.address, "GET", "/restful/products", &[], "");
    assert_eq!(status, 200);
    assert!(
        catalogue.matches("\"title\"").count() >= 8,
        "demo catalogue: {catalogue}"
    );

    // The seeded administrator logs in through the front-end's OAuth client.
    let form = format!(
        "grant_type=password&username=icyfenix&password={}&client_id=bookstore_frontend&client_secret=bookstore_secret",
        account::configuration::DEVELOPMENT_ADMIN_PASSWORD.replace('/', "%2F")
    );
    let (status, token) = http(
        launcher.address,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    );
    assert_eq!(status, 200, "{token}");
    assert!(token.contains("ROLE_ADMIN"), "{token}");

    assert!(data.path().join("warehouse.db").is_file());
    assert!(data.path().join("keys/token-signing.pem").is_file());
    let status = launcher.stop_with("-INT");
    assert!(status.success(), "{status:?}");

    // A second start on the same data keeps it (no second seeding) and stops on SIGTERM.
    let launcher = Launcher::start(data.path());
    wait_until_ready(launcher.address);
    let (_, again) = http(launcher.address, "GET", "/restful/products", &[], "");
    assert_eq!(
        again.matches("\"title\"").count(),
        catalogue.matches("\"title\"").count()
    );
    let status = launcher.stop_with("-TERM");
    assert!(status.success(), "{status:?}");
}
