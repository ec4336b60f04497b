#!/usr/bin/env bash
# Load benchmark (run by hand): bench/load.sh [SECONDS] [CONNECTIONS] [SYNC_ORGS]
#   defaults 60, 256, 1000
# Through a Traefik of its own onto the wizbrand gate (release build), with the session
# cookies of USERS (100) real sign-ins across 10 orgs, wrk rotating user and org host per
# request. Two phases of SECONDS each:
#   A. the gate alone;
#   B. the same while `wizbrand sync` runs a full pass of SYNC_ORGS orgs (one member each)
#      into the real Keycloak, on the same database (its writes reach the gate's state);
#   P. the peer, first: the same requests through Traefik onto a do-nothing ForwardAuth
#      gate (bench/noop_gate.rs), the ceiling of any gate on this machine.
# Prints requests/s, p50/p99/max latency, non-2xx answers, and wizbrand's resident memory
# sampled every second (its spread from the 10th second to the end).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${1:-60}"; CONNECTIONS="${2:-256}"; SYNC_ORGS="${3:-1000}"
USERS=100; ORGS=10
STATE="${WIZBRAND_STATE_DIR:-$ROOT/.stack}"
CACHE="${WIZBRAND_CACHE_DIR:-$HOME/.cache/wizbrand}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
"$ROOT/scripts/stack.sh" up --infra >/dev/null
set -a; source "$STATE/stack.env"; set +a
TMP="$(mktemp -d)"; PIDS=()
SUFFIX="@load$(date +%s).bench.example.com"; SYNC_ROOT="loadbench$(date +%s)"
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  python3 "$ROOT/bench/kc.py" cleanup "$SYNC_ROOT" "$SUFFIX" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "building the release binary (first time: several minutes)"
(cd "$ROOT" && CARGO_TARGET_DIR="$CACHE/target-bench" cargo build --release --quiet --bin wizbrand --example noop_gate)
BIN="$CACHE/target-bench/release"

DB="${WIZBRAND_STACK_PG_ADMIN_URL%/postgres}/wizbrand_loadbench"
psql "$WIZBRAND_STACK_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS wizbrand_loadbench" -c "CREATE DATABASE wizbrand_loadbench"
P_GATE=$(free_port); P_UP=$(free_port); P_TRAEFIK=$(free_port)
export DATABASE_URL="$DB" WIZBRAND_LISTEN="127.0.0.1:$P_GATE" WIZBRAND_SYNC_ENABLED=false \
  WIZBRAND_PUBLIC_URL="http://127.0.0.1:$P_GATE" WIZBRAND_COOKIE_DOMAIN=wizbrand.localhost \
  WIZBRAND_TRUSTED_PROXIES=127.0.0.1/32 WIZBRAND_OPS_LISTEN=off \
  WIZBRAND_SESSION_KEY="$(head -c 64 /dev/zero | tr '\0' k)" WIZBRAND_SIGNIN_RATE_PER_MINUTE=0 \
  WIZBRAND_SYNC_GROUP_ROOT="$SYNC_ROOT" RUST_LOG=warn
"$BIN/wizbrand" serve >"$TMP/wizbrand.log" 2>&1 & PIDS+=($!); GATE_PID=$!
"$BIN/examples/noop_gate" "127.0.0.1:$P_UP" & PIDS+=($!)
P_NOOP=$(free_port); "$BIN/examples/noop_gate" "127.0.0.1:$P_NOOP" & PIDS+=($!)
until curl -fs "http://127.0.0.1:$P_GATE/healthz" >/dev/null; do sleep 0.2; done

echo "signing in $USERS users across $ORGS orgs (real Keycloak logins)"
psql "$DB" -q -c "INSERT INTO orgs (slug, name, plan, features) \
  SELECT 'load' || i, 'Load ' || i, 'pro', ARRAY['seo'] FROM generate_series(0, $ORGS - 1) i"
