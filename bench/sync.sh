#!/usr/bin/env bash
# Sync benchmark against the real Keycloak of the dev stack (run by hand):
#   bench/sync.sh [ORGS] [USERS]     (defaults 1000 and 10000; WIZBRAND_BENCH_PEER=0: no peer;
#                                     WIZBRAND_BENCH_KEEP=1: leave the seeded state for more runs)
# Seeds a database of its own, then measures: the first full sync, two no-op syncs, one
# membership change in Postgres until a fresh token carries it (through a running
# `wizbrand serve` and its change trigger), and a naive one-call-at-a-time replay of the
# same state as the peer. Everything it made in Keycloak is removed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORGS="${1:-1000}"; USERS="${2:-10000}"
STATE="${WIZBRAND_STATE_DIR:-$ROOT/.stack}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wizbrand/target}"
"$ROOT/scripts/stack.sh" up --infra >/dev/null
set -a; source "$STATE/stack.env"; set +a
BENCH_ROOT="bench$(date +%s)"
SUFFIX="@${BENCH_ROOT}.example.com"   # runs never share users
BENCH_DB="${WIZBRAND_STACK_PG_ADMIN_URL%/postgres}/wizbrand_bench"
export DATABASE_URL="$BENCH_DB" WIZBRAND_SYNC_GROUP_ROOT="$BENCH_ROOT" WIZBRAND_PUBLIC_URL=http://auth.wizbrand.localhost:8000 \
  WIZBRAND_COOKIE_DOMAIN=wizbrand.localhost WIZBRAND_SESSION_KEY="$(head -c 64 /dev/zero | tr '\0' k)" \
  RUST_LOG=warn
cleanup() {
  [[ -n "${SERVE_PID:-}" ]] && kill "$SERVE_PID" 2>/dev/null
  if [[ "${WIZBRAND_BENCH_KEEP:-0}" == 1 ]]; then
    echo "kept: DATABASE_URL=$BENCH_DB WIZBRAND_SYNC_GROUP_ROOT=$BENCH_ROOT; remove with: bench/kc.py cleanup $BENCH_ROOT $SUFFIX"
  else
    python3 "$ROOT/bench/kc.py" cleanup "$BENCH_ROOT" "$SUFFIX"
  fi
}
trap cleanup EXIT

# The release build that production runs: the bench shares 2 cores with Keycloak, so a
# debug build's CPU would be taken from Keycloak's.
echo "building the release binary (first time: several minutes)"
TARGET="${WIZBRAND_BENCH_TARGET_DIR:-$HOME/.cache/wizbrand/target-bench}"
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet --bin wizbrand)
BIN="$TARGET/release/wizbrand"
psql "$WIZBRAND_STACK_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS wizbrand_bench" -c "CREATE DATABASE wizbrand_bench"
"$BIN" migrate >/dev/null
psql "$BENCH_DB" -q <<SQL
INSERT INTO orgs (slug, name, plan, features)
  SELECT 'org-' || i, 'Org ' || i, 'pro', ARRAY['seo','music','files'] FROM generate_series(1, $ORGS) i;
INSERT INTO users (email) SELECT 'u' || i || '$SUFFIX' FROM generate_series(1, $USERS) i;
INSERT INTO memberships (org_id, user_id, roles)
  SELECT o.id, u.id, CASE WHEN i % 10 = 0 THEN ARRAY['ORG_ADMIN'] WHEN i % 10 < 3 THEN ARRAY['ORG_MANAGER'] ELSE ARRAY['ORG_USER'] END
  FROM generate_series(1, $USERS) i
  JOIN users u ON u.email = 'u' || i || '$SUFFIX'
  JOIN orgs o ON o.slug = 'org-' || (1 + i % $ORGS);
SQL
echo "seeded $ORGS orgs, $USERS users"

# wizbrand's own CPU is printed beside the wall time (rusage of the child, stdlib only).
run() {
  python3 - "$BIN" "$@" <<'PY' | grep -E '^run |^Keycloak (calls|seconds)|^  wall'
import resource, subprocess, sys, time
t0 = time.time()
out = subprocess.run([sys.argv[1], "sync", *sys.argv[2:]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(out, end="")
print(f"  wall: {time.time() - t0:.1f}s, wizbrand's own CPU: {ru.ru_utime:.1f}s user + {ru.ru_stime:.1f}s system")
PY
}
echo "== first full sync"; run
echo "== no-op sync right after: reads every group to verify the writes (Keycloak reloads the users the first sync wrote)"; run
echo "== no-op sync again: checked by the admin event log"; run
echo "== no-op sync again: checked by the admin event log"; run
echo "== no-op sync reading every group (--full-read; Keycloak's caches warm)"; run --full-read

echo "== one membership change → token (through wizbrand serve's change trigger)"
python3 "$ROOT/bench/kc.py" activate "u1$SUFFIX"
WIZBRAND_LISTEN=127.0.0.1:0 WIZBRAND_OPS_LISTEN=off WIZBRAND_SYNC_CRON="0 0 0 1 1 *" "$BIN" serve >/dev/null 2>&1 &
SERVE_PID=$!
# Its start-up run finishes first (a full read: activating u1 was someone else's change).
until [[ "$(psql "$BENCH_DB" -Atc "SELECT count(*) FROM sync_runs WHERE trigger = 'startup' AND status <> 'running'")" -gt 0 ]]; do sleep 0.5; done
for role in ORG_ADMIN ORG_USER ORG_MANAGER; do   # u1 starts as ORG_MANAGER
  since=$(python3 -c 'import time; print(time.time())')
  psql "$BENCH_DB" -qc "UPDATE memberships SET roles = ARRAY['$role'] WHERE user_id = (SELECT id FROM users WHERE email = 'u1$SUFFIX')"
  echo "  $role: seconds until a new token carries it: $(python3 "$ROOT/bench/kc.py" wait-claim "u1$SUFFIX" "org-2" "$role" "$since")"
done
kill "$SERVE_PID" 2>/dev/null || true; SERVE_PID=""

# WIZBRAND_BENCH_PEER=0 skips the peer: at 1000 orgs its replay has brought Keycloak's
# dev-mode H2 store down ("The database has been closed"), for every user of the stack.
[[ "${WIZBRAND_BENCH_PEER:-1}" == 0 ]] && exit 0
echo "== peer: naive replay of the same state, one call at a time, no reads"
python3 "$ROOT/bench/kc.py" cleanup "$BENCH_ROOT" "$SUFFIX" >/dev/null
python3 "$ROOT/bench/kc.py" naive-replay "$BENCH_DB" "$BENCH_ROOT-naive"
