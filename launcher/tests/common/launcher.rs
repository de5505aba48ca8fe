//! The README's run command as a child process: `bookstore` on free loopback ports with a fresh
//! data directory, its printed address, and a bare HTTP/1.1 client to talk to it.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The launcher as a child process; killed on drop if a test fails half-way.
pub struct Launcher {
    child: Child,
    /// The gateway's address.
    pub address: SocketAddr,
    /// Every program's address, from the banner (`account`, `warehouse`, `payment`, `gateway`).
    pub programs: BTreeMap<String, SocketAddr>,
}

impl Launcher {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts `bookstore` on free ports with `data_dir` and the `extra` arguments.
    pub fn start_with(data_dir: &Path, extra: &[&OsStr]) -> Self {
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
                "--metrics-listen",
                "127.0.0.1:0",
                "--log-level",
                "warn",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the launcher");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(60);
        let mut address = None;
        let mut programs = BTreeMap::new();
        while programs.len() < 4 {
            let line = rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .expect("the launcher printed its banner");
            if let Some(rest) = line.strip_prefix("bookstore is running at http://") {
                address = rest.split('/').next().and_then(|a| a.parse().ok());
            } else if address.is_some() {
                let mut words = line.split_whitespace();
                if let (Some(name), Some(Ok(at))) =
                    (words.next(), words.next().map(str::parse::<SocketAddr>))
                {
                    programs.insert(name.to_owned(), at);
                }
            }
        }
        let address = address.expect("a socket address");
        Self {
            child,
            address,
            programs,
        }
    }

    pub fn stop_with(mut self, signal: &str) -> std::process::ExitStatus {
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
pub fn http(
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

/// Waits until the gateway is ready and every backend is up (`/readyz` 200, not degraded).
pub fn wait_until_ready(address: SocketAddr) {
    let started = Instant::now();
    loop {
        let (status, body) = http(address, "GET", "/readyz", &[], "");
        if status == 200 && body.contains("\"degraded\":false") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/readyz never reported every backend up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
