#!/usr/bin/env bash
# Runs every test: unit tests, and the integration tests against the real stack
# (Postgres, Keycloak, Traefik, sidecar stand-ins) and the production-shaped stack
# (scripts/prod-stack.sh), which this brings up first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}/target}"
export WIZBRAND_REPO_ROOT="$ROOT"
cd "$ROOT"
source "$ROOT/scripts/versions.sh"
CACHE="${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}"
export WIZBRAND_SCHEMATHESIS="$CACHE/schemathesis-$SCHEMATHESIS_VERSION/bin/st"
[[ -x "$WIZBRAND_SCHEMATHESIS" ]] || scripts/install-deps.sh
scripts/stack.sh up --infra
# The production-shaped stack (tests/it/prod.rs) when those tests are in the run: a test
# filter without "prod" leaves it out (the tests would start it themselves otherwise).
if [[ $# -eq 0 || "$*" == *prod* ]]; then scripts/prod-stack.sh up >/dev/null; fi
cargo test --locked --all-targets "$@"
