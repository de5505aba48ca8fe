//! The launcher's memory over a working session (`bookstore-bench memory`): start the whole
//! bookstore in one process as a newcomer does (`bookstore`, demo data, its own SQLite files),
//! drive rounds of catalogue reads and purchases at once, then let it rest and read its
//! resident set. What it holds once idle is what a laptop pays for keeping it running; the
//! target is 64 MiB.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    error::BenchError,
    load::{self, ClosedLoop},
    procfs,
    programs::Addresses,
    run::{self, Fixture},
    targets::{Http, HttpGet, SettleAndPay},
};

/// Users who buy by turns (each can afford 832 purchases at the launcher's defaults).
const BUYERS: usize = 64;

/// The resident-set target once idle after the rounds, MiB.
pub const IDLE_TARGET_MIB: f64 = 64.0;

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct MemoryPlan {
    pub rounds: u32,
    pub round: Duration,
    /// Virtual users of each of the two loops (catalogue reads, purchases).
    pub concurrency: usize,
    /// Rest after the last round before "idle" is read.
    pub rest: Duration,
}

/// What was measured, in bytes.
#[derive(Debug, Clone)]
pub struct MemoryReport {
    pub started: u64,
    pub after_rounds: Vec<u64>,
    pub peak: u64,
    pub idle: u64,
    pub catalogue_reads: u64,
    pub purchases: u64,
    pub failures: Vec<(String, u64)>,
}