seq 0 $((USERS - 1)) | xargs -P 4 -I{} sh -c \
  'echo "{} $(python3 "$1/bench/kc.py" bench-user loaduser{})"' _ "$ROOT" >"$TMP/users.txt"
while read -r i sub; do
  echo "INSERT INTO users (email, keycloak_id) VALUES ('loaduser$i@bench.example.com', '$sub');"
  echo "INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, ARRAY['ORG_USER'] \
        FROM orgs o, users u WHERE o.slug = 'load$((i % ORGS))' AND u.keycloak_id = '$sub';"
done <"$TMP/users.txt" | psql "$DB" -q
sleep 1
seq 0 $((USERS - 1)) | xargs -P 4 -I{} sh -c \
  'session="$(python3 "$1/bench/kc.py" browser-login "http://127.0.0.1:$2/login?rd=http://127.0.0.1:$2/" __Host-wizbrand_session loaduser{})" &&
   echo "{} $(python3 "$1/bench/kc.py" host-cookie "http://127.0.0.1:$2" "$session" "load$(({} % $3)).seo.wizbrand.localhost")"' \
  _ "$ROOT" "$P_GATE" "$ORGS" >"$TMP/sessions.txt"
[[ "$(wc -l <"$TMP/sessions.txt")" == "$USERS" ]] || { echo "not every sign-in worked" >&2; exit 1; }

