//! The Kubernetes manifests agree with the programs they deploy.
//!
//! `kubectl kustomize` renders `deploy/base` and `deploy/overlays/postgres` (offline: it never
//! contacts a cluster). Every ConfigMap's TOML is then parsed by the program's real
//! configuration type, first alone (`ConfigSource::file_only`, so `deny_unknown_fields` catches a
//! misspelt key) and then with the container's `BOOKSTORE_*` environment layered on top, resolved
//! from the rendered Secrets the way the kubelet and figment would. From that effective
//! configuration the test checks what only the program knows: listen port = containerPort =
//! probe port = Service targetPort, probe kinds and gRPC health service names, that the drain
//! fits in the grace period, that every key file the config names is in a mounted Secret, that
//! the SQLite file sits on a writable volume or the PostgreSQL URL names the database Service,
//! its credentials and a database the init script creates, that backend `host:port` entries name
//! the right Services, that the payment service's OAuth2 secret matches the hash the gateway
//! holds, that the development key pair signs and verifies, and that every image is a skaffold
//! artifact. `deploy/check.sh` runs the schema and lint checks this test does not repeat.
//!
//! The `*_is_caught` tests break a scratch copy of the rendered base in one way each and expect
//! the checks to say so, so a check that cannot fail would show up here.
//!
//! Set `DEPLOY_CHECK_ROOT` to check another checkout (for example a scratch copy with a
//! deliberately broken manifest) instead of this one.
//!
//! The manifest model, the rendering and the environment resolution live in `deploy/src/k8s.rs`;
//! the programs' configuration loading in `deploy/src/programs.rs` (the boot test uses both).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use bookstore_deploy::{
    k8s::{
        BASE_DIR, CONFIG_DIR, Container, ContainerPort, Manifests, NAMESPACE, POSTGRES_DIR,
        PodSpec, PortRef, Problems, container_port_number, expand_env_references, manifests,
        repo_root, resolve_env,
    },
    programs::{Effective, Loader, View, load_as},
};
use platform::{
    configuration::LogFormat,
    tokens::{Claims, TokenSigner, TokenUse, TokenVerifier},
};
use serde::Deserialize;

// ---------------------------------------------------------------------------------------------
// The programs: what each one's effective configuration says.

/// Which database the deployment is meant to use.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Variant {
    /// deploy/base: SQLite on a volume, one replica of everything.
    Sqlite,
    /// deploy/overlays/postgres: the PostgreSQL StatefulSet, two replicas of every program.
    Postgres,
}

