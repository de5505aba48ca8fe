//! The Kubernetes deployment as its tests read it: the manifests rendered offline
//! (`kubectl kustomize`), a model of the objects they hold ([`k8s`]), and each program's
//! effective configuration from its ConfigMap and container environment, parsed by the
//! program's own configuration type ([`programs`]).
//!
//! The tests beside it: `tests/manifests.rs` checks the rendered manifests against the programs
//! (every port, probe, key file, Secret and setting they name exists and agrees);
//! `tests/boot.rs` starts the four binaries from them in network namespaces. `check.sh` runs
//! the schema and lint checks that need no Rust.

pub mod k8s;
pub mod programs;
