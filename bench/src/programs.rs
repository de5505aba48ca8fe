//! The programs under test, started the way an operator would start them: the real binaries
//! (`account`, `warehouse`, `payment`, `gateway`) as child processes with a TOML file each,
//! SQLite in a temporary directory, a freshly generated token-signing key pair, and each pinned
//! to the programs' core. The bare hyper baseline is this tool's own binary in
//! `baseline-server` mode, started the same way.
//!
//! A program is ready when it answers its health check: `grpc.health.v1.Health/Check` for
//! warehouse and payment, `Ping` = SERVING for account, `GET /readyz` (ready and not degraded: every backend up) for the
//! gateway, `GET /` for the baseline. The time from `spawn` to that answer is its start-to-ready
//! time; on an empty database it includes applying the migrations and seeding.

use std::{
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use platform::{
    configuration::{AuthConfig, ServerConfig},
    database::DatabaseConfig,
};
use rpc_idl::{
    account::{AccountServiceClientBuilder, PingRequest},
    grpc::health::v1::{
        HealthCheckRequest, HealthClientBuilder, health_check_response::ServingStatus,
    },
};
use serde::Serialize;

use crate::{error::BenchError, machine, postgres::Databases, targets::Http};

/// How long a program may take to become ready before the run gives up.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Deadline of one readiness probe.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// The four programs and the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Program {
    Account,
    Warehouse,
    Payment,
    Gateway,
    Baseline,
    Translator,
    BareGrpc,
    BareThrift,
}

impl Program {
    pub const SERVICES: [Program; 4] = [
        Program::Account,
        Program::Warehouse,
        Program::Payment,
        Program::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Program::Account => "account",
            Program::Warehouse => "warehouse",
            Program::Payment => "payment",
            Program::Gateway => "gateway",
            Program::Baseline => "bare hyper",
            Program::Translator => "bare translator",
            Program::BareGrpc => "bare Volo gRPC",
            Program::BareThrift => "bare Volo Thrift",
        }
    }

    fn probe(self) -> Probe {
        match self {
            Program::Account => Probe::ThriftPing,
            Program::Warehouse => Probe::GrpcHealth("warehouse.WarehouseService"),
            Program::Payment => Probe::GrpcHealth("payment.PaymentService"),
            Program::Gateway => Probe::AllBackendsUp,
            Program::Baseline | Program::Translator => Probe::Http("/"),
            // It answers only GetProduct: that it accepts connections is all there is to check.
            Program::BareGrpc => Probe::Listening,
            Program::BareThrift => Probe::ThriftPing,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Probe {
    /// The gateway's `/readyz`: ready, and every backend up (not `degraded`).
    AllBackendsUp,
    Listening,
    GrpcHealth(&'static str),
    ThriftPing,
    Http(&'static str),
}

/// How expensive password hashing is. Production costs are what the programs ship with;
/// unoptimised (debug) builds take seconds per Argon2 hash at those costs, so smoke runs on
/// debug binaries use cheap ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hashing {
    Production,
    Cheap,
}

/// Where things are and where they run.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Holds the `account`, `warehouse`, `payment` and `gateway` binaries.
    pub bin_dir: PathBuf,
    /// This tool's binary (for the baseline server).
    pub bench_exe: PathBuf,
    /// Scratch space: keys, databases, configuration files, logs.
    pub work: PathBuf,
    pub core: usize,
    pub hashing: Hashing,
}

/// The development client secrets the gateway's defaults describe (public knowledge).
pub const FRONTEND_CLIENT: (&str, &str) = ("bookstore_frontend", "bookstore_secret");
const PAYMENT_CLIENT_SECRET: &str = "payment_service_dev_secret";

/// A running child program.
pub struct Running {
    pub program: Program,
    pub pid: u32,
    pub address: SocketAddr,
    /// From spawn to the first successful health check.
    pub ready_after: Duration,
    pub log: PathBuf,
    child: Child,
}

impl Running {
    /// Stops the program and waits for it (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(mut self, grace: Duration) {
        terminate(&mut self.child, grace);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a pid we own (our un-reaped child) and a valid signal number.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A free loopback port (bound and released; nothing else on this machine races for it).
pub fn free_address() -> Result<SocketAddr, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(BenchError::io("cannot find a free loopback port"))
}

/// The token-signing key pair of a run.
#[derive(Debug, Clone)]
pub struct Keys {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Keys {
    pub fn generate(dir: &Path) -> Result<Self, BenchError> {
        let (private, public) = platform::tokens::KeyPairPem::ensure_files(dir)
            .map_err(BenchError::io("cannot write the token-signing keys"))?;
        Ok(Self { private, public })
    }

    fn auth(&self) -> AuthConfig {
        AuthConfig {
            public_key_path: self.public.clone(),
            ..AuthConfig::default()
        }
    }
}

/// Where the four programs listen; the second replicas' addresses are used only when the run
/// has them (on PostgreSQL).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub account: SocketAddr,
    pub warehouse: SocketAddr,
    pub payment: SocketAddr,
    pub gateway: SocketAddr,
    pub warehouse_replica: SocketAddr,
    pub payment_replica: SocketAddr,
}

impl Addresses {
    /// Six distinct free loopback ports (all held until all are chosen).
    pub fn free() -> Result<Self, BenchError> {
        let bind = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(BenchError::io("cannot find a free loopback port"))
        };
        let held = [bind()?, bind()?, bind()?, bind()?, bind()?, bind()?];
        let address = |i: usize| {
            held[i]
                .local_addr()
                .map_err(BenchError::io("cannot read a bound address"))
        };
        Ok(Self {
            account: address(0)?,
            warehouse: address(1)?,
            payment: address(2)?,
            gateway: address(3)?,
            warehouse_replica: address(4)?,
            payment_replica: address(5)?,
        })
    }
}

/// What a program's configuration needs to know.
pub struct Wiring<'a> {
    pub keys: &'a Keys,
    pub addresses: Addresses,
    /// The seeded administrator's password.
    pub admin_password: &'a str,
    /// Gets its own database files (on SQLite).
    pub data_dir: PathBuf,
    /// The services' PostgreSQL databases; `None` runs each service on a SQLite file.
    pub postgres: Option<&'a Databases>,
}