#[derive(Debug, Clone, Copy)]
enum ProbeKind {
    /// Native gRPC probes; readiness asks for this service name.
    Grpc { readiness_service: &'static str },
    /// tcpSocket (Thrift has no standard health RPC).
    Tcp,
    /// httpGet on /readyz (readiness) and /healthz (liveness).
    Http,
}

struct Program {
    name: &'static str,
    probes: ProbeKind,
    /// Whether clients balance over pod addresses themselves (headless Service).
    headless: bool,
    load: Loader,
}

const PROGRAMS: [Program; 4] = [
    Program {
        name: "account",
        probes: ProbeKind::Tcp,
        headless: true,
        load: load_as::<account::configuration::Settings>,
    },
    Program {
        name: "warehouse",
        probes: ProbeKind::Grpc {
            readiness_service: warehouse::SERVICE_NAME,
        },
        headless: true,
        load: load_as::<warehouse::configuration::Settings>,
    },
    Program {
        name: "payment",
        probes: ProbeKind::Grpc {
            readiness_service: payment::SERVICE_NAME,
        },
        headless: true,
        load: load_as::<payment::configuration::Settings>,
    },
    Program {
        name: "gateway",
        probes: ProbeKind::Http,
        headless: false,
        load: load_as::<gateway::configuration::GatewayConfig>,
    },
];

// ---------------------------------------------------------------------------------------------
// The checks. Each adds human-readable problems to a list; the tests print them all.

/// What one program's checks found out, for the checks across programs.
struct Checked {
    name: &'static str,
    effective: Effective,
    view: View,
    /// Key file contents by config key.
    key_files: BTreeMap<&'static str, Vec<u8>>,
}

/// Every check on one rendered deployment.
fn check_deployment(m: &Manifests, variant: Variant, skaffold: &Skaffold) -> Problems {
    let mut problems = Problems::default();
    let mut checked = Vec::new();
    for program in &PROGRAMS {
        if let Some(c) = check_program(m, program, variant, skaffold, &mut problems) {
            checked.push(c);
        }
    }
    check_across_programs(&checked, &mut problems);
    if variant == Variant::Postgres {
        check_postgres(m, &checked, &mut problems);
    }
    problems
}

fn check_program(
    m: &Manifests,
    program: &Program,
    variant: Variant,
    skaffold: &Skaffold,
    problems: &mut Problems,
) -> Option<Checked> {
    let name = program.name;
    let Some(deployment) = m.deployments.get(name) else {
        problems.add(format!("{name}: no Deployment {name}"));
        return None;
    };
    let pod = &deployment.spec.template.spec;
    let Some(container) = pod.containers.iter().find(|c| c.name == name) else {
        problems.add(format!("{name}: the Deployment has no container {name}"));
        return None;
    };

    // Replicas and image.
    let want_replicas = match variant {
        Variant::Sqlite => 1,
        Variant::Postgres => 2,
    };
    let replicas = deployment.spec.replicas.unwrap_or(1);
    problems.check(replicas == want_replicas, || {
        format!("{name}: {replicas} replicas, expected {want_replicas} ({variant:?})")
    });
    match skaffold.image_for(name) {
        Some(image) => problems.check(container.image == image, || {
            format!(
                "{name}: image {} is not the skaffold artifact {image} built with PROGRAM={name}, so skaffold would not deploy what it builds",
                container.image
            )
        }),
        None => problems.add(format!(
            "{name}: skaffold.yaml builds no image with PROGRAM={name}"
        )),
    }
    let labels = &deployment.spec.template.metadata.labels;
    problems.check(
        !deployment.spec.selector.match_labels.is_empty()
            && deployment
                .spec
                .selector
                .match_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v)),
        || format!("{name}: the selector does not match the pod labels"),
    );

    // The config file: a key of the ConfigMap mounted as CONFIG_PATH's directory.
    let env = resolve_env(m, name, container, problems);
    let config_path = format!("{CONFIG_DIR}/{name}.toml");
    let env_config_path = env.iter().find(|(k, _)| k == "CONFIG_PATH").map(|(_, v)| v);
    problems.check(env_config_path == Some(&config_path), || {
        format!("{name}: CONFIG_PATH is {env_config_path:?}, expected {config_path}")
    });
    let toml = config_file(m, name, pod, container, &config_path, problems)?;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, toml).expect("write config");
    let effective = match (program.load)(&file, &env) {
        Ok(effective) => effective,
        Err(e) => {
            problems.add(format!(
                "{name}: ConfigMap {name}-config is not a valid {name} configuration ({e})"
            ));
            return None;
        }
    };
    let view = effective.view();
    for rule in &view.rule_problems {
        problems.add(format!("{name}: {rule}"));
    }
    problems.check(view.log_format == LogFormat::Json, || {
        format!("{name}: [log] format should be json in Kubernetes")
    });

    // Ports: listen = containerPort = probe ports = Service targetPort.
    let listen: Option<SocketAddr> = view.listen.parse().ok();
    let Some(listen) = listen else {
        problems.add(format!(
            "{name}: [server] listen {:?} is not an address",
            view.listen
        ));
        return None;
    };
    problems.check(listen.ip().is_unspecified(), || {
        format!("{name}: [server] listen {listen} must bind 0.0.0.0: probes and peers connect to the pod IP")
    });
    let port = listen.port();
    let Some(container_port) = container.ports.iter().find(|p| p.container_port == port) else {
        problems.add(format!(
            "{name}: [server] listen port {port} is not a containerPort ({:?})",
            container
                .ports
                .iter()
                .map(|p| p.container_port)
                .collect::<Vec<_>>()
        ));
        return None;
    };
    // Metrics: on a port of their own, named `metrics`, which Prometheus scrapes.
    let metrics_listen: Option<SocketAddr> = view.metrics_listen.parse().ok();
    match metrics_listen {
        Some(metrics) if metrics.ip().is_unspecified() && metrics.port() != port => {
            problems.check(
                container.ports.iter().any(|p| {
                    p.container_port == metrics.port() && p.name.as_deref() == Some("metrics")
                }),
                || {
                    format!(
                        "{name}: [metrics] listen port {} is not the containerPort named metrics",
                        metrics.port()
                    )
                },
            );
        }
        _ => problems.add(format!(
            "{name}: [metrics] listen {:?} must be 0.0.0.0 on a port of its own",
            view.metrics_listen
        )),
    }
    check_probes(name, program.probes, container, port, problems);
    check_service(m, program, labels, container, container_port, problems);

    // Shutdown: the preStop sleep, then SIGTERM and the drain, must fit the grace period.
    let grace_s = pod.termination_grace_period_seconds.unwrap_or(30);
    let pre_stop_s = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .map(|s| s.seconds);
    match pre_stop_s {
        None => problems.add(format!("{name}: no preStop sleep")),
        Some(pre_stop_s) => problems.check(pre_stop_s * 1000 + view.shutdown_ms < grace_s * 1000, || {
            format!(
                "{name}: preStop sleep {pre_stop_s}s + shutdown {}ms does not fit in terminationGracePeriodSeconds {grace_s}",
                view.shutdown_ms
            )
        }),
    }

    // Files named in the configuration: each in a mounted Secret.
    let mut key_files = BTreeMap::new();
    for (key, path) in &view.key_files {
        match mounted_secret_file(m, pod, container, path) {
            Ok(bytes) => {
                key_files.insert(*key, bytes);
            }
            Err(e) => problems.add(format!("{name}: {key} {}: {e}", path.display())),
        }
    }

    // The database.
    if let Some(url) = &view.database_url {
        check_database_url(name, url, variant, pod, container, problems);
    }

    // Backends: every host:port names the right Service and one of its ports.
    for backend in &view.backends {
        problems.check(!backend.hostports.is_empty(), || {
            format!("{name}: {} is empty", backend.key)
        });
        for hostport in &backend.hostports {
            if let Err(e) = check_backend(m, backend.service, hostport) {
                problems.add(format!("{name}: {} entry {hostport:?}: {e}", backend.key));
            }
        }
    }

    Some(Checked {
        name,
        effective,
        view,
        key_files,
    })
}
/// The TOML behind `config_path`: the mount at its directory must be the program's ConfigMap,
/// mounted whole (a subPath mount never sees updates, so hot reload would silently stop).
fn config_file<'a>(
    m: &'a Manifests,
    name: &str,
    pod: &PodSpec,
    container: &Container,
    config_path: &str,
    problems: &mut Problems,
) -> Option<&'a str> {
    let (dir, file_name) = config_path.rsplit_once('/')?;
    let Some(mount) = container
        .volume_mounts
        .iter()
        .find(|mount| mount.mount_path.trim_end_matches('/') == dir)
    else {
        problems.add(format!("{name}: nothing is mounted at {dir}"));
        return None;
    };
    problems.check(mount.sub_path.is_none(), || {
        format!(
            "{name}: the config volume is mounted with subPath, so ConfigMap updates never arrive (hot reload breaks)"
        )
    });
    let config_map = pod
        .volumes
        .iter()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.config_map.as_ref());
    let expected = format!("{name}-config");
    match config_map {
        Some(cm) if cm.name == expected => {}
        other => {
            problems.add(format!(
                "{name}: {dir} should be ConfigMap {expected}, is {:?}",
                other.map(|c| &c.name)
            ));
            return None;
        }
    }
    let Some(toml) = m.config_maps.get(&expected).and_then(|d| d.get(file_name)) else {
        problems.add(format!(
            "{name}: ConfigMap {expected} has no key {file_name}"
        ));
        return None;
    };
    Some(toml.as_str())
}

