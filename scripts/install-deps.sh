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
command -v openssl >/dev/null || need+=(openssl)
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
# A pinned Python tool in a virtualenv of its own in the cache (made again when its import
# check fails, e.g. after an interrupted install).
# Usage: venv_install DIR IMPORT-CHECK PIP-REQUIREMENT...
venv_install() {
  local venv="$1" check="$2"; shift 2
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$check" 2>/dev/null; then return; fi
  echo "[deps] installing $* into $venv"
  mkdir -p "$CACHE"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$@"
}

venv_install "$CACHE/schemathesis-$SCHEMATHESIS_VERSION" 'import schemathesis' \
  "schemathesis==$SCHEMATHESIS_VERSION"
# The independent SCIM conformance suite (tests/it/scim.rs runs scripts/scim_conformance.py).
venv_install "$CACHE/scim2-tester-$SCIM2_TESTER_VERSION" 'import scim2_tester, httpx2' \
  "scim2-tester[httpx2]==$SCIM2_TESTER_VERSION" "scim2-client==$SCIM2_CLIENT_VERSION" \
  "scim2-models==$SCIM2_MODELS_VERSION" "httpx2==$HTTPX2_VERSION"
# The stack's SMTP server (scripts/mail_store.py).
# shellcheck disable=SC2086 # the pins are words
venv_install "$CACHE/aiosmtpd-$AIOSMTPD_VERSION" 'import aiosmtpd' \
  "aiosmtpd==$AIOSMTPD_VERSION" $AIOSMTPD_DEPS
# An independent verifier of the gate's identity assertion (tests/it/assertion.rs).
venv_install "$CACHE/pyjwt-$PYJWT_VERSION" 'import jwt, cryptography' \
  "PyJWT==$PYJWT_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION"
