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
export WIZBRAND_SCIM_TESTER="$CACHE/scim2-tester-$SCIM2_TESTER_VERSION/bin/python"
export WIZBRAND_PYJWT_PYTHON="$CACHE/pyjwt-$PYJWT_VERSION/bin/python"
[[ -x "$WIZBRAND_SCHEMATHESIS" && -x "$WIZBRAND_SCIM_TESTER" && -x "$WIZBRAND_PYJWT_PYTHON" ]] || scripts/install-deps.sh
# The deployment examples (Helm chart, compose file): with the whole suite, or alone
# with `scripts/test.sh deploy`.
if [[ "${1:-}" == deploy ]]; then exec scripts/check-deploy.sh; fi
if [[ $# -eq 0 ]]; then scripts/check-deploy.sh; fi
scripts/stack.sh up --infra
# The production-shaped stack (tests/it/prod.rs) when those tests are in the run: a test
# filter without "prod" leaves it out (the tests would start it themselves otherwise).
if [[ $# -eq 0 || "$*" == *prod* ]]; then scripts/prod-stack.sh up >/dev/null; fi
cargo test --locked --all-targets "$@"
