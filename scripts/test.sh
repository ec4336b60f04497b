#!/usr/bin/env bash
# Runs every test: unit tests, and the integration tests against the real stack
# (Postgres, Keycloak, Traefik, sidecar stand-ins), which this brings up first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}/target}"
export WIZBRAND_REPO_ROOT="$ROOT"
cd "$ROOT"
source "$ROOT/scripts/versions.sh"
CACHE="${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}"
export WIZBRAND_SCHEMATHESIS="$CACHE/schemathesis-$SCHEMATHESIS_VERSION/bin/st"
export WIZBRAND_PYJWT_PYTHON="$CACHE/pyjwt-$PYJWT_VERSION/bin/python"
[[ -x "$WIZBRAND_SCHEMATHESIS" && -x "$WIZBRAND_PYJWT_PYTHON" ]] || scripts/install-deps.sh
scripts/stack.sh up --infra
cargo test --locked --all-targets "$@"
