#!/usr/bin/env python3
"""Consistency checks that no schema can make, between skaffold.yaml, the Dockerfiles and the
manifests kustomize renders. deploy/check.sh runs it; it needs PyYAML (shipped with
kubernetes-validate) and Python 3.11+ (tomllib).

usage: crosscheck.py REPO_ROOT RENDERED.yaml [RENDERED.yaml ...]

Each rendered file is one complete deployment (base, or an overlay) and is checked on its own.
What the programs' own config types say about the TOML (ports, key paths, backend addresses) is
checked by the Rust test deploy/tests/manifests.rs, which parses it with the real types.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib

import yaml

SKAFFOLD_API_VERSION = "skaffold/v4beta14"
NAMESPACE = "bookstore"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


def load_yaml(path: str):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def workspace_members(root: str, report: Report) -> list[str]:
    try:
        with open(os.path.join(root, "Cargo.toml"), "rb") as f:
            return tomllib.load(f)["workspace"]["members"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        report.error("Cargo.toml", f"cannot read the workspace members: {e!r}")
        return []


# --- skaffold.yaml and the Dockerfiles -------------------------------------------------------


def check_skaffold(root: str, skaffold: dict, report: Report) -> None:
    where = "skaffold.yaml"
    if skaffold.get("apiVersion") != SKAFFOLD_API_VERSION:
        # The JSON schema types apiVersion as any string.
        report.error(where, f"apiVersion {skaffold.get('apiVersion')!r} is not {SKAFFOLD_API_VERSION}")
    build = skaffold.get("build") or {}
    if (build.get("local") or {}).get("concurrency") != 1:
        report.error(where, "build.local.concurrency must be 1 (the images share one cargo target cache)")
    kustomize_paths = list(((skaffold.get("manifests") or {}).get("kustomize") or {}).get("paths") or [])
    for profile in skaffold.get("profiles") or []:
        kustomize_paths += ((profile.get("manifests") or {}).get("kustomize") or {}).get("paths") or []
    for path in kustomize_paths:
        if not os.path.isfile(os.path.join(root, path, "kustomization.yaml")):
            report.error(where, f"kustomize path {path} has no kustomization.yaml")
    members = workspace_members(root, report)
    checked: set[str] = set()
    for artifact in build.get("artifacts") or []:
        image = artifact.get("image", "")
        context = os.path.join(root, artifact.get("context", "."))
        docker = artifact.get("docker") or {}
        dockerfile = docker.get("dockerfile", "Dockerfile")
        path = os.path.join(context, dockerfile)
        if os.path.normpath(context) != os.path.normpath(root):
            report.error(where, f"artifact {image}: context must be the repository root (the Cargo workspace)")
        if not os.path.isfile(path):
            report.error(where, f"artifact {image}: dockerfile {dockerfile} does not exist")
            continue
        program = (docker.get("buildArgs") or {}).get("PROGRAM")
        if program != image.rsplit("/", 1)[-1]:
            report.error(where, f"artifact {image}: buildArgs.PROGRAM is {program!r}, not the image's program")
        elif not any(m.rsplit("/", 1)[-1] == program for m in members):
            report.error(where, f"artifact {image}: PROGRAM {program} is not a workspace member")
        if path not in checked:
            checked.add(path)
            check_dockerfile(path, report)


def check_dockerfile(path: str, report: Report) -> None:
    """The one recipe: manifests found rather than listed, the package named by PROGRAM built
    and run in exec form as PID 1, a numeric non-root user."""
    where = os.path.relpath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # Join continuation lines so each instruction is one line.
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    if not any("find . -name Cargo.toml" in i for i in instructions) or not any(i.startswith("RUN cargo fetch --locked") for i in instructions):
        report.error(where, "the dependency stage must fetch with every workspace manifest (found with `find . -name Cargo.toml`), so that no member list can go stale")
    if not any(re.search(r'cargo build\b.*\s-p\s+"\$PROGRAM"', i) for i in instructions):
        report.error(where, 'does not build the package named by PROGRAM (`cargo build ... -p "$PROGRAM"`)')
    if sum(1 for i in instructions if i == "ARG PROGRAM") < 2:
        report.error(where, "needs ARG PROGRAM in the build stage and in the final stage")
    entrypoints = [i for i in instructions if i.startswith("ENTRYPOINT")]
    if entrypoints != ['ENTRYPOINT ["/usr/local/bin/program"]']:
        report.error(where, f'needs exactly ENTRYPOINT ["/usr/local/bin/program"] (exec form, program as PID 1), got {entrypoints}')
    users = [i.split()[1] for i in instructions if i.startswith("USER ")]
    if not users or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", users[-1]):
        report.error(where, "the final stage must end as a numeric non-root USER (runAsNonRoot can only verify numbers)")


# --- one rendered deployment -------------------------------------------------------------------


def key(obj: dict) -> tuple[str, str | None, str]:
    meta = obj.get("metadata") or {}
    return obj.get("kind", ""), meta.get("namespace"), meta.get("name", "")


def pod_containers(pod: dict) -> list[tuple[str, dict]]:
    return [("initContainer", c) for c in pod.get("initContainers") or []] + [
        ("container", c) for c in pod.get("containers") or []
    ]


def check_rendered(path: str, skaffold: dict, report: Report) -> None:
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    objects = {key(d): d for d in docs}
    name = os.path.basename(path)

    def named(kind: str, namespace: str | None) -> dict[str, dict]:
        return {n: o for (k, ns, n), o in objects.items() if k == kind and ns == namespace}

    if ("Namespace", None, NAMESPACE) not in objects:
        report.error(name, f"no Namespace {NAMESPACE}")
    for (kind, namespace, obj_name), obj in objects.items():
        if kind != "Namespace" and namespace != NAMESPACE:
            report.error(name, f"{kind} {obj_name} is in namespace {namespace!r}, not {NAMESPACE}")

    configmaps = named("ConfigMap", NAMESPACE)
    secrets = named("Secret", NAMESPACE)
    services = named("Service", NAMESPACE)
    accounts = named("ServiceAccount", NAMESPACE)
    workloads = {(k, n): o for (k, ns, n), o in objects.items() if k in WORKLOAD_KINDS}

    for cm_name, cm in configmaps.items():
        for data_key, value in (cm.get("data") or {}).items():
            if data_key.endswith(".toml"):
                try:
                    tomllib.loads(value)
                except tomllib.TOMLDecodeError as e:
                    report.error(name, f"ConfigMap {cm_name} key {data_key}: not valid TOML: {e}")

    images: set[str] = set()
    artifacts_built = {a.get("image") for a in (skaffold.get("build") or {}).get("artifacts") or []}
    budgets = [o for (k, ns, _), o in objects.items() if k == "PodDisruptionBudget" and ns == NAMESPACE]
    for (kind, wl_name), workload in workloads.items():
        where = f"{name}: {kind} {wl_name}"
        used = check_workload(where, workload, configmaps, secrets, accounts, report)
        images |= used
        if used & artifacts_built:
            check_availability(where, workload, budgets, report)

    for svc_name, svc in services.items():
        check_service(f"{name}: Service {svc_name}", svc, workloads.values(), report)

    check_network_policies(name, objects, workloads, services, configmaps, report)

    artifacts = {a.get("image") for a in (skaffold.get("build") or {}).get("artifacts") or []}
    for artifact in sorted(artifacts - images):
        report.error(name, f"skaffold artifact {artifact} is used by no container, so skaffold would not deploy the image it builds")
    for image in sorted(images - artifacts):
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            report.error(name, f"image {image} has no tag and is not a skaffold artifact: nothing builds it")
        elif image.endswith(":latest"):
            report.error(name, f"image {image}: pin a version, not latest")

    for forward in skaffold.get("portForward") or []:
        if str(forward.get("resourceType", "")).lower() != "service":
            continue
        svc = services.get(forward.get("resourceName")) if forward.get("namespace") == NAMESPACE else None
        if svc is None:
            report.error(name, f"skaffold portForward: no Service {forward.get('namespace')}/{forward.get('resourceName')}")
        elif not any(forward.get("port") in (p.get("port"), p.get("name")) for p in svc["spec"].get("ports") or []):
            report.error(name, f"skaffold portForward: Service {forward.get('resourceName')} has no port {forward.get('port')}")


def check_workload(where: str, workload: dict, configmaps: dict, secrets: dict, accounts: dict, report: Report) -> set[str]:
    spec = workload.get("spec") or {}
    template = spec.get("template") or {}
    pod = template.get("spec") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        report.error(where, f"selector {selector} does not match the pod labels {labels}")

    if pod.get("serviceAccountName") not in accounts:
        report.error(where, f"serviceAccountName {pod.get('serviceAccountName')!r} is not a rendered ServiceAccount")
    if pod.get("automountServiceAccountToken") is not False:
        report.error(where, "automountServiceAccountToken must be false: no program talks to the Kubernetes API")
    pod_security = pod.get("securityContext") or {}
    if pod_security.get("runAsNonRoot") is not True:
        report.error(where, "securityContext.runAsNonRoot must be true")

    grace = pod.get("terminationGracePeriodSeconds", 30)
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    claim_templates = {(t.get("metadata") or {}).get("name") for t in spec.get("volumeClaimTemplates") or []}
    images = set()
    for role, container in pod_containers(pod):
        cwhere = f"{where} {role} {container.get('name')}"
        images.add(container.get("image", ""))
        check_container_basics(cwhere, container, report)
        check_env(cwhere, container, configmaps, secrets, report)
        check_mounts(cwhere, container, volumes, claim_templates, configmaps, secrets, report)
        if role == "container":
            check_probes(cwhere, container, report)
            sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
            if sleep >= grace:
                report.error(cwhere, f"preStop sleep {sleep}s is not below terminationGracePeriodSeconds {grace}s: no time left to drain")
    return images


def check_availability(where: str, workload: dict, budgets: list[dict], report: Report) -> None:
    """A program's pods: a PodDisruptionBudget covers them, and they spread over nodes and zones."""
    template = workload["spec"]["template"]
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not any(selects((b.get("spec") or {}).get("selector"), labels) for b in budgets):
        report.error(where, "no PodDisruptionBudget selects its pods (a drain could take every replica at once)")
    keys = {c.get("topologyKey") for c in (template.get("spec") or {}).get("topologySpreadConstraints") or []}
    for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
        if key not in keys:
            report.error(where, f"no topologySpreadConstraints over {key}")


