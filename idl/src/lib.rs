//! The code volo-build generates from `account.thrift`, `warehouse.proto`, `payment.proto` and the
//! standard gRPC health protocol. Nothing here is written by hand.
//!
//! Paths: `rpc_idl::account::…` (Thrift), `rpc_idl::warehouse::…`, `rpc_idl::payment::…`,
//! `rpc_idl::grpc::health::v1::…` and `rpc_idl::google::protobuf::Timestamp` (Protobuf).

#![allow(clippy::all, missing_docs, unused)]

mod r#gen {
    include!(concat!(env!("OUT_DIR"), "/thrift_gen.rs"));
    include!(concat!(env!("OUT_DIR"), "/proto_gen.rs"));
}

pub use r#gen::proto_gen::*;
pub use r#gen::thrift_gen::*;
