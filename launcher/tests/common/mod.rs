//! Code shared by the launcher's tests (the deployment tests, the local run, the storefront in
//! a browser).
//!
//! Each integration test is its own crate and compiles this module separately, using a
//! different part of it, so unused items are expected here.
#![allow(dead_code)]

pub mod k8s;
pub mod launcher;
pub mod programs;
