//! The report: what was measured, on what machine, and every target of issue 8 as a ratio
//! against a baseline from the same run, marked met or not met.

use std::fmt::Write;

use crate::{
    programs::Program,
    run::{PathKey, PathResult, Results},
};

const MIB: f64 = 1024.0 * 1024.0;

/// One target and how this run did against it.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub target: String,
    /// How the figure was computed, with its inputs.
    pub measured: String,
    pub value: f64,
    pub limit: f64,
    pub at_least: bool,
}

impl Check {
    fn new(target: impl Into<String>, measured: String, value: f64, bound: Bound) -> Self {
        let (limit, at_least) = match bound {
            Bound::AtLeast(limit) => (limit, true),
            Bound::AtMost(limit) => (limit, false),
        };
        Self {
            target: target.into(),
            measured,
            value,
            limit,
            at_least,
        }
    }

    pub fn met(&self) -> bool {
        if self.at_least {
            self.value >= self.limit
        } else {
            self.value <= self.limit
        }
    }

    fn bound_text(&self, unit: &str) -> String {
        let op = if self.at_least { "≥" } else { "≤" };
        format!("{op} {}{unit}", trim(self.limit))
    }
}

enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn us(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB)
}

/// Every target of the issue that this run has the figures for.
pub fn checks(results: &Results) -> Vec<Check> {
    let mut checks = Vec::new();
    let path = |key| results.path(key);
    let throughput_ratio = |gateway: PathKey, direct: PathKey, name: &str, limit: f64| {
        let (g, d) = (path(gateway)?, path(direct)?);
        let ratio = g.throughput / d.throughput.max(1e-9);
        Some(Check::new(
            format!("{name} throughput: gateway ÷ direct RPC"),
            format!(
                "{:.0} ÷ {:.0} req/s = **{ratio:.2}**",
                g.throughput, d.throughput
            ),
            ratio,
            Bound::AtLeast(limit),
        ))
    };
    checks.extend(throughput_ratio(
        PathKey::GatewayProduct,
        PathKey::DirectGrpc,
        "product read",
        0.33,
    ));
    checks.extend(throughput_ratio(
        PathKey::GatewayAccount,
        PathKey::DirectThrift,
        "account read",
        0.30,
    ));

    let cpu_ratio = |gateway: PathKey, direct: PathKey, name: &str, client: &str| {
        let (g, bare) = (path(gateway)?, path(PathKey::BareHyper)?);
        let gateway_cpu = g.cpu_of(Program::Gateway)?;
        let hyper_cpu = bare.cpu_of(Program::Baseline)?;
        let client_cpu = results.client_cost(direct)?.cpu_per_call;
        let ratio = gateway_cpu / (hyper_cpu + client_cpu).max(1e-9);
        Some(Check::new(
            format!("{name}: gateway CPU ÷ (bare hyper + {client} client) CPU per request"),
            format!(
                "{} ÷ ({} + {}) µs = **{ratio:.2}**",
                us(gateway_cpu),
                us(hyper_cpu),
                us(client_cpu)
            ),
            ratio,
            Bound::AtMost(1.25),
        ))
    };
    checks.extend(cpu_ratio(
        PathKey::GatewayProduct,
        PathKey::DirectGrpc,
        "product read",
        "gRPC",
    ));
    checks.extend(cpu_ratio(
        PathKey::GatewayAccount,
        PathKey::DirectThrift,
        "account read",
        "Thrift",
    ));

    for (gateway, direct, name) in [
        (PathKey::GatewayProduct, PathKey::DirectGrpc, "product read"),
        (
            PathKey::GatewayAccount,
            PathKey::DirectThrift,
            "account read",
        ),
    ] {
        let (Some(g), Some(d)) = (path(gateway), path(direct)) else {
            continue;
        };
        let p50 = g.open_latency.p50 - d.open_latency.p50;
        let p99 = g.open_latency.p99 - d.open_latency.p99;
        checks.push(Check::new(
            format!(
                "{name}: latency the gateway adds at {:.0}% load, p50 (µs)",
                results.plan.open_load * 100.0
            ),
            format!(
                "{} − {} µs = **{}**",
                us(g.open_latency.p50),
                us(d.open_latency.p50),
                us(p50)
            ),
            p50,
            Bound::AtMost(100.0),
        ));
        checks.push(Check::new(
            format!(
                "{name}: latency the gateway adds at {:.0}% load, p99 (µs)",
                results.plan.open_load * 100.0
            ),
            format!(
                "{} − {} µs = **{}**",
                us(g.open_latency.p99),
                us(d.open_latency.p99),
                us(p99)
            ),
            p99,
            Bound::AtMost(1_000.0),
        ));
    }

    checks.extend(storage_checks(results));

    for program in Program::SERVICES {
        let Some(p) = results.program(program) else {
            continue;
        };
        let idle = p.rss_idle as f64 / MIB;
        checks.push(Check::new(
            format!("{}: resident memory idle (MiB)", program.name()),
            format!("**{idle:.1}**"),
            idle,
            Bound::AtMost(16.0),
        ));
    }
    for program in Program::SERVICES {
        let Some(p) = results.program(program) else {
            continue;
        };
        let median = p.median_start().as_secs_f64() * 1e3;
        checks.push(Check::new(
            format!(
                "{}: start to ready, empty SQLite, median of {} (ms)",
                program.name(),
                p.starts.len()
            ),
            format!("**{median:.1}**"),
            median,
            Bound::AtMost(100.0),
        ));
    }
    checks
}