impl Wiring<'_> {
    /// How many replicas of warehouse and of payment run: two when they share PostgreSQL.
    pub fn replicas(&self) -> usize {
        if self.postgres.is_some() { 2 } else { 1 }
    }

    /// The addresses of `program`'s replicas.
    pub fn replica_addresses(&self, program: Program) -> Vec<SocketAddr> {
        let a = self.addresses;
        let all = match program {
            Program::Account => vec![a.account],
            Program::Warehouse => vec![a.warehouse, a.warehouse_replica],
            Program::Payment => vec![a.payment, a.payment_replica],
            Program::Gateway => vec![a.gateway],
            Program::Baseline | Program::Translator | Program::BareGrpc | Program::BareThrift => {
                vec![]
            }
        };
        let replicas = match program {
            Program::Warehouse | Program::Payment => self.replicas(),
            _ => 1,
        };
        all.into_iter().take(replicas).collect()
    }

    /// `program`'s `[database]`: its own PostgreSQL database, or its own SQLite file.
    fn database(&self, program: Program) -> DatabaseConfig {
        let postgres = self.postgres.and_then(|databases| match program {
            Program::Account => Some(&databases.account),
            Program::Warehouse => Some(&databases.warehouse),
            Program::Payment => Some(&databases.payment),
            _ => None,
        });
        match postgres {
            Some(database) => DatabaseConfig {
                url: database.url.clone(),
                ..DatabaseConfig::default()
            },
            None => {
                DatabaseConfig::sqlite_file(&self.data_dir.join(format!("{}.db", program.name())))
            }
        }
    }
}

/// Test and smoke runs buy with a lot of money: wallets open with this balance.
const OPENING_BALANCE_CENTS: i64 = 1_000_000_000_000_000;

fn server(listen: SocketAddr) -> ServerConfig {
    ServerConfig {
        // Nothing is in flight when the benchmark stops a program.
        drain_seconds: 1,
        ..ServerConfig::with_listen(&listen.to_string())
    }
}

