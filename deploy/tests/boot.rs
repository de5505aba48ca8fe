//! The boot test: the four real programs, started from exactly what `kubectl kustomize
//! deploy/base` renders and arranged the way a kubelet arranges a pod, find each other by their
//! Service names, serve a short REST flow through the gateway, and follow an in-place update of
//! the gateway's ConfigMap without a restart. `deploy/BOOT_TEST.md` describes it in prose.
//!
//! Every Deployment of the rendered base becomes one "pod": a network namespace of its own on a
//! bridge that lives in a "hub" namespace (10.77.0.0/24; the host's network is never touched).
//! `ip netns exec` gives the pod a private mount namespace and `/etc/netns/<ns>/hosts` as its
//! `/etc/hosts`, in which every Service name resolves to the pod its selector picks. Inside it,
//! each volume of the pod spec is bind-mounted at its `mountPath`: ConfigMaps and Secrets in the
//! layout of the kubelet's AtomicWriter (`..<timestamp>/<key>`, `..data -> ..<timestamp>`,
//! `<key> -> ..data/<key>`) with the rendered data (Secrets base64-decoded), the volume's
//! `defaultMode` and the pod's `fsGroup`; `emptyDir`s empty. The root filesystem is remounted
//! read-only when the container asks for it, and the binary runs as `runAsUser`/`runAsGroup`
//! with `fsGroup` as supplementary group, no new privileges and no capabilities (`setpriv`),
//! with exactly the container's environment, resolved from the rendered Secrets (`env -i`).
//!
//! The test then plays the kubelet's prober and a client in a namespace of its own: it waits for
//! every program's ready line and for every startup, readiness and liveness probe of the
//! manifests to pass against the pod's address (native gRPC, HTTP or TCP, as declared), runs
//! the REST flow against the gateway's Service name (log in as the seeded administrator, browse,
//! settle, pay, and check the stock and the wallet), then rewrites the gateway's ConfigMap the
//! way the kubelet does (new timestamped directory, `..data` swapped with one rename) so the
//! warehouse backend points at a closed port, waits for the gateway to report the warehouse down
//! and to answer 503, swaps the original back and waits for the recovery, all with the same
//! processes. Finally every program gets SIGTERM and must exit 0 within its drain deadline.
//!
//! A drop guard kills whatever still runs and removes every namespace (and with it every veth),
//! every `/etc/netns/<ns>` directory, every mount point it created on the host and the staging
//! directory, also when the test fails. The mounts themselves live and die with the pods' mount
//! namespaces.
//!
//! It needs root and `ip` (iproute2), `setpriv` and `mount` (util-linux); CI runs as root. Without
//! them it fails and says so: run `cargo test -- --skip boot` on such a machine.
//!
//! `DEPLOY_CHECK_ROOT` boots another checkout's manifests (for example a scratch copy with a
//! deliberately broken one) with this workspace's binaries.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::{
        fd::AsRawFd,
        unix::fs::{MetadataExt, PermissionsExt, chown, symlink},
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use bookstore_deploy::{
    k8s::{
        BASE_DIR, Container, Manifests, NAMESPACE, PodSpec, PortRef, Probe, Problems, Volume,
        VolumeMount, container_port_number, manifests, resolve_env,
    },
    programs::{Effective, PROGRAM_NAMES, loader},
};
use rpc_idl::grpc::health::v1::{
    HealthCheckRequest, HealthClientBuilder, health_check_response::ServingStatus,
};
use serde_json::{Value, json};

/// Everything from the first namespace to the last exit. `cargo test` has built the binaries by
/// then (the build step below is a no-op after `cargo test --workspace`).
const BOOT_LIMIT: Duration = Duration::from_secs(85);
/// `cargo build` of the four binaries: instant when they are fresh, a compile when they are not.
const BUILD_LIMIT: Duration = Duration::from_secs(600);
/// From the start of the programs until every probe passes.
const START_LIMIT: Duration = Duration::from_secs(60);
/// From a ConfigMap update until the program shows it (its watcher debounces for 300 ms).
const RELOAD_LIMIT: Duration = Duration::from_secs(10);
/// One HTTP request or probe.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// One `ip` command.
const COMMAND_LIMIT: Duration = Duration::from_secs(10);
/// After SIGTERM a program may take its drain deadline plus this.
const EXIT_MARGIN: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The pods' subnet, on a bridge inside the hub namespace.
const SUBNET: [u8; 3] = [10, 77, 0];
/// The test's own address on the bridge (the pods get .2, .3, ...).
const CLIENT_HOST: u8 = 100;
/// The runtime image's user (`gcr.io/distroless/cc-debian12:nonroot`), for a pod that sets none.
const IMAGE_USER: u32 = 65532;
/// The front-end's OAuth2 client. Its secret ships in the front-end's JavaScript, so it is public
/// by design; the gateway's Secret holds only its hash.
const FRONTEND_CLIENT: (&str, &str) = ("bookstore_frontend", "bookstore_secret");
/// Log lines of each program shown when the test fails.
const LOG_TAIL: usize = 40;

#[test]
fn boot_the_rendered_base_in_network_namespaces() {
    let tools = Tools::find();
    let binaries = build_programs();
    let m = manifests(BASE_DIR);
    check_deployments_are_the_programs(&m);

    remove_stale_namespaces(&tools);
    let mut harness = Harness::new(tools);
    if let Err(e) = boot(&mut harness, &m, &binaries) {
        panic!("boot test: {e}");
    }
    harness.close();
}

/// The test proper; the harness cleans up whatever happens here.
fn boot(h: &mut Harness, m: &Manifests, binaries: &Path) -> Result<(), String> {
    let clock = Clock::start();

    // The pods, their addresses, and the names every pod's /etc/hosts resolves.
    let plans = plan_pods(m)?;
    let hosts = service_hosts(m, &plans)?;
    h.create_network(&plans)?;
    for plan in &plans {
        h.write_hosts(&plan.namespace(&h.prefix), &hosts)?;
    }
    let client = Client {
        netns: Path::new("/run/netns").join(format!("{}-{CLIENT}", h.prefix)),
        hosts,
    };
    step(&clock, "network ready");

    // Stage the volumes, load each program's effective configuration from them, start them all
    // at once as the kubelet would (no ordering: each must cope with missing peers).
    let mut effective = BTreeMap::new();
    for plan in &plans {
        let pod = h.stage_pod(m, plan)?;
        let config_path = env_value(&plan.env, "CONFIG_PATH")
            .ok_or_else(|| format!("{}: the container sets no CONFIG_PATH", plan.name))?;
        let on_host = pod.host_path(Path::new(config_path))?;
        let load = loader(&plan.container.name)
            .ok_or_else(|| format!("no program is called {}", plan.container.name))?;
        let config = load(&on_host, &plan.env).map_err(|e| {
            format!(
                "{}: {config_path} is not a valid configuration: {e}",
                plan.name
            )
        })?;
        effective.insert(plan.name.clone(), config);
        h.pods.push(pod);
    }
    for (plan, index) in plans.iter().zip(0..) {
        h.start_pod(index, plan, binaries)?;
    }
    h.wait_for_ready_lines(clock.within(START_LIMIT))?;
    step(&clock, "every program logged its ready line");
    for plan in &plans {
        run_probes(&client, plan, clock.within(START_LIMIT))?;
    }
    step(&clock, "every startup, readiness and liveness probe passes");

    // The REST flow, through the gateway's Service name.
    let api = Api::new(&client, m, "gateway")?;
    rest_flow(&api, &effective)?;
    step(&clock, "REST flow passed");
    scrape_metrics(&client, &plans)?;
    step(&clock, "every pod serves its metrics on its metrics port");

    // Hot reload of the gateway's ConfigMap, out and back, with the same processes.
    hot_reload(h, m, &plans, &api, &clock)?;
    step(
        &clock,
        "the gateway followed its ConfigMap out and back without a restart",
    );

    // SIGTERM: every program drains and exits 0 in time.
    let limits = effective
        .iter()
        .map(|(name, config)| {
            let drain = Duration::from_millis(config.view().shutdown_ms);
            (name.clone(), drain + EXIT_MARGIN)
        })
        .collect();
    h.stop_pods(&limits)?;
    step(&clock, "every program exited 0 after SIGTERM");
    if clock.expired() {
        return Err(format!("the boot took longer than {BOOT_LIMIT:?}"));
    }
    Ok(())
}

