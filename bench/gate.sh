#!/usr/bin/env bash
# Gate benchmark (run by hand): bench/gate.sh [SECONDS] [CONNECTIONS] [ROUNDS]
# One machine, one load tool (wrk), the same connections for every target, every target
# measured once per round (ROUNDS rounds, default 1, one after the other):
#   1. wizbrand /forward-auth directly (the decision fully made); 1c with the signed
#      identity assertion on (a second wizbrand with a key); 1d without the pass cache
#   0. optional: an earlier build of wizbrand, same requests (WIZBRAND_BENCH_BASE_BIN)
#   2. the do-nothing gate (bench/noop_gate.rs) given row 1's request: the ceiling for 1
#      (2a: row 1b's request, the ceiling for 1b; 2b: a bare request)
#   4. Traefik -> upstream, no auth
#   5. Traefik -> ForwardAuth to the do-nothing gate -> upstream: the ceiling of ForwardAuth
#   6. Traefik -> wizbrand gate -> upstream
#   3. oauth2-proxy (go install, pinned) /oauth2/auth against the same Keycloak
# The upstream is the do-nothing
# server too, so Traefik's and the gates' costs are what differ. Release builds go to a
# target folder of their own so they never wait on the debug builds' lock.
# Identity: an app-host cookie (docs/cookies.md), handed over from a session made by a
# real sign-in through Keycloak's form (and, for comparison, a Bearer access token).
OAUTH2_PROXY_VERSION=v7.15.6
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${1:-10}"; CONNECTIONS="${2:-32}"; ROUNDS="${3:-1}"
STATE="${WIZBRAND_STATE_DIR:-$ROOT/.stack}"
CACHE="${WIZBRAND_CACHE_DIR:-$HOME/.cache/wizbrand}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
"$ROOT/scripts/stack.sh" up --infra >/dev/null
set -a; source "$STATE/stack.env"; set +a
TMP="$(mktemp -d)"; PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$TMP"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "building release binaries (first time: several minutes)"
TARGET="${WIZBRAND_BENCH_TARGET_DIR:-$CACHE/target-bench}"
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet --bin wizbrand --example noop_gate --example sign_assertion)
BIN="$TARGET/release"
"$BIN/examples/sign_assertion"

DB="${WIZBRAND_STACK_PG_ADMIN_URL%/postgres}/wizbrand_gatebench"
psql "$WIZBRAND_STACK_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS wizbrand_gatebench" -c "CREATE DATABASE wizbrand_gatebench"
SUB="$(python3 "$ROOT/bench/kc.py" bench-user gatebench)"
TOKEN="$(python3 "$ROOT/bench/kc.py" token gatebench)"

P_GATE=$(free_port); P_NOOP=$(free_port); P_UP=$(free_port); P_TRAEFIK=$(free_port)
P_SIGNED=$(free_port); P_BASE=$(free_port); P_NOCACHE=$(free_port)
openssl genpkey -algorithm ed25519 -out "$TMP/assertion.pem" 2>/dev/null
export DATABASE_URL="$DB" WIZBRAND_LISTEN="127.0.0.1:$P_GATE" WIZBRAND_SYNC_ENABLED=false \
  WIZBRAND_PUBLIC_URL="http://127.0.0.1:$P_GATE" WIZBRAND_COOKIE_DOMAIN=wizbrand.localhost \
  WIZBRAND_TRUSTED_PROXIES=127.0.0.1/32 WIZBRAND_OPS_LISTEN=off \
  WIZBRAND_SESSION_KEY="$(head -c 64 /dev/zero | tr '\0' k)" RUST_LOG=warn
"$BIN/wizbrand" serve >"$TMP/wizbrand.log" 2>&1 & PIDS+=($!); GATE_PID=$!
# The others once it has migrated the database (they do not migrate).
until curl -fs "http://127.0.0.1:$P_GATE/healthz" >/dev/null; do sleep 0.2; done
# The same, with the signed identity assertion (X-Wizbrand-Assertion) on.
WIZBRAND_LISTEN="127.0.0.1:$P_SIGNED" WIZBRAND_MIGRATE_ON_START=false WIZBRAND_ASSERTION_KEY_FILE="$TMP/assertion.pem" \
  "$BIN/wizbrand" serve >"$TMP/signed.log" 2>&1 & PIDS+=($!); SIGNED_PID=$!
