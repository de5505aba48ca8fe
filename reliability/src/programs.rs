//! The real program binaries (`account`, `warehouse`, `payment`, `gateway`) as child processes,
//! so that a test's SIGKILL is a real SIGKILL and a SIGTERM runs the real shutdown path.
//!
//! Binaries come from `$BOOKSTORE_BIN_DIR` when set (for instance a build of deliberately broken
//! code, to see a test fail), else from the workspace's `target/debug`, which is brought up to
//! date once per test process with `cargo build --bins` for the four packages (a no-op when
//! `cargo test --workspace` has just built them).
//!
//! Each program reads a ConfigMap-like directory: `config.toml -> ..data/config.toml`, `..data ->
//! ..v<N>`. [`ConfigDir::publish`] writes a new version the way Kubernetes' AtomicWriter does
//! (new directory, new `..data` symlink renamed over the old one), which is what the programs'
//! config watchers follow.

use std::{
    collections::VecDeque,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
};

/// Every program reports its address in a log line containing " ready" and `address=…`.
const READY: &str = " ready";
/// How long a program may take from spawn to its ready line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Lines of each program's log kept in memory (the whole log is in its file).
const KEPT_LINES: usize = 20_000;

/// The four programs of the bookstore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Account,
    Warehouse,
    Payment,
    Gateway,
}

impl Kind {
    pub fn binary_name(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Warehouse => "warehouse",
            Self::Payment => "payment",
            Self::Gateway => "gateway",
        }
    }
}

/// Where the program binaries are.
pub fn binary(kind: Kind) -> PathBuf {
    binary_dir().join(kind.binary_name())
}

/// The launcher (`cargo run -p bookstore`): all four programs in one process.
pub fn launcher_binary() -> PathBuf {
    binary_dir().join("bookstore")
}

fn binary_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("BOOKSTORE_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the reliability crate sits in the workspace")
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(&workspace)
            .args(["build", "--bins", "--quiet"])
            .args([
                "-p",
                "account",
                "-p",
                "warehouse",
                "-p",
                "payment",
                "-p",
                "gateway",
                "-p",
                "bookstore",
            ])
            .status()
            .expect("run cargo build for the program binaries");
        assert!(
            status.success(),
            "cargo build of the program binaries failed"
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        target.join("debug")
    })
}

/// A program's configuration directory, laid out as Kubernetes mounts a ConfigMap.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    dir: PathBuf,
    version: Arc<Mutex<u32>>,
}

impl ConfigDir {
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            version: Arc::new(Mutex::new(0)),
        })
    }

    /// The path programs are given: `<dir>/config.toml`.
    pub fn path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// Atomically replaces the configuration with `text`: a new `..v<N>` directory, a
    /// `..data_tmp` symlink to it renamed over `..data`, the old directory removed.
    pub fn publish(&self, text: &str) -> io::Result<()> {
        let mut version = self
            .version
            .lock()
            .map_err(|_| io::Error::other("config version lock poisoned"))?;
        let previous = *version;
        *version += 1;
        let name = format!("..v{}", *version);
        let versioned = self.dir.join(&name);
        std::fs::create_dir_all(&versioned)?;
        std::fs::write(versioned.join("config.toml"), text)?;
        let temporary = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&temporary);
        std::os::unix::fs::symlink(&name, &temporary)?;
        std::fs::rename(&temporary, self.dir.join("..data"))?;
        let link = self.path();
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("..data/config.toml", &link)?;
        }
        if previous > 0 {
            let _ = std::fs::remove_dir_all(self.dir.join(format!("..v{previous}")));
        }
        Ok(())
    }
}

/// What a program printed: the last lines in memory, everything in `<name>.log`.
#[derive(Debug, Clone, Default)]
pub struct Log {
    lines: Arc<Mutex<LogLines>>,
}

#[derive(Debug, Default)]
struct LogLines {
    /// Lines ever written; `kept` holds the last ones.
    total: usize,
    kept: VecDeque<String>,
}

impl Log {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.total += 1;
            lines.kept.push_back(line);
            if lines.kept.len() > KEPT_LINES {
                lines.kept.pop_front();
            }
        }
    }

    /// How many lines were written so far (a mark for [`Self::find_since`]).
    pub fn mark(&self) -> usize {
        self.lines.lock().map_or(0, |lines| lines.total)
    }

    /// The first line written after `mark` that contains every one of `needles`.
    pub fn find_since(&self, mark: usize, needles: &[&str]) -> Option<String> {
        let lines = self.lines.lock().ok()?;
        let first_kept = lines.total - lines.kept.len();
        let skip = mark.saturating_sub(first_kept);
        lines
            .kept
            .iter()
            .skip(skip)
            .find(|line| needles.iter().all(|needle| line.contains(needle)))
            .cloned()
    }

    /// Every kept line written after `mark`.
    pub fn lines_since(&self, mark: usize) -> Vec<String> {
        self.lines.lock().map_or_else(
            |_| Vec::new(),
            |lines| {
                let first_kept = lines.total - lines.kept.len();
                lines
                    .kept
                    .iter()
                    .skip(mark.saturating_sub(first_kept))
                    .cloned()
                    .collect()
            },
        )
    }

    /// The last `count` lines, for failure messages.
    pub fn tail(&self, count: usize) -> String {
        self.lines.lock().map_or_else(
            |_| String::new(),
            |lines| {
                let skip = lines.kept.len().saturating_sub(count);
                lines
                    .kept
                    .iter()
                    .skip(skip)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        )
    }
}

