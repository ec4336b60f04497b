#!/usr/bin/env bash
# The wizbrand container image, built on this machine without any registry.
#
#   scripts/image.sh base    the runtime base: a distroless-like Debian 12 made with
#                            mmdebstrap from Debian's packages (glibc, libgcc, CA roots,
#                            tzdata, netbase; no shell, no package manager), imported
#                            into podman as $BASE_IMAGE. Cached.
#   scripts/image.sh build   base, then `cargo build --release` on the host and
#                            deploy/Containerfile with BINARY_FROM=context on that base;
#                            tags $WIZBRAND_IMAGE (default localhost/wizbrand:local) and
#                            prints its size. Skipped when binary, Containerfile and
#                            base are those of the current image.
#
# A user with registry access builds deploy/Containerfile as it stands instead (its Rust
# build stage, distroless base): docs/deploy.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"
CACHE="${WIZBRAND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wizbrand}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/containers.conf}"
IMAGE="${WIZBRAND_IMAGE:-localhost/wizbrand:local}"
BASE_IMAGE="localhost/wizbrand-runtime-base:$RUNTIME_BASE_SUITE-r$RUNTIME_BASE_REVISION"
# Debian packages of the base; their dependencies come along (openssl and debconf for
# ca-certificates), and what a running wizbrand does not need is removed after.
BASE_PACKAGES=libc6,libgcc-s1,ca-certificates,tzdata,netbase,base-files

say() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }

base() {
  if podman image exists "$BASE_IMAGE"; then return; fi
  local tar="$CACHE/image/runtime-base-$RUNTIME_BASE_SUITE-r$RUNTIME_BASE_REVISION.tar"
  if [[ ! -f "$tar" ]]; then
    say "base: mmdebstrap $RUNTIME_BASE_SUITE ($BASE_PACKAGES) into $tar"
    mkdir -p "$(dirname "$tar")"
    # extract: the packages are unpacked, no maintainer script runs, so the hooks (after extraction) do
    # by hand the little that matters: the CA bundle (what update-ca-certificates makes
    # from the default selection: every Mozilla root), the non-root user, /tmp.
    mmdebstrap --variant=extract --format=tar --include="$BASE_PACKAGES" \
      --extract-hook='mkdir -p "$1/etc/ssl/certs" && cat "$1"/usr/share/ca-certificates/mozilla/*.crt >"$1/etc/ssl/certs/ca-certificates.crt"' \
      --extract-hook='printf "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" >"$1/etc/passwd"' \
      --extract-hook='printf "root:x:0:\nnonroot:x:65532:\n" >"$1/etc/group"' \
      --extract-hook='mkdir -p "$1/home/nonroot" "$1/tmp" && chown 65532:65532 "$1/home/nonroot" && chmod 1777 "$1/tmp"' \
      --extract-hook='cd "$1" && rm -rf usr/share/doc usr/share/man usr/share/info usr/share/locale usr/share/lintian usr/share/bash-completion usr/share/debconf usr/share/perl5 usr/bin/* usr/sbin/* usr/lib/x86_64-linux-gnu/gconv usr/lib/x86_64-linux-gnu/libssl* usr/lib/x86_64-linux-gnu/libcrypto* usr/lib/x86_64-linux-gnu/engines-3 usr/lib/x86_64-linux-gnu/ossl-modules' \
      "$RUNTIME_BASE_SUITE" "$tar.part" >"$CACHE/image/mmdebstrap.log" 2>&1 \
      || die "mmdebstrap failed; see $CACHE/image/mmdebstrap.log"
    # apt's and dpkg's own files, which mmdebstrap needs until it has finished.
    tar --delete --wildcards -f "$tar.part" './etc/apt*' './var/lib/apt*' './var/cache/apt*' './var/lib/dpkg*' './var/log/*' 2>/dev/null || true
    mv "$tar.part" "$tar"
  fi
  say "base: importing $tar as $BASE_IMAGE"
  podman import --quiet "$tar" "$BASE_IMAGE" >/dev/null
}

build() {
  base
  say "cargo build --release (target in $CARGO_TARGET_DIR)"
  # Run from a test (tests/it/prod.rs), the environment holds what cargo set for the test
  # (CARGO_MANIFEST_DIR, CARGO_PKG_*, …); build scripts that watch such variables would
  # rebuild the release binary, and the next plain build rebuild it back.
  local var
  for var in $(compgen -e); do
    case "$var" in
      CARGO_HOME | CARGO_TARGET_DIR | CARGO_TERM_COLOR) ;;
      CARGO | CARGO_* | __CARGO* | RUSTC* | RUSTDOC* | OUT_DIR) unset "$var" ;;
    esac
  done
  (cd "$ROOT" && cargo build --release --locked --quiet --bin wizbrand) \
    || die "cargo build --release failed"
  local binary="$CARGO_TARGET_DIR/release/wizbrand" want
  want="$(cat "$binary" "$ROOT/deploy/Containerfile" | sha256sum | cut -c1-32) $(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")"
  if podman image exists "$IMAGE" \
    && [[ "$(podman image inspect --format '{{index .Labels "io.wizbrand.built-from"}}' "$IMAGE")" == "$want" ]]; then
    say "$IMAGE is current"
  else
    local context; context="$(mktemp -d)"
    # The symbols only: the image holds what runs (a panic's backtrace still names
    # functions from the symbol table's dynamic part; none should happen).
    strip --strip-debug -o "$context/wizbrand" "$binary"
    say "building $IMAGE on $BASE_IMAGE"
    buildah bud --quiet --isolation chroot --layers=false \
      --build-arg "RUNTIME_BASE=$BASE_IMAGE" --build-arg BINARY_FROM=context \
      --label "io.wizbrand.built-from=$want" \
      -f "$ROOT/deploy/Containerfile" -t "$IMAGE" "$context" >/dev/null \
      || { rm -rf "$context"; die "buildah bud failed"; }
    rm -rf "$context"
  fi
  local size; size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
  say "$IMAGE: $((size / 1000 / 1000)) MB ($size bytes; base $(( $(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") / 1000 / 1000 )) MB)"
}

case "${1:-build}" in
  base) base ;;
  build) build ;;
  *) die "unknown command '$1' (base | build)" ;;
esac
