//! Code shared by the deployment tests (`deploy_manifests`, `deploy_boot`).
//!
//! Each integration test is its own crate and compiles this module separately, using a
//! different part of it, so unused items are expected here.
#![allow(dead_code)]

pub mod k8s;
pub mod programs;