fn check_probes(
    name: &str,
    kind: ProbeKind,
    container: &Container,
    listen_port: u16,
    problems: &mut Problems,
) {
    let probes = [
        ("startupProbe", container.startup_probe.as_ref()),
        ("readinessProbe", container.readiness_probe.as_ref()),
        ("livenessProbe", container.liveness_probe.as_ref()),
    ];
    for (probe_name, probe) in probes {
        let Some(probe) = probe else {
            problems.check(probe_name == "startupProbe", || {
                format!("{name}: no {probe_name}")
            });
            continue;
        };
        let handlers = [
            probe.grpc.is_some(),
            probe.http_get.is_some(),
            probe.tcp_socket.is_some(),
            probe.exec.is_some(),
        ];
        problems.check(handlers.iter().filter(|h| **h).count() == 1, || {
            format!("{name}: {probe_name} must have exactly one handler")
        });
        let port = match kind {
            ProbeKind::Grpc { readiness_service } => {
                let Some(grpc) = &probe.grpc else {
                    problems.add(format!(
                        "{name}: {probe_name} should be a native gRPC probe"
                    ));
                    continue;
                };
                if probe_name == "readinessProbe" {
                    problems.check(grpc.service.as_deref() == Some(readiness_service), || {
                        format!(
                            "{name}: readinessProbe asks for gRPC service {:?}, the server reports {readiness_service:?}",
                            grpc.service
                        )
                    });
                }
                Some(grpc.port)
            }
            ProbeKind::Tcp => match &probe.tcp_socket {
                Some(tcp) => container_port_number(container, &tcp.port),
                None => {
                    problems.add(format!("{name}: {probe_name} should be a tcpSocket probe"));
                    continue;
                }
            },
            ProbeKind::Http => match &probe.http_get {
                Some(http) => {
                    let want = if probe_name == "readinessProbe" {
                        "/readyz"
                    } else {
                        "/healthz"
                    };
                    problems.check(http.path.as_deref() == Some(want), || {
                        format!(
                            "{name}: {probe_name} should GET {want}, gets {:?}",
                            http.path
                        )
                    });
                    container_port_number(container, &http.port)
                }
                None => {
                    problems.add(format!("{name}: {probe_name} should be an httpGet probe"));
                    continue;
                }
            },
        };
        problems.check(port == Some(listen_port), || {
            format!(
                "{name}: {probe_name} probes port {port:?}, but the program listens on {listen_port}"
            )
        });
    }
}