/// Issue 17's targets: what the storage path adds to the RPC stack's own cost (the bare Volo
/// servers answering from memory), the catalogue against the product read, and purchases that
/// all succeed.
fn storage_checks(results: &Results) -> Vec<Check> {
    let mut checks = Vec::new();
    let path = |key| results.path(key);
    let cpu = |key: PathKey, program: Program| path(key)?.cpu_of(program);
    let over_bare = |name: &str, key, program: Program, bare_key, bare: Program, limit| {
        let (service, floor) = (cpu(key, program)?, cpu(bare_key, bare)?);
        let ratio = service / floor.max(1e-9);
        Some(Check::new(
            format!(
                "{name}: {} CPU ÷ {} CPU per call",
                program.name(),
                bare.name()
            ),
            format!("{} ÷ {} µs = **{ratio:.1}**", us(service), us(floor)),
            ratio,
            Bound::AtMost(limit),
        ))
    };
    let grpc = (PathKey::BareGrpc, Program::BareGrpc);
    let thrift = (PathKey::BareThrift, Program::BareThrift);
    checks.extend(over_bare(
        "direct GetProduct",
        PathKey::DirectGrpc,
        Program::Warehouse,
        grpc.0,
        grpc.1,
        2.0,
    ));
    checks.extend(over_bare(
        "direct account read",
        PathKey::DirectThrift,
        Program::Account,
        thrift.0,
        thrift.1,
        2.0,
    ));
    checks.extend(over_bare(
        "purchase (settle + pay)",
        PathKey::SettleAndPay,
        Program::Payment,
        grpc.0,
        grpc.1,
        25.0,
    ));
    checks.extend(over_bare(
        "purchase (settle + pay)",
        PathKey::SettleAndPay,
        Program::Warehouse,
        grpc.0,
        grpc.1,
        10.0,
    ));
    if let (Some(catalogue), Some(product)) = (
        path(PathKey::GatewayCatalogue),
        path(PathKey::GatewayProduct),
    ) {
        let ratio = catalogue.throughput / product.throughput.max(1e-9);
        checks.push(Check::new(
            "catalogue throughput ÷ product read throughput, through the gateway",
            format!(
                "{:.0} ÷ {:.0} req/s = **{ratio:.2}**",
                catalogue.throughput, product.throughput
            ),
            ratio,
            Bound::AtLeast(0.6),
        ));
    }
    for key in [PathKey::SettleAndPay, PathKey::SettleAndPayCrowd] {
        let Some(p) = path(key) else { continue };
        let failed = (p.closed_errors + p.open_errors) as f64;
        checks.push(Check::new(
            format!("failed purchases, {} buyers", p.concurrency),
            format!(
                "**{failed:.0}** of {}",
                p.closed_requests + p.open_requests + p.closed_errors + p.open_errors
            ),
            failed,
            Bound::AtMost(0.0),
        ));
    }
    checks
}