/// The launcher process; sent SIGTERM (and reaped) when dropped.
struct Launcher(Child);

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) with a pid this process started and has not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the session against the `bookstore` binary at `launcher`, with scratch space `work`.
pub async fn measure(
    launcher: &Path,
    work: &Path,
    plan: &MemoryPlan,
) -> Result<MemoryReport, BenchError> {
    let addresses = Addresses::free()?;
    let log = work.join("bookstore.log");
    let output = std::fs::File::create(&log).map_err(BenchError::io("cannot create the log"))?;
    let errors = output
        .try_clone()
        .map_err(BenchError::io("cannot share the log file"))?;
    let child = Command::new(launcher)
        .arg("--data-dir")
        .arg(work.join("data"))
        .args(["--listen", &addresses.gateway.to_string()])
        .args(["--account-listen", &addresses.account.to_string()])
        .args(["--warehouse-listen", &addresses.warehouse.to_string()])
        .args(["--payment-listen", &addresses.payment.to_string()])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--log-level", "warn"])
        // The session registers and logs in its users from one address, faster than the
        // gateway's default abuse limits allow (`[rate_limits]`, SECURITY.md).
        .envs(["REGISTRATION", "TOKEN"].into_iter().flat_map(|limit| {
            ["PER_CLIENT_PER_MINUTE", "GLOBAL_PER_SECOND"].map(move |rate| {
                (
                    format!("BOOKSTORE_GATEWAY__RATE_LIMITS__{limit}__{rate}"),
                    "1000000",
                )
            })
        }))
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .env_remove("RUST_LOG")
        .spawn()
        .map_err(BenchError::io(format!(
            "cannot start {} (build it first?)",
            launcher.display()
        )))?;
    let mut running = Launcher(child);
    let pid = running.0.id();
    let http = Http::new(addresses.gateway);
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = running.0.try_wait() {
            return Err(BenchError::Setup(format!(
                "the launcher exited ({status}); see {}",
                log.display()
            )));
        }
        if http
            .get("/restful/products", None)
            .await
            .is_ok_and(|answer| answer.status == http::StatusCode::OK)
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(BenchError::Setup(format!(
                "the launcher did not serve within 2 minutes; see {}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = || procfs::rss_bytes(pid).unwrap_or(0);
    let at_start = rss();

    let admin_password = account::configuration::Settings::default().admin.password;
    let Fixture {
        user_token,
        product_id,
        product_json,
        ..
    } = run::set_up(&http, &admin_password).await?;
    let setup = |e: load::CallError| BenchError::Setup(e.0);
    // The launcher opens each wallet with its default balance (10 000.00), and every order pays
    // the shipping fee (12.00) on top of a book: at a cent a book, one buyer affords 832
    // purchases, so the purchases are made by turns by as many buyers as a round needs.
    let mut product: serde_json::Value = serde_json::from_slice(&product_json)
        .map_err(|e| BenchError::Setup(format!("the product's JSON: {e}")))?;
    product["price"] = serde_json::json!(0.01);
    let admin = run::login(&http, run::ADMIN, &admin_password).await?;
    http.send(
        http::Method::PUT,
        http.uri("/restful/products").map_err(setup)?,
        Some(&crate::targets::bearer(&admin).map_err(setup)?),
        Some(product.to_string().into()),
    )
    .await
    .and_then(|answer| answer.ok())
    .map_err(setup)?;
    let catalogue_bytes = http
        .get("/restful/products", None)
        .await
        .and_then(|answer| answer.ok())
        .map_err(setup)?
        .len();
    let catalogue =
        HttpGet::new(http.clone(), "/restful/products", None, catalogue_bytes).map_err(setup)?;
    let mut buyers = vec![user_token];
    for buyer in 1..BUYERS {
        buyers.push(run::register_and_log_in(&http, &format!("buyer{buyer}")).await?);
    }
    let buy = SettleAndPay::by_turns(http, &buyers, product_id).map_err(setup)?;
    let closed = ClosedLoop {
        concurrency: plan.concurrency,
        duration: plan.round,
        max_requests: u64::MAX,
        timeout: Duration::from_secs(5),
    };
    let mut report = MemoryReport {
        started: at_start,
        after_rounds: Vec::new(),
        peak: at_start,
        idle: 0,
        catalogue_reads: 0,
        purchases: 0,
        failures: Vec::new(),
    };
    let mut reasons = load::Reasons::default();
    for round in 1..=plan.rounds {
        eprintln!("memory round {round}/{}", plan.rounds);
        let (reads, purchases) = tokio::join!(
            load::closed_loop(&catalogue, &closed),
            load::closed_loop(&buy, &closed)
        );
        // The kernel keeps the high-water mark (VmHWM): no sampling needed.
        report.peak = report.peak.max(procfs::peak_rss_bytes(pid).unwrap_or(0));
        report.catalogue_reads += reads.ok;
        report.purchases += purchases.ok;
        reasons.merge(&reads.reasons);
        reasons.merge(&purchases.reasons);
        report.after_rounds.push(rss());
    }
    tokio::time::sleep(plan.rest).await;
    report.idle = rss();
    report.failures = reasons.by_count();
    drop(running);
    Ok(report)
}

impl MemoryReport {
    /// The report as Markdown.
    pub fn markdown(&self, plan: &MemoryPlan, profile: &str) -> String {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let rounds = self
            .after_rounds
            .iter()
            .map(|bytes| format!("{:.1}", mib(*bytes)))
            .collect::<Vec<_>>()
            .join(", ");
        let idle = mib(self.idle);
        let verdict = if idle <= IDLE_TARGET_MIB {
            "met"
        } else {
            "**not met**"
        };
        let mut text = format!(
            "### The launcher's memory\n\n\
             - `bookstore` ({profile} build), {} rounds of {:.0} s, each {} users reading the \
             catalogue and {} users buying at once; then {:.0} s of rest\n\
             - {} catalogue reads and {} purchases succeeded\n\n\
             | resident set | MiB |\n| --- | ---: |\n\
             | at start, ready | {:.1} |\n| after each round | {rounds} |\n| peak | {:.1} |\n\
             | idle after the rounds | **{idle:.1}** (target ≤ {IDLE_TARGET_MIB:.0}: {verdict}) |\n",
            plan.rounds,
            plan.round.as_secs_f64(),
            plan.concurrency,
            plan.concurrency,
            plan.rest.as_secs_f64(),
            self.catalogue_reads,
            self.purchases,
            mib(self.started),
            mib(self.peak),
        );
        for (reason, count) in &self.failures {
            text.push_str(&format!("\n- failed: {count} × `{reason}`"));
        }
        text
    }
}