# wrk: each request takes the next (app-host cookie, org host) pair.
{
  echo "local pairs = {"
  # Cookie values are base64url and `=`: nothing to escape in a Lua string.
  while read -r i cookie; do printf '  {"%s", "%s"},\n' "$cookie" "load$((i % ORGS)).seo.wizbrand.localhost"; done <"$TMP/sessions.txt"
  echo "}"
  cat <<'LUA'
local n = 0
local peer = os.getenv("LOAD_PEER_HOST")
request = function()
  n = n + 1
  local pair = pairs[(n % #pairs) + 1]
  return wrk.format("GET", "/", {["Cookie"] = pair[1], ["Host"] = peer or pair[2]})
end
LUA
} >"$TMP/rotate.lua"

mkdir -p "$TMP/dynamic"
cat >"$TMP/traefik.yml" <<YML
global: {checkNewVersion: false, sendAnonymousUsage: false}
entryPoints:
  web:
    address: "127.0.0.1:$P_TRAEFIK"
    http:
      aliasHeadersStrategy: delete
      encodedCharacters: {allowEncodedSlash: false, allowEncodedBackSlash: false, allowEncodedNullCharacter: false, allowEncodedSemicolon: false, allowEncodedPercent: false, allowEncodedQuestionMark: false, allowEncodedHash: false}
providers: {file: {directory: "$TMP/dynamic"}}
log: {level: WARN, filePath: "$TMP/traefik.log"}
YML
cat >"$TMP/dynamic/load.yml" <<YML
http:
  middlewares:
    gate: {forwardAuth: {address: "http://127.0.0.1:$P_GATE/forward-auth", trustForwardHeader: false, maxResponseBodySize: 65536, authResponseHeaders: [X-User-Id, X-User-Email, X-Org-Id, X-Org-Slug, X-Org-Roles]}}
    noop: {forwardAuth: {address: "http://127.0.0.1:$P_NOOP/", trustForwardHeader: false, maxResponseBodySize: 65536, authResponseHeaders: [X-User-Id, X-User-Email, X-Org-Id, X-Org-Slug, X-Org-Roles]}}
  routers:
    apps: {rule: "$(for i in $(seq 0 $((ORGS - 1))); do printf 'Host(`load%s.seo.wizbrand.localhost`) || ' "$i"; done)Host(\`load.seo.wizbrand.localhost\`)", service: up, middlewares: [gate]}
    peer: {rule: "Host(\`peer.bench.localhost\`)", service: up, middlewares: [noop]}
  services:
    up: {loadBalancer: {servers: [{url: "http://127.0.0.1:$P_UP"}]}}
YML
"$WIZBRAND_STACK_TRAEFIK_BIN" --configFile="$TMP/traefik.yml" >/dev/null 2>&1 & PIDS+=($!)
read -r first_i first <"$TMP/sessions.txt"
first_host="load$((first_i % ORGS)).seo.wizbrand.localhost"
for _ in $(seq 1 100); do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $first" -H "Host: $first_host" "http://127.0.0.1:$P_TRAEFIK/" || true)"
  [[ "$code" == 200 ]] && break
  sleep 0.2
done
[[ "$code" == 200 ]] || { echo "the gate answered $code through Traefik, not 200" >&2; tail -5 "$TMP/wizbrand.log" >&2; exit 1; }

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$GATE_PID/status"; }
phase() {
  local label="$1" out samples=()
  : >"$TMP/rss.txt"
  ( for _ in $(seq 1 "$DURATION"); do rss_kib >>"$TMP/rss.txt"; sleep 1; done ) & local sampler=$!
  out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$TMP/rotate.lua" "http://127.0.0.1:$P_TRAEFIK/")"
  wait "$sampler" || true
  local rps p50 p99 max non2xx
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  max="$(awk '$1=="Latency" {print $4}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"; non2xx="${non2xx:-0}"
  local errors; errors="$(grep -E 'Socket errors' <<<"$out" | tr -s ' ' || true)"
  mapfile -t samples < <(tail -n +10 "$TMP/rss.txt")
  local spread
  spread="$(printf '%s\n' "${samples[@]}" | awk 'NR==1{min=$1;max=$1} {if($1<min)min=$1; if($1>max)max=$1} END {printf "%.1f MiB .. %.1f MiB (spread %.1f%%)", min/1024, max/1024, (max-min)*100/min}')"
  printf '%-34s %9s req/s  p50 %8s  p99 %8s  max %8s  non-2xx %s %s\n' "$label" "$rps" "$p50" "$p99" "$max" "$non2xx" "$errors"
  printf '%-34s RSS from second 10 to %s: %s\n' "" "$DURATION" "$spread"
}

echo "wrk: 2 threads, $CONNECTIONS connections, ${DURATION}s a phase, $USERS sessions across $ORGS orgs"
LOAD_PEER_HOST=peer.bench.localhost phase "P Traefik -> do-nothing gate"
phase "A Traefik -> wizbrand gate, sessions"

echo "seeding $SYNC_ORGS orgs (one new member each) and starting a full sync under /$SYNC_ROOT"
psql "$DB" -q <<SQL
INSERT INTO orgs (slug, name, plan, features)
  SELECT 'sync' || i, 'Sync ' || i, 'free', ARRAY['seo'] FROM generate_series(1, $SYNC_ORGS) i;
INSERT INTO users (email) SELECT 'm' || i || '$SUFFIX' FROM generate_series(1, $SYNC_ORGS) i;
INSERT INTO memberships (org_id, user_id, roles)
  SELECT o.id, u.id, ARRAY['ORG_ADMIN'] FROM generate_series(1, $SYNC_ORGS) i
  JOIN orgs o ON o.slug = 'sync' || i JOIN users u ON u.email = 'm' || i || '$SUFFIX';
SQL
"$BIN/wizbrand" sync >"$TMP/sync.log" 2>&1 & SYNC_PID=$!; PIDS+=($SYNC_PID)
sleep 2
phase "B the same, sync running"
if kill -0 "$SYNC_PID" 2>/dev/null; then
  echo "the sync was still running at the end of phase B (as intended: it ran throughout)"
else
  echo "the sync finished during phase B: $(tail -n 3 "$TMP/sync.log" | tr '\n' ' ')"
fi
echo "peak RSS of wizbrand: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$GATE_PID/status")"
