//! `bookstore-bench full | smoke`: builds (unless told not to) and benchmarks the bookstore's
//! programs, prints the Markdown report, and exits 0 whenever the measurement itself worked;
//! targets that are not met are reported, not failed. `baseline-server` (the bare hyper
//! server), `translator-server` (the bare translator) and `rpc-client` are what the tool starts
//! as child processes.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use bookstore_bench::{
    client_cost::{self, Rpc},
    launcher_memory::MemoryPlan,
    machine::{self, Placement},
    programs::{Hashing, Layout},
    report,
    run::{self, PathKey, Plan},
    translator::Backends,
};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks the bookstore against baselines measured in the same run")]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// The full benchmark (4 to 8 minutes after the build); its report goes into BENCHMARKS.md.
    Full(RunArgs),
    /// A few seconds, to prove the tool works (CI); its numbers mean little.
    Smoke(RunArgs),
    /// The launcher's resident memory after rounds of catalogue reads and purchases (about a
    /// minute after the build).
    Memory(MemoryArgs),
    /// Internal: the bare hyper baseline server.
    #[command(hide = true)]
    BaselineServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        body_file: PathBuf,
    },
    /// Internal: the bare translator baseline (see src/translator.rs).
    #[command(hide = true)]
    TranslatorServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        warehouse: SocketAddr,
        #[arg(long)]
        account: SocketAddr,
    },
    /// Internal: the bare Volo gRPC baseline (see src/bare_rpc.rs).
    #[command(hide = true)]
    BareGrpcServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        warehouse: SocketAddr,
        #[arg(long)]
        product: i64,
    },
    /// Internal: the bare Volo Thrift baseline (see src/bare_rpc.rs).
    #[command(hide = true)]
    BareThriftServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        account: SocketAddr,
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        username: String,
    },
    /// Internal: a Volo client measuring its own CPU per call (see src/client_cost.rs).
    #[command(hide = true)]
    RpcClient(RpcClientArgs),
}

#[derive(Args)]
struct RpcClientArgs {
    #[arg(long, conflicts_with = "thrift", requires = "product")]
    grpc: Option<SocketAddr>,
    #[arg(long)]
    product: Option<i64>,
    #[arg(long, requires_all = ["token_file", "username"])]
    thrift: Option<SocketAddr>,
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

#[derive(Args)]
struct MemoryArgs {
    /// Directory holding the `bookstore` binary. Default: this tool's own, after building it
    /// there with cargo.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds of each round.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// Users reading the catalogue, and as many buying, during a round.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Also write the report to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Directory holding the account, warehouse, payment and gateway binaries. Default: the
    /// directory of this tool's own binary (target/release or target/debug), after building
    /// them there with cargo.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Do not run `cargo build` for the programs first.
    #[arg(long)]
    no_build: bool,
    /// Closed-loop concurrency (virtual users). Default: 32 for full, 4 for smoke.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds of each closed and each open loop. Default: 5 for full, 0.3 for smoke.
    #[arg(long)]
    seconds: Option<f64>,
    /// Only these paths, comma-separated: bare-hyper, direct-grpc, direct-thrift,
    /// gateway-product, gateway-account, gateway-catalogue, settle-pay.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Open-loop rate as a fraction of the closed-loop throughput. Default: 0.5 (the targets
    /// are defined at 50% load).
    #[arg(long)]
    open_load: Option<f64>,
    /// Fresh starts per program for the start-to-ready figure. Default: 5 for full, 1 for smoke.
    #[arg(long)]
    start_trials: Option<usize>,
    /// Scheduling priority of the programs and the generator (`nice` value; 0 leaves it).
    /// Default: -10 for full (so other work on the machine disturbs less), 0 for smoke.
    #[arg(long, allow_negative_numbers = true)]
    nice: Option<i32>,
    /// Also write the report to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Keep the scratch directory (configuration files, databases, program logs).
    #[arg(long)]
    keep: bool,
    /// Run on this PostgreSQL server (`postgres://user@host:port/db`, any database there; the
    /// user must be allowed to create databases): one fresh database per service, dropped
    /// afterwards, two replicas of warehouse and of payment, and a conservation audit at the
    /// end. Default: SQLite files, one replica each.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

const PROGRAMS: [&str; 4] = ["account", "warehouse", "payment", "gateway"];

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Mode::BaselineServer { listen, body_file } => baseline_server(listen, &body_file),
        Mode::TranslatorServer {
            listen,
            warehouse,
            account,
        } => translator_server(listen, warehouse, account),
        Mode::BareGrpcServer {
            listen,
            warehouse,
            product,
        } => one_worker(bookstore_bench::bare_rpc::serve_grpc(
            listen, warehouse, product,
        )),
        Mode::BareThriftServer {
            listen,
            account,
            token_file,
            username,
        } => {
            let token = std::fs::read_to_string(&token_file)
                .with_context(|| format!("cannot read {}", token_file.display()))?;
            one_worker(bookstore_bench::bare_rpc::serve_thrift(
                listen,
                account,
                token.trim().to_owned(),
                username,
            ))
        }
        Mode::RpcClient(args) => rpc_client(args),
        Mode::Full(args) => benchmark(Plan::full(), args),
        Mode::Smoke(args) => benchmark(Plan::smoke(), args),
        Mode::Memory(args) => launcher_memory(args),
    }
}

