//! One benchmark run, start to finish: start the programs, set up data through the public API,
//! start the baseline with the gateway's own product bytes, measure every path, time start-ups,
//! and collect the results for the report.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::Method;
use platform::shutdown::CancellationToken;
use serde::Deserialize;

use crate::{
    client_cost::{self, ClientCost, Rpc},
    error::BenchError,
    load::{self, CallError, ClosedLoop, OpenLoop, OpenOutcome, Percentiles, Target},
    machine::{MachineInfo, Placement},
    postgres::Databases,
    procfs::{self, CpuSnapshot},
    programs::{Addresses, FRONTEND_CLIENT, Keys, Layout, Program, Running, Stack, Wiring},
    targets::{GrpcGetProduct, Http, HttpGet, SettleAndPay, ThriftGetAccount},
};

/// How long and how hard to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: &'static str,
    pub concurrency: usize,
    pub warmup: Duration,
    pub closed: Duration,
    pub open: Duration,
    /// The closed loop of each path is split into this many turns, taken round the paths.
    pub rounds: usize,
    /// Fraction of the closed-loop throughput offered in the open loop.
    pub open_load: f64,
    /// How long the pinned Volo client measures each RPC's client-side cost.
    pub client_cost: Duration,
    /// Fresh starts per program for the start-to-ready figure.
    pub start_trials: usize,
    /// Upper bound of requests in one phase.
    pub max_requests: u64,
    /// Deadline of one request.
    pub timeout: Duration,
    /// The paths to measure, in this order.
    pub paths: Vec<PathKey>,
    /// Scheduling priority of everything measured (0: unchanged).
    pub nice: i32,
}

impl Plan {
    /// 4 to 8 minutes on a 2-core machine, after the build.
    pub fn full() -> Self {
        Self {
            mode: "full",
            concurrency: 32,
            warmup: Duration::from_secs(1),
            closed: Duration::from_secs(5),
            open: Duration::from_secs(5),
            rounds: 3,
            open_load: 0.5,
            client_cost: Duration::from_secs(2),
            start_trials: 5,
            max_requests: 5_000_000,
            timeout: Duration::from_secs(5),
            paths: PathKey::ALL.to_vec(),
            nice: -10,
        }
    }

    /// A few seconds: proves every part of the tool works; its numbers mean little.
    pub fn smoke() -> Self {
        Self {
            mode: "smoke",
            concurrency: 4,
            warmup: Duration::from_millis(100),
            closed: Duration::from_millis(300),
            open: Duration::from_millis(300),
            rounds: 1,
            open_load: 0.5,
            client_cost: Duration::from_millis(300),
            start_trials: 1,
            max_requests: 20_000,
            timeout: Duration::from_secs(10),
            paths: PathKey::ALL.to_vec(),
            nice: 0,
        }
    }
}

/// The paths measured, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathKey {
    BareHyper,
    BareGrpc,
    BareThrift,
    DirectGrpc,
    DirectThrift,
    TranslatorProduct,
    TranslatorAccount,
    GatewayProduct,
    GatewayAccount,
    GatewayCatalogue,
    SettleAndPay,
    SettleAndPayCrowd,
}

impl PathKey {
    pub const ALL: [PathKey; 12] = [
        PathKey::BareHyper,
        PathKey::BareGrpc,
        PathKey::BareThrift,
        PathKey::DirectGrpc,
        PathKey::DirectThrift,
        PathKey::TranslatorProduct,
        PathKey::TranslatorAccount,
        PathKey::GatewayProduct,
        PathKey::GatewayAccount,
        PathKey::GatewayCatalogue,
        PathKey::SettleAndPay,
        PathKey::SettleAndPayCrowd,
    ];