fn step(clock: &Clock, what: &str) {
    println!("[{:>6.2}s] {what}", clock.started.elapsed().as_secs_f64());
}

/// The rendered base runs exactly the four programs, one pod each.
fn check_deployments_are_the_programs(m: &Manifests) {
    let deployed: BTreeSet<&str> = m.deployments.keys().map(String::as_str).collect();
    let programs: BTreeSet<&str> = PROGRAM_NAMES.into_iter().collect();
    assert_eq!(
        deployed, programs,
        "the boot test runs one pod per Deployment, each a program of this workspace"
    );
}

/// A deadline for the whole boot, and shorter ones inside it.
struct Clock {
    started: Instant,
    end: Instant,
}

impl Clock {
    fn start() -> Self {
        let started = Instant::now();
        Self {
            started,
            end: started + BOOT_LIMIT,
        }
    }

    /// `limit` from now, but never past the end of the boot.
    fn within(&self, limit: Duration) -> Instant {
        (Instant::now() + limit).min(self.end)
    }

    fn expired(&self) -> bool {
        Instant::now() > self.end
    }
}

/// Retries `attempt` every [`POLL_INTERVAL`] until it succeeds or `until` passes.
fn poll<T>(
    until: Instant,
    what: &str,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= until => {
                return Err(format!("{what}: still not so at the deadline ({e})"));
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Preconditions, binaries and commands.

/// The host tools the test drives, by absolute path (the pods get an empty environment).
struct Tools {
    ip: PathBuf,
    setpriv: PathBuf,
    mount: PathBuf,
    sh: PathBuf,
    env: PathBuf,
}

impl Tools {
    /// Finds the tools, or fails saying what is missing: never a silent pass.
    fn find() -> Self {
        let mut missing = Vec::new();
        // The owner of /proc/self is this process's effective user.
        match fs::metadata("/proc/self").map(|m| m.uid()) {
            Ok(0) => {}
            Ok(uid) => missing.push(format!(
                "root (it runs as uid {uid}) for network and mount namespaces"
            )),
            Err(e) => missing.push(format!("root (cannot tell the user: {e})")),
        }
        let mut find = |name: &str, package: &str| {
            let found = find_tool(name);
            if found.is_none() {
                missing.push(format!("`{name}` ({package})"));
            }
            found.unwrap_or_default()
        };
        let tools = Self {
            ip: find("ip", "iproute2"),
            setpriv: find("setpriv", "util-linux"),
            mount: find("mount", "util-linux"),
            sh: find("sh", "a POSIX shell"),
            env: find("env", "coreutils"),
        };
        assert!(
            missing.is_empty(),
            "the deploy boot test needs {}. CI runs as root with these installed; elsewhere run \
             `cargo test -- --skip boot`.",
            missing.join(", ")
        );
        tools
    }
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Builds the four binaries (integration tests only get `CARGO_BIN_EXE_*` for their own
/// package) and returns the directory holding them: the profile directory this test runs from,
/// which honours `CARGO_TARGET_DIR`.
fn build_programs() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["build", "--bins"]);
    for name in PROGRAM_NAMES {
        command.args(["-p", name]);
    }
    if profile_dir.ends_with("release") {
        command.arg("--release");
    }
    let output = run_bounded(&mut command, BUILD_LIMIT)
        .unwrap_or_else(|e| panic!("building the programs failed: {e}"));
    for name in PROGRAM_NAMES {
        let binary = profile_dir.join(name);
        assert!(
            binary.is_file(),
            "cargo built no {} ({output})",
            binary.display()
        );
    }
    profile_dir
}

/// Runs a command to completion within `limit`; its stdout, or why it failed.
fn run_bounded(command: &mut Command, limit: Duration) -> Result<String, String> {
    // Files, not pipes: nothing can block on a full pipe while we wait with a deadline.
    let stdout = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let stderr = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let described = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout.reopen().map_err(|e| e.to_string())?)
        .stderr(stderr.reopen().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{described}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{described} took longer than {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{described}: {e}")),
        }
    };
    let out = fs::read_to_string(stdout.path()).unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        let err = fs::read_to_string(stderr.path()).unwrap_or_default();
        Err(format!("{described}: {status}: {}", err.trim()))
    }
}

fn ip(tools: &Tools, args: &[&str]) -> Result<String, String> {
    run_bounded(Command::new(&tools.ip).args(args), COMMAND_LIMIT)
}

/// The members of one run's namespaces besides the pods.
const HUB: &str = "hub";
const CLIENT: &str = "client";

/// Namespaces and `/etc/netns` entries left by a run that was killed before its drop guard ran
/// (`bk<pid>-<member>` whose process is gone).
fn remove_stale_namespaces(tools: &Tools) {
    let listed = ip(tools, &["netns", "list"]).unwrap_or_default();
    let namespaces = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned);
    let etc_entries = fs::read_dir("/etc/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned());
    let names: BTreeSet<String> = namespaces.chain(etc_entries).collect();
    for name in names {
        let Some((pid, member)) = name.strip_prefix("bk").and_then(|r| r.split_once('-')) else {
            continue;
        };
        let ours = [HUB, CLIENT].contains(&member) || PROGRAM_NAMES.contains(&member);
        if !ours || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        println!("removing {name}, left behind by process {pid}");
        if listed
            .lines()
            .any(|line| line.split_whitespace().next() == Some(name.as_str()))
        {
            let _ = ip(tools, &["netns", "del", &name]);
        }
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&name));
    }
}

// ---------------------------------------------------------------------------------------------
// What runs where.

/// One Deployment's pod: its spec, its single container, its address and its environment.
struct PodPlan<'a> {
    name: String,
    labels: &'a BTreeMap<String, String>,
    spec: &'a PodSpec,
    container: &'a Container,
    address: Ipv4Addr,
    env: Vec<(String, String)>,
}

impl PodPlan<'_> {
    fn namespace(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.name)
    }
}