fn cheap_hash(secret: &str) -> Result<String, BenchError> {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version, password_hash::SaltString};
    let fail = |e: argon2::password_hash::Error| BenchError::Setup(format!("argon2: {e}"));
    let params = Params::new(1024, 1, 1, None)
        .map_err(|e| BenchError::Setup(format!("argon2 parameters: {e}")))?;
    let salt = SaltString::encode_b64(b"bookstore-bench!").map_err(fail)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(secret.as_bytes(), &salt)
        .map_err(fail)?
        .to_string())
}

/// The TOML file for `program` listening on `listen`.
fn config_text(
    program: Program,
    wiring: &Wiring<'_>,
    hashing: Hashing,
    listen: SocketAddr,
) -> Result<String, BenchError> {
    let name = program.name();
    let to_toml = |value: &dyn ErasedToml| value.to_toml(name);
    let hostports = |program| {
        (wiring.replica_addresses(program).iter())
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
    };
    let a = wiring.addresses;
    match program {
        Program::Account => {
            let mut settings = account::configuration::Settings {
                server: server(listen),
                database: wiring.database(program),
                auth: wiring.keys.auth(),
                ..Default::default()
            };
            settings.admin.password = wiring.admin_password.to_owned();
            if hashing == Hashing::Cheap {
                settings.password_hashing.memory_kib = 1024;
                settings.password_hashing.iterations = 1;
            }
            to_toml(&settings)
        }
        Program::Warehouse => to_toml(&warehouse::configuration::Settings {
            server: server(listen),
            database: wiring.database(program),
            auth: wiring.keys.auth(),
            ..Default::default()
        }),
        Program::Payment => {
            let mut settings = payment::configuration::Settings {
                server: server(listen),
                database: wiring.database(program),
                auth: wiring.keys.auth(),
                ..Default::default()
            };
            settings.payment.opening_balance_cents = OPENING_BALANCE_CENTS;
            settings.warehouse.hostport = hostports(Program::Warehouse);
            settings.service_credentials.token_url = format!("http://{}/oauth/token", a.gateway);
            to_toml(&settings)
        }
        Program::Gateway => {
            let mut config = gateway::configuration::GatewayConfig {
                // The benchmark registers and logs in its buyers from one address.
                rate_limits: gateway::configuration::RateLimitConfig::generous(),
                ..Default::default()
            };
            config.server.listen = listen.to_string();
            config.server.drain_seconds = 1;
            config.oauth.private_key_path = wiring.keys.private.clone();
            config.account.client.hostport = vec![a.account.to_string()];
            config.warehouse.client.hostport = hostports(Program::Warehouse);
            config.payment.client.hostport = hostports(Program::Payment);
            if hashing == Hashing::Cheap {
                for client in &mut config.oauth.clients {
                    let secret = if client.id == FRONTEND_CLIENT.0 {
                        FRONTEND_CLIENT.1
                    } else {
                        PAYMENT_CLIENT_SECRET
                    };
                    client.secret_hash = cheap_hash(secret)?;
                }
            }
            to_toml(&config)
        }
        Program::Baseline | Program::Translator | Program::BareGrpc | Program::BareThrift => {
            Ok(String::new())
        }
    }
}

/// The TOML of a program's settings, holding only what differs from the program's defaults:
/// short files that say what the benchmark changed, and that older builds of a program (with
/// fewer keys) still accept.
trait ErasedToml {
    fn to_toml(&self, program: &'static str) -> Result<String, BenchError>;
}

impl<T: Serialize + Default> ErasedToml for T {
    fn to_toml(&self, program: &'static str) -> Result<String, BenchError> {
        let fail = |source| BenchError::Config { program, source };
        let mut settings = toml::Table::try_from(self).map_err(fail)?;
        let defaults = toml::Table::try_from(T::default()).map_err(fail)?;
        prune_defaults(&mut settings, &defaults);
        toml::to_string(&settings).map_err(fail)
    }
}

/// Removes every key of `table` whose value equals the one in `defaults`, and tables left empty.
fn prune_defaults(table: &mut toml::Table, defaults: &toml::Table) {
    table.retain(|key, value| {
        let Some(default) = defaults.get(key) else {
            return true;
        };
        match (value, default) {
            (toml::Value::Table(inner), toml::Value::Table(default)) => {
                prune_defaults(inner, default);
                !inner.is_empty()
            }
            (value, default) => value != default,
        }
    });
}

impl Layout {
    fn binary(&self, program: Program) -> PathBuf {
        match program {
            Program::Baseline | Program::Translator | Program::BareGrpc | Program::BareThrift => {
                self.bench_exe.clone()
            }
            _ => self.bin_dir.join(program.name()),
        }
    }

