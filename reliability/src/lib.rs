//! The bookstore's reliability and security suite.
//!
//! - [`conservation`]: the audit that stock and money are neither lost nor created, as a library
//!   function (used by every fault and load test) and as the `conservation` command.
//! - [`wire`]: hand-made bytes for the RPC ports (raw gRPC calls, a raw Thrift `Ping`) and a
//!   process's memory, for the hostile-input tests.
//! - [`otlp_receiver`]: an OTLP/HTTP receiver that keeps the spans the programs export.
//! - [`programs`], [`stack`], [`traffic`]: test support that runs the four real program binaries
//!   as child processes on loopback, talks to the gateway like the front-end (with
//!   `gateway::testing::Rest`, the client the gateway's own tests use), and drives a steady,
//!   bounded mix of shoppers' requests while a test breaks things.
//!
//! The tests live in `tests/`: `faults.rs` (SIGKILL, rolling restarts, config swaps under
//! traffic), `load.rs` (200 buyers racing for 10 books), `hostile.rs` (forged tokens, hostile
//! bodies and paths, SQL metacharacters, garbage on the RPC ports, password guessing),
//! `wire_limits.rs` (oversized and malformed RPC messages, slow clients, a memory limit),
//! `burst.rs` (liveness after bursts of buyers), `traces.rs` (one trace across HTTP, Thrift and
//! gRPC, exported over OTLP) and
//! `schemathesis.rs` (property-based fuzzing from the OpenAPI document; run by
//! `reliability/schemathesis.sh`).

pub mod conservation;
pub mod otlp_receiver;
pub mod programs;
pub mod stack;
pub mod traffic;
pub mod wire;
