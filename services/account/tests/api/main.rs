//! Integration tests of the account service through its real Thrift interface: a server on
//! 127.0.0.1:0 and a Volo client (or a raw socket speaking plain Thrift), every scenario once on
//! SQLite and once on PostgreSQL.

mod accounts;
mod authorization;
mod common;
mod conflicts;
mod credentials;
mod liveness;
mod plain_thrift;
mod tokens;
mod validation;