    /// The name used on the command line (`--only gateway-product,direct-grpc`).
    pub fn slug(self) -> &'static str {
        match self {
            PathKey::BareHyper => "bare-hyper",
            PathKey::BareGrpc => "bare-grpc",
            PathKey::BareThrift => "bare-thrift",
            PathKey::DirectGrpc => "direct-grpc",
            PathKey::DirectThrift => "direct-thrift",
            PathKey::TranslatorProduct => "translator-product",
            PathKey::TranslatorAccount => "translator-account",
            PathKey::GatewayProduct => "gateway-product",
            PathKey::GatewayAccount => "gateway-account",
            PathKey::GatewayCatalogue => "gateway-catalogue",
            PathKey::SettleAndPay => "settle-pay",
            PathKey::SettleAndPayCrowd => "settle-pay-crowd",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.slug() == slug)
    }

    pub fn label(self) -> &'static str {
        match self {
            PathKey::BareHyper => "baseline: bare hyper, product JSON",
            PathKey::BareGrpc => "baseline: bare Volo gRPC server, GetProduct from memory",
            PathKey::BareThrift => "baseline: bare Volo Thrift server, account from memory",
            PathKey::DirectGrpc => "baseline: warehouse GetProduct, Volo gRPC",
            PathKey::DirectThrift => "baseline: account GetAccountByUsername, Volo Thrift",
            PathKey::TranslatorProduct => "floor: bare translator, REST → gRPC GetProduct",
            PathKey::TranslatorAccount => {
                "floor: bare translator, REST → Thrift GetAccountByUsername (token passed on)"
            }
            PathKey::GatewayProduct => "gateway: GET /restful/products/{id}",
            PathKey::GatewayAccount => "gateway: GET /restful/accounts/{username} (JWT)",
            PathKey::GatewayCatalogue => "gateway: GET /restful/products",
            PathKey::SettleAndPay => "gateway: POST settlements + PATCH pay",
            PathKey::SettleAndPayCrowd => "gateway: settle + pay, 4x the buyers",
        }
    }

    /// Whether the path goes through the bare translator.
    pub fn through_translator(self) -> bool {
        matches!(
            self,
            PathKey::TranslatorProduct | PathKey::TranslatorAccount
        )
    }

    /// The programs a request of this path runs through (whose CPU it costs).
    pub fn programs(self) -> &'static [Program] {
        match self {
            PathKey::BareHyper => &[Program::Baseline],
            PathKey::BareGrpc => &[Program::BareGrpc],
            PathKey::BareThrift => &[Program::BareThrift],
            PathKey::DirectGrpc => &[Program::Warehouse],
            PathKey::DirectThrift => &[Program::Account],
            PathKey::TranslatorProduct => &[Program::Translator, Program::Warehouse],
            PathKey::TranslatorAccount => &[Program::Translator, Program::Account],
            PathKey::GatewayProduct | PathKey::GatewayCatalogue => {
                &[Program::Gateway, Program::Warehouse]
            }
            PathKey::GatewayAccount => &[Program::Gateway, Program::Account],
            PathKey::SettleAndPay | PathKey::SettleAndPayCrowd => {
                &[Program::Gateway, Program::Payment, Program::Warehouse]
            }
        }
    }

    /// Virtual users of the path's closed loop: the plan's, except for the crowd of buyers
    /// (32 → 128 in the full run), which shows whether purchases still all succeed when many
    /// more buyers wait for the database's one writer.
    pub fn concurrency(self, plan: &Plan) -> usize {
        match self {
            PathKey::SettleAndPayCrowd => plan.concurrency * 4,
            _ => plan.concurrency,
        }
    }
}

/// What one path measured.
#[derive(Debug, Clone)]
pub struct PathResult {
    pub key: PathKey,
    pub concurrency: usize,
    /// Closed loop: successful requests per second.
    pub throughput: f64,
    pub closed_requests: u64,
    pub closed_errors: u64,
    pub closed_latency: Percentiles,
    /// Open loop: offered and achieved rate, latency from the intended send time.
    pub open_rate: f64,
    pub open_achieved: f64,
    pub open_requests: u64,
    pub open_errors: u64,
    pub open_latency: Percentiles,
    /// How late the generator sent, median and 99th percentile, µs.
    pub send_lag: Percentiles,
    /// CPU µs per request of each program on the path, in the closed loop.
    pub cpu_per_request: Vec<(Program, f64)>,
    /// Share of the programs' core in use (all programs together) during the closed loop.
    pub programs_core_busy: f64,
    /// Share of the programs' core used by other processes (and interrupts) meanwhile.
    pub programs_core_other: f64,
    /// CPU µs per request of the load generator (this process) in the closed loop.
    pub generator_cpu_per_request: f64,
    pub generator_busy: f64,
    /// Share of the generator's core used by other processes (and interrupts) meanwhile.
    pub generator_core_other: f64,
    pub first_error: Option<String>,
    /// Failed requests (closed and open loop) by reason, most frequent first.
    pub failure_reasons: Vec<(String, u64)>,
}

