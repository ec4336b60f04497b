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

# The independent SCIM conformance suite (tests/it/scim.rs runs scripts/scim_conformance.py
# with it), in a virtualenv of its own in the cache, pinned.
scim_venv="$CACHE/scim2-tester-$SCIM2_TESTER_VERSION"
if [[ ! -x "$scim_venv/bin/python" ]] || ! "$scim_venv/bin/python" -c 'import scim2_tester, httpx2' 2>/dev/null; then
  echo "[deps] installing scim2-tester==$SCIM2_TESTER_VERSION into $scim_venv"
  mkdir -p "$CACHE"
  rm -rf "$scim_venv"
  python3 -m venv "$scim_venv"
  "$scim_venv/bin/pip" install -q "scim2-tester[httpx2]==$SCIM2_TESTER_VERSION" \
    "scim2-client==$SCIM2_CLIENT_VERSION" "scim2-models==$SCIM2_MODELS_VERSION" "httpx2==$HTTPX2_VERSION"
fi

# The stack's SMTP server (scripts/mail_store.py), in a virtualenv of its own, pinned.
smtp_venv="$CACHE/aiosmtpd-$AIOSMTPD_VERSION"
if [[ ! -x "$smtp_venv/bin/python" ]] || ! "$smtp_venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  echo "[deps] installing aiosmtpd==$AIOSMTPD_VERSION into $smtp_venv"
  mkdir -p "$CACHE"
  rm -rf "$smtp_venv"
  python3 -m venv "$smtp_venv"
  # shellcheck disable=SC2086 # the pins are words
  "$smtp_venv/bin/pip" install -q "aiosmtpd==$AIOSMTPD_VERSION" $AIOSMTPD_DEPS
fi
