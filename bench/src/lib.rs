//! The bookstore's benchmark tool: it starts the real programs (release or debug binaries,
//! SQLite, demo data) pinned to one core, drives them from a load generator pinned to another,
//! and reports every path's throughput, latency, CPU and memory as ratios against baselines
//! measured in the same run (a bare hyper server, bare Volo gRPC and Thrift servers answering from
//! memory, direct Volo gRPC and Thrift calls, a bare REST-to-RPC translator). See
//! `BENCHMARKS.md` at the repository root.

pub mod bare_rpc;
pub mod baseline;
pub mod client_cost;
pub mod error;
pub mod http_server;
pub mod launcher_memory;
pub mod load;
pub mod machine;
pub mod postgres;
pub mod procfs;
pub mod programs;
pub mod report;
pub mod run;
pub mod targets;
pub mod translator;