def check_container_basics(where: str, container: dict, report: Report) -> None:
    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(section) or {}):
                report.error(where, f"resources.{section}.{resource} is missing")
    security = container.get("securityContext") or {}
    if security.get("readOnlyRootFilesystem") is not True:
        report.error(where, "securityContext.readOnlyRootFilesystem must be true")
    if security.get("allowPrivilegeEscalation") is not False:
        report.error(where, "securityContext.allowPrivilegeEscalation must be false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        report.error(where, "securityContext.capabilities.drop must include ALL")


def check_env(where: str, container: dict, configmaps: dict, secrets: dict, report: Report) -> None:
    defined: set[str] = set()
    for var in container.get("env") or []:
        value_from = var.get("valueFrom") or {}
        for ref_kind, objects in (("secretKeyRef", secrets), ("configMapKeyRef", configmaps)):
            ref = value_from.get(ref_kind)
            if ref is None or ref.get("optional"):
                continue
            obj = objects.get(ref.get("name"))
            data = {**(obj or {}).get("data", {}), **(obj or {}).get("stringData", {})} if obj else {}
            if obj is None:
                report.error(where, f"env {var.get('name')}: {ref_kind} names {ref.get('name')!r}, which is not rendered")
            elif ref.get("key") not in data:
                report.error(where, f"env {var.get('name')}: {ref.get('name')} has no key {ref.get('key')!r}")
        # $(NAME) only expands names defined earlier in the list; anything else stays literal.
        for ref in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", var.get("value") or ""):
            if ref not in defined:
                report.error(where, f"env {var.get('name')} refers to $({ref}), which is not defined before it")
        defined.add(var.get("name"))


def check_mounts(where: str, container: dict, volumes: dict, claim_templates: set, configmaps: dict, secrets: dict, report: Report) -> None:
    mounts = container.get("volumeMounts") or []
    for mount in mounts:
        volume = volumes.get(mount.get("name"))
        if volume is None:
            if mount.get("name") not in claim_templates:
                report.error(where, f"volumeMount {mount.get('name')} has no volume")
            continue
        if "configMap" in volume:
            if mount.get("subPath") or mount.get("subPathExpr"):
                report.error(where, f"ConfigMap volume {mount.get('name')} is mounted with subPath, so it never receives updates (hot reload breaks)")
            ref = volume["configMap"]
            if ref.get("name") not in configmaps and not ref.get("optional"):
                report.error(where, f"volume {volume.get('name')}: ConfigMap {ref.get('name')} is not rendered")
        if "secret" in volume:
            ref = volume["secret"]
            if ref.get("secretName") not in secrets and not ref.get("optional"):
                report.error(where, f"volume {volume.get('name')}: Secret {ref.get('secretName')} is not rendered")
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in source and source["secret"].get("name") not in secrets:
                report.error(where, f"projected volume {volume.get('name')}: Secret {source['secret'].get('name')} is not rendered")
    # CONFIG_PATH must name a key of the ConfigMap mounted as its directory.
    config_path = next((v.get("value") for v in container.get("env") or [] if v.get("name") == "CONFIG_PATH"), None)
    if config_path is None:
        return
    directory, file_name = os.path.split(config_path)
    mount = next((m for m in mounts if m.get("mountPath", "").rstrip("/") == directory), None)
    volume = volumes.get((mount or {}).get("name")) or {}
    configmap = configmaps.get((volume.get("configMap") or {}).get("name"))
    if mount is None or configmap is None:
        report.error(where, f"CONFIG_PATH {config_path}: no ConfigMap volume is mounted at {directory}")
    elif file_name not in (configmap.get("data") or {}):
        report.error(where, f"CONFIG_PATH {config_path}: ConfigMap {configmap['metadata']['name']} has no key {file_name}")


def check_probes(where: str, container: dict, report: Report) -> None:
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    for probe_name in ("readinessProbe", "livenessProbe"):
        if probe_name not in container:
            report.error(where, f"has no {probe_name}")
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name)
        if probe is None:
            continue
        handlers = [h for h in PROBE_HANDLERS if h in probe]
        if len(handlers) != 1:
            report.error(where, f"{probe_name} needs exactly one handler, has {handlers}")
        if probe_name == "readinessProbe" and "terminationGracePeriodSeconds" in probe:
            report.error(where, "readinessProbe.terminationGracePeriodSeconds is rejected by the API server")
        for handler in handlers:
            port = (probe.get(handler) or {}).get("port") if isinstance(probe.get(handler), dict) else None
            if handler == "grpc" and not isinstance(port, int):
                report.error(where, f"{probe_name}: gRPC probes need a port number, not {port!r}")
            if isinstance(port, str) and port not in ports:
                report.error(where, f"{probe_name}: port {port!r} is not a named containerPort")
            if isinstance(port, int) and port not in ports.values():
                report.error(where, f"{probe_name}: port {port} is not a containerPort")


