//! The README's run command works: the launcher binary starts all four programs on loopback with
//! fresh SQLite files, prints the gateway's address, serves the demo catalogue, a user can log in
//! and see it, and Ctrl-C (SIGINT) or SIGTERM stops everything cleanly.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The launcher as a child process; killed on drop if a test fails half-way.
struct Launcher {
    child: Child,
    address: SocketAddr,
}

impl Launcher {
    fn start(data_dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bookstore"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--account-listen",
                "127.0.0.1:0",
                "--warehouse-listen",
                "127.0.0.1:0",
                "--payment-listen",
                "127.0.0.1:0",
                "--log-level",
                "warn",
                "--data-dir",
            ])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the launcher");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("bookstore is running at http://") {
                    let address = rest
                        .split('/')
                        .next()
                        .and_then(|a| a.parse::<SocketAddr>().ok());
                    let _ = tx.send(address);
                }
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the launcher printed its address")
            .expect("a socket address");
        Self { child, address }
    }

    fn stop_with(mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the launcher did not stop on {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 exchange (one request per connection), enough to check status and body.
fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn wait_until_ready(address: SocketAddr) {
    let started = Instant::now();
    loop {
        if http(address, "GET", "/readyz", &[], "").0 == 200 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/readyz never became 200"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

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
