//! What every bookstore program needs and nothing domain-specific: configuration with hot
//! reload, telemetry, shutdown, database pools and migrations, JWT verification, the gRPC health
//! service, and helpers for carrying tokens and request ids in RPC metadata.

pub mod configuration;
pub mod database;
pub mod discovery;
pub mod grpc_message_limit;
pub mod grpc_server;
pub mod health;
pub mod program;
pub mod reload;
pub mod rpc_metadata;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod thrift_server;
pub mod thrift_wire;
pub mod token_cache;
pub mod token_keys;
pub mod tokens;
