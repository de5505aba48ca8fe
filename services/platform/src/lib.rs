//! What every bookstore program needs and nothing domain-specific: configuration with hot
//! reload, telemetry, shutdown, database pools and migrations (every write transaction on a task
//! of its own, see [`database`]), JWT verification, the gRPC health service (which follows a
//! database write probe), helpers for carrying tokens and request ids in RPC metadata, and what
//! keeps one client from costing a server more than its share: the gRPC servers' accept loop
//! ([`grpc_server`], [`grpc_message_limit`]) and the Thrift server's guarded codec
//! ([`thrift_server`], [`thrift_wire`]).

pub mod allocator;
pub mod clock;
pub mod configuration;
pub mod connection_watch;
pub mod database;
pub mod discovery;
pub mod grpc_error_details;
pub mod grpc_message_limit;
pub mod grpc_reflection;
pub mod grpc_server;
pub mod health;
pub mod key_watch;
pub mod metrics;
pub mod program;
pub mod read_cache;
pub mod reload;
pub mod rpc_metadata;
pub mod serve;
pub mod shutdown;
pub mod sql;
mod sqlite_pool;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod thrift_server;
pub mod thrift_wire;
pub mod token_cache;
pub mod token_keys;
pub mod tokens;
pub mod trace_context;
pub mod trace_export;
pub mod validation;
