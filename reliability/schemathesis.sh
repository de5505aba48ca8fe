#!/usr/bin/env bash
# Property-based fuzzing of the REST API from its OpenAPI document: installs Schemathesis (PyPI,
# pinned) into a virtualenv, then runs reliability/tests/schemathesis.rs, which starts the real
# binaries on loopback and points `st run` at the gateway's /openapi.json with a bounded number
# of examples and a fixed seed. Override with SCHEMATHESIS_EXAMPLES and SCHEMATHESIS_SEED.
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
venv=.venv-schemathesis
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

SCHEMATHESIS="$PWD/$venv/bin/st" cargo test -p bookstore-reliability --locked \
  --test schemathesis -- --ignored --nocapture