fn baseline_server(listen: SocketAddr, body_file: &Path) -> anyhow::Result<()> {
    let body =
        std::fs::read(body_file).with_context(|| format!("cannot read {}", body_file.display()))?;
    // The same runtime the programs use (`#[tokio::main]`): one worker on the one core it has.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("bare hyper ready address={listen}");
        bookstore_bench::baseline::serve(listener, body.into()).await;
        Ok(())
    })
}

fn launcher_memory(args: MemoryArgs) -> anyhow::Result<()> {
    let bench_exe = std::env::current_exe().context("cannot find this tool's binary")?;
    let profile = own_profile(&bench_exe);
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => {
            build(&profile, &["bookstore"])?;
            bench_exe
                .parent()
                .context("this tool's binary has no directory")?
                .to_path_buf()
        }
    };
    let plan = MemoryPlan {
        rounds: args.rounds.clamp(1, 20),
        round: std::time::Duration::from_secs_f64(args.seconds.clamp(0.1, 300.0)),
        concurrency: args.concurrency.clamp(1, 256),
        rest: std::time::Duration::from_secs(5),
    };
    let scratch = tempfile::Builder::new()
        .prefix("bookstore-memory-")
        .tempdir()
        .context("cannot create a scratch directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(bookstore_bench::launcher_memory::measure(
        &bin_dir.join("bookstore"),
        scratch.path(),
        &plan,
    ))?;
    let text = report.markdown(&plan, &profile);
    println!("{text}");
    if let Some(output) = args.output {
        std::fs::write(&output, &text)
            .with_context(|| format!("cannot write {}", output.display()))?;
    }
    Ok(())
}

/// Runs `server` on the runtime the programs use (`#[tokio::main]`), on the one core it has.
fn one_worker(server: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(server)
}

fn translator_server(
    listen: SocketAddr,
    warehouse: SocketAddr,
    account: SocketAddr,
) -> anyhow::Result<()> {
    // The same runtime as the gateway's: one worker on the one core it has.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let backends = std::sync::Arc::new(Backends::new(warehouse, account));
        println!("bare translator ready address={listen}");
        bookstore_bench::translator::serve(listener, backends).await;
        Ok(())
    })
}

fn rpc_client(args: RpcClientArgs) -> anyhow::Result<()> {
    let rpc = match (
        args.grpc,
        args.product,
        args.thrift,
        args.token_file,
        args.username,
    ) {
        (Some(address), Some(id), None, _, _) => Rpc::GrpcGetProduct { address, id },
        (None, _, Some(address), Some(token_file), Some(username)) => Rpc::ThriftGetAccount {
            address,
            token_file,
            username,
        },
        _ => bail!("give --grpc ADDR --product ID, or --thrift ADDR --token-file F --username U"),
    };
    let duration = std::time::Duration::from_secs_f64(args.seconds.clamp(0.1, 60.0));
    let cost = client_cost::run_in_process(&rpc, args.concurrency.max(1), duration)?;
    println!("{}", cost.line());
    Ok(())
}

/// Whether this binary is an optimised build (production-cost password hashing is affordable).
const RELEASE: bool = !cfg!(debug_assertions);

/// The cargo profile this tool was built with, read off its own directory (`target/<dir>/`):
/// the programs are built with the same one. `debug` is the directory of the `dev` profile.
fn own_profile(bench_exe: &Path) -> String {
    let dir = bench_exe
        .parent()
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .unwrap_or("debug");
    match dir {
        "debug" => "dev".to_owned(),
        other => other.to_owned(),
    }
}