impl PathResult {
    pub fn cpu_of(&self, program: Program) -> Option<f64> {
        self.cpu_per_request
            .iter()
            .find(|(p, _)| *p == program)
            .map(|(_, cpu)| *cpu)
    }
}

/// What one program measured.
#[derive(Debug, Clone)]
pub struct ProgramResult {
    pub program: Program,
    /// VmRSS after start-up, before any load.
    pub rss_idle: u64,
    /// Highest VmRSS sampled during the closed loops.
    pub rss_load: u64,
    /// VmHWM at the end of the run.
    pub rss_peak: u64,
    /// Fresh starts (empty database): spawn to first successful health check.
    pub starts: Vec<Duration>,
}

impl ProgramResult {
    pub fn median_start(&self) -> Duration {
        let mut starts = self.starts.clone();
        starts.sort();
        starts.get(starts.len() / 2).copied().unwrap_or_default()
    }
}

/// Everything the report needs.
#[derive(Debug, Clone)]
pub struct Results {
    pub plan: Plan,
    /// The cargo profile of the programs' build.
    pub profile: String,
    pub machine: MachineInfo,
    pub placement: Placement,
    pub paths: Vec<PathResult>,
    pub programs: Vec<ProgramResult>,
    /// CPU per call of a Volo client pinned to the programs' core, for the direct RPC paths.
    pub client_costs: Vec<(PathKey, ClientCost)>,
    /// Whether the priority of everything measured was raised as planned.
    pub reniced: bool,
    pub product_bytes: usize,
    pub catalogue_bytes: usize,
    /// What the services stored their data in, and how many replicas ran.
    pub storage: &'static str,
    /// On PostgreSQL: the conservation audit of the books the run left behind.
    pub audit: Option<String>,
}

impl Results {
    pub fn path(&self, key: PathKey) -> Option<&PathResult> {
        self.paths.iter().find(|p| p.key == key)
    }

    pub fn program(&self, program: Program) -> Option<&ProgramResult> {
        self.programs.iter().find(|p| p.program == program)
    }

    pub fn client_cost(&self, key: PathKey) -> Option<&ClientCost> {
        self.client_costs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, cost)| cost)
    }
}

/// The user the benchmark reads and buys as.
const USER: &str = "benchuser";
const USER_PASSWORD: &str = "bench-user-password";
pub(crate) const ADMIN: &str = "icyfenix";
/// Enough stock that the settle+pay loop never runs out.
const STOCK: i64 = 1_000_000_000;

/// What the set-up through the public API produced.
pub(crate) struct Fixture {
    pub user_token: String,
    pub product_id: i64,
    pub product_json: Bytes,
    pub account_bytes: usize,
    pub catalogue_bytes: usize,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct ProductAnswer {
    id: i64,
}

fn setup_error(step: &str) -> impl FnOnce(crate::load::CallError) -> BenchError + '_ {
    move |e| BenchError::Setup(format!("{step}: {}", e.0))
}

pub(crate) async fn login(
    http: &Http,
    username: &str,
    password: &str,
) -> Result<String, BenchError> {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", FRONTEND_CLIENT.0),
            ("client_secret", FRONTEND_CLIENT.1),
        ])
        .finish();
    let body = http
        .get(&format!("/oauth/token?{query}"), None)
        .await
        .and_then(|a| a.ok())
        .map_err(setup_error("log in"))?;
    serde_json::from_slice::<TokenAnswer>(&body)
        .map(|t| t.access_token)
        .map_err(|e| BenchError::Setup(format!("token answer: {e}")))
}

/// Registers user `username` (with the benchmark's password) and logs in as them.
pub(crate) async fn register_and_log_in(http: &Http, username: &str) -> Result<String, BenchError> {
    // Telephone and e-mail are unique per account: derived from the name.
    let digits: u64 = username.bytes().fold(0, |sum, b| sum * 31 + u64::from(b)) % 100_000_000;
    let registration = serde_json::json!({
        "username": username, "password": USER_PASSWORD, "name": "Bench User",
        "telephone": format!("138{digits:08}"), "email": format!("{username}@example.com"),
        "location": "Loopback 1",
    });
    http.send(
        Method::POST,
        http.uri("/restful/accounts").map_err(setup_error("uri"))?,
        None,
        Some(Bytes::from(registration.to_string())),
    )
    .await
    .and_then(|a| a.ok())
    .map_err(setup_error("register a benchmark user"))?;
    login(http, username, USER_PASSWORD).await
}