fn check_service(
    m: &Manifests,
    program: &Program,
    pod_labels: &BTreeMap<String, String>,
    container: &Container,
    container_port: &ContainerPort,
    problems: &mut Problems,
) {
    let name = program.name;
    let Some(service) = m.services.get(name) else {
        problems.add(format!("{name}: no Service {name}"));
        return;
    };
    problems.check(
        !service.selector.is_empty()
            && service
                .selector
                .iter()
                .all(|(k, v)| pod_labels.get(k) == Some(v)),
        || {
            format!(
                "{name}: Service selector {:?} does not select the pods",
                service.selector
            )
        },
    );
    let headless = service.cluster_ip.as_deref() == Some("None");
    problems.check(headless == program.headless, || {
        if program.headless {
            format!("{name}: the Service must be headless (clusterIP: None): its clients balance over pod addresses")
        } else {
            format!("{name}: the Service must have a cluster IP")
        }
    });
    problems.check(
        service.ports.iter().any(|p| {
            let target = p.target_port.clone().unwrap_or(PortRef::Number(p.port));
            container_port_number(container, &target) == Some(container_port.container_port)
        }),
        || {
            format!(
                "{name}: no Service port targets the listen port {}",
                container_port.container_port
            )
        },
    );
    // A headless Service's DNS name gives pod addresses and nothing translates ports, so a
    // client connects to the pod on the Service's port number itself.
    if headless {
        for port in &service.ports {
            let target = port
                .target_port
                .clone()
                .unwrap_or(PortRef::Number(port.port));
            let target_number = container_port_number(container, &target);
            problems.check(target_number == Some(port.port), || {
                format!(
                    "{name}: headless Service port {} targets container port {target_number:?}; clients dialling {name}:{} would miss it",
                    port.port, port.port
                )
            });
        }
    }
}

/// The contents of `path`, which must be a key of a Secret mounted at its directory.
fn mounted_secret_file(
    m: &Manifests,
    pod: &PodSpec,
    container: &Container,
    path: &Path,
) -> Result<Vec<u8>, String> {
    let dir = path.parent().ok_or("no directory")?;
    let file_name = path
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or("no file name")?;
    let mount = container
        .volume_mounts
        .iter()
        .find(|mount| Path::new(&mount.mount_path) == dir)
        .ok_or_else(|| format!("nothing is mounted at {}", dir.display()))?;
    let secret = pod
        .volumes
        .iter()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.secret.as_ref())
        .ok_or_else(|| format!("the volume at {} is not a Secret", dir.display()))?;
    m.secret_value(&secret.secret_name, file_name)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("Secret {} has no key {file_name}", secret.secret_name))
}

fn check_database_url(
    name: &str,
    url: &str,
    variant: Variant,
    pod: &PodSpec,
    container: &Container,
    problems: &mut Problems,
) {
    match variant {
        Variant::Sqlite => {
            let Some(path) = url.strip_prefix("sqlite://") else {
                problems.add(format!(
                    "{name}: [database] url {url} is not a sqlite:// URL"
                ));
                return;
            };
            let path = Path::new(path.split('?').next().unwrap_or(path));
            // The root filesystem is read-only: the file must be on a writable volume.
            let on_volume = container.volume_mounts.iter().any(|mount| {
                !mount.read_only
                    && path.starts_with(&mount.mount_path)
                    && pod
                        .volumes
                        .iter()
                        .any(|v| v.name == mount.name && v.empty_dir.is_some())
            });
            problems.check(path.is_absolute() && on_volume, || {
                format!(
                    "{name}: the SQLite file {} is not on a writable volume",
                    path.display()
                )
            });
        }
        Variant::Postgres => match PostgresUrl::parse(url) {
            Some(pg) => problems.check(pg.database == name, || {
                format!(
                    "{name}: connects to database {:?}, expected its own ({name})",
                    pg.database
                )
            }),
            None => problems.add(format!(
                "{name}: the effective database URL is not postgres://user:password@host:port/db"
            )),
        },
    }
}