fn plan_pods(m: &Manifests) -> Result<Vec<PodPlan<'_>>, String> {
    let mut plans = Vec::new();
    // The programs' start-up order; they are started together anyway.
    for (index, name) in PROGRAM_NAMES.into_iter().enumerate() {
        let deployment = m
            .deployments
            .get(name)
            .ok_or_else(|| format!("no Deployment {name}"))?;
        let replicas = deployment.spec.replicas.unwrap_or(1);
        if replicas != 1 {
            return Err(format!(
                "{name}: {replicas} replicas; the boot test runs the base, one pod per Deployment"
            ));
        }
        let template = &deployment.spec.template;
        let [container] = template.spec.containers.as_slice() else {
            return Err(format!(
                "{name}: the boot test expects one container per pod"
            ));
        };
        let mut problems = Problems::default();
        let env = resolve_env(m, name, container, &mut problems);
        if !problems.0.is_empty() {
            return Err(format!(
                "{name}: the environment does not resolve:\n{problems}"
            ));
        }
        let host = u8::try_from(index + 2).map_err(|e| e.to_string())?;
        plans.push(PodPlan {
            name: name.to_owned(),
            labels: &template.metadata.labels,
            spec: &template.spec,
            container,
            address: Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], host),
            env,
        });
    }
    Ok(plans)
}

fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Every name a Service answers to inside the namespace, and the address of the pod its
/// selector picks: what cluster DNS gives a headless Service with one ready pod. There is no
/// kube-proxy here, so a ClusterIP Service must not translate ports.
fn service_hosts(
    m: &Manifests,
    plans: &[PodPlan<'_>],
) -> Result<BTreeMap<String, Ipv4Addr>, String> {
    let mut hosts = BTreeMap::new();
    for (service, spec) in &m.services {
        let selected: Vec<&PodPlan<'_>> = plans
            .iter()
            .filter(|plan| {
                !spec.selector.is_empty()
                    && spec
                        .selector
                        .iter()
                        .all(|(k, v)| plan.labels.get(k) == Some(v))
            })
            .collect();
        // A headless Service over several pods (bookstore-metrics) is what cluster DNS answers
        // with every pod's address; no program here connects to one, and the metrics step
        // scrapes each pod by address, as Prometheus does after the lookup.
        if selected.len() > 1 && spec.cluster_ip.as_deref() == Some("None") {
            continue;
        }
        let [plan] = selected.as_slice() else {
            return Err(format!(
                "Service {service} selects {} pods, expected one",
                selected.len()
            ));
        };
        if spec.cluster_ip.as_deref() != Some("None") {
            for port in &spec.ports {
                let target = port
                    .target_port
                    .clone()
                    .unwrap_or(PortRef::Number(port.port));
                if container_port_number(plan.container, &target) != Some(port.port) {
                    return Err(format!(
                        "Service {service}: port {} targets {target:?}; the boot test has no \
                         kube-proxy to translate ports",
                        port.port
                    ));
                }
            }
        }
        for name in [
            service.clone(),
            format!("{service}.{NAMESPACE}"),
            format!("{service}.{NAMESPACE}.svc"),
            format!("{service}.{NAMESPACE}.svc.cluster.local"),
        ] {
            hosts.insert(name, plan.address);
        }
    }
    Ok(hosts)
}

// ---------------------------------------------------------------------------------------------
// The harness: namespaces, host files, pods; cleaned up by its drop guard.

/// Something the test created on the host, removed again at the end.
enum Created {
    Dir(PathBuf),
    File(PathBuf),
}

struct Harness {
    tools: Tools,
    /// `bk<pid>`: the prefix of every namespace and veth of this run.
    prefix: String,
    namespaces: Vec<String>,
    created: Vec<Created>,
    pods: Vec<Pod>,
    stage: tempfile::TempDir,
    cleaned: bool,
}

impl Harness {
    fn new(tools: Tools) -> Self {
        // Under the target directory, not /tmp: a pod mounts an emptyDir over /tmp, which must
        // not hide the staged volumes still to be mounted.
        let stage = tempfile::Builder::new()
            .prefix("deploy-boot-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("staging directory");
        Self {
            tools,
            prefix: format!("bk{}", std::process::id()),
            namespaces: Vec::new(),
            created: Vec::new(),
            pods: Vec::new(),
            stage,
            cleaned: false,
        }
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        ip(&self.tools, args)
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), String> {
        self.ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_owned());
        Ok(())
    }

    /// The hub namespace with a bridge, and one namespace per pod plus the client's, each
    /// attached to the bridge by a veth pair created inside the namespaces (never in the
    /// host's).
    fn create_network(&mut self, plans: &[PodPlan<'_>]) -> Result<(), String> {
        let hub = format!("{}-{HUB}", self.prefix);
        self.add_namespace(&hub)?;
        self.ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        self.ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        let client_address = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], CLIENT_HOST);
        let members = plans
            .iter()
            .map(|plan| (plan.namespace(&self.prefix), plan.address))
            .chain([(format!("{}-{CLIENT}", self.prefix), client_address)])
            .collect::<Vec<_>>();
        for (index, (namespace, address)) in members.iter().enumerate() {
            self.add_namespace(namespace)?;
            let veth = format!("{}v{index}", self.prefix);
            assert!(veth.len() <= 15, "interface name {veth} is too long");
            self.ip(&[
                "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                namespace,
            ])?;
            self.ip(&["-n", &hub, "link", "set", &veth, "master", "br0", "up"])?;
            let cidr = format!("{address}/24");
            self.ip(&["-n", namespace, "addr", "add", &cidr, "dev", "eth0"])?;
            self.ip(&["-n", namespace, "link", "set", "lo", "up"])?;
            self.ip(&["-n", namespace, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// `/etc/netns/<ns>/hosts`, which `ip netns exec` mounts over the pod's `/etc/hosts`.
    fn write_hosts(
        &mut self,
        namespace: &str,
        hosts: &BTreeMap<String, Ipv4Addr>,
    ) -> Result<(), String> {
        let dir = Path::new("/etc/netns").join(namespace);
        self.create_dirs(&dir)?;
        let mut by_address: BTreeMap<Ipv4Addr, Vec<&str>> = BTreeMap::new();
        for (name, address) in hosts {
            by_address.entry(*address).or_default().push(name);
        }
        let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
        for (address, names) in by_address {
            text.push_str(&format!("{address}\t{}\n", names.join(" ")));
        }
        let file = dir.join("hosts");
        fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
        self.created.push(Created::File(file));
        Ok(())
    }

    /// `mkdir -p`, remembering what it created.
    fn create_dirs(&mut self, dir: &Path) -> Result<(), String> {
        let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
        for dir in missing.into_iter().rev() {
            fs::create_dir(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            self.created.push(Created::Dir(dir.to_path_buf()));
        }
        Ok(())
    }

    /// A mount point on the host for a pod's bind mount: the pods' mount namespaces are copies of
    /// the host's, so the directory (or, for a file, the empty file) must exist there.
    fn create_mount_point(&mut self, path: &Path, is_dir: bool) -> Result<(), String> {
        if path.exists() {
            return Ok(());
        }
        if is_dir {
            return self.create_dirs(path);
        }
        if let Some(parent) = path.parent() {
            self.create_dirs(parent)?;
        }
        fs::write(path, b"").map_err(|e| format!("create {}: {e}", path.display()))?;
        self.created.push(Created::File(path.to_path_buf()));
        Ok(())
    }

    /// Lays out every volume of the pod in the staging directory and prepares its mounts.
    fn stage_pod(&mut self, m: &Manifests, plan: &PodPlan<'_>) -> Result<Pod, String> {
        let security = plan.spec.security_context.clone().unwrap_or_default();
        let fs_group = security.fs_group;
        let pod_dir = self.stage.path().join(&plan.name);
        let mut volumes = BTreeMap::new();
        for volume in &plan.spec.volumes {
            let staged = stage_volume(m, volume, &pod_dir.join(&volume.name), fs_group)
                .map_err(|e| format!("{}: volume {}: {e}", plan.name, volume.name))?;
            volumes.insert(volume.name.clone(), staged);
        }
        let mut mounts: Vec<&VolumeMount> = plan.container.volume_mounts.iter().collect();
        // Parents before children, as the kubelet mounts them.
        mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
        let mut binds = Vec::new();
        for mount in mounts {
            let staged = volumes.get(&mount.name).ok_or_else(|| {
                format!("{}: volumeMount {} has no volume", plan.name, mount.name)
            })?;
            let target = PathBuf::from(&mount.mount_path);
            if !target.is_absolute() || self.stage.path().starts_with(&target) {
                return Err(format!(
                    "{}: mountPath {} would hide the staging directory",
                    plan.name, mount.mount_path
                ));
            }
            let source = match &mount.sub_path {
                // The kubelet resolves a subPath's symlinks once and bind-mounts what it finds:
                // for a ConfigMap key, the file of the current version, which later updates
                // never replace.
                Some(sub_path) => {
                    let resolved = staged
                        .dir
                        .join(sub_path)
                        .canonicalize()
                        .map_err(|e| format!("{}: subPath {sub_path}: {e}", plan.name))?;
                    if !resolved.starts_with(&staged.dir) {
                        return Err(format!(
                            "{}: subPath {sub_path} leaves the volume",
                            plan.name
                        ));
                    }
                    resolved
                }
                None => staged.dir.clone(),
            };
            self.create_mount_point(&target, source.is_dir())?;
            binds.push(Bind {
                source,
                target,
                read_only: mount.read_only,
            });
        }
        Ok(Pod {
            name: plan.name.clone(),
            program: plan.container.name.clone(),
            volumes,
            binds,
            child: None,
            log: Arc::default(),
            ready: None,
        })
    }

    /// Starts the pod's program in its namespace: mounts, then `setpriv` and `env -i`.
    fn start_pod(
        &mut self,
        index: usize,
        plan: &PodPlan<'_>,
        binaries: &Path,
    ) -> Result<(), String> {
        let namespace = plan.namespace(&self.prefix);
        let pod_security = plan.spec.security_context.clone().unwrap_or_default();
        let security = plan.container.security_context.clone().unwrap_or_default();
        if plan.container.command.is_some() {
            return Err(format!(
                "{}: `command` replaces the image's entrypoint, which the boot test runs",
                plan.name
            ));
        }
        let capabilities = security.capabilities.clone().unwrap_or_default();
        if !capabilities.add.is_empty() {
            return Err(format!(
                "{}: added capabilities are not emulated",
                plan.name
            ));
        }
        let pod = &self.pods[index];

        let mut script = String::from("set -e\n");
        let mount = sh_quote(&self.tools.mount.to_string_lossy());
        for bind in &pod.binds {
            let (source, target) = (
                sh_quote(&bind.source.to_string_lossy()),
                sh_quote(&bind.target.to_string_lossy()),
            );
            script.push_str(&format!("{mount} --bind {source} {target}\n"));
            if bind.read_only {
                script.push_str(&format!("{mount} -o remount,bind,ro {target}\n"));
            }
        }
        if security.read_only_root_filesystem == Some(true) {
            script.push_str(&format!("{mount} -o remount,bind,ro /\n"));
        }
        script.push_str("exec \"$@\"\n");

        let user = security
            .run_as_user
            .or(pod_security.run_as_user)
            .unwrap_or(IMAGE_USER);
        let group = security
            .run_as_group
            .or(pod_security.run_as_group)
            .unwrap_or(IMAGE_USER);
        let mut exec: Vec<String> = vec![
            self.tools.setpriv.to_string_lossy().into_owned(),
            format!("--reuid={user}"),
            format!("--regid={group}"),
        ];
        match pod_security.fs_group {
            Some(fs_group) => exec.push(format!("--groups={fs_group}")),
            None => exec.push("--clear-groups".into()),
        }
        if security.allow_privilege_escalation == Some(false) {
            exec.push("--no-new-privs".into());
        }
        if capabilities.drop.iter().any(|c| c == "ALL") {
            exec.extend(["--inh-caps=-all".into(), "--bounding-set=-all".into()]);
        }
        exec.push("--".into());
        exec.push(self.tools.env.to_string_lossy().into_owned());
        exec.push("-i".into());
        exec.extend(plan.env.iter().map(|(k, v)| format!("{k}={v}")));
        exec.push(format!("HOSTNAME={}", plan.name));
        exec.push(
            binaries
                .join(&plan.container.name)
                .to_string_lossy()
                .into_owned(),
        );
        exec.extend(plan.container.args.iter().cloned());

        let mut child = Command::new(&self.tools.ip)
            .env_clear()
            .args(["netns", "exec", &namespace])
            .arg(&self.tools.sh)
            .arg("-c")
            .arg(&script)
            .arg(&plan.name)
            .args(&exec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: cannot start: {e}", plan.name))?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let pod = &mut self.pods[index];
        let ready_line = format!("{} ready", pod.program);
        if let Some(stdout) = child.stdout.take() {
            follow_log(stdout, pod.log.clone(), Some((ready_line, ready_tx)));
        }
        if let Some(stderr) = child.stderr.take() {
            follow_log(stderr, pod.log.clone(), None);
        }
        pod.child = Some(child);
        pod.ready = Some(ready_rx);
        Ok(())
    }

    fn wait_for_ready_lines(&mut self, until: Instant) -> Result<(), String> {
        for pod in &mut self.pods {
            let ready = pod.ready.take().ok_or("a pod was not started")?;
            loop {
                match ready.recv_timeout(POLL_INTERVAL) {
                    Ok(()) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < until => {
                        if let Some(status) = pod.exit_status() {
                            return Err(format!(
                                "{} exited before it was ready: {status}",
                                pod.name
                            ));
                        }
                    }
                    Err(_) => {
                        let exited = pod.exit_status().map(|s| format!(" (exited: {s})"));
                        return Err(format!(
                            "{} never logged \"{} ready\"{}",
                            pod.name,
                            pod.program,
                            exited.unwrap_or_default()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn pod(&self, name: &str) -> Result<&Pod, String> {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("no pod {name}"))
    }

    /// Every program is still the process the test started.
    fn check_still_running(&mut self) -> Result<(), String> {
        for pod in &mut self.pods {
            if let Some(status) = pod.exit_status() {
                return Err(format!("{} exited: {status}", pod.name));
            }
        }
        Ok(())
    }

    /// SIGTERM to every program at once, as a rollout or node drain does; each must exit 0
    /// within its limit.
    fn stop_pods(&mut self, limits: &BTreeMap<String, Duration>) -> Result<(), String> {
        let started = Instant::now();
        for pod in &self.pods {
            if let Some(child) = &pod.child {
                let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
                // SAFETY: kill(2) takes plain integers; `pid` is our own child, not yet reaped
                // (so not reused).
                if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
                    let e = std::io::Error::last_os_error();
                    return Err(format!("SIGTERM to {}: {e}", pod.name));
                }
            }
        }
        for pod in &mut self.pods {
            let limit = limits.get(&pod.name).copied().unwrap_or(EXIT_MARGIN);
            let Some(child) = pod.child.as_mut() else {
                continue;
            };
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break status,
                    Ok(None) if started.elapsed() > limit => {
                        return Err(format!(
                            "{} did not exit within {limit:?} of SIGTERM",
                            pod.name
                        ));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => return Err(format!("{}: {e}", pod.name)),
                }
            };
            pod.child = None;
            if !status.success() {
                return Err(format!("{} exited with {status} after SIGTERM", pod.name));
            }
        }
        Ok(())
    }

    /// The last lines every program wrote, for a failure message.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for pod in &self.pods {
            let log = pod.log.lock().map(|l| l.clone()).unwrap_or_default();
            let skip = log.len().saturating_sub(LOG_TAIL);
            out.push_str(&format!(
                "\n--- {} (last {} lines) ---\n",
                pod.name,
                log.len() - skip
            ));
            for line in &log[skip..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Kills what still runs and removes everything this run created. Idempotent; returns what
    /// could not be removed.
    fn cleanup(&mut self) -> Vec<String> {
        if self.cleaned {
            return Vec::new();
        }
        self.cleaned = true;
        let mut problems = Vec::new();
        for pod in &mut self.pods {
            if let Some(mut child) = pod.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // A namespace's veth ends go with it; the mounts went with the pods' mount namespaces.
        for namespace in self.namespaces.drain(..).rev() {
            if let Err(e) = ip(&self.tools, &["netns", "del", &namespace]) {
                problems.push(e);
            }
        }
        for created in self.created.drain(..).rev() {
            let (result, path) = match &created {
                Created::File(path) => (fs::remove_file(path), path),
                Created::Dir(path) => (fs::remove_dir(path), path),
            };
            match result {
                Ok(()) => {}
                // A shared directory (/etc/netns, a mount point) that a parallel run or someone
                // else uses now: theirs to remove.
                Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                    println!("leaving {}: no longer empty", path.display());
                }
                Err(e) => problems.push(format!("cannot remove {}: {e}", path.display())),
            }
        }
        problems
    }

    /// The end of a passing run: everything is removed, and nothing of it is left on the host.
    fn close(mut self) {
        let problems = self.cleanup();
        assert!(problems.is_empty(), "cleanup failed: {problems:?}");
        let left = ip(&self.tools, &["netns", "list"]).expect("ip netns list");
        let prefix = format!("{}-", self.prefix);
        assert!(
            !left.lines().any(|l| l.starts_with(&prefix)),
            "namespaces left behind: {left}"
        );
        let etc_left: Vec<String> = fs::read_dir("/etc/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&prefix))
            .collect();
        assert!(
            etc_left.is_empty(),
            "/etc/netns entries left behind: {etc_left:?}"
        );
        let links = ip(&self.tools, &["-o", "link", "show"]).expect("ip link show");
        assert!(
            !links.contains(&self.prefix),
            "the host's network has an interface of this run: {links}"
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("program logs:{}", self.log_tails());
        }
        for problem in self.cleanup() {
            eprintln!("boot test cleanup: {problem}");
        }
    }
}

/// A volume laid out in the staging directory.
struct StagedVolume {
    dir: PathBuf,
    /// File mode and group of projected keys (ConfigMap and Secret volumes).
    mode: u32,
    group: Option<u32>,
}

/// One bind mount into the pod's mount namespace.
struct Bind {
    source: PathBuf,
    target: PathBuf,
    read_only: bool,
}

struct Pod {
    /// The Deployment's name.
    name: String,
    /// The container's name, which is also the binary's and the one in its ready line.
    program: String,
    volumes: BTreeMap<String, StagedVolume>,
    binds: Vec<Bind>,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    ready: Option<mpsc::Receiver<()>>,
}

impl Pod {
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Where a path inside the container is in the staging directory.
    fn host_path(&self, inside: &Path) -> Result<PathBuf, String> {
        self.binds
            .iter()
            .filter_map(|b| {
                let rest = inside.strip_prefix(&b.target).ok()?;
                // Joining "" would add a trailing slash to a file mounted by subPath.
                Some(if rest.as_os_str().is_empty() {
                    b.source.clone()
                } else {
                    b.source.join(rest)
                })
            })
            .next_back()
            .ok_or_else(|| format!("{}: nothing is mounted at {}", self.name, inside.display()))
    }
}

/// Collects a program's output lines; signals `ready` at its ready line.
fn follow_log(
    output: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    mut ready: Option<(String, mpsc::Sender<()>)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if let Some((needle, tx)) = &ready
                && line.contains(needle.as_str())
            {
                let _ = tx.send(());
                ready = None;
            }
            if let Ok(mut log) = log.lock() {
                log.push(line);
            }
        }
    });
}

/// Single-quotes a word for `sh`.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

// ---------------------------------------------------------------------------------------------
// Volumes, the kubelet's way.

/// The kubelet's default file mode for ConfigMap and Secret keys.
const DEFAULT_MODE: u32 = 0o644;

fn stage_volume(
    m: &Manifests,
    volume: &Volume,
    dir: &Path,
    fs_group: Option<u32>,
) -> Result<StagedVolume, String> {
    let (data, mode): (BTreeMap<String, Vec<u8>>, u32) = if let Some(cm) = &volume.config_map {
        if cm.items.is_some() {
            return Err("ConfigMap `items` are not emulated".into());
        }
        let data = m
            .config_maps
            .get(&cm.name)
            .ok_or_else(|| format!("there is no ConfigMap {}", cm.name))?;
        let data = data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        (data, cm.default_mode.unwrap_or(DEFAULT_MODE))
    } else if let Some(secret) = &volume.secret {
        if secret.items.is_some() {
            return Err("Secret `items` are not emulated".into());
        }
        let data = m
            .secrets
            .get(&secret.secret_name)
            .ok_or_else(|| format!("there is no Secret {}", secret.secret_name))?
            .clone();
        (data, secret.default_mode.unwrap_or(DEFAULT_MODE))
    } else if volume.empty_dir.is_some() {
        // Like the kubelet: world-writable, then group-owned by fsGroup with setgid.
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        own(
            dir,
            fs_group,
            if fs_group.is_some() { 0o2777 } else { 0o777 },
        )?;
        return Ok(StagedVolume {
            dir: dir.to_path_buf(),
            mode: 0,
            group: fs_group,
        });
    } else {
        return Err("only configMap, secret and emptyDir volumes are emulated".into());
    };
    project(dir, &data, mode, fs_group).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(StagedVolume {
        dir: dir.to_path_buf(),
        mode,
        group: fs_group,
    })
}

fn own(path: &Path, group: Option<u32>, mode: u32) -> Result<(), String> {
    if group.is_some() {
        chown(path, Some(0), group).map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// Writes `files` into `dir` the way the kubelet's AtomicWriter does, first time or update: the
/// keys go into a fresh `..<timestamp>` directory, a `..data_tmp` symlink to it is renamed over
/// `..data` (the one atomic step), each key is a `<key> -> ..data/<key>` symlink, keys no longer
/// present lose theirs, and the previous version is removed.
fn project(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    mode: u32,
    group: Option<u32>,
) -> Result<(), String> {
    let io = |what: &str, path: &Path, e: std::io::Error| format!("{what} {}: {e}", path.display());
    fs::create_dir_all(dir).map_err(|e| io("mkdir", dir, e))?;
    own(dir, group, 0o755)?;
    let data_link = dir.join("..data");
    let previous = fs::read_link(&data_link).ok();

    let version = new_version_dir(dir)?;
    let version_dir = dir.join(&version);
    for (key, bytes) in files {
        if key.contains('/') || key.starts_with("..") {
            return Err(format!("key {key:?} is not a plain file name"));
        }
        let file = version_dir.join(key);
        fs::write(&file, bytes).map_err(|e| io("write", &file, e))?;
        own(&file, group, mode)?;
    }
    own(&version_dir, group, 0o755)?;

    let tmp_link = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp_link);
    symlink(&version, &tmp_link).map_err(|e| io("symlink", &tmp_link, e))?;
    fs::rename(&tmp_link, &data_link).map_err(|e| io("rename", &data_link, e))?;

    for key in files.keys() {
        let link = dir.join(key);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(key), &link).map_err(|e| io("symlink", &link, e))?;
        }
    }
    let entries = fs::read_dir(dir).map_err(|e| io("read", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !files.contains_key(&name) {
            fs::remove_file(entry.path()).map_err(|e| io("remove", &entry.path(), e))?;
        }
    }
    if let Some(previous) = previous {
        let old = dir.join(previous);
        fs::remove_dir_all(&old).map_err(|e| io("remove", &old, e))?;
    }
    Ok(())
}

/// A new `..2026_11_26_12_00_00.<nanoseconds>` directory in `dir`; returns its name.
fn new_version_dir(dir: &Path) -> Result<PathBuf, String> {
    let format = time::macros::format_description!(
        "..[year]_[month]_[day]_[hour]_[minute]_[second].[subsecond digits:9]"
    );
    for _ in 0..100 {
        let name = time::OffsetDateTime::now_utc()
            .format(format)
            .map_err(|e| e.to_string())?;
        match fs::create_dir(dir.join(&name)) {
            Ok(()) => return Ok(PathBuf::from(name)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("mkdir {name}: {e}")),
        }
    }
    Err(format!("no fresh version directory in {}", dir.display()))
}

// ---------------------------------------------------------------------------------------------
// The client: a thread in the client namespace per call, plain HTTP/1.1 and gRPC health.

struct Client {
    /// `/run/netns/<prefix>-client`.
    netns: PathBuf,
    /// What the pods' /etc/hosts says; the test's own /etc/hosts is the host's, so the client
    /// resolves Service names from this.
    hosts: BTreeMap<String, Ipv4Addr>,
}

impl Client {
    /// Runs `f` on a thread that has entered the client's network namespace: every socket it
    /// opens lives there. Namespaces are per thread, so the rest of the test stays on the host.
    fn within<T: Send>(&self, f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
        std::thread::scope(|scope| {
            let thread = scope.spawn(|| {
                enter_network_namespace(&self.netns)?;
                f()
            });
            match thread.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn resolve(&self, host: &str) -> Result<Ipv4Addr, String> {
        self.hosts
            .get(host)
            .copied()
            .ok_or_else(|| format!("{host} is no Service name"))
    }

    fn http(&self, to: SocketAddr, host: &str, request: &Request<'_>) -> Result<Reply, String> {
        self.within(|| http(to, host, request))
    }
}

fn enter_network_namespace(netns: &Path) -> Result<(), String> {
    let file = fs::File::open(netns).map_err(|e| format!("{}: {e}", netns.display()))?;
    // SAFETY: setns(2) only reads the descriptor, which `file` keeps open across the call, and
    // changes the network namespace of the calling thread alone.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "setns {}: {}",
            netns.display(),
            std::io::Error::last_os_error()
        ))
    }
}

struct Request<'a> {
    method: &'a str,
    target: String,
    headers: Vec<(&'a str, String)>,
    body: Vec<u8>,
}

impl<'a> Request<'a> {
    fn new(method: &'a str, target: impl Into<String>) -> Self {
        Self {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn bearer(mut self, token: &str) -> Self {
        self.headers
            .push(("Authorization", format!("bearer {token}")));
        self
    }

    fn json(mut self, body: &Value) -> Self {
        self.headers
            .push(("Content-Type", "application/json".to_owned()));
        self.body = body.to_string().into_bytes();
        self
    }

    fn form(mut self, fields: &[(&str, &str)]) -> Self {
        self.headers.push((
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        ));
        let pairs: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        self.body = pairs.join("&").into_bytes();
        self
    }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON body, if the status is `want`.
    fn expect(&self, want: u16, what: &str) -> Result<Value, String> {
        if self.status != want {
            return Err(format!(
                "{what}: status {}, expected {want}: {}",
                self.status,
                self.text()
            ));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("{what}: not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection, bounded by [`REQUEST_TIMEOUT`].
fn http(to: SocketAddr, host: &str, request: &Request<'_>) -> Result<Reply, String> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let described = format!("{} http://{host}{}", request.method, request.target);
    let fail = |e: std::io::Error| format!("{described}: {e}");
    let mut stream = TcpStream::connect_timeout(&to, REQUEST_TIMEOUT).map_err(fail)?;
    stream
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(fail)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        request.method,
        request.target,
        request.body.len()
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(fail)?;
    stream.write_all(&request.body).map_err(fail)?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{described}: no complete answer within {REQUEST_TIMEOUT:?}"
            ));
        }
        stream.set_read_timeout(Some(left)).map_err(fail)?;
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(e)),
        }
    }
    parse_reply(&raw).map_err(|e| format!("{described}: {e}"))
}

/// A complete HTTP/1.1 response read until the server closed the connection.
fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the response head")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    if chunked {
        body = decode_chunked(&body)?;
    } else if let Some(length) = length {
        if body.len() < length {
            return Err(format!("body cut short: {} of {length} bytes", body.len()));
        }
        body.truncate(length);
    }
    Ok(Reply { status, body })
}

fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line cut short")?;
        let size_text = std::str::from_utf8(&rest[..end]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("chunk cut short".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// Probes, as the kubelet runs them against the pod's address.

/// What Prometheus does with the addresses `bookstore-metrics` resolves to: `GET /metrics` on
/// each pod's containerPort named `metrics`, which must answer the program's own series.
fn scrape_metrics(client: &Client, plans: &[PodPlan<'_>]) -> Result<(), String> {
    for plan in plans {
        let port = plan
            .container
            .ports
            .iter()
            .find(|port| port.name.as_deref() == Some("metrics"))
            .ok_or_else(|| format!("{}: no containerPort named metrics", plan.name))?
            .container_port;
        let to = SocketAddr::from((plan.address, port));
        let reply = client.http(to, &to.to_string(), &Request::new("GET", "/metrics"))?;
        let text = reply.text();
        let own = format!("program=\"{}\"", plan.container.name);
        if reply.status != 200 || !text.contains(&own) {
            return Err(format!(
                "{}: GET /metrics on {to} answered {} without {own}: {}",
                plan.name,
                reply.status,
                text.chars().take(2000).collect::<String>()
            ));
        }
    }
    Ok(())
}

fn run_probes(client: &Client, plan: &PodPlan<'_>, until: Instant) -> Result<(), String> {
    let container = plan.container;
    let probes = [
        ("startupProbe", &container.startup_probe),
        ("readinessProbe", &container.readiness_probe),
        ("livenessProbe", &container.liveness_probe),
    ];
    for (kind, probe) in probes {
        let Some(probe) = probe else {
            continue;
        };
        let what = format!("{}: {kind}", plan.name);
        poll(until, &what, || {
            run_probe(client, plan.address, container, probe)
        })?;
    }
    Ok(())
}

fn run_probe(
    client: &Client,
    address: Ipv4Addr,
    container: &Container,
    probe: &Probe,
) -> Result<(), String> {
    if let Some(grpc) = &probe.grpc {
        let to = SocketAddr::from((address, grpc.port));
        let service = grpc.service.clone().unwrap_or_default();
        return client.within(|| grpc_health(to, &service));
    }
    if let Some(get) = &probe.http_get {
        let port = container_port_number(container, &get.port)
            .ok_or_else(|| format!("no container port {:?}", get.port))?;
        let to = SocketAddr::from((address, port));
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        let reply = client.http(to, &to.to_string(), &Request::new("GET", path))?;
        // The kubelet counts 200 to 399 as success.
        return if (200..400).contains(&reply.status) {
            Ok(())
        } else {
            Err(format!("HTTP {}: {}", reply.status, reply.text()))
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = container_port_number(container, &tcp.port)
            .ok_or_else(|| format!("no container port {:?}", tcp.port))?;
        let to = SocketAddr::from((address, port));
        return client.within(|| {
            TcpStream::connect_timeout(&to, REQUEST_TIMEOUT)
                .map(drop)
                .map_err(|e| format!("connect {to}: {e}"))
        });
    }
    Err("only grpc, httpGet and tcpSocket probes are emulated".into())
}

/// `grpc.health.v1.Health/Check`, as the kubelet's gRPC probe calls it.
fn grpc_health(to: SocketAddr, service: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = HealthClientBuilder::new("kubelet-probe")
            .address(to)
            .build();
        let request = HealthCheckRequest {
            service: service.to_owned().into(),
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, client.check(request))
            .await
            .map_err(|_| format!("gRPC health check of {to} timed out"))?
            .map_err(|status| format!("gRPC health check of {to} ({service:?}): {status:?}"))?;
        let status = response.into_inner().status;
        if status == ServingStatus::SERVING {
            Ok(())
        } else {
            Err(format!("{to} reports {status:?} for {service:?}"))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The REST flow.

/// The gateway's API through its Service name, as another pod would call it.
struct Api<'a> {
    client: &'a Client,
    to: SocketAddr,
    host: String,
}

impl<'a> Api<'a> {
    fn new(client: &'a Client, m: &Manifests, service: &str) -> Result<Self, String> {
        let port = m
            .services
            .get(service)
            .and_then(|s| s.ports.first())
            .map(|p| p.port)
            .ok_or_else(|| format!("Service {service} has no port"))?;
        let address = client.resolve(service)?;
        Ok(Self {
            client,
            to: SocketAddr::from((address, port)),
            host: format!("{service}:{port}"),
        })
    }

    fn send(&self, request: Request<'_>) -> Result<Reply, String> {
        self.client.http(self.to, &self.host, &request)
    }
}

fn cents(value: &Value) -> Option<i64> {
    value.as_f64().map(|v| (v * 100.0).round() as i64)
}

fn rest_flow(api: &Api<'_>, effective: &BTreeMap<String, Effective>) -> Result<(), String> {
    let Some(Effective::Account(account)) = effective.get("account") else {
        return Err("no account configuration".into());
    };
    let Some(Effective::Payment(payment)) = effective.get("payment") else {
        return Err("no payment configuration".into());
    };
    // The administrator account seeds from its ConfigMap and the account-admin Secret.
    let admin = &account.admin;
    let (client_id, client_secret) = FRONTEND_CLIENT;
    let login = api
        .send(Request::new("POST", "/oauth/token").form(&[
            ("grant_type", "password"),
            ("username", &admin.username),
            ("password", &admin.password),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("scope", "BROWSER"),
        ]))?
        .expect(200, "log in as the seeded administrator")?;
    let token = login["access_token"]
        .as_str()
        .ok_or_else(|| format!("no access_token in {login}"))?
        .to_owned();
    let is_admin = login["authorities"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r == "ROLE_ADMIN"));
    if !is_admin {
        return Err(format!(
            "{} is not an administrator: {login}",
            admin.username
        ));
    }

    let products = api
        .send(Request::new("GET", "/restful/products"))?
        .expect(200, "list the products")?;
    let products = products.as_array().cloned().unwrap_or_default();
    let stock = |id: i64| -> Result<(i64, i64), String> {
        let pile = api
            .send(Request::new("GET", format!("/restful/products/stockpile/{id}")).bearer(&token))?
            .expect(200, "read a stockpile")?;
        match (pile["amount"].as_i64(), pile["frozen"].as_i64()) {
            (Some(amount), Some(frozen)) => Ok((amount, frozen)),
            _ => Err(format!("stockpile of {id}: {pile}")),
        }
    };
    let mut chosen = None;
    for product in &products {
        let (Some(id), Some(price)) = (product["id"].as_i64(), cents(&product["price"])) else {
            return Err(format!("a product without id or price: {product}"));
        };
        let (amount, frozen) = stock(id)?;
        if amount >= 1 {
            chosen = Some((id, price, amount, frozen));
            break;
        }
    }
    let (id, price, amount, frozen) =
        chosen.ok_or_else(|| format!("no product in stock among {} products", products.len()))?;
    let balance = || -> Result<i64, String> {
        let wallet = api
            .send(Request::new("GET", "/restful/wallet").bearer(&token))?
            .expect(200, "read the wallet")?;
        cents(&wallet["balance"]).ok_or_else(|| format!("no balance in {wallet}"))
    };
    let balance_before = balance()?;

    // Settle: payment reserves the stock in the warehouse with a service token it gets from the
    // gateway's token endpoint (its client secret from the payment-oauth-client Secret).
    let settlement = json!({
        "items": [{"id": id, "amount": 1}],
        "purchase": {"name": "Boot Test", "telephone": "18888888888",
                     "location": "deploy/base", "pay": "wechat", "delivery": true},
    });
    let created = api
        .send(
            Request::new("POST", "/restful/settlements")
                .bearer(&token)
                .json(&settlement),
        )?
        .expect(200, "settle one item")?;
    let total = price + payment.payment.shipping_fee_cents;
    if cents(&created["totalPrice"]) != Some(total) || created["payState"] != "WAITING" {
        return Err(format!(
            "the settlement should be WAITING for {total} cents (price plus the ConfigMap's \
             shipping fee): {created}"
        ));
    }
    let pay_id = created["payId"]
        .as_str()
        .ok_or_else(|| format!("no payId in {created}"))?
        .to_owned();
    if stock(id)? != (amount - 1, frozen + 1) {
        return Err(format!(
            "the settlement did not reserve one unit of product {id}"
        ));
    }

    let paid = api
        .send(Request::new("PATCH", format!("/restful/pay/{pay_id}?state=PAYED")).bearer(&token))?
        .expect(200, "pay")?;
    if paid["code"] != 0 {
        return Err(format!("paying answered {paid}"));
    }
    let now = api
        .send(Request::new("GET", format!("/restful/pay/{pay_id}")).bearer(&token))?
        .expect(200, "read the payment")?;
    if now["payState"] != "PAYED" {
        return Err(format!("the payment is not PAYED: {now}"));
    }
    // The commit reaches the warehouse through payment's outbox: at once when the warehouse
    // answers, else by the relay's retry.
    poll(
        Instant::now() + RELOAD_LIMIT,
        &format!("the paid unit of product {id} leaves the stock"),
        || match stock(id)? {
            now if now == (amount - 1, frozen) => Ok(()),
            now => Err(format!(
                "stock {now:?}, before the settlement {:?}",
                (amount, frozen)
            )),
        },
    )?;
    let balance_after = balance()?;
    if balance_before - balance_after != total {
        return Err(format!(
            "the wallet went from {balance_before} to {balance_after} cents, expected to pay {total}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Hot reload: the gateway's ConfigMap, updated in place.

fn hot_reload(
    h: &mut Harness,
    m: &Manifests,
    plans: &[PodPlan<'_>],
    api: &Api<'_>,
    clock: &Clock,
) -> Result<(), String> {
    let gateway = plans
        .iter()
        .find(|p| p.name == "gateway")
        .ok_or("no gateway pod")?;
    let config_path = env_value(&gateway.env, "CONFIG_PATH").ok_or("no CONFIG_PATH")?;
    let (volume, map_name, key) = config_volume(gateway, Path::new(config_path))?;
    let original = m
        .config_maps
        .get(&map_name)
        .ok_or_else(|| format!("no ConfigMap {map_name}"))?;
    let toml_text = original
        .get(&key)
        .ok_or_else(|| format!("ConfigMap {map_name} has no key {key}"))?;

    // The warehouse backend moved to a port nothing listens on: the next version of the
    // ConfigMap, as `kubectl edit` would leave it.
    let mut table: toml::Table = toml_text
        .parse()
        .map_err(|e| format!("{map_name}/{key}: {e}"))?;
    let hostports = table
        .get_mut("warehouse")
        .and_then(|w| w.get_mut("client"))
        .and_then(|c| c.get_mut("hostport"))
        .and_then(|h| h.as_array_mut())
        .ok_or("the gateway's ConfigMap has no [warehouse.client] hostport")?;
    let first = hostports
        .first()
        .and_then(|h| h.as_str())
        .ok_or("[warehouse.client] hostport is empty")?;
    let host = first
        .rsplit_once(':')
        .map_or(first, |(host, _)| host)
        .to_owned();
    *hostports = vec![toml::Value::String(format!("{host}:9"))];
    let edited = toml::to_string(&table).map_err(|e| e.to_string())?;

    let update = |h: &Harness, text: &str| -> Result<(), String> {
        let pod = h.pod(&gateway.name)?;
        let staged = pod
            .volumes
            .get(&volume)
            .ok_or_else(|| format!("no staged volume {volume}"))?;
        let mut data: BTreeMap<String, Vec<u8>> = original
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        data.insert(key.clone(), text.as_bytes().to_vec());
        project(&staged.dir, &data, staged.mode, staged.group)
    };
    let products = || api.send(Request::new("GET", "/restful/products"));
    let readyz = || -> Result<(u16, Value), String> {
        let reply = api.send(Request::new("GET", "/readyz"))?;
        let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        Ok((reply.status, body))
    };

    update(h, &edited)?;
    poll(
        clock.within(RELOAD_LIMIT),
        &format!(
            "after [warehouse.client] hostport = [\"{host}:9\"], the gateway answers 503 on the catalogue and reports the warehouse down, staying ready"
        ),
        || {
            let reply = products()?;
            let (status, body) = readyz()?;
            // Degraded, not unready: only the warehouse's routes fail.
            if reply.status == 503
                && status == 200
                && body["degraded"] == true
                && body["backends"]["warehouse"] == "down"
            {
                Ok(())
            } else {
                Err(format!(
                    "/restful/products {}, /readyz {status} {body}",
                    reply.status
                ))
            }
        },
    )?;
    h.check_still_running()?;

    update(h, toml_text)?;
    poll(
        clock.within(RELOAD_LIMIT),
        "after the original ConfigMap came back, the gateway serves and is ready again",
        || {
            let reply = products()?;
            let (status, body) = readyz()?;
            if reply.status == 200 && status == 200 && body["degraded"] == false {
                Ok(())
            } else {
                Err(format!(
                    "/restful/products {}, /readyz {status} {body}",
                    reply.status
                ))
            }
        },
    )?;
    h.check_still_running()
}

/// The volume mounted at `config_path`'s directory, its ConfigMap and the key behind the file.
fn config_volume(
    plan: &PodPlan<'_>,
    config_path: &Path,
) -> Result<(String, String, String), String> {
    let dir = config_path.parent().ok_or("CONFIG_PATH has no directory")?;
    let key = config_path
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or("CONFIG_PATH has no file name")?;
    let mount = plan
        .container
        .volume_mounts
        .iter()
        .find(|mount| {
            Path::new(&mount.mount_path) == dir || Path::new(&mount.mount_path) == config_path
        })
        .ok_or_else(|| format!("nothing is mounted at {}", dir.display()))?;
    let config_map = plan
        .spec
        .volumes
        .iter()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.config_map.as_ref())
        .ok_or_else(|| format!("volume {} is no ConfigMap", mount.name))?;
    let key = mount.sub_path.clone().unwrap_or_else(|| key.to_owned());
    Ok((mount.name.clone(), config_map.name.clone(), key))
}

// ---------------------------------------------------------------------------------------------
// Tests of the pieces that need no root.

#[test]
fn configmap_updates_swap_the_data_symlink() {
    let dir = tempfile::tempdir().expect("temp dir");
    let volume = dir.path().join("config");
    let first = BTreeMap::from([
        ("gateway.toml".to_owned(), b"one".to_vec()),
        ("old.toml".to_owned(), b"gone soon".to_vec()),
    ]);
    project(&volume, &first, 0o440, None).expect("first projection");
    let version_one = fs::read_link(volume.join("..data")).expect("..data");
    assert!(
        version_one.to_string_lossy().starts_with("..20"),
        "{version_one:?}"
    );
    assert_eq!(
        fs::read_link(volume.join("gateway.toml")).expect("link"),
        Path::new("..data/gateway.toml")
    );
    assert_eq!(fs::read(volume.join("gateway.toml")).expect("read"), b"one");
    let mode = fs::metadata(volume.join("gateway.toml"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o440);

    // A process that opened the file keeps the old version; a fresh open sees the new one.
    let mut held = fs::File::open(volume.join("gateway.toml")).expect("open");
    let second = BTreeMap::from([("gateway.toml".to_owned(), b"two".to_vec())]);
    project(&volume, &second, 0o440, None).expect("second projection");
    let version_two = fs::read_link(volume.join("..data")).expect("..data");
    assert_ne!(version_one, version_two);
    assert!(
        !volume.join(&version_one).exists(),
        "the old version is removed"
    );
    assert!(
        !volume.join("old.toml").exists(),
        "a dropped key loses its link"
    );
    assert!(!volume.join("..data_tmp").exists());
    assert_eq!(fs::read(volume.join("gateway.toml")).expect("read"), b"two");
    let mut old = String::new();
    held.read_to_string(&mut old).expect("read held");
    assert_eq!(old, "one");
}

#[test]
fn http_replies_are_parsed() {
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let reply = parse_reply(chunked).expect("chunked");
    assert_eq!((reply.status, reply.text().as_str()), (200, "hello world"));
    let sized = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}";
    let reply = parse_reply(sized).expect("sized");
    assert_eq!((reply.status, reply.text().as_str()), (503, "{}"));
    assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
    assert_eq!(form_encode("a b/c+d"), "a%20b%2Fc%2Bd");
    assert_eq!(sh_quote("it's"), r"'it'\''s'");
}
