//! What one RPC costs its caller: a Volo client (the same kind the gateway uses) in a process
//! of its own, pinned to the programs' core like the gateway, calling the service in a closed
//! loop while it measures its own CPU time.
//!
//! The gateway's CPU target compares the gateway with "a bare hyper request plus the same RPC's
//! client-side cost". The load generator's CPU per direct call would be one estimate, but it
//! runs on the other core, whose caches other processes may be churning; this one runs where
//! the gateway's client runs, beside the service it calls.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use crate::{
    error::BenchError,
    load::{self, ClosedLoop, Target},
    machine, procfs,
    targets::{GrpcGetProduct, ThriftGetAccount},
};

/// Which RPC to call.
#[derive(Debug, Clone)]
pub enum Rpc {
    /// `WarehouseService/GetProduct` on the warehouse at this address.
    GrpcGetProduct { address: SocketAddr, id: i64 },
    /// `AccountService.GetAccountByUsername` on the account service, with the token in this
    /// file (not on the command line, where `ps` would show it).
    ThriftGetAccount {
        address: SocketAddr,
        token_file: std::path::PathBuf,
        username: String,
    },
}

/// What the client process measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientCost {
    pub ok: u64,
    pub errors: u64,
    /// CPU time of the client process per successful call, µs.
    pub cpu_per_call: f64,
}

impl ClientCost {
    /// The one line the client process prints.
    pub fn line(&self) -> String {
        format!(
            "client-cost ok={} errors={} cpu_per_call_us={:.3}",
            self.ok, self.errors, self.cpu_per_call
        )
    }

    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("client-cost ")?;
        let mut cost = Self {
            ok: 0,
            errors: 0,
            cpu_per_call: 0.0,
        };
        for field in rest.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            match key {
                "ok" => cost.ok = value.parse().ok()?,
                "errors" => cost.errors = value.parse().ok()?,
                "cpu_per_call_us" => cost.cpu_per_call = value.parse().ok()?,
                _ => return None,
            }
        }
        Some(cost)
    }
}

/// In the client process: warm up, then call for `duration` with `concurrency` callers and
/// report this process's CPU time per successful call.
pub async fn measure<T: Target>(target: T, concurrency: usize, duration: Duration) -> ClientCost {
    let plan = |duration| ClosedLoop {
        concurrency,
        duration,
        max_requests: u64::MAX,
        timeout: Duration::from_secs(5),
    };
    load::closed_loop(&target, &plan(duration / 4)).await;
    let me = std::process::id();
    let before = procfs::cpu_time(me).unwrap_or_default();
    let outcome = load::closed_loop(&target, &plan(duration)).await;
    let used = procfs::cpu_time(me)
        .unwrap_or_default()
        .saturating_sub(before);
    ClientCost {
        ok: outcome.ok,
        errors: outcome.errors,
        cpu_per_call: used.as_secs_f64() * 1e6 / outcome.ok.max(1) as f64,
    }
}

/// In the client process: the target for `rpc`.
pub fn run_in_process(
    rpc: &Rpc,
    concurrency: usize,
    duration: Duration,
) -> Result<ClientCost, BenchError> {
    // The runtime the gateway has (`#[tokio::main]`): one worker on the one core it may use.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("cannot start a runtime"))?;
    // Volo's clients start background tasks when they are built: build them on the runtime.
    match rpc {
        Rpc::GrpcGetProduct { address, id } => Ok(runtime.block_on(async {
            let target = GrpcGetProduct::new(*address, *id);
            measure(target, concurrency, duration).await
        })),
        Rpc::ThriftGetAccount {
            address,
            token_file,
            username,
        } => {
            let token = std::fs::read_to_string(token_file).map_err(BenchError::io(format!(
                "cannot read {}",
                token_file.display()
            )))?;
            Ok(runtime.block_on(async {
                let target = ThriftGetAccount::new(*address, token.trim(), username);
                measure(target, concurrency, duration).await
            }))
        }
    }
}

/// From the benchmark: runs `bench_exe rpc-client …` on `core` and reads its report.
pub async fn run_child(
    bench_exe: &Path,
    core: usize,
    rpc: &Rpc,
    concurrency: usize,
    duration: Duration,
) -> Result<ClientCost, BenchError> {
    let mut command = machine::pinned_command(bench_exe, core);
    command.arg("rpc-client");
    match rpc {
        Rpc::GrpcGetProduct { address, id } => {
            command
                .arg("--grpc")
                .arg(address.to_string())
                .arg("--product")
                .arg(id.to_string());
        }
        Rpc::ThriftGetAccount {
            address,
            token_file,
            username,
        } => {
            command
                .arg("--thrift")
                .arg(address.to_string())
                .arg("--token-file")
                .arg(token_file)
                .arg("--username")
                .arg(username);
        }
    }
    command
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .arg("--seconds")
        .arg(duration.as_secs_f64().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .map_err(BenchError::io("cannot start the RPC client"))?;
    let limit = duration * 2 + Duration::from_secs(20);
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| BenchError::Client(format!("it did not finish within {limit:?}")))?
        .map_err(BenchError::io("the RPC client failed"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(ClientCost::parse)
        .filter(|cost| cost.ok > 0)
        .ok_or_else(|| {
            BenchError::Client(format!(
                "it reported nothing ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_line_round_trips_and_rejects_garbage() {
        let cost = ClientCost {
            ok: 12_345,
            errors: 2,
            cpu_per_call: 21.5,
        };
        assert_eq!(ClientCost::parse(&cost.line()), Some(cost));
        assert_eq!(ClientCost::parse("client-cost ok=1 oops=2"), None);
        assert_eq!(ClientCost::parse("something else"), None);
    }
}