fn unit_of(check: &Check) -> &'static str {
    if check.target.ends_with("(µs)") {
        " µs"
    } else if check.target.ends_with("(MiB)") {
        " MiB"
    } else if check.target.ends_with("(ms)") {
        " ms"
    } else {
        ""
    }
}

fn path_row(out: &mut String, p: &PathResult) {
    let cpu = p
        .cpu_per_request
        .iter()
        .map(|(program, cpu)| format!("{} {}", program.name(), us(*cpu)))
        .collect::<Vec<_>>()
        .join(" + ");
    let errors = p.closed_errors + p.open_errors;
    let _ = writeln!(
        out,
        "| {} | {:.0} | {} | {:.0}% | {:.0}% / {:.0}% | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
        p.key.label(),
        p.throughput,
        cpu,
        p.programs_core_busy * 100.0,
        p.programs_core_other * 100.0,
        p.generator_core_other * 100.0,
        us(p.generator_cpu_per_request),
        p.open_achieved,
        us(p.open_latency.p50),
        us(p.open_latency.p90),
        us(p.open_latency.p99),
        us(p.open_latency.p999),
        us(p.send_lag.p99),
        errors,
    );
}

/// The whole report as Markdown. `command` is how the run was started.
pub fn markdown(results: &Results, command: &str) -> String {
    let mut out = String::new();
    let plan = &results.plan;
    let m = &results.machine;
    let _ = writeln!(out, "### Run\n");
    let _ = writeln!(out, "- command: `{command}`");
    let _ = writeln!(
        out,
        "- machine: {} cores (`nproc`), {}, Linux {}, {} MiB RAM",
        m.cores, m.cpu_model, m.kernel, m.memory_mib
    );
    let placement = if results.placement.shared() {
        format!(
            "programs and load generator **share** core {} (one core only: figures are not comparable)",
            results.placement.programs
        )
    } else {
        format!(
            "every program on core {}, the load generator on core {}",
            results.placement.programs, results.placement.generator
        )
    };
    let _ = writeln!(out, "- placement: {placement}");
    if results.plan.nice != 0 {
        let _ = writeln!(
            out,
            "- priority: programs and generator at nice {}{}",
            results.plan.nice,
            if results.reniced {
                ""
            } else {
                " **was refused**: they ran at normal priority"
            }
        );
    }
    let _ = writeln!(
        out,
        "- mode `{}`, {} binaries; per path: {:.1} s warm-up, {:.1} s closed loop at \
         concurrency {} (in {} turns taken round the paths), {:.1} s open loop at {:.0}% of the \
         closed-loop throughput (in as many turns)",
        plan.mode,
        results.profile,
        plan.warmup.as_secs_f64(),
        plan.closed.as_secs_f64(),
        plan.concurrency,
        plan.rounds,
        plan.open.as_secs_f64(),
        plan.open_load * 100.0
    );
    let _ = writeln!(out, "- storage: {}", results.storage);
    if let Some(audit) = &results.audit {
        let _ = writeln!(out, "- conservation audit after the run: {audit}");
    }
    let _ = writeln!(
        out,
        "- bodies: product {} bytes, catalogue {} bytes",
        results.product_bytes, results.catalogue_bytes
    );
    if plan.mode == "smoke" {
        let _ = writeln!(
            out,
            "- **smoke run**: too short (and maybe unoptimised) for its numbers to mean anything"
        );
    }

    let _ = writeln!(out, "\n### Paths\n");
    let _ = writeln!(
        out,
        "Throughput and CPU from the closed loop; latency from the open loop, measured from each \
         request's intended send time (µs). CPU is user + system time of each program on the \
         path per request (both replicas together where there are two); \"core\" is how busy the programs' core was with them; \"other\" is \
         how busy the programs' / the generator's core was with anything else (other processes, \
         interrupts, hypervisor steal); \"gen\" is the load generator's CPU per request; \
         \"late\" is how late the generator itself sent open-loop requests (included in their \
         latency).\n"
    );
    let _ = writeln!(
        out,
        "| path | req/s | CPU µs/req | core | other | gen µs/req | open req/s | p50 | p90 | p99 | p99.9 | late p99 | errors |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for p in &results.paths {
        path_row(&mut out, p);
    }
    for p in results.paths.iter().filter(|p| p.first_error.is_some()) {
        let _ = writeln!(
            out,
            "\n{}: first error: `{}`",
            p.key.label(),
            p.first_error.as_deref().unwrap_or_default()
        );
        for (reason, count) in &p.failure_reasons {
            let _ = writeln!(out, "- {count} × `{reason}`");
        }
    }

    if !results.client_costs.is_empty() {
        let costs = results
            .client_costs
            .iter()
            .map(|(key, cost)| {
                format!(
                    "{}: **{} µs** per call ({} calls, {} errors)",
                    key.label().trim_start_matches("baseline: "),
                    us(cost.cpu_per_call),
                    cost.ok,
                    cost.errors
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            out,
            "\nClient-side cost of the direct RPCs (CPU of a Volo client process of its own, \
             pinned to the programs' core like the gateway's client, {} callers): {costs}.",
            results.plan.concurrency
        );
    }
    let _ = writeln!(out, "\n### Programs\n");
    let _ = writeln!(
        out,
        "| program | RSS idle MiB | RSS under load MiB | peak MiB | start → ready ms (median; all) |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- |");
    for p in &results.programs {
        let starts = p
            .starts
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} ({starts}) |",
            p.program.name(),
            mib(p.rss_idle),
            mib(p.rss_load),
            mib(p.rss_peak),
            p.median_start().as_secs_f64() * 1e3,
        );
    }
    let _ = writeln!(
        out,
        "\nStart → ready: spawn to the first successful health check. The first figure is the \
         start of the stack under test; the others are fresh starts on an empty database \
         (migrations and seeding included)."
    );

    let _ = writeln!(out, "\n### Targets\n");
    let _ = writeln!(out, "| target | measured | bound | |");
    let _ = writeln!(out, "| --- | --- | ---: | --- |");
    let checks = checks(results);
    for check in &checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            check.target,
            check.measured,
            check.bound_text(unit_of(check)),
            if check.met() { "met" } else { "**not met**" }
        );
    }
    let met = checks.iter().filter(|c| c.met()).count();
    let _ = writeln!(out, "\n{met} of {} targets met.", checks.len());
    floor(&mut out, results);
    out
}