/// Whether `hostport` (`host:port`, or an `http://host:port/...` URL) names `service` and one of
/// its ports.
fn check_backend(m: &Manifests, service: &str, hostport: &str) -> Result<(), String> {
    let (authority, default_port) = match hostport.strip_prefix("http://") {
        Some(rest) => (rest.split('/').next().unwrap_or(rest), Some(80)),
        None => (hostport, None),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|e| format!("port: {e}"))?),
        None => (authority, default_port.ok_or("no port")?),
    };
    let named = service_of_host(host)
        .ok_or_else(|| format!("host {host} is not a Service name of namespace {NAMESPACE}"))?;
    if named != service {
        return Err(format!("names Service {named}, expected {service}"));
    }
    let spec = m
        .services
        .get(service)
        .ok_or_else(|| format!("there is no Service {service}"))?;
    if !spec.ports.iter().any(|p| p.port == port) {
        return Err(format!(
            "Service {service} has no port {port} (it has {:?})",
            spec.ports
                .iter()
                .map(|p| (p.name.as_deref(), p.port))
                .collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// The Service a DNS name means inside the namespace: `svc`, `svc.ns`, `svc.ns.svc` or
/// `svc.ns.svc.cluster.local`.
fn service_of_host(host: &str) -> Option<&str> {
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    match labels.as_slice() {
        [svc] => Some(svc),
        [svc, ns] | [svc, ns, "svc"] | [svc, ns, "svc", "cluster", "local"] if *ns == NAMESPACE => {
            Some(svc)
        }
        _ => None,
    }
}

/// `postgres://user:password@host:port/database`.
#[derive(Debug)]
struct PostgresUrl {
    user: String,
    password: String,
    host: String,
    port: u16,
    database: String,
}

impl PostgresUrl {
    fn parse(url: &str) -> Option<Self> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))?;
        let (credentials, rest) = rest.rsplit_once('@')?;
        let (user, password) = credentials.split_once(':')?;
        let (authority, database) = rest.split_once('/')?;
        let (host, port) = authority.rsplit_once(':')?;
        Some(Self {
            user: user.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port: port.parse().ok()?,
            database: database.split('?').next()?.to_owned(),
        })
    }
}

/// Checks between programs: tokens, OAuth2 client credentials.
fn check_across_programs(checked: &[Checked], problems: &mut Problems) {
    let find = |name: &str| checked.iter().find(|c| c.name == name);

    // The gateway signs with the private key; every service must verify with its public half
    // and expect the gateway's issuer.
    if let Some(gateway) = find("gateway") {
        let signer = gateway
            .key_files
            .get("[oauth] private_key_path")
            .map(|pem| TokenSigner::from_pem(pem));
        for service in checked.iter().filter(|c| c.name != "gateway") {
            problems.check(service.view.issuer == gateway.view.issuer, || {
                format!(
                    "{}: [auth] issuer {:?} differs from the gateway's [oauth] issuer {:?}",
                    service.name, service.view.issuer, gateway.view.issuer
                )
            });
            let (Some(Ok(signer)), Some(public)) =
                (&signer, service.key_files.get("[auth] public_key_path"))
            else {
                problems.add(format!(
                    "{}: cannot check its token key against the gateway's",
                    service.name
                ));
                continue;
            };
            if let Err(e) = sign_and_verify(signer, public, &service.view.issuer) {
                problems.add(format!(
                    "{}: a token signed by the gateway's key does not verify with the mounted public key: {e}",
                    service.name
                ));
            }
        }
    }

    // The payment service's client credentials must be accepted by the gateway's token endpoint.
    if let (Some(gateway), Some(payment)) = (find("gateway"), find("payment"))
        && let (Effective::Gateway(g), Effective::Payment(p)) =
            (&gateway.effective, &payment.effective)
    {
        let credentials = &p.service_credentials;
        match g
            .oauth
            .clients
            .iter()
            .find(|c| c.id == credentials.client_id)
        {
            None => problems.add(format!(
                "payment: OAuth2 client {} is not registered in the gateway's [oauth] clients",
                credentials.client_id
            )),
            Some(client) => {
                problems.check(
                    client.grants.iter().any(|g| g == "client_credentials"),
                    || {
                        format!(
                            "gateway: client {} may not use client_credentials",
                            client.id
                        )
                    },
                );
                problems.check(client.scopes.contains(&credentials.scope), || {
                    format!(
                        "gateway: client {} may not ask for scope {}",
                        client.id, credentials.scope
                    )
                });
                let matches = PasswordHash::new(&client.secret_hash).is_ok_and(|hash| {
                    Argon2::default()
                        .verify_password(credentials.client_secret.expose().as_bytes(), &hash)
                        .is_ok()
                });
                problems.check(matches, || {
                        format!(
                            "payment: its client secret does not match the hash the gateway holds for {}",
                            client.id
                        )
                    });
            }
        }
    }
}

fn sign_and_verify(signer: &TokenSigner, public_pem: &[u8], issuer: &str) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let claims = Claims {
        user_name: None,
        username: None,
        account_id: None,
        authorities: vec![],
        scope: vec![platform::tokens::SCOPE_SERVICE.to_owned()],
        client_id: "deploy-manifests-test".into(),
        jti: "deploy-manifests-test".into(),
        token_use: TokenUse::Access,
        iss: issuer.to_owned(),
        iat: now,
        exp: now + 60,
    };
    let token = signer.sign(&claims).map_err(|e| e.to_string())?;
    let verifier = TokenVerifier::from_pem(public_pem, issuer).map_err(|e| e.to_string())?;
    let verified = verifier.verify(&token).map_err(|e| e.to_string())?;
    if verified != claims {
        return Err("the claims changed on the way".into());
    }
    Ok(())
}