    /// Writes `program`'s configuration and starts it in `dir`; returns once it is ready.
    ///
    /// The configuration file gets a directory of its own, as a Kubernetes ConfigMap mount
    /// does: every program watches its configuration directory, and a log or database file
    /// written there would wake the watcher on every write.
    pub async fn start(
        &self,
        program: Program,
        wiring: &Wiring<'_>,
        dir: &Path,
    ) -> Result<Running, BenchError> {
        self.start_replica(program, 0, wiring, dir).await
    }

    /// Like [`Layout::start`], for `program`'s replica number `replica` (0 is the first).
    pub async fn start_replica(
        &self,
        program: Program,
        replica: usize,
        wiring: &Wiring<'_>,
        dir: &Path,
    ) -> Result<Running, BenchError> {
        let name = match replica {
            0 => program.name().to_owned(),
            n => format!("{}-{}", program.name(), n + 1),
        };
        let address =
            (wiring.replica_addresses(program).get(replica).copied()).ok_or_else(|| {
                BenchError::Setup(format!(
                    "{name}: no such replica of a program this run starts"
                ))
            })?;
        let config_dir = dir.join(format!("{name}-config"));
        std::fs::create_dir_all(&config_dir).map_err(BenchError::io(format!(
            "cannot create {}",
            config_dir.display()
        )))?;
        let config = config_dir.join(format!("{}.toml", program.name()));
        std::fs::write(
            &config,
            config_text(program, wiring, self.hashing, address)?,
        )
        .map_err(BenchError::io(format!("cannot write {}", config.display())))?;
        let args = [OsArg::from("--config"), config.into_os_string()];
        self.spawn(program, &name, &args, address, dir).await
    }

    /// Starts the bare hyper server answering with the bytes in `body_file`.
    pub async fn start_baseline(
        &self,
        body_file: &Path,
        dir: &Path,
    ) -> Result<Running, BenchError> {
        let args = [OsArg::from("--body-file"), body_file.as_os_str().to_owned()];
        self.start_own_server(Program::Baseline, "baseline-server", &args, dir)
            .await
    }

    /// Starts the bare translator in front of the warehouse and the account service.
    pub async fn start_translator(
        &self,
        warehouse: SocketAddr,
        account: SocketAddr,
        dir: &Path,
    ) -> Result<Running, BenchError> {
        let args = [
            OsArg::from("--warehouse"),
            OsArg::from(warehouse.to_string()),
            OsArg::from("--account"),
            OsArg::from(account.to_string()),
        ];
        self.start_own_server(Program::Translator, "translator-server", &args, dir)
            .await
    }

    /// Starts the bare Volo gRPC server, answering with product `id` as the warehouse holds it.
    pub async fn start_bare_grpc(
        &self,
        warehouse: SocketAddr,
        id: i64,
        dir: &Path,
    ) -> Result<Running, BenchError> {
        let args = [
            OsArg::from("--warehouse"),
            OsArg::from(warehouse.to_string()),
            OsArg::from("--product"),
            OsArg::from(id.to_string()),
        ];
        self.start_own_server(Program::BareGrpc, "bare-grpc-server", &args, dir)
            .await
    }

    /// Starts the bare Volo Thrift server, answering with `username`'s account as the account
    /// service holds it (read with the token in `token_file`).
    pub async fn start_bare_thrift(
        &self,
        account: SocketAddr,
        token_file: &Path,
        username: &str,
        dir: &Path,
    ) -> Result<Running, BenchError> {
        let args = [
            OsArg::from("--account"),
            OsArg::from(account.to_string()),
            OsArg::from("--token-file"),
            token_file.as_os_str().to_owned(),
            OsArg::from("--username"),
            OsArg::from(username),
        ];
        self.start_own_server(Program::BareThrift, "bare-thrift-server", &args, dir)
            .await
    }

