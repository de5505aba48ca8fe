//! Test support for everything that drives the gateway from outside (its own integration tests,
//! the reliability suite): a small HTTP/1.1 client of the REST API as the front-end uses it
//! (`rest.rs`), and what a test's configuration and files need (`setup.rs`).
//!
//! Built only with the `testing` feature, never into the program; the gateway's own integration
//! tests turn it on through a dev-dependency of the crate on itself (as `platform` does).
//!
//! Every request has a deadline ([`Rest::with_timeout`], 15 s by default). The plain methods
//! panic when the exchange itself fails (refused, cut off, no answer in time), as a test step
//! should; the `try_` ones return that as `Err`, for traffic generators that count such failures.

mod rest;
mod setup;

pub use rest::*;
pub use setup::*;
