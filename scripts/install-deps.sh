#!/usr/bin/env bash
# Installs what a fresh machine lacks for the stack and the tests (Debian packages).
# Idempotent and quiet when everything is there.
set -euo pipefail

need=()
ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v unzip >/dev/null || need+=(unzip)
command -v curl >/dev/null || need+=(curl)
command -v envsubst >/dev/null || need+=(gettext-base)
command -v mvn >/dev/null || need+=(maven)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# The production-shaped stack (scripts/prod-stack.sh, scripts/image.sh): containers without
# a Docker engine, the image's base from Debian's packages, the local CA, and certutil to
# make a test browser trust that CA. Debian 12's packages (measured: podman 4.3.1, buildah
# 1.28.2, mmdebstrap 1.3.5, runc 1.1.5); the suite is the pin, as a point release replaces
# a version in the archive.
command -v podman >/dev/null || need+=(podman)
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v runc >/dev/null || need+=(runc)
command -v openssl >/dev/null || need+=(openssl)
command -v strip >/dev/null || need+=(binutils)
command -v certutil >/dev/null || need+=(libnss3-tools)

if ((${#need[@]})); then
  echo "[deps] installing: ${need[*]}"
  SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The independent API tester (tests/it/conformance.rs), in a virtualenv of its own in the
# cache, pinned; scripts/test.sh tells the tests where it is.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"
CACHE="${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}"
st_venv="$CACHE/schemathesis-$SCHEMATHESIS_VERSION"
if [[ ! -x "$st_venv/bin/st" ]]; then
  echo "[deps] installing schemathesis==$SCHEMATHESIS_VERSION into $st_venv"
  mkdir -p "$CACHE"
  rm -rf "$st_venv"
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