    /// Starts one of this tool's own servers (`bookstore-bench <mode> --listen <free address>
    /// <args>`).
    async fn start_own_server(
        &self,
        program: Program,
        mode: &str,
        args: &[OsArg],
        dir: &Path,
    ) -> Result<Running, BenchError> {
        let address = free_address()?;
        let mut command = vec![
            OsArg::from(mode),
            OsArg::from("--listen"),
            OsArg::from(address.to_string()),
        ];
        command.extend_from_slice(args);
        self.spawn(
            program,
            &program.name().replace(' ', "-"),
            &command,
            address,
            dir,
        )
        .await
    }

    /// Starts `program` as `name` (its log is `dir/<name>.log`) and waits until it is ready.
    async fn spawn(
        &self,
        program: Program,
        name: &str,
        args: &[OsArg],
        address: SocketAddr,
        dir: &Path,
    ) -> Result<Running, BenchError> {
        let log = dir.join(format!("{name}.log"));
        let stdout = File::create(&log)
            .map_err(BenchError::io(format!("cannot create {}", log.display())))?;
        let stderr = stdout
            .try_clone()
            .map_err(BenchError::io("cannot share the log file"))?;
        let binary = self.binary(program);
        let mut command = machine::pinned_command(&binary, self.core);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove(platform::configuration::CONFIG_PATH_ENV);
        // The programs read BOOKSTORE_* overrides; the caller's must not change what is measured.
        for key in platform::testing::bookstore_variables() {
            command.env_remove(key);
        }
        let started = Instant::now();
        let child = command.spawn().map_err(BenchError::io(format!(
            "cannot start {} (build it first?)",
            binary.display()
        )))?;
        let mut running = Running {
            program,
            pid: child.id(),
            address,
            ready_after: Duration::ZERO,
            log,
            child,
        };
        running.ready_after = wait_ready(&mut running, started).await?;
        Ok(running)
    }
}

type OsArg = std::ffi::OsString;

async fn wait_ready(running: &mut Running, started: Instant) -> Result<Duration, BenchError> {
    let probe = running.program.probe();
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(BenchError::Exited {
                program: running.program.name(),
                status,
                log: running.log.clone(),
            });
        }
        if started.elapsed() > START_LIMIT {
            return Err(BenchError::NotReady {
                program: running.program.name(),
                waited: START_LIMIT,
                log: running.log.clone(),
            });
        }
        if probe_once(probe, running.address).await {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One health check: first whether anything listens (cheap to repeat while the process starts),
/// then the program's own check, which a bound but not yet serving program answers only once
/// it serves.
async fn probe_once(probe: Probe, address: SocketAddr) -> bool {
    let listening = tokio::time::timeout(PROBE_DEADLINE, tokio::net::TcpStream::connect(address))
        .await
        .is_ok_and(|connected| connected.is_ok());
    if !listening {
        return false;
    }
    let check = async {
        match probe {
            Probe::Listening => true,
            Probe::GrpcHealth(service) => {
                let client = HealthClientBuilder::new("health")
                    .caller_name("bench")
                    .address(address)
                    .rpc_timeout(Some(PROBE_DEADLINE))
                    .build();
                let request = HealthCheckRequest {
                    service: service.into(),
                };
                matches!(
                    client.check(request).await,
                    Ok(response) if response.get_ref().status == ServingStatus::SERVING
                )
            }
            Probe::ThriftPing => {
                let client = AccountServiceClientBuilder::new("account")
                    .caller_name("bench")
                    .address(address)
                    .rpc_timeout(Some(PROBE_DEADLINE))
                    .build();
                matches!(client.ping(PingRequest {}).await, Ok(pong) if pong.status == "SERVING")
            }
            Probe::AllBackendsUp => {
                Http::new(address)
                    .get("/readyz", None)
                    .await
                    .is_ok_and(|answer| {
                        answer.status == http::StatusCode::OK
                            && serde_json::from_slice::<serde_json::Value>(&answer.body)
                                .is_ok_and(|report| report["degraded"] == false)
                    })
            }
            Probe::Http(path) => Http::new(address)
                .get(path, None)
                .await
                .is_ok_and(|answer| answer.status == http::StatusCode::OK),
        }
    };
    tokio::time::timeout(PROBE_DEADLINE, check)
        .await
        .unwrap_or(false)
}

/// All four programs, started in dependency order, and the second replicas of warehouse and
/// payment when the run has them.
pub struct Stack {
    pub account: Running,
    pub warehouse: Running,
    pub payment: Running,
    pub gateway: Running,
    pub replicas: Vec<Running>,
}

impl Stack {
    pub async fn start(layout: &Layout, wiring: &Wiring<'_>) -> Result<Self, BenchError> {
        let dir = wiring.data_dir.clone();
        let mut replicas = Vec::new();
        let account = layout.start(Program::Account, wiring, &dir).await?;
        let warehouse = layout.start(Program::Warehouse, wiring, &dir).await?;
        for replica in 1..wiring.replicas() {
            replicas.push(
                layout
                    .start_replica(Program::Warehouse, replica, wiring, &dir)
                    .await?,
            );
        }
        let payment = layout.start(Program::Payment, wiring, &dir).await?;
        for replica in 1..wiring.replicas() {
            replicas.push(
                layout
                    .start_replica(Program::Payment, replica, wiring, &dir)
                    .await?,
            );
        }
        let gateway = layout.start(Program::Gateway, wiring, &dir).await?;
        Ok(Self {
            account,
            warehouse,
            payment,
            gateway,
            replicas,
        })
    }

    /// The first (or only) replica of `program`.
    pub fn get(&self, program: Program) -> Option<&Running> {
        match program {
            Program::Account => Some(&self.account),
            Program::Warehouse => Some(&self.warehouse),
            Program::Payment => Some(&self.payment),
            Program::Gateway => Some(&self.gateway),
            Program::Baseline | Program::Translator | Program::BareGrpc | Program::BareThrift => {
                None
            }
        }
    }

    /// Every running process, with the program it is a replica of.
    pub fn processes(&self) -> impl Iterator<Item = (Program, u32)> + '_ {
        [&self.account, &self.warehouse, &self.payment, &self.gateway]
            .into_iter()
            .chain(&self.replicas)
            .map(|running| (running.program, running.pid))
    }

    /// Stops the gateway first (it calls the others), then the services.
    pub fn stop(self) {
        let grace = Duration::from_secs(3);
        self.gateway.stop(grace);
        for replica in self.replicas {
            replica.stop(grace);
        }
        self.payment.stop(grace);
        self.warehouse.stop(grace);
        self.account.stop(grace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring<'a>(keys: &'a Keys, dir: &Path) -> Wiring<'a> {
        Wiring {
            keys,
            addresses: Addresses::free().expect("ports"),
            admin_password: "bench-admin-password",
            data_dir: dir.to_path_buf(),
            postgres: None,
        }
    }

    /// Each configuration is what the program itself accepts (its own Settings type, with
    /// `deny_unknown_fields`), and carries the wiring.
    #[test]
    fn every_configuration_parses_as_its_program_reads_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = Keys::generate(dir.path()).expect("keys");
        let wiring = wiring(&keys, dir.path());
        let load = |program, hashing| {
            let file = dir.path().join("x.toml");
            let listen = wiring.replica_addresses(program)[0];
            std::fs::write(
                &file,
                config_text(program, &wiring, hashing, listen).expect("toml"),
            )
            .expect("write");
            platform::configuration::ConfigSource::file_only(file)
        };

        let account: account::configuration::Settings = load(Program::Account, Hashing::Cheap)
            .load()
            .expect("account config");
        assert_eq!(account.server.listen, wiring.addresses.account.to_string());
        assert_eq!(account.admin.password, "bench-admin-password");
        assert_eq!(account.password_hashing.memory_kib, 1024);
        assert_eq!(account.auth.public_key_path, keys.public);

        let warehouse: warehouse::configuration::Settings =
            load(Program::Warehouse, Hashing::Production)
                .load()
                .expect("warehouse config");
        assert!(warehouse.database.url.ends_with("warehouse.db"));
        assert!(warehouse.seed.demo_data);

        let payment: payment::configuration::Settings = load(Program::Payment, Hashing::Production)
            .load()
            .expect("payment config");
        assert_eq!(
            payment.warehouse.hostport,
            vec![wiring.addresses.warehouse.to_string()]
        );
        assert!(payment.problems().is_empty(), "{:?}", payment.problems());
        assert_eq!(payment.payment.opening_balance_cents, OPENING_BALANCE_CENTS);

        let production: gateway::configuration::GatewayConfig =
            load(Program::Gateway, Hashing::Production)
                .load()
                .expect("gateway config");
        assert_eq!(
            production.oauth.clients,
            gateway::configuration::OAuthClientConfig::development_defaults()
        );
        let cheap: gateway::configuration::GatewayConfig = load(Program::Gateway, Hashing::Cheap)
            .load()
            .expect("gateway config");
        assert_eq!(
            cheap.account.client.hostport,
            vec![wiring.addresses.account.to_string()]
        );
        assert!(
            cheap
                .oauth
                .clients
                .iter()
                .all(|c| c.secret_hash.contains("m=1024"))
        );
    }