/// The gateway against the bare translator of the same run: how much of each figure the hop
/// itself costs on this machine, and how much is the gateway's own.
fn floor(out: &mut String, results: &Results) {
    let reads = [
        (
            "product",
            PathKey::DirectGrpc,
            PathKey::TranslatorProduct,
            PathKey::GatewayProduct,
        ),
        (
            "account",
            PathKey::DirectThrift,
            PathKey::TranslatorAccount,
            PathKey::GatewayAccount,
        ),
    ];
    let mut rows = Vec::new();
    for (read, direct, translator, gateway) in reads {
        let (Some(d), Some(t), Some(g)) = (
            results.path(direct),
            results.path(translator),
            results.path(gateway),
        ) else {
            continue;
        };
        let ratio = |p: &PathResult| p.throughput / d.throughput.max(1e-9);
        rows.push(format!(
            "| {read} | throughput ÷ direct RPC | {:.2} | {:.2} | |",
            ratio(t),
            ratio(g)
        ));
        if let (Some(tc), Some(gc)) = (t.cpu_of(Program::Translator), g.cpu_of(Program::Gateway)) {
            rows.push(format!(
                "| {read} | CPU per request of the front program (µs) | {} | {} | {} |",
                us(tc),
                us(gc),
                us(gc - tc)
            ));
        }
        let added = |p: &PathResult, pick: fn(&PathResult) -> f64| pick(p) - pick(d);
        for (name, pick) in [
            (
                "p50",
                (|p: &PathResult| p.open_latency.p50) as fn(&PathResult) -> f64,
            ),
            ("p99", |p: &PathResult| p.open_latency.p99),
        ] {
            let (ta, ga) = (added(t, pick), added(g, pick));
            rows.push(format!(
                "| {read} | latency added over the direct RPC at {:.0}% load, {name} (µs) | {} | {} | {} |",
                results.plan.open_load * 100.0,
                us(ta),
                us(ga),
                us(ga - ta)
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### The hop's floor\n");
    let _ = writeln!(
        out,
        "The bare translator (hyper in, one Volo call out, the gateway's JSON; no router, token \
         check, deadline budget, retries, metrics or logs) against the gateway, in this run. \
         Its figures are what any REST-to-RPC hop on this stack costs on this machine; the last \
         column is what the gateway adds on top.\n"
    );
    let _ = writeln!(
        out,
        "| read | figure | bare translator | gateway | gateway − translator |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: |");
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        client_cost::ClientCost,
        load::Percentiles,
        machine::{MachineInfo, Placement},
        run::{Plan, ProgramResult},
    };

    fn path(
        key: PathKey,
        throughput: f64,
        cpu: &[(Program, f64)],
        gen_cpu: f64,
        p50: f64,
        p99: f64,
    ) -> PathResult {
        PathResult {
            key,
            concurrency: 32,
            throughput,
            closed_requests: 1_000,
            closed_errors: 0,
            closed_latency: Percentiles::default(),
            open_rate: throughput / 2.0,
            open_achieved: throughput / 2.0,
            open_requests: 500,
            open_errors: 0,
            open_latency: Percentiles {
                p50,
                p90: p50,
                p99,
                p999: p99,
                max: p99,
            },
            send_lag: Percentiles {
                p50: 3.0,
                p90: 6.0,
                p99: 12.0,
                p999: 20.0,
                max: 30.0,
            },
            cpu_per_request: cpu.to_vec(),
            programs_core_busy: 0.98,
            programs_core_other: 0.01,
            generator_cpu_per_request: gen_cpu,
            generator_busy: 0.5,
            generator_core_other: 0.02,
            first_error: None,
            failure_reasons: Vec::new(),
        }
    }

    fn results() -> Results {
        use Program::*;
        let program = |program, idle_mib: u64, start_ms: u64| ProgramResult {
            program,
            rss_idle: idle_mib * 1024 * 1024,
            rss_load: idle_mib * 2 * 1024 * 1024,
            rss_peak: idle_mib * 3 * 1024 * 1024,
            starts: vec![
                Duration::from_millis(start_ms),
                Duration::from_millis(start_ms * 3),
                Duration::from_millis(start_ms / 2),
            ],
        };
        Results {
            plan: Plan::full(),
            profile: "production".to_owned(),
            machine: MachineInfo {
                cores: 2,
                cpu_model: "Test CPU".into(),
                kernel: "6.0".into(),
                memory_mib: 1024,
            },
            placement: Placement::for_cores(2),
            reniced: true,
            storage: "SQLite, one file per service; one replica of each program",
            audit: None,
            client_costs: vec![
                (
                    PathKey::DirectGrpc,
                    ClientCost {
                        ok: 1_000,
                        errors: 0,
                        cpu_per_call: 8.0,
                    },
                ),
                (
                    PathKey::DirectThrift,
                    ClientCost {
                        ok: 1_000,
                        errors: 0,
                        cpu_per_call: 6.0,
                    },
                ),
            ],
            paths: vec![
                path(
                    PathKey::BareHyper,
                    60_000.0,
                    &[(Baseline, 10.0)],
                    12.0,
                    50.0,
                    200.0,
                ),
                path(
                    PathKey::DirectGrpc,
                    20_000.0,
                    &[(Warehouse, 45.0)],
                    8.0,
                    120.0,
                    400.0,
                ),
                path(
                    PathKey::DirectThrift,
                    30_000.0,
                    &[(Account, 30.0)],
                    6.0,
                    100.0,
                    300.0,
                ),
                path(
                    PathKey::GatewayProduct,
                    7_000.0,
                    &[(Gateway, 20.0), (Warehouse, 45.0)],
                    11.0,
                    200.0,
                    900.0,
                ),
                path(
                    PathKey::GatewayAccount,
                    8_000.0,
                    &[(Gateway, 25.0), (Account, 30.0)],
                    11.0,
                    250.0,
                    2_000.0,
                ),
            ],
            programs: vec![
                program(Account, 9, 40),
                program(Warehouse, 7, 30),
                program(Payment, 17, 60),
                program(Gateway, 12, 120),
            ],
            product_bytes: 700,
            catalogue_bytes: 6_000,
        }
    }

    fn find<'a>(checks: &'a [Check], prefix: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.target.starts_with(prefix))
            .unwrap_or_else(|| panic!("no check {prefix}: {checks:?}"))
    }

    #[test]
    fn ratios_are_computed_against_the_same_runs_baselines() {
        let checks = checks(&results());
        let product = find(&checks, "product read throughput");
        assert!((product.value - 0.35).abs() < 1e-9);
        assert!(product.met());
        let account = find(&checks, "account read throughput");
        assert!((account.value - 8_000.0 / 30_000.0).abs() < 1e-9);
        assert!(!account.met(), "0.27 < 0.30");

        // 20 / (10 + 8) = 1.11 and 25 / (10 + 6) = 1.5625.
        let cpu = find(&checks, "product read: gateway CPU");
        assert!((cpu.value - 20.0 / 18.0).abs() < 1e-9 && cpu.met());
        let cpu = find(&checks, "account read: gateway CPU");
        assert!((cpu.value - 1.5625).abs() < 1e-9 && !cpu.met());

        let p50 = find(
            &checks,
            "product read: latency the gateway adds at 50% load, p50",
        );
        assert_eq!((p50.value, p50.met()), (80.0, true));
        let p99 = find(
            &checks,
            "account read: latency the gateway adds at 50% load, p99",
        );
        assert_eq!((p99.value, p99.met()), (1_700.0, false));
    }

    #[test]
    fn memory_and_start_up_are_checked_per_program_on_the_median() {
        let checks = checks(&results());
        assert!(find(&checks, "account: resident memory").met());
        assert!(!find(&checks, "payment: resident memory").met());
        let gateway = find(&checks, "gateway: start to ready");
        // Starts 120, 360, 60 ms: the median is 120.
        assert_eq!(gateway.value, 120.0);
        assert!(!gateway.met());
        assert!(find(&checks, "warehouse: start to ready").met());
        assert_eq!(checks.len(), 2 + 2 + 4 + 4 + 4);
    }

    #[test]
    fn the_report_has_every_section_and_verdict() {
        let text = markdown(&results(), "cargo run --release -p bookstore-bench -- full");
        for expected in [
            "### Run",
            "`cargo run --release -p bookstore-bench -- full`",
            "2 cores (`nproc`), Test CPU, Linux 6.0",
            "every program on core 0, the load generator on core 1",
            "| gateway: GET /restful/products/{id} | 7000 | gateway 20.0 + warehouse 45.0 | 98% | 1% / 2% |",
            "- priority: programs and generator at nice -10",
            "### Programs",
            "| gateway | 12.0 | 24.0 | 36.0 | 120.0 (120, 360, 60) |",
            "### Targets",
            "**not met**",
            "| met |",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let met = checks(&results()).iter().filter(|c| c.met()).count();
        assert!(
            text.contains(&format!("{met} of 16 targets met.")),
            "{text}"
        );
        assert!(
            !text.contains("### The hop's floor"),
            "no translator paths, no floor section:\n{text}"
        );
    }

    #[test]
    fn the_floor_splits_the_hop_from_what_the_gateway_adds() {
        use Program::*;
        let mut results = results();
        results.paths.push(path(
            PathKey::TranslatorProduct,
            10_000.0,
            &[(Translator, 12.0), (Warehouse, 45.0)],
            11.0,
            170.0,
            700.0,
        ));
        let text = markdown(&results, "full");
        for expected in [
            "### The hop's floor",
            // Throughput: 10 000 and 7 000 against the direct 20 000.
            "| product | throughput ÷ direct RPC | 0.50 | 0.35 | |",
            "| product | CPU per request of the front program (µs) | 12.0 | 20.0 | 8.0 |",
            // Added over the direct 120 µs p50: 50 by the translator, 80 by the gateway.
            "| product | latency added over the direct RPC at 50% load, p50 (µs) | 50.0 | 80.0 | 30.0 |",
            "| product | latency added over the direct RPC at 50% load, p99 (µs) | 300 | 500 | 200 |",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(
            !text.contains("| account | throughput"),
            "no account translator path"
        );
        // The floor is context, not a target: the count stays the sixteen.
        assert_eq!(checks(&results).len(), 16);
    }
}