/// Registers the benchmark's user, gives the first product plenty of stock, and reads the
/// answers whose bytes the baselines and checks need.
pub(crate) async fn set_up(http: &Http, admin_password: &str) -> Result<Fixture, BenchError> {
    let admin = login(http, ADMIN, admin_password).await?;
    let user_token = register_and_log_in(http, USER).await?;

    let catalogue = http
        .get("/restful/products", None)
        .await
        .and_then(|a| a.ok())
        .map_err(setup_error("list products"))?;
    let products: Vec<ProductAnswer> = serde_json::from_slice(&catalogue)
        .map_err(|e| BenchError::Setup(format!("product list: {e}")))?;
    let product_id = products
        .first()
        .map(|p| p.id)
        .ok_or_else(|| BenchError::Setup("the demo catalogue is empty".into()))?;
    let authorization = crate::targets::bearer(&admin).map_err(setup_error("token"))?;
    let stock = http
        .uri(&format!(
            "/restful/products/stockpile/{product_id}?amount={STOCK}"
        ))
        .map_err(setup_error("uri"))?;
    http.send(Method::PATCH, stock, Some(&authorization), None)
        .await
        .and_then(|a| a.ok())
        .map_err(setup_error("set stock"))?;
    let product_json = http
        .get(&format!("/restful/products/{product_id}"), None)
        .await
        .and_then(|a| a.ok())
        .map_err(setup_error("read a product"))?;
    let account = http
        .get(&format!("/restful/accounts/{USER}"), Some(&user_token))
        .await
        .and_then(|a| a.ok())
        .map_err(setup_error("read the user's account"))?;
    Ok(Fixture {
        user_token,
        product_id,
        product_json,
        account_bytes: account.len(),
        catalogue_bytes: catalogue.len(),
    })
}

/// Every process whose CPU and memory the run watches; a program with two replicas has two.
struct Watched {
    processes: Vec<(Program, u32)>,
}

impl Watched {
    fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|(_, pid)| *pid).collect()
    }

    /// Where `program`'s processes are in [`Watched::pids`].
    fn indices(&self, program: Program) -> impl Iterator<Item = usize> + '_ {
        (self.processes.iter().enumerate())
            .filter(move |(_, (p, _))| *p == program)
            .map(|(i, _)| i)
    }
}