def check_service(where: str, service: dict, workloads, report: Report) -> None:
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    pods = [
        w["spec"]["template"]
        for w in workloads
        if selector and all(((w["spec"]["template"].get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())
    ]
    if not pods:
        report.error(where, f"selector {selector} matches no workload")
        return
    container_ports = [p for pod in pods for c in pod["spec"].get("containers") or [] for p in c.get("ports") or []]
    for port in spec.get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str) and target not in {p.get("name") for p in container_ports}:
            report.error(where, f"targetPort {target!r} is not a named containerPort of the selected pods")
        if isinstance(target, int) and target not in {p.get("containerPort") for p in container_ports}:
            report.error(where, f"targetPort {target} is not a containerPort of the selected pods")


# --- NetworkPolicies ---------------------------------------------------------------------------
#
# A small evaluator of the NetworkPolicy semantics the manifests use (pod and namespace selectors,
# numbered and named TCP ports, default deny), run against every connection the rendered
# configuration makes and against connections that must stay impossible.

NAMESPACE_LABELS = {"kubernetes.io/metadata.name": NAMESPACE}
# Program ports that nothing outside the namespace may reach, and what may (the gateway's).
CLOSED_TO_OUTSIDE = {"account": 8810, "warehouse": 8820, "payment": 8830}
OPEN_TO_OUTSIDE = {"gateway": 8080}
# Calls between programs that must be refused: (caller, callee, port).
FORBIDDEN_CALLS = [
    ("account", "warehouse", 8820),
    ("account", "payment", 8830),
    ("warehouse", "account", 8810),
    ("warehouse", "payment", 8830),
    ("payment", "account", 8810),
]


class Pod:
    def __init__(self, name: str, labels: dict, ports: dict[str, int], namespace_labels: dict) -> None:
        self.name = name
        self.labels = labels
        self.ports = ports
        self.namespace_labels = namespace_labels


def selects(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def policy_types(policy: dict) -> list[str]:
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return spec["policyTypes"]
    return ["Ingress"] + (["Egress"] if "egress" in spec else [])


def peer_matches(peer: dict, other: Pod) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace_labels != NAMESPACE_LABELS:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def port_matches(rule_ports: list | None, port: int, destination: Pod) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        value = entry.get("port")
        if value is None or value == port or (isinstance(value, str) and destination.ports.get(value) == port):
            return True
    return False


def direction_allows(policies: list[dict], direction: str, subject: Pod, other: Pod, port: int, destination: Pod) -> bool:
    relevant = [p for p in policies if direction in policy_types(p) and selects((p.get("spec") or {}).get("podSelector", {}), subject.labels)]
    if not relevant:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in relevant:
        for rule in (policy.get("spec") or {}).get(rules_key) or []:
            peers = rule.get(peers_key)
            if (not peers or any(peer_matches(peer, other) for peer in peers)) and port_matches(rule.get("ports"), port, destination):
                return True
    return False


def connection_allowed(policies: list[dict], source: Pod, destination: Pod, port: int) -> bool:
    """Whether TCP `port` of `destination` is reachable from `source` (both policies must agree;
    a pod outside the namespace has no egress policy of ours)."""
    egress_ok = source.namespace_labels != NAMESPACE_LABELS or direction_allows(policies, "Egress", source, destination, port, destination)
    return egress_ok and direction_allows(policies, "Ingress", destination, source, port, destination)


def host_port(text: str) -> tuple[str, int] | None:
    match = re.search(r"(?:^|//|@)([a-z0-9][a-z0-9.-]*):(\d+)", text)
    return (match.group(1).split(".")[0], int(match.group(2))) if match else None


def configured_connections(workloads: dict, configmaps: dict) -> list[tuple[str, str, str]]:
    """(client workload, host:port text, where it is configured) for every connection the rendered
    configuration makes: backend lists and URLs in the programs' TOML, URLs in the environment,
    the collector's exporters and Grafana's data sources."""
    found: list[tuple[str, str, str]] = []

    def strings(value, path: str):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from strings(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from strings(v, f"{path}[{i}]")
        elif isinstance(value, str):
            yield path, value

    for (kind, wl_name), workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        mounted = {((v.get("configMap") or {}).get("name")) for v in pod.get("volumes") or []}
        for cm_name in mounted:
            for key, text in ((configmaps.get(cm_name) or {}).get("data") or {}).items():
                try:
                    data = tomllib.loads(text) if key.endswith(".toml") else yaml.safe_load(text)
                except (tomllib.TOMLDecodeError, yaml.YAMLError):
                    continue
                # Prometheus's DNS service discovery: each name, at the configured port.
                for job in (data or {}).get("scrape_configs") or [] if isinstance(data, dict) else []:
                    for sd in job.get("dns_sd_configs") or []:
                        for sd_name in sd.get("names") or []:
                            found.append((wl_name, f"{sd_name}:{sd.get('port')}", f"ConfigMap {cm_name} {key} job {job.get('job_name')}"))
                for path, value in strings(data, key):
                    if any(word in path for word in ("hostport", "token_url", "endpoint", "url")) and host_port(value) and "listen" not in path:
                        found.append((wl_name, value, f"ConfigMap {cm_name} {path}"))
        for _, container in pod_containers(pod):
            for var in container.get("env") or []:
                value = var.get("value") or ""
                if var.get("name", "").endswith(("_URL", "_ENDPOINT")) and host_port(value):
                    found.append((wl_name, value, f"env {var.get('name')}"))
    return found


def check_network_policies(name: str, objects: dict, workloads: dict, services: dict, configmaps: dict, report: Report) -> None:
    policies = [o for (k, ns, _), o in objects.items() if k == "NetworkPolicy" and ns == NAMESPACE]
    if not any(selects((p.get("spec") or {}).get("podSelector"), {}) and set(policy_types(p)) == {"Ingress", "Egress"} and not (p["spec"].get("ingress") or p["spec"].get("egress")) for p in policies):
        report.error(name, "no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
        return
    pods = {}
    for (kind, wl_name), workload in workloads.items():
        template = workload["spec"]["template"]
        ports = {p.get("name"): p.get("containerPort") for c in template["spec"].get("containers") or [] for p in c.get("ports") or []}
        pods[wl_name] = Pod(wl_name, (template.get("metadata") or {}).get("labels") or {}, ports, NAMESPACE_LABELS)

    for client, target, where in configured_connections(workloads, configmaps):
        host, port = host_port(target)
        service = services.get(host)
        if service is None:
            continue
        selector = (service.get("spec") or {}).get("selector") or {}
        svc_port = next((p for p in service["spec"].get("ports") or [] if p.get("port") == port), None)
        if svc_port is None:
            report.error(name, f"{client} connects to {target} ({where}), but Service {host} has no port {port}")
            continue
        for pod in pods.values():
            if not selector or any(pod.labels.get(k) != v for k, v in selector.items()):
                continue
            target_port = svc_port.get("targetPort", port)
            container_port = pod.ports.get(target_port) if isinstance(target_port, str) else target_port
            if not connection_allowed(policies, pods[client], pod, container_port):
                report.error(name, f"NetworkPolicies refuse {client} → {pod.name}:{container_port}, which {where} needs ({target})")

    outsider = Pod("a pod in another namespace", {}, {}, {"kubernetes.io/metadata.name": "elsewhere"})
    for program, port in {**CLOSED_TO_OUTSIDE, **OPEN_TO_OUTSIDE}.items():
        if program in pods and connection_allowed(policies, outsider, pods[program], port) != (program in OPEN_TO_OUTSIDE):
            state = "open" if program in CLOSED_TO_OUTSIDE else "closed"
            report.error(name, f"NetworkPolicies leave {program}:{port} {state} to other namespaces")
    for program, pod in pods.items():
        metrics = pod.ports.get("metrics")
        if metrics and connection_allowed(policies, outsider, pod, metrics):
            report.error(name, f"NetworkPolicies leave {program}'s metrics port open to other namespaces")
    for caller, callee, port in FORBIDDEN_CALLS:
        if caller in pods and callee in pods and connection_allowed(policies, pods[caller], pods[callee], port):
            report.error(name, f"NetworkPolicies let {caller} call {callee}:{port}, which it never needs")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, rendered = argv[1], argv[2:]
    report = Report()
    skaffold = load_yaml(os.path.join(root, "skaffold.yaml"))
    check_skaffold(root, skaffold, report)
    for path in rendered:
        check_rendered(path, skaffold, report)
    for error in report.errors:
        print(f"ERROR {error}")
    print(f"crosscheck: {len(rendered)} rendered deployments, {len(report.errors)} errors")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