# And without the pass cache (WIZBRAND_GATE_PASS_CACHE=0): what the cache buys.
WIZBRAND_LISTEN="127.0.0.1:$P_NOCACHE" WIZBRAND_MIGRATE_ON_START=false WIZBRAND_GATE_PASS_CACHE=0 \
  "$BIN/wizbrand" serve >"$TMP/nocache.log" 2>&1 & PIDS+=($!); NOCACHE_PID=$!
BASE_BIN="${WIZBRAND_BENCH_BASE_BIN:-}"
if [[ -n "$BASE_BIN" ]]; then
  WIZBRAND_LISTEN="127.0.0.1:$P_BASE" WIZBRAND_MIGRATE_ON_START=false "$BASE_BIN" serve >"$TMP/base.log" 2>&1 & PIDS+=($!); BASE_PID=$!
fi
"$BIN/examples/noop_gate" "127.0.0.1:$P_NOOP" & PIDS+=($!); NOOP_PID=$!
"$BIN/examples/noop_gate" "127.0.0.1:$P_UP" & PIDS+=($!)
until curl -fs "http://127.0.0.1:$P_SIGNED/healthz" >/dev/null; do sleep 0.2; done
until curl -fs "http://127.0.0.1:$P_NOCACHE/healthz" >/dev/null; do sleep 0.2; done
if [[ -n "$BASE_BIN" ]]; then until curl -fs "http://127.0.0.1:$P_BASE/healthz" >/dev/null; do sleep 0.2; done; fi
psql "$DB" -q <<SQL
INSERT INTO orgs (slug, name, plan, features) VALUES ('acme', 'Acme', 'pro', ARRAY['seo']);
INSERT INTO users (email, keycloak_id) VALUES ('gatebench@bench.example.com', '$SUB');
INSERT INTO memberships (org_id, user_id, roles) SELECT o.id, u.id, ARRAY['ORG_USER'] FROM orgs o, users u;
SQL
sleep 1
SESSION="$(python3 "$ROOT/bench/kc.py" browser-login "http://127.0.0.1:$P_GATE/login?rd=http://127.0.0.1:$P_GATE/" __Host-wizbrand_session gatebench)"
# What the gate reads: acme.seo's own cookie, from the ticket hand-over.
APP_COOKIE="$(python3 "$ROOT/bench/kc.py" host-cookie "http://127.0.0.1:$P_GATE" "$SESSION" acme.seo.wizbrand.localhost)"

O2P="$CACHE/bin/oauth2-proxy"
if [[ ! -x "$O2P" ]]; then
  echo "installing oauth2-proxy $OAUTH2_PROXY_VERSION (go install)"
  GOBIN="$CACHE/bin" go install "github.com/oauth2-proxy/oauth2-proxy/v7@$OAUTH2_PROXY_VERSION"
fi
P_O2P=$(free_port)
python3 "$ROOT/bench/kc.py" ensure-client bench-oauth2-proxy bench-oauth2-proxy-secret
"$O2P" --provider=keycloak-oidc --client-id=bench-oauth2-proxy --client-secret=bench-oauth2-proxy-secret \
  --oidc-issuer-url="$KEYCLOAK_URL/realms/wizbrand" --redirect-url="http://127.0.0.1:$P_O2P/oauth2/callback" \
  --http-address="127.0.0.1:$P_O2P" --cookie-secret=0123456789abcdef0123456789abcdef --cookie-secure=false \
  --email-domain='*' --upstream=static://200 --skip-provider-button=true --code-challenge-method=S256 \
  --skip-jwt-bearer-tokens=true --oidc-extra-audience=wizbrand-api \
  --set-xauthrequest=true --request-logging=false --auth-logging=false --standard-logging=false >"$TMP/o2p.log" 2>&1 &
