//! Code shared by the launcher's tests (the local run, the storefront in a browser). The
//! deployment tests live beside the manifests, in `deploy/tests/`.
//!
//! Each integration test is its own crate and compiles this module separately, using a
//! different part of it, so unused items are expected here.
#![allow(dead_code)]

pub mod launcher;
