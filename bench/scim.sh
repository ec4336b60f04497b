#!/usr/bin/env bash
# The time from a SCIM deactivation (the answer to PATCH active=false) to the gate's
# first refusal, against the real Postgres, Keycloak and wizbrand (in-process, as the
# integration tests run it). Needs the infrastructure: scripts/stack.sh up --infra.
# Usage: bench/scim.sh [ROUNDS]   (default 20)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}/target}"
export WIZBRAND_REPO_ROOT="$ROOT"
export WIZBRAND_BENCH_ROUNDS="${1:-20}"
scripts/stack.sh up --infra
cargo test --locked --test it scim::bench_deactivation_to_refusal -- --ignored --nocapture 2>&1 \
  | grep -E "deactivation to the gate|test result"