/// The postgres overlay: every service's URL names the database Service, the credentials the
/// server is initialised with, and a database its init script creates.
fn check_postgres(m: &Manifests, checked: &[Checked], problems: &mut Problems) {
    let Some(postgres) = m.stateful_sets.get("postgres") else {
        problems.add("postgres: no StatefulSet postgres");
        return;
    };
    let pod = &postgres.spec.template.spec;
    let Some(container) = pod.containers.iter().find(|c| c.name == "postgres") else {
        problems.add("postgres: no container postgres");
        return;
    };
    let env: BTreeMap<String, String> = resolve_env(m, "postgres", container, problems)
        .into_iter()
        .collect();
    let init_sql: String = pod
        .volumes
        .iter()
        .filter_map(|v| v.config_map.as_ref())
        .filter_map(|cm| m.config_maps.get(&cm.name))
        .flat_map(|data| data.iter())
        .filter(|(key, _)| key.ends_with(".sql"))
        .map(|(_, sql)| sql.as_str())
        .collect();
    let server_port = container.ports.first().map(|p| p.container_port);
    for c in checked {
        let Some(url) = &c.view.database_url else {
            continue;
        };
        let Some(pg) = PostgresUrl::parse(url) else {
            continue; // reported by check_database_url
        };
        let name = c.name;
        match check_backend(m, "postgres", &format!("{}:{}", pg.host, pg.port)) {
            Ok(()) => problems.check(Some(pg.port) == server_port, || {
                format!(
                    "{name}: connects to port {}, PostgreSQL listens on {server_port:?}",
                    pg.port
                )
            }),
            Err(e) => problems.add(format!("{name}: database host {}: {e}", pg.host)),
        }
        problems.check(env.get("POSTGRES_USER") == Some(&pg.user), || {
            format!(
                "{name}: database user {:?} is not the server's POSTGRES_USER",
                pg.user
            )
        });
        problems.check(env.get("POSTGRES_PASSWORD") == Some(&pg.password), || {
            format!("{name}: the database password is not the server's POSTGRES_PASSWORD")
        });
        problems.check(
            init_sql.contains(&format!("CREATE DATABASE {};", pg.database)),
            || format!("{name}: no init script creates database {}", pg.database),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// skaffold.yaml

#[derive(Debug, Deserialize)]
struct Skaffold {
    build: SkaffoldBuild,
}

#[derive(Debug, Deserialize)]
struct SkaffoldBuild {
    artifacts: Vec<SkaffoldArtifact>,
}

#[derive(Debug, Deserialize)]
struct SkaffoldArtifact {
    image: String,
    docker: Option<SkaffoldDocker>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SkaffoldDocker {
    dockerfile: String,
    #[serde(default)]
    build_args: std::collections::BTreeMap<String, String>,
}

impl Skaffold {
    fn load() -> Self {
        let path = repo_root().join("skaffold.yaml");
        let text = std::fs::read_to_string(&path).expect("read skaffold.yaml");
        serde_yaml_ng::from_str(&text).expect("parse skaffold.yaml")
    }

    /// The image built from docker/Dockerfile with `PROGRAM` = `program`.
    fn image_for(&self, program: &str) -> Option<&str> {
        self.build
            .artifacts
            .iter()
            .find(|a| {
                a.docker.as_ref().is_some_and(|d| {
                    d.dockerfile == "docker/Dockerfile"
                        && d.build_args.get("PROGRAM").map(String::as_str) == Some(program)
                })
            })
            .map(|a| a.image.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn base_manifests_agree_with_the_programs() {
    let problems = check_deployment(&manifests(BASE_DIR), Variant::Sqlite, &Skaffold::load());
    assert!(problems.0.is_empty(), "{BASE_DIR}:\n{problems}");
}

#[test]
fn postgres_overlay_agrees_with_the_programs() {
    let problems = check_deployment(
        &manifests(POSTGRES_DIR),
        Variant::Postgres,
        &Skaffold::load(),
    );
    assert!(problems.0.is_empty(), "{POSTGRES_DIR}:\n{problems}");
}

#[test]
fn environment_references_expand_like_the_kubelet_does() {
    let defined = BTreeMap::from([("USER", "bookstore"), ("PASSWORD", "p4ss")]);
    assert_eq!(
        expand_env_references("postgres://$(USER):$(PASSWORD)@db/x", &defined),
        "postgres://bookstore:p4ss@db/x"
    );
    assert_eq!(
        expand_env_references("$$(USER) $(NOPE) $", &defined),
        "$(USER) $(NOPE) $"
    );
}

/// Breaks one thing in a scratch copy of the rendered base and returns what the checks say.
fn problems_after(break_it: impl FnOnce(&mut Manifests)) -> Problems {
    problems_after_in(BASE_DIR, Variant::Sqlite, break_it)
}

fn problems_after_in(
    dir: &'static str,
    variant: Variant,
    break_it: impl FnOnce(&mut Manifests),
) -> Problems {
    let mut broken = manifests(dir);
    break_it(&mut broken);
    check_deployment(&broken, variant, &Skaffold::load())
}

fn container_of<'a>(m: &'a mut Manifests, name: &str) -> &'a mut Container {
    m.deployments
        .get_mut(name)
        .and_then(|d| {
            d.spec
                .template
                .spec
                .containers
                .iter_mut()
                .find(|c| c.name == name)
        })
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn edit_config(m: &mut Manifests, name: &str, from: &str, to: &str) {
    let toml = m
        .config_maps
        .get_mut(&format!("{name}-config"))
        .and_then(|d| d.get_mut(&format!("{name}.toml")))
        .expect("config");
    assert!(toml.contains(from), "{name}.toml has no {from:?}");
    *toml = toml.replacen(from, to, 1);
}

#[test]
fn a_misspelt_config_key_is_caught() {
    let problems = problems_after(|m| edit_config(m, "warehouse", "drain_seconds", "drain_second"));
    assert!(problems.mentioning("unknown field"), "{problems}");
}

#[test]
fn a_wrong_container_port_is_caught() {
    let problems = problems_after(|m| container_of(m, "warehouse").ports[0].container_port = 8821);
    assert!(
        problems.mentioning("warehouse: [server] listen port 8820 is not a containerPort"),
        "{problems}"
    );
}

#[test]
fn a_listen_port_that_misses_the_probes_and_service_is_caught() {
    let problems = problems_after(|m| {
        edit_config(m, "account", "0.0.0.0:8810", "0.0.0.0:8811");
        container_of(m, "account").ports[0].container_port = 8811;
    });
    // The probes and the Service use the port's name, so they follow; but a headless Service
    // translates nothing, so the gateway dialling account:8810 would miss the pod.
    assert!(
        problems
            .mentioning("account: headless Service port 8810 targets container port Some(8811)"),
        "{problems}"
    );
    let problems = problems_after(|m| {
        edit_config(m, "payment", "0.0.0.0:8830", "0.0.0.0:8831");
        container_of(m, "payment").ports[0].container_port = 8831;
    });
    assert!(
        problems.mentioning("payment: readinessProbe probes port Some(8830)"),
        "{problems}"
    );
}

#[test]
fn a_subpath_config_mount_is_caught() {
    let problems = problems_after(|m| {
        let container = container_of(m, "gateway");
        let mount = container
            .volume_mounts
            .iter_mut()
            .find(|mount| mount.mount_path == CONFIG_DIR)
            .expect("config mount");
        mount.mount_path = format!("{CONFIG_DIR}/gateway.toml");
        mount.sub_path = Some("gateway.toml".into());
    });
    assert!(
        problems.mentioning("gateway: nothing is mounted at /etc/bookstore"),
        "{problems}"
    );
    let problems = problems_after(|m| {
        let mount = container_of(m, "gateway")
            .volume_mounts
            .iter_mut()
            .find(|mount| mount.mount_path == CONFIG_DIR)
            .expect("config mount");
        mount.sub_path = Some("gateway.toml".into());
    });
    assert!(
        problems.mentioning("gateway: the config volume is mounted with subPath"),
        "{problems}"
    );
}

#[test]
fn a_missing_probe_is_caught() {
    let problems = problems_after(|m| container_of(m, "account").readiness_probe = None);
    assert!(
        problems.mentioning("account: no readinessProbe"),
        "{problems}"
    );
    let problems = problems_after(|m| container_of(m, "gateway").liveness_probe = None);
    assert!(
        problems.mentioning("gateway: no livenessProbe"),
        "{problems}"
    );
}

#[test]
fn a_wrong_backend_address_is_caught() {
    let problems =
        problems_after(|m| edit_config(m, "gateway", "\"payment:8830\"", "\"payment:8820\""));
    assert!(
        problems.mentioning("Service payment has no port 8820"),
        "{problems}"
    );
    let problems =
        problems_after(|m| edit_config(m, "payment", "\"warehouse:8820\"", "\"warehous:8820\""));
    assert!(
        problems.mentioning("names Service warehous, expected warehouse"),
        "{problems}"
    );
}

#[test]
fn a_grace_period_shorter_than_the_drain_is_caught() {
    let problems = problems_after(|m| {
        if let Some(d) = m.deployments.get_mut("payment") {
            d.spec.template.spec.termination_grace_period_seconds = Some(12);
        }
    });
    assert!(
        problems.mentioning("payment: preStop sleep 10s + shutdown 10000ms"),
        "{problems}"
    );
}

#[test]
fn a_headless_service_turned_cluster_ip_is_caught() {
    let problems = problems_after(|m| {
        if let Some(s) = m.services.get_mut("warehouse") {
            s.cluster_ip = None;
        }
    });
    assert!(
        problems.mentioning("warehouse: the Service must be headless"),
        "{problems}"
    );
}

#[test]
fn an_image_skaffold_does_not_build_is_caught() {
    let problems =
        problems_after(|m| container_of(m, "payment").image = "bookstore/paymnet".into());
    assert!(
        problems.mentioning("payment: image bookstore/paymnet is not the skaffold artifact"),
        "{problems}"
    );
}

#[test]
fn mismatched_secrets_are_caught() {
    let problems = problems_after(|m| {
        let secret = m
            .secrets
            .iter_mut()
            .find(|(name, _)| name.starts_with("payment-oauth-client"))
            .map(|(_, data)| data)
            .expect("payment-oauth-client");
        secret.insert("client-secret".into(), b"not-the-secret".to_vec());
    });
    assert!(
        problems.mentioning("payment: its client secret does not match"),
        "{problems}"
    );
    let problems = problems_after(|m| {
        let public = platform::tokens::KeyPairPem::generate().public_pem;
        let secret = m
            .secrets
            .iter_mut()
            .find(|(name, _)| name.starts_with("token-signing-public"))
            .map(|(_, data)| data)
            .expect("token-signing-public");
        secret.insert("token-signing.pub.pem".into(), public.into_bytes());
    });
    assert!(
        problems.mentioning("does not verify with the mounted public key"),
        "{problems}"
    );
}

#[test]
fn a_misspelt_environment_override_is_caught() {
    let problems = problems_after(|m| {
        let var = container_of(m, "payment")
            .env
            .iter_mut()
            .find(|v| v.name == "BOOKSTORE_SERVICE_CREDENTIALS__CLIENT_SECRET")
            .expect("client secret variable");
        var.name = "BOOKSTORE_SERVICE_CREDENTIAL__CLIENT_SECRET".into();
    });
    assert!(problems.mentioning("payment: ConfigMap payment-config is not a valid payment configuration (with the container's environment"), "{problems}");
}

#[test]
fn gateway_clients_come_from_the_secret() {
    // Registering the payment client with another client's hash must break the pairing, which
    // proves the gateway's clients are read from the Secret and not from built-in defaults.
    let problems = problems_after(|m| {
        let clients = m
            .secrets
            .iter_mut()
            .find(|(name, _)| name.starts_with("gateway-oauth-clients"))
            .and_then(|(_, data)| data.get_mut("clients"))
            .expect("gateway-oauth-clients");
        let text = String::from_utf8(clients.clone()).expect("utf-8");
        let frontend_hash = text
            .split("secret_hash = \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a hash")
            .to_owned();
        let payment_hash = text
            .split("secret_hash = \"")
            .nth(2)
            .and_then(|rest| rest.split('"').next())
            .expect("a second hash")
            .to_owned();
        *clients = text.replace(&payment_hash, &frontend_hash).into_bytes();
    });
    assert!(
        problems.mentioning("payment: its client secret does not match"),
        "{problems}"
    );
}

#[test]
fn a_broken_database_connection_is_caught() {
    let set_url = |m: &mut Manifests, url: &str| {
        let var = container_of(m, "warehouse")
            .env
            .iter_mut()
            .find(|v| v.name == "BOOKSTORE_DATABASE__URL")
            .expect("database URL variable");
        var.value = Some(url.to_owned());
    };
    let problems = problems_after_in(POSTGRES_DIR, Variant::Postgres, |m| {
        set_url(
            m,
            "postgres://$(DATABASE_USER):$(DATABASE_PASSWORD)@postgres:5432/account",
        )
    });
    assert!(
        problems.mentioning("warehouse: connects to database \"account\""),
        "{problems}"
    );
    let problems = problems_after_in(POSTGRES_DIR, Variant::Postgres, |m| {
        set_url(
            m,
            "postgres://$(DATABASE_USER):$(DATABASE_PASWORD)@postgres:5432/warehouse",
        )
    });
    assert!(
        problems.mentioning("warehouse: env BOOKSTORE_DATABASE__URL keeps an unresolved"),
        "{problems}"
    );
    let problems = problems_after_in(POSTGRES_DIR, Variant::Postgres, |m| {
        set_url(
            m,
            "postgres://$(DATABASE_USER):$(DATABASE_PASSWORD)@postgres:5433/warehouse",
        )
    });
    assert!(
        problems.mentioning("Service postgres has no port 5433"),
        "{problems}"
    );
    let problems = problems_after_in(POSTGRES_DIR, Variant::Sqlite, |_| {});
    assert!(problems.mentioning("is not a sqlite:// URL"), "{problems}");
}

#[test]
fn a_value_the_program_would_refuse_is_caught() {
    let problems = problems_after(|m| {
        edit_config(
            m,
            "payment",
            "reservation_guard_ms = 30000",
            "reservation_guard_ms = 1500",
        )
    });
    assert!(
        problems.mentioning("payment: payment.reservation_guard_ms: must exceed"),
        "{problems}"
    );
}