/// Samples resident memory of every watched process until stopped, keeping each program's
/// maximum (of any one replica).
fn sample_rss(watched: &Watched, stop: CancellationToken) -> Arc<Mutex<BTreeMap<Program, u64>>> {
    let highest = Arc::new(Mutex::new(BTreeMap::new()));
    let (pids, sink) = (watched.processes.clone(), highest.clone());
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            for (program, pid) in &pids {
                if let (Ok(rss), Ok(mut highest)) = (procfs::rss_bytes(*pid), sink.lock()) {
                    let entry = highest.entry(*program).or_insert(0);
                    *entry = (*entry).max(rss);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    highest
}

/// Any of the benchmark's requests, so that the paths can take turns.
#[derive(Clone)]
enum AnyTarget {
    Http(HttpGet),
    Grpc(GrpcGetProduct),
    Thrift(ThriftGetAccount),
    Buy(SettleAndPay),
}

impl Target for AnyTarget {
    async fn call(&self) -> Result<(), CallError> {
        match self {
            AnyTarget::Http(target) => target.call().await,
            AnyTarget::Grpc(target) => target.call().await,
            AnyTarget::Thrift(target) => target.call().await,
            AnyTarget::Buy(target) => target.call().await,
        }
    }
}

/// One path's closed-loop turns, added up.
struct ClosedTotals {
    key: PathKey,
    target: AnyTarget,
    ok: u64,
    errors: u64,
    first_error: Option<CallError>,
    reasons: load::Reasons,
    latency: hdrhistogram::Histogram<u64>,
    /// Summed over the turns: CPU of each watched process (this one last), busy time of the
    /// programs' and the generator's cores, wall time.
    processes: Vec<Duration>,
    cores: [Duration; 2],
    wall: Duration,
}

impl ClosedTotals {
    fn new(key: PathKey, target: AnyTarget, processes: usize) -> Self {
        Self {
            key,
            target,
            ok: 0,
            errors: 0,
            first_error: None,
            reasons: load::Reasons::default(),
            latency: load::histogram(),
            processes: vec![Duration::ZERO; processes],
            cores: [Duration::ZERO; 2],
            wall: Duration::ZERO,
        }
    }

    fn add(&mut self, outcome: load::ClosedOutcome, delta: &crate::procfs::CpuDelta) {
        self.ok += outcome.ok;
        self.errors += outcome.errors;
        self.first_error = self.first_error.take().or(outcome.first_error);
        self.reasons.merge(&outcome.reasons);
        let _ = self.latency.add(&outcome.latency);
        for (total, used) in self.processes.iter_mut().zip(&delta.processes) {
            *total += *used;
        }
        for (total, busy) in self.cores.iter_mut().zip(&delta.cores) {
            *total += *busy;
        }
        self.wall += delta.wall;
    }

    /// Successful requests per second over the closed-loop turns.
    fn throughput(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Measures every path: a warm-up each, then throughput and CPU in closed-loop turns that go
/// round the paths `plan.rounds` times (so a drift of the machine's speed during the run touches
/// a path and its baseline alike), then latency in open-loop turns at `plan.open_load` of each
/// path's throughput, taken round the paths the same way (so a stall of the machine lands in
/// the tails of a path and its baseline alike, not of whichever path it happened to meet).
async fn measure_paths(
    targets: Vec<(PathKey, AnyTarget)>,
    plan: &Plan,
    placement: Placement,
    watched: &Watched,
    rss_under_load: &mut BTreeMap<Program, u64>,
) -> Result<Vec<PathResult>, BenchError> {
    let closed = |key: PathKey, duration| ClosedLoop {
        concurrency: key.concurrency(plan),
        duration,
        max_requests: plan.max_requests,
        timeout: plan.timeout,
    };
    let mut pids = watched.pids();
    pids.push(std::process::id());
    let cores = [placement.programs, placement.generator];
    let mut totals: Vec<ClosedTotals> = targets
        .into_iter()
        .map(|(key, target)| ClosedTotals::new(key, target, pids.len()))
        .collect();

    for path in &totals {
        eprintln!("warming up {}", path.key.label());
        load::closed_loop(&path.target, &closed(path.key, plan.warmup)).await;
    }
    let stop = CancellationToken::new();
    let rss = sample_rss(watched, stop.clone());
    let rounds = plan.rounds.max(1);
    let turn = plan.closed / rounds as u32;
    for round in 1..=rounds {
        for path in &mut totals {
            eprintln!("closed loop {round}/{rounds}: {}", path.key.label());
            let before = CpuSnapshot::take(&pids, &cores);
            let outcome = load::closed_loop(&path.target, &closed(path.key, turn)).await;
            let after = CpuSnapshot::take(&pids, &cores);
            path.add(outcome, &after.since(&before));
        }
    }
    stop.cancel();
    if let Ok(rss) = rss.lock() {
        for (program, bytes) in rss.iter() {
            let entry = rss_under_load.entry(*program).or_insert(0);
            *entry = (*entry).max(*bytes);
        }
    }

    if let Some(path) = totals.iter_mut().find(|path| path.ok == 0) {
        return Err(BenchError::NothingMeasured {
            path: path.key.label().into(),
            first_error: path
                .first_error
                .take()
                .map_or_else(|| "none".into(), |e| e.0),
        });
    }
    let open_turn = plan.open / rounds as u32;
    let mut opens: Vec<Option<OpenOutcome>> = totals.iter().map(|_| None).collect();
    for round in 1..=rounds {
        for (path, open) in totals.iter().zip(&mut opens) {
            eprintln!("open loop {round}/{rounds}: {}", path.key.label());
            let outcome = load::open_loop(
                &path.target,
                &OpenLoop {
                    rate: path.throughput() * plan.open_load,
                    duration: open_turn,
                    max_requests: plan.max_requests,
                    timeout: plan.timeout,
                    // Twice the closed loop's users. Past this, sending waits, and the wait
                    // counts in the latency; without a bound, an HTTP/1.1 client answers every
                    // hiccup by opening more connections, and the benchmark would measure its
                    // own connection storm.
                    max_in_flight: path.key.concurrency(plan) * 2,
                },
            )
            .await;
            match open {
                Some(open) => open.merge(outcome),
                None => *open = Some(outcome),
            }
        }
    }
    Ok(totals
        .into_iter()
        .zip(opens)
        .filter_map(|(path, open)| Some(summarise(path, open?, plan, placement, watched)))
        .collect())
}

/// One path's figures, from its closed-loop totals and its open-loop turns.
fn summarise(
    path: ClosedTotals,
    open: OpenOutcome,
    plan: &Plan,
    placement: Placement,
    watched: &Watched,
) -> PathResult {
    let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / path.ok as f64;
    let busy = |cpu: Duration| cpu.as_secs_f64() / path.wall.as_secs_f64().max(1e-9);
    let used = &path.processes;
    let generator = used.last().copied().unwrap_or_default();
    let programs_cpu: Duration = used[..used.len() - 1].iter().sum();
    let [programs_core, generator_core] = path.cores;
    let (programs_core_other, generator_core_other) = if placement.shared() {
        let other = programs_core.saturating_sub(programs_cpu + generator);
        (busy(other), busy(other))
    } else {
        (
            busy(programs_core.saturating_sub(programs_cpu)),
            busy(generator_core.saturating_sub(generator)),
        )
    };
    // A program's CPU is that of all its replicas.
    let cpu_per_request = (path.key.programs().iter())
        .filter(|program| watched.indices(**program).next().is_some())
        .map(|program| {
            let cpu = watched.indices(*program).map(|i| used[i]).sum();
            (*program, per_request(cpu))
        })
        .collect();
    let throughput = path.throughput();
    let mut reasons = path.reasons;
    reasons.merge(&open.reasons);

    PathResult {
        key: path.key,
        concurrency: path.key.concurrency(plan),
        throughput,
        closed_requests: path.ok,
        closed_errors: path.errors,
        closed_latency: Percentiles::of(&path.latency),
        open_rate: throughput * plan.open_load,
        open_achieved: open.achieved_rate(),
        open_requests: open.ok,
        open_errors: open.errors,
        open_latency: Percentiles::of(&open.latency),
        send_lag: Percentiles::of(&open.send_lag),
        cpu_per_request,
        programs_core_busy: busy(programs_cpu),
        programs_core_other,
        generator_cpu_per_request: per_request(generator),
        generator_busy: busy(generator),
        generator_core_other,
        first_error: path.first_error.or(open.first_error).map(|e| e.0),
        failure_reasons: reasons.by_count(),
    }
}

/// Starts `program` `trials` times on an empty database (the running stack's other programs
/// serve as its peers) and returns each start-to-ready time.
async fn time_fresh_starts(
    layout: &Layout,
    program: Program,
    trials: usize,
    wiring: &Wiring<'_>,
    work: &Path,
) -> Result<Vec<Duration>, BenchError> {
    let mut starts = Vec::with_capacity(trials);
    for trial in 0..trials {
        let dir = work.join(format!("start-{}-{trial}", program.name()));
        let mut addresses = wiring.addresses;
        let fresh = crate::programs::free_address()?;
        match program {
            Program::Account => addresses.account = fresh,
            Program::Warehouse => addresses.warehouse = fresh,
            Program::Payment => addresses.payment = fresh,
            Program::Gateway => addresses.gateway = fresh,
            Program::Baseline | Program::Translator | Program::BareGrpc | Program::BareThrift => {
                return Ok(starts);
            }
        }
        let trial_wiring = Wiring {
            keys: wiring.keys,
            addresses,
            admin_password: wiring.admin_password,
            data_dir: dir.clone(),
            postgres: None,
        };
        let running = layout.start(program, &trial_wiring, &dir).await?;
        starts.push(running.ready_after);
        running.stop(Duration::from_secs(3));
    }
    Ok(starts)
}

/// Runs the whole benchmark. `work` is scratch space (keys, databases, logs). With
/// `postgres_server` (a `postgres://` URL), the services keep their data in fresh databases
/// there, with two replicas of warehouse and of payment; otherwise each in a SQLite file.
pub async fn run(
    plan: Plan,
    layout: Layout,
    placement: Placement,
    profile: String,
    reniced: bool,
    postgres_server: Option<&str>,
) -> Result<Results, BenchError> {
    let work = layout.work.clone();
    let keys = Keys::generate(&work.join("keys"))?;
    let admin_password = format!("bench-admin-{}", std::process::id());
    let databases = match postgres_server {
        Some(server) => Some(Databases::create(server).await?),
        None => None,
    };
    let wiring = Wiring {
        keys: &keys,
        addresses: Addresses::free()?,
        admin_password: &admin_password,
        data_dir: work.join("stack"),
        postgres: databases.as_ref(),
    };
    let storage = if databases.is_some() {
        "PostgreSQL, one database per service; two replicas of warehouse and of payment"
    } else {
        "SQLite, one file per service; one replica of each program"
    };
    eprintln!(
        "starting account, warehouse, payment and gateway from {} ({storage})",
        layout.bin_dir.display()
    );
    let stack = Stack::start(&layout, &wiring).await?;
    // Let start-up work (first health checks, token fetches) settle before "idle" is read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut idle = BTreeMap::new();
    for program in Program::SERVICES {
        if let Some(running) = stack.get(program) {
            idle.insert(program, procfs::rss_bytes(running.pid).unwrap_or(0));
        }
    }

    let http = Http::new(wiring.addresses.gateway);
    let fixture = set_up(&http, &admin_password).await?;
    let body_file = work.join("product.json");
    std::fs::write(&body_file, &fixture.product_json)
        .map_err(BenchError::io("cannot write the baseline's body"))?;
    // The tool's own servers (bare hyper, bare translator), started only for paths that use
    // them, and measured like the programs.
    let mut baselines: Vec<(Program, Running)> = Vec::new();
    if plan.paths.contains(&PathKey::BareHyper) {
        let running = layout.start_baseline(&body_file, &work).await?;
        baselines.push((Program::Baseline, running));
    }
    let token_file = work.join("user-token.txt");
    std::fs::write(&token_file, &fixture.user_token)
        .map_err(BenchError::io("cannot write the user's token"))?;
    if plan.paths.contains(&PathKey::BareGrpc) {
        let running = layout
            .start_bare_grpc(wiring.addresses.warehouse, fixture.product_id, &work)
            .await?;
        baselines.push((Program::BareGrpc, running));
    }
    if plan.paths.contains(&PathKey::BareThrift) {
        let running = layout
            .start_bare_thrift(wiring.addresses.account, &token_file, USER, &work)
            .await?;
        baselines.push((Program::BareThrift, running));
    }
    if plan.paths.iter().any(|key| key.through_translator()) {
        let running = layout
            .start_translator(wiring.addresses.warehouse, wiring.addresses.account, &work)
            .await?;
        baselines.push((Program::Translator, running));
    }
    let address_of = |program: Program| {
        baselines
            .iter()
            .find(|(p, _)| *p == program)
            .map(|(_, running)| running.address)
    };
    for (program, running) in &baselines {
        idle.insert(*program, procfs::rss_bytes(running.pid).unwrap_or(0));
    }

    let mut processes: Vec<(Program, u32)> = stack.processes().collect();
    processes.extend(
        baselines
            .iter()
            .map(|(program, running)| (*program, running.pid)),
    );
    let watched = Watched { processes };
    let mut rss_load = BTreeMap::new();
    let product_path = format!("/restful/products/{}", fixture.product_id);
    let account_path = format!("/restful/accounts/{USER}");
    let request_error = |e: crate::load::CallError| BenchError::Setup(e.0);

    let mut targets = Vec::new();
    for key in plan.paths.clone() {
        let http = http.clone();
        let target = match key {
            PathKey::BareHyper => {
                let Some(address) = address_of(Program::Baseline) else {
                    continue;
                };
                let bare = Http::new(address);
                AnyTarget::Http(
                    HttpGet::new(bare, &product_path, None, fixture.product_json.len())
                        .map_err(request_error)?,
                )
            }
            PathKey::BareGrpc => {
                let Some(address) = address_of(Program::BareGrpc) else {
                    continue;
                };
                AnyTarget::Grpc(GrpcGetProduct::new(address, fixture.product_id))
            }
            PathKey::BareThrift => {
                let Some(address) = address_of(Program::BareThrift) else {
                    continue;
                };
                AnyTarget::Thrift(ThriftGetAccount::new(address, &fixture.user_token, USER))
            }
            PathKey::DirectGrpc => AnyTarget::Grpc(GrpcGetProduct::new(
                wiring.addresses.warehouse,
                fixture.product_id,
            )),
            PathKey::DirectThrift => AnyTarget::Thrift(ThriftGetAccount::new(
                wiring.addresses.account,
                &fixture.user_token,
                USER,
            )),
            PathKey::TranslatorProduct | PathKey::TranslatorAccount => {
                let Some(address) = address_of(Program::Translator) else {
                    continue;
                };
                let (path, token, expected_len) = if key == PathKey::TranslatorProduct {
                    (&product_path, None, fixture.product_json.len())
                } else {
                    (
                        &account_path,
                        Some(fixture.user_token.as_str()),
                        fixture.account_bytes,
                    )
                };
                AnyTarget::Http(
                    HttpGet::new(Http::new(address), path, token, expected_len)
                        .map_err(request_error)?,
                )
            }
            PathKey::GatewayProduct => AnyTarget::Http(
                HttpGet::new(http, &product_path, None, fixture.product_json.len())
                    .map_err(request_error)?,
            ),
            PathKey::GatewayAccount => AnyTarget::Http(
                HttpGet::new(
                    http,
                    &account_path,
                    Some(&fixture.user_token),
                    fixture.account_bytes,
                )
                .map_err(request_error)?,
            ),
            PathKey::GatewayCatalogue => AnyTarget::Http(
                HttpGet::new(http, "/restful/products", None, fixture.catalogue_bytes)
                    .map_err(request_error)?,
            ),
            PathKey::SettleAndPay | PathKey::SettleAndPayCrowd => AnyTarget::Buy(
                SettleAndPay::new(http, &fixture.user_token, fixture.product_id)
                    .map_err(request_error)?,
            ),
        };
        targets.push((key, target));
    }
    let paths = measure_paths(targets, &plan, placement, &watched, &mut rss_load).await?;

    let mut client_costs = Vec::new();
    for key in [PathKey::DirectGrpc, PathKey::DirectThrift] {
        if !plan.paths.contains(&key) {
            continue;
        }
        let rpc = match key {
            PathKey::DirectGrpc => Rpc::GrpcGetProduct {
                address: wiring.addresses.warehouse,
                id: fixture.product_id,
            },
            _ => Rpc::ThriftGetAccount {
                address: wiring.addresses.account,
                token_file: token_file.clone(),
                username: USER.into(),
            },
        };
        eprintln!("client cost: {}", key.label());
        let cost = client_cost::run_child(
            &layout.bench_exe,
            placement.programs,
            &rpc,
            plan.concurrency,
            plan.client_cost,
        )
        .await?;
        client_costs.push((key, cost));
    }

    eprintln!("timing fresh starts");
    let mut programs = Vec::new();
    for program in Program::SERVICES {
        let Some(running) = stack.get(program) else {
            continue;
        };
        let mut starts = vec![running.ready_after];
        // Fresh starts are timed on an empty SQLite file; on PostgreSQL only the stack's own.
        if databases.is_none() {
            starts.extend(
                time_fresh_starts(&layout, program, plan.start_trials, &wiring, &work).await?,
            );
        }
        programs.push(ProgramResult {
            program,
            rss_idle: idle.get(&program).copied().unwrap_or(0),
            rss_load: rss_load.get(&program).copied().unwrap_or(0),
            rss_peak: procfs::peak_rss_bytes(running.pid).unwrap_or(0),
            starts,
        });
    }
    for (program, running) in baselines {
        programs.push(ProgramResult {
            program,
            rss_idle: idle.get(&program).copied().unwrap_or(0),
            rss_load: rss_load.get(&program).copied().unwrap_or(0),
            rss_peak: procfs::peak_rss_bytes(running.pid).unwrap_or(0),
            starts: vec![running.ready_after],
        });
        running.stop(Duration::from_secs(1));
    }
    // While payment still runs, so that an owed warehouse call can still be delivered.
    let audit = match &databases {
        Some(databases) => {
            eprintln!("auditing stock and money");
            Some(databases.audit(Duration::from_secs(30)).await)
        }
        None => None,
    };
    stack.stop();
    Ok(Results {
        plan,
        profile,
        machine: MachineInfo::read(),
        placement,
        paths,
        programs,
        client_costs,
        reniced,
        product_bytes: fixture.product_json.len(),
        catalogue_bytes: fixture.catalogue_bytes,
        storage,
        audit,
    })
}