/// One running (or stopped) program.
pub struct Program {
    pub name: String,
    pub kind: Kind,
    pub config: ConfigDir,
    log_file: PathBuf,
    child: Option<Child>,
    address: Option<SocketAddr>,
    pub log: Log,
}

impl Program {
    /// A program that has not been started yet.
    pub fn new(name: impl Into<String>, kind: Kind, config: ConfigDir, log_dir: &Path) -> Self {
        let name = name.into();
        Self {
            log_file: log_dir.join(format!("{name}.log")),
            name,
            kind,
            config,
            child: None,
            address: None,
            log: Log::default(),
        }
    }

    /// Where it listens (known once it has been started).
    pub fn address(&self) -> SocketAddr {
        self.address
            .unwrap_or_else(|| panic!("{} has not been started", self.name))
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Spawns the binary on its config directory and waits for its ready line.
    pub async fn start(&mut self) -> SocketAddr {
        assert!(self.child.is_none(), "{} is running already", self.name);
        let mut command = Command::new(binary(self.kind));
        command
            .arg("--config")
            .arg(self.config.path())
            .env("NO_COLOR", "1")
            // A start-up error is then its message, not a backtrace that hides it.
            .env("RUST_LIB_BACKTRACE", "0")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in platform::testing::bookstore_variables() {
            command.env_remove(key);
        }
        let mark = self.log.mark();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary(self.kind).display()));
        let file = Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_file)
                .ok(),
        ));
        if let Some(stdout) = child.stdout.take() {
            forward(stdout, self.log.clone(), file.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward(stderr, self.log.clone(), file);
        }
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(line) = self.log.find_since(mark, &[READY, "address="]) {
                let address = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("address="))
                    .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok())
                    .unwrap_or_else(|| panic!("{}: no address in {line:?}", self.name));
                self.address = Some(address);
                return address;
            }
            if !self.is_running() {
                panic!(
                    "{} exited before it was ready:\n{}",
                    self.name,
                    self.log.tail(40)
                );
            }
            if started.elapsed() > START_DEADLINE {
                self.kill().await;
                panic!(
                    "{} was not ready within {START_DEADLINE:?}:\n{}",
                    self.name,
                    self.log.tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown code runs. Waits for the process to be gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    /// SIGTERM, then waits (at most `limit`) for the exit; SIGKILL and a panic after that.
    pub async fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let signalled = self.sigterm().await;
        let (status, _) = self.wait_exit(limit).await;
        (status, signalled.elapsed())
    }

    /// Sends SIGTERM and returns at once (the program drains in the background); returns when
    /// the signal was sent.
    pub async fn sigterm(&mut self) -> Instant {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let sent = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        sent
    }

    /// Waits (at most `limit`) for the process to exit; SIGKILL and a panic after that.
    pub async fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let started = Instant::now();
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(status)) => (status, started.elapsed()),
            Ok(Err(error)) => panic!("waiting for {}: {error}", self.name),
            Err(_) => {
                let _ = child.start_kill();
                panic!(
                    "{} did not exit within {limit:?} of SIGTERM:\n{}",
                    self.name,
                    self.log.tail(40)
                );
            }
        }
    }

    /// Waits (at most `limit`) for a log line after `mark` containing every needle.
    pub async fn wait_for_log(&self, mark: usize, needles: &[&str], limit: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.log.find_since(mark, needles) {
                return line;
            }
            assert!(
                started.elapsed() < limit,
                "{}: no log line with {needles:?} within {limit:?}:\n{}",
                self.name,
                self.log.tail(30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    log: Log,
    file: Arc<Mutex<Option<std::fs::File>>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut file) = file.lock()
                && let Some(file) = file.as_mut()
            {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
            }
            log.push(line);
        }
    });
}

/// A free loopback port, for a program that others must know before it starts.
///
/// Not one the kernel hands out for port 0: between this check and the program's own bind,
/// another test's program binding port 0 could be given the same one (seen once in CI as a
/// gateway that could not start). Ports below the kernel's ephemeral range (32768 and up on
/// Linux) are never handed out that way, and this process never hands one out twice.
pub fn free_port() -> SocketAddr {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    const RANGE: std::ops::Range<u16> = 20_000..32_000;
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    for _ in 0..1_000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), RANGE);
        if handed_out.contains(&port) {
            continue;
        }
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(address).is_ok() {
            handed_out.push(port);
            return address;
        }
    }
    panic!("no free loopback port in {RANGE:?}")
}