fn benchmark(mut plan: Plan, args: RunArgs) -> anyhow::Result<()> {
    if let Some(concurrency) = args.concurrency {
        plan.concurrency = concurrency.max(1);
    }
    if let Some(seconds) = args.seconds {
        let phase = std::time::Duration::from_secs_f64(seconds.clamp(0.05, 600.0));
        plan.closed = phase;
        plan.open = phase;
    }
    if !args.only.is_empty() {
        plan.paths = args
            .only
            .iter()
            .map(|slug| {
                PathKey::from_slug(slug.trim())
                    .with_context(|| format!("unknown path {slug:?} for --only"))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(load) = args.open_load {
        plan.open_load = load.clamp(0.01, 1.0);
    }
    if let Some(trials) = args.start_trials {
        plan.start_trials = trials;
    }
    if let Some(nice) = args.nice {
        plan.nice = nice.clamp(-20, 19);
    }
    machine::check_taskset()?;
    let bench_exe = std::env::current_exe().context("cannot find this tool's binary")?;
    let cargo_profile = own_profile(&bench_exe);
    let bin_dir = match args.bin_dir.clone() {
        Some(dir) => dir,
        None => {
            let dir = bench_exe
                .parent()
                .context("this tool's binary has no directory")?
                .to_path_buf();
            if !args.no_build {
                build_programs(&cargo_profile)?;
            }
            dir
        }
    };
    for program in PROGRAMS {
        let binary = bin_dir.join(program);
        if !binary.is_file() {
            bail!(
                "{} is missing: build it with `cargo build --profile {cargo_profile} --bins -p \
                 {program}` or pass --bin-dir",
                binary.display(),
            );
        }
    }
    let scratch = tempfile::Builder::new()
        .prefix("bookstore-bench-")
        .tempdir()
        .context("cannot create a scratch directory")?;
    let placement = Placement::for_cores(machine::online_cores());
    let layout = Layout {
        bin_dir,
        bench_exe,
        work: scratch.path().to_path_buf(),
        core: placement.programs,
        // Unoptimised builds take seconds per production-cost Argon2 hash.
        hashing: if RELEASE {
            Hashing::Production
        } else {
            Hashing::Cheap
        },
    };
    // Pinned before the runtime starts, so every thread the generator uses inherits it.
    machine::pin_current_thread(placement.generator).context("cannot pin the load generator")?;
    let reniced = match plan.nice {
        0 => true,
        nice => match machine::prioritise(nice) {
            Ok(()) => true,
            Err(error) => {
                eprintln!("cannot raise the priority to nice {nice} ({error}); measuring anyway");
                false
            }
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run::run(plan.clone(), layout, placement, cargo_profile.clone(), reniced, args.database.as_deref()) => outcome.map_err(anyhow::Error::from),
            // Dropping the run stops every program it started.
            signal = stop_signal() => Err(anyhow::anyhow!("interrupted by {}", signal?)),
        }
    });
    let results = match outcome {
        Ok(results) => results,
        Err(error) => {
            let kept = scratch.keep();
            bail!(
                "{error}\n(program logs and configuration kept in {})",
                kept.display()
            );
        }
    };
    if args.keep {
        let kept = scratch.keep();
        eprintln!("scratch directory kept: {}", kept.display());
    }
    let command = format!(
        "cargo run --profile {cargo_profile} -p bookstore-bench -- {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let text = report::markdown(&results, &command);
    println!("{text}");
    if let Some(output) = args.output {
        std::fs::write(&output, &text)
            .with_context(|| format!("cannot write {}", output.display()))?;
    }
    Ok(())
}

/// Resolves with the name of the first SIGINT, SIGTERM or SIGHUP.
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
        _ = hangup.recv() => "SIGHUP",
    })
}

/// `cargo build --profile <profile> --bins -p account -p warehouse -p payment -p gateway`, in
/// the workspace this tool belongs to; a no-op when they are up to date.
fn build_programs(profile: &str) -> anyhow::Result<()> {
    build(profile, &PROGRAMS)
}

/// `cargo build --profile <profile> --bins -p <package>…` in this tool's workspace.
fn build(profile: &str, packages: &[&str]) -> anyhow::Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate lives inside the workspace")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace).args(["build", "--bins"]);
    // `cargo run` describes this package to it in the environment. Build scripts that declare
    // `rerun-if-env-changed` on those variables (ring's does) would see a changed environment
    // and rebuild, here and again in everyone's next ordinary build.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
            )
        {
            command.env_remove(key);
        }
    }
    command.args(["--profile", profile]);
    for package in packages {
        command.args(["-p", package]);
    }
    eprintln!("building the programs: {command:?}");
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building the programs failed ({status})");
    }
    Ok(())
}