PIDS+=($!); O2P_PID=$!
until curl -fs "http://127.0.0.1:$P_O2P/ping" >/dev/null; do sleep 0.2; done
O2P_COOKIE="$(python3 "$ROOT/bench/kc.py" browser-login "http://127.0.0.1:$P_O2P/oauth2/start?rd=/" _oauth2_proxy gatebench)"

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
cat >"$TMP/dynamic/bench.yml" <<YML
http:
  middlewares:
    fa-noop: {forwardAuth: {address: "http://127.0.0.1:$P_NOOP/", trustForwardHeader: false, maxResponseBodySize: 65536, authResponseHeaders: [X-User-Id, X-User-Email, X-Org-Id, X-Org-Slug, X-Org-Roles, X-Wizbrand-Assertion, Cookie, Authorization]}}
    fa-wizbrand: {forwardAuth: {address: "http://127.0.0.1:$P_GATE/forward-auth", trustForwardHeader: false, maxResponseBodySize: 65536, authResponseHeaders: [X-User-Id, X-User-Email, X-Org-Id, X-Org-Slug, X-Org-Roles, X-Wizbrand-Assertion, Cookie, Authorization]}}
    fa-signed: {forwardAuth: {address: "http://127.0.0.1:$P_SIGNED/forward-auth", trustForwardHeader: false, maxResponseBodySize: 65536, authResponseHeaders: [X-User-Id, X-User-Email, X-Org-Id, X-Org-Slug, X-Org-Roles, X-Wizbrand-Assertion, Cookie, Authorization]}}
  routers:
    plain: {rule: "Host(\`plain.bench.localhost\`)", service: up}
    noopfa: {rule: "Host(\`noopfa.bench.localhost\`)", service: up, middlewares: [fa-noop]}
    gate: {rule: "Host(\`acme.seo.wizbrand.localhost\`)", service: up, middlewares: [fa-wizbrand]}
    signed: {rule: "Host(\`acme.seo.wizbrand.localhost\`) && PathPrefix(\`/signed\`)", service: up, middlewares: [fa-signed]}
  services:
    up: {loadBalancer: {servers: [{url: "http://127.0.0.1:$P_UP"}]}}
