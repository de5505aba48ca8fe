//! The rendered Kubernetes manifests as the tests read them: `kubectl kustomize` (offline), a
//! model of the objects (only the fields the tests read; serde ignores the rest), and the
//! container environment resolved from the rendered Secrets the way the kubelet does it.
//!
//! `DEPLOY_CHECK_ROOT` names another checkout to render instead of this one (for example a
//! scratch copy with a deliberately broken manifest).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use base64::Engine;
use serde::Deserialize;

pub const NAMESPACE: &str = "bookstore";
/// Where every program's ConfigMap is mounted, as a directory.
pub const CONFIG_DIR: &str = "/etc/bookstore";
/// How long `kubectl kustomize` may take.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Rendering and the manifest model (only the fields the tests read; serde ignores the rest).

pub fn repo_root() -> PathBuf {
    std::env::var_os("DEPLOY_CHECK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Runs `kubectl kustomize <dir>` and returns the rendered YAML.
pub fn render(dir: &str) -> String {
    let path = repo_root().join(dir);
    // Files, not pipes: nothing can block on a full pipe while we wait with a deadline.
    let output_file = tempfile::NamedTempFile::new().expect("temp file");
    let error_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        // Without a kubeconfig kubectl would default to localhost:8080; `kustomize` never
        // connects, and this makes sure of it.
        .env("KUBECONFIG", "/dev/null")
        .stdout(output_file.reopen().expect("reopen temp file"))
        .stderr(error_file.reopen().expect("reopen temp file"))
        .spawn()
        .expect("kubectl is needed to render the manifests (it is on the CI image)");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for kubectl") {
            break status;
        }
        if started.elapsed() > RENDER_TIMEOUT {
            let _ = child.kill();
            panic!(
                "kubectl kustomize {} took longer than {RENDER_TIMEOUT:?}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(error_file.path()).unwrap_or_default();
    assert!(
        status.success(),
        "kubectl kustomize {} failed: {stderr}",
        path.display()
    );
    std::fs::read_to_string(output_file.path()).expect("read rendered manifests")
}

#[derive(Debug, Deserialize)]
pub struct Object {
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub spec: serde_yaml_ng::Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    pub replicas: Option<u32>,
    pub selector: LabelSelector,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: Metadata,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub termination_grace_period_seconds: Option<u64>,
    pub security_context: Option<PodSecurityContext>,
    pub containers: Vec<Container>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSecurityContext {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub fs_group: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    /// Replaces the image's ENTRYPOINT when set.
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    pub startup_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
    pub lifecycle: Option<Lifecycle>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    pub security_context: Option<SecurityContext>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityContext {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub read_only_root_filesystem: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities: Option<Capabilities>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub secret_key_ref: Option<KeySelector>,
    pub config_map_key_ref: Option<KeySelector>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeySelector {
    pub name: String,
    pub key: String,
}

/// A port given as a number or as the name of a containerPort.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub grpc: Option<GrpcAction>,
    pub http_get: Option<HttpGetAction>,
    pub tcp_socket: Option<TcpSocketAction>,
    pub exec: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrpcAction {
    pub port: u16,
    pub service: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpGetAction {
    pub path: Option<String>,
    pub port: PortRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TcpSocketAction {
    pub port: PortRef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub pre_stop: Option<LifecycleHandler>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LifecycleHandler {
    pub sleep: Option<SleepAction>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SleepAction {
    pub seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub config_map: Option<ConfigMapVolume>,
    pub secret: Option<SecretVolume>,
    pub empty_dir: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapVolume {
    pub name: String,
    /// File mode of every key (the kubelet's default is 0644).
    pub default_mode: Option<u32>,
    /// A key-to-path selection; absent means every key, as a file of the same name.
    pub items: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolume {
    pub secret_name: String,
    /// File mode of every key (the kubelet's default is 0644).
    pub default_mode: Option<u32>,
    /// A key-to-path selection; absent means every key, as a file of the same name.
    pub items: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub sub_path: Option<String>,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: Option<PortRef>,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub spec: WorkloadSpec,
}

/// One rendered deployment, by kind and name (everything lives in one namespace).
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub deployments: BTreeMap<String, Workload>,
    pub stateful_sets: BTreeMap<String, Workload>,
    pub services: BTreeMap<String, ServiceSpec>,
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Decoded Secret data.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Manifests {
    pub fn parse(yaml: &str) -> Result<Self, String> {
        let mut manifests = Self::default();
        for document in serde_yaml_ng::Deserializer::from_str(yaml) {
            let object = Object::deserialize(document).map_err(|e| e.to_string())?;
            let name = object.metadata.name.clone();
            if object.kind != "Namespace" && object.metadata.namespace.as_deref() != Some(NAMESPACE)
            {
                return Err(format!(
                    "{} {name} is not in namespace {NAMESPACE}",
                    object.kind
                ));
            }
            let spec = || object.spec.clone();
            match object.kind.as_str() {
                "Deployment" | "StatefulSet" => {
                    let spec: WorkloadSpec = serde_yaml_ng::from_value(spec())
                        .map_err(|e| format!("{} {name}: {e}", object.kind))?;
                    let workload = Workload { spec };
                    let map = if object.kind == "Deployment" {
                        &mut manifests.deployments
                    } else {
                        &mut manifests.stateful_sets
                    };
                    map.insert(name, workload);
                }
                "Service" => {
                    let spec = serde_yaml_ng::from_value(spec())
                        .map_err(|e| format!("Service {name}: {e}"))?;
                    manifests.services.insert(name, spec);
                }
                "ConfigMap" => {
                    manifests.config_maps.insert(name, object.data.clone());
                }
                "Secret" => {
                    let mut decoded = BTreeMap::new();
                    for (key, value) in &object.data {
                        let compact: String =
                            value.chars().filter(|c| !c.is_whitespace()).collect();
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(compact)
                            .map_err(|e| format!("Secret {name} key {key}: {e}"))?;
                        decoded.insert(key.clone(), bytes);
                    }
                    manifests.secrets.insert(name, decoded);
                }
                _ => {}
            }
        }
        Ok(manifests)
    }

    /// A Secret's decoded value. kustomize appends a content hash to generated Secrets' names
    /// and rewrites every reference to match, so references here are exact names.
    pub fn secret_value(&self, name: &str, key: &str) -> Option<&[u8]> {
        self.secrets.get(name)?.get(key).map(Vec::as_slice)
    }
}

/// The rendered base and overlay, rendered once per test run.
pub fn rendered(dir: &'static str) -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    static POSTGRES: OnceLock<String> = OnceLock::new();
    match dir {
        BASE_DIR => BASE.get_or_init(|| render(BASE_DIR)),
        POSTGRES_DIR => POSTGRES.get_or_init(|| render(POSTGRES_DIR)),
        other => panic!("no such rendering: {other}"),
    }
}

pub const BASE_DIR: &str = "deploy/base";
pub const POSTGRES_DIR: &str = "deploy/overlays/postgres";

pub fn manifests(dir: &'static str) -> Manifests {
    Manifests::parse(rendered(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Problems found, and the container environment.

/// Human-readable problems; the tests print them all.
#[derive(Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn add(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }

    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    pub fn mentioning(&self, needle: &str) -> bool {
        self.0.iter().any(|p| p.contains(needle))
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for problem in &self.0 {
            writeln!(f, "- {problem}")?;
        }
        Ok(())
    }
}

/// The container's environment as the kubelet sets it: Secret and ConfigMap references
/// resolved, `$(NAME)` expanded from the variables defined before it.
pub fn resolve_env(
    m: &Manifests,
    name: &str,
    container: &Container,
    problems: &mut Problems,
) -> Vec<(String, String)> {
    let mut resolved: Vec<(String, String)> = Vec::new();
    for var in &container.env {
        let value = if let Some(value) = &var.value {
            let defined: BTreeMap<&str, &str> = resolved
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let expanded = expand_env_references(value, &defined);
            problems.check(!expanded.contains("$("), || {
                format!(
                    "{name}: env {} keeps an unresolved $(…) reference: {value}",
                    var.name
                )
            });
            expanded
        } else if let Some(from) = &var.value_from {
            let looked_up = if let Some(r) = &from.secret_key_ref {
                m.secret_value(&r.name, &r.key)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .ok_or_else(|| format!("Secret {} has no key {}", r.name, r.key))
            } else if let Some(r) = &from.config_map_key_ref {
                m.config_maps
                    .get(&r.name)
                    .and_then(|d| d.get(&r.key))
                    .cloned()
                    .ok_or_else(|| format!("ConfigMap {} has no key {}", r.name, r.key))
            } else {
                Err("an unsupported valueFrom".to_owned())
            };
            match looked_up {
                Ok(value) => value,
                Err(e) => {
                    problems.add(format!("{name}: env {}: {e}", var.name));
                    continue;
                }
            }
        } else {
            String::new()
        };
        resolved.push((var.name.clone(), value));
    }
    resolved
}

/// Kubernetes' `$(NAME)` expansion: defined names are replaced, `$$` is a literal `$`, anything
/// else is left as written.
pub fn expand_env_references(value: &str, defined: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after_escape) = after.strip_prefix('$') {
            out.push('$');
            rest = after_escape;
            continue;
        }
        if let Some((name, tail)) = after.strip_prefix('(').and_then(|s| s.split_once(')'))
            && let Some(value) = defined.get(name)
        {
            out.push_str(value);
            rest = tail;
            continue;
        }
        out.push('$');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A probe's or Service's port reference as a number, through the container's named ports.
pub fn container_port_number(container: &Container, port: &PortRef) -> Option<u16> {
    match port {
        PortRef::Number(number) => Some(*number),
        PortRef::Name(name) => container
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}