    #[test]
    fn configuration_files_hold_only_what_differs_from_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = Keys::generate(dir.path()).expect("keys");
        let wiring = wiring(&keys, dir.path());
        let text = config_text(
            Program::Warehouse,
            &wiring,
            Hashing::Production,
            wiring.addresses.warehouse,
        )
        .expect("toml");
        let table: toml::Table = text.parse().expect("valid TOML");
        let mut sections: Vec<&str> = table.keys().map(String::as_str).collect();
        sections.sort();
        // [log] and [seed] keep their defaults; drain_seconds and the address are ours.
        assert_eq!(sections, ["auth", "database", "server"], "{text}");
        assert!(!text.contains("max_connections"), "{text}");
        assert!(text.contains("drain_seconds = 1"), "{text}");
    }

    /// On PostgreSQL, every service gets its own database, the second replicas their own
    /// addresses, and whoever calls warehouse or payment calls both replicas.
    #[tokio::test]
    async fn on_postgres_replicas_share_a_database_and_are_all_called() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = Keys::generate(dir.path()).expect("keys");
        let server = std::env::var("BOOKSTORE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let databases = Databases::create(&server).await.expect("PostgreSQL");
        let wiring = Wiring {
            postgres: Some(&databases),
            ..wiring(&keys, dir.path())
        };
        let config = |program, replica: usize| {
            let listen = wiring.replica_addresses(program)[replica];
            let text = config_text(program, &wiring, Hashing::Production, listen).expect("toml");
            text.parse::<toml::Table>().expect("valid TOML")
        };
        let warehouses = [
            wiring.addresses.warehouse.to_string(),
            wiring.addresses.warehouse_replica.to_string(),
        ];

        let second_warehouse = config(Program::Warehouse, 1);
        assert_eq!(
            second_warehouse["server"]["listen"].as_str(),
            Some(&*warehouses[1])
        );
        assert_eq!(
            second_warehouse["database"]["url"].as_str(),
            Some(&*databases.warehouse.url)
        );
        assert_eq!(
            config(Program::Account, 0)["database"]["url"].as_str(),
            Some(&*databases.account.url)
        );
        let payment = config(Program::Payment, 1);
        assert_eq!(
            payment["warehouse"]["hostport"],
            toml::Value::try_from(&warehouses).expect("list")
        );
        let gateway = config(Program::Gateway, 0);
        assert_eq!(
            gateway["warehouse"]["client"]["hostport"],
            toml::Value::try_from(&warehouses).expect("list")
        );
        assert_eq!(
            gateway["payment"]["client"]["hostport"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn free_addresses_are_loopback_and_distinct() {
        let addresses = Addresses::free().expect("ports");
        let all = [
            addresses.account,
            addresses.warehouse,
            addresses.payment,
            addresses.gateway,
            addresses.warehouse_replica,
            addresses.payment_replica,
        ];
        assert!(all.iter().all(|a| a.ip().is_loopback() && a.port() != 0));
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 6);
    }
}