YML
"$WIZBRAND_STACK_TRAEFIK_BIN" --configFile="$TMP/traefik.yml" >/dev/null 2>&1 & PIDS+=($!); TRAEFIK_PID=$!
until [[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: plain.bench.localhost' "http://127.0.0.1:$P_TRAEFIK/")" == 200 ]]; do sleep 0.2; done

check() {
  local code; code="$(curl -s -o /dev/null -w '%{http_code}' "$@")"
  [[ "$code" == 20[02] ]] && return
  echo "target answered $code, not 200: $*" >&2
  for log in "$TMP"/*.log; do echo "== $log" >&2; tail -20 "$log" >&2; done
  exit 1
}
AUTH="Authorization: Bearer $TOKEN"
FWD=(-H "X-Forwarded-Host: acme.seo.wizbrand.localhost" -H "X-Forwarded-Proto: http" -H "X-Forwarded-Uri: /" -H "X-Forwarded-Method: GET")
check -H "$AUTH" "${FWD[@]}" "http://127.0.0.1:$P_GATE/forward-auth"
check -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_GATE/forward-auth"
check -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_SIGNED/forward-auth"
check -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_NOCACHE/forward-auth"
curl -s -D - -o /dev/null -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_SIGNED/forward-auth" | grep -qi '^x-wizbrand-assertion: ey' \
  || { echo "the signing gate sent no assertion" >&2; exit 1; }
if [[ -n "$BASE_BIN" ]]; then check -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_BASE/forward-auth"; fi
check -H "Cookie: $O2P_COOKIE" "http://127.0.0.1:$P_O2P/oauth2/auth"
check -H "$AUTH" "http://127.0.0.1:$P_O2P/oauth2/auth"
check -H "Cookie: $APP_COOKIE" -H "Host: acme.seo.wizbrand.localhost" "http://127.0.0.1:$P_TRAEFIK/"
check -H "Cookie: $APP_COOKIE" -H "Host: acme.seo.wizbrand.localhost" "http://127.0.0.1:$P_TRAEFIK/signed"

# CPU time (user and system, clock ticks) a process has used so far.
ticks() { awk '{print $14 " " $15}' "/proc/$1/stat"; }
# measure LABEL PID WRK-ARGS...: throughput and latency, and the CPU time the process
# PID (the server measured; - for none) spent per request, which other load on the
# machine disturbs less than throughput.
measure() {
  local label="$1" pid="$2"; shift 2
  local before="0 0"; [[ "$pid" != - ]] && before="$(ticks "$pid")"
  local out; out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")"
  local rps p50 p99 errors cpu="" requests
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  if [[ "$pid" != - ]]; then
    cpu="$(awk -v b="$before" -v a="$(ticks "$pid")" -v n="$requests" -v hz="$(getconf CLK_TCK)" \
      'BEGIN {split(b, x, " "); split(a, y, " "); u = (y[1] - x[1]) / hz * 1e6 / n; k = (y[2] - x[2]) / hz * 1e6 / n;
              printf "cpu %5.1f us/req (user %4.1f)", u + k, u}')"
  fi
  errors="$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ';' || true)"
  printf '%-50s %10s req/s   p50 %8s   p99 %8s   %s   %s\n' "$label" "$rps" "$p50" "$p99" "$cpu" "$errors"
}
# WIZBRAND_BENCH_PERF=DIR: a CPU profile (perf, flat: symbols by self time) of wizbrand
# during rows 1 and 1b and of the do-nothing gate during row 2, written to DIR.
PERF_DIR="${WIZBRAND_BENCH_PERF:-}"
profiled() {
  local name="$1" pid="$2"; shift 2
  if [[ -z "$PERF_DIR" || "$round" != 1 ]]; then measure "$1" "$pid" "${@:2}"; return; fi
  mkdir -p "$PERF_DIR"
  perf record -q -F 1999 -p "$pid" -o "$PERF_DIR/$name.data" -- sleep "$DURATION" 2>/dev/null &
  local perf_pid=$!
  measure "$1" "$pid" "${@:2}"
  wait "$perf_pid" || true
  perf report -q -i "$PERF_DIR/$name.data" --no-children --sort dso,sym --percent-limit 0.3 \
    >"$PERF_DIR/$name.txt" 2>/dev/null || true
}
echo "wrk: 2 threads, $CONNECTIONS connections, ${DURATION}s each, $ROUNDS round(s)"
for ((round = 1; round <= ROUNDS; round++)); do
  echo "round $round"
  # A fresh token each round: the realm's access tokens live 5 minutes.
  TOKEN="$(python3 "$ROOT/bench/kc.py" token gatebench)"; AUTH="Authorization: Bearer $TOKEN"
  profiled cookie "$GATE_PID" "1 wizbrand /forward-auth, app-host cookie" -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_GATE/forward-auth"
  profiled bearer "$GATE_PID" "1b wizbrand /forward-auth, Bearer token" -H "$AUTH" "${FWD[@]}" "http://127.0.0.1:$P_GATE/forward-auth"
  measure "1d wizbrand /forward-auth, cookie, no pass cache" "$NOCACHE_PID" -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_NOCACHE/forward-auth"
  measure "1c wizbrand /forward-auth, cookie + assertion" "$SIGNED_PID" -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_SIGNED/forward-auth"
  if [[ -n "$BASE_BIN" ]]; then
    profiled base-cookie "$BASE_PID" "0 earlier build, app-host cookie" -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_BASE/forward-auth"
    measure "0b earlier build, Bearer token" "$BASE_PID" -H "$AUTH" "${FWD[@]}" "http://127.0.0.1:$P_BASE/forward-auth"
  fi
  # The same request as row 1 (the pass cookie and the forwarded headers), answered
  # without a look; 2b the bare request (fewer header bytes to parse).
  profiled noop "$NOOP_PID" "2 do-nothing gate, row 1's request" -H "Cookie: $APP_COOKIE" "${FWD[@]}" "http://127.0.0.1:$P_NOOP/forward-auth"
  measure "2a do-nothing gate, row 1b's request" "$NOOP_PID" -H "$AUTH" "${FWD[@]}" "http://127.0.0.1:$P_NOOP/forward-auth"
  measure "2b do-nothing gate, bare request" "$NOOP_PID" "http://127.0.0.1:$P_NOOP/"
  measure "3 oauth2-proxy /oauth2/auth, its session cookie" "$O2P_PID" -H "Cookie: $O2P_COOKIE" "http://127.0.0.1:$P_O2P/oauth2/auth"
  measure "3b oauth2-proxy /oauth2/auth, Bearer token" "$O2P_PID" -H "$AUTH" "http://127.0.0.1:$P_O2P/oauth2/auth"
  measure "4 Traefik -> upstream" "$TRAEFIK_PID" -H "Host: plain.bench.localhost" "http://127.0.0.1:$P_TRAEFIK/"
  measure "5 Traefik -> ForwardAuth(do-nothing) -> up" "$TRAEFIK_PID" -H "Cookie: $APP_COOKIE" -H "Host: noopfa.bench.localhost" "http://127.0.0.1:$P_TRAEFIK/"
  measure "6 Traefik -> wizbrand gate -> upstream" "$TRAEFIK_PID" -H "Cookie: $APP_COOKIE" -H "Host: acme.seo.wizbrand.localhost" "http://127.0.0.1:$P_TRAEFIK/"
  measure "6c Traefik -> wizbrand gate + assertion -> up" "$TRAEFIK_PID" -H "Cookie: $APP_COOKIE" -H "Host: acme.seo.wizbrand.localhost" "http://127.0.0.1:$P_TRAEFIK/signed"
done
rss() { awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
echo "peak RSS: wizbrand $(rss "$GATE_PID"), with assertion $(rss "$SIGNED_PID"), do-nothing gate $(rss "$NOOP_PID"), oauth2-proxy $(rss "$O2P_PID")"
