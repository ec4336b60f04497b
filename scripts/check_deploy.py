#!/usr/bin/env python3
"""The checks of scripts/check-deploy.sh that need more than a command line.

  check_deploy.py chart RENDERED OUT --repo ROOT --values-name NAME
      Splits `helm template` output: built-in kinds go to OUT/builtin-*.yaml (the shell
      script validates them against the Kubernetes schemas), Traefik Middlewares to
      OUT/traefik-middleware-*.yaml (loaded by the real Traefik). Then checks what
      a schema cannot: the gate's Middleware lists every identity header (the same list
      as traefik/dynamic/wizbrand.yml, which the integration tests run); pods are
      non-root with a read-only root, probe /healthz and /readyz on the public port;
      no Secret is rendered and every secret comes from a secretKeyRef; migrations run
      before the server (a pre-install/pre-upgrade hook Job or an init container);
      Services, the PDB, the HPA, the ServiceMonitor, the IngressRoute and the
      NetworkPolicy point at objects and ports that exist; nothing routes to the ops port.
  check_deploy.py traefik MIDDLEWARE.yaml --traefik BIN --work DIR
      Loads a Middleware's spec into the real Traefik as file-provider configuration (the
      CRD's fields are the file provider's) and requires it enabled, with no error logged.
      Traefik refuses unknown fields ("field not found").
  check_deploy.py compose COMPOSE.yaml --schema SCHEMA --repo ROOT --traefik BIN --work DIR
      Validates the compose file against the compose-file schema, then cross-checks it
      (images pinned, dependencies exist, wizbrand read-only and non-root, the ops port
      never published) and loads its Traefik configuration into the real Traefik.

Runs with the kubernetes-validate virtualenv's Python (PyYAML and jsonschema).
"""

import argparse
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

FAILURES = []


def fail(message):
    FAILURES.append(message)
    print(f"[deploy] FAIL: {message}", file=sys.stderr)


def identity_headers(repo):
    """The authResponseHeaders of the dev stack's Traefik configuration (tested end to
    end), and the identity headers docs/design.md names."""
    dynamic = (repo / "traefik/dynamic/wizbrand.yml").read_text()
    block = dynamic.split("authResponseHeaders:", 1)[1].split("authResponseHeadersRegex", 1)[0]
    tested = re.findall(r"^\s*-\s*([A-Za-z-]+)\s*$", block, re.M)
    design = set(re.findall(r"`(X-(?:User|Org)-[A-Za-z]+)`", (repo / "docs/design.md").read_text()))
    if not tested or not design:
        fail("could not read the identity headers from traefik/dynamic/wizbrand.yml and docs/design.md")
    return tested, design


# ------------------------------------------------------------------ chart

def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def pod_specs(objects):
    """(owner, pod spec) of every workload."""
    for o in objects:
        if o.get("kind") in ("Deployment", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"], o


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_chart(rendered, out, repo, values_name):
    objects = [o for o in yaml.safe_load_all(rendered.read_text()) if o]
    builtin = 0
    for i, o in enumerate(objects):
        group = o.get("apiVersion", "").split("/")[0]
        name = f"{o['kind'].lower()}-{o['metadata']['name']}"
        if o["kind"] == "Middleware" and group == "traefik.io":
            (out / f"traefik-middleware-{name}.yaml").write_text(yaml.safe_dump(o))
        elif "." in group and group not in ("apps", "batch") and not group.endswith(".k8s.io"):
            # CRDs (traefik.io IngressRoute, monitoring.coreos.com ServiceMonitor): the
            # cross-checks below.
            continue
        else:
            builtin += 1
            (out / f"builtin-{i:02d}-{name}.yaml").write_text(yaml.safe_dump(o))
    if not builtin:
        fail("no built-in object rendered")

    if by_kind(objects, "Secret"):
        fail("the chart renders a Secret: secrets must come from an existing Secret")
    deployments = by_kind(objects, "Deployment")
    if len(deployments) != 1:
        fail(f"expected one Deployment, got {len(deployments)}")
        return
    deployment = deployments[0]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    if not selects(deployment["spec"]["selector"]["matchLabels"], pod_labels):
        fail("the Deployment's selector does not select its own pods")
    hpa = by_kind(objects, "HorizontalPodAutoscaler")
    if values_name == "default" and deployment["spec"].get("replicas") != 2:
        fail("the default release runs two replicas")
    if hpa:
        target = hpa[0]["spec"]["scaleTargetRef"]
        if target["name"] != deployment["metadata"]["name"] or hpa[0]["spec"]["minReplicas"] < 2:
            fail("the HPA must target the Deployment and keep at least two replicas")
        if "replicas" in deployment["spec"]:
            fail("with the HPA on, the Deployment must leave replicas to it")

    # Pods: non-root, read-only root, no privilege, secrets by reference only.
    for owner, spec, _ in pod_specs(objects):
        pod_sc = spec.get("securityContext", {})
        if pod_sc.get("runAsNonRoot") is not True or not pod_sc.get("runAsUser"):
            fail(f"{owner}: pods must run as a non-root user")
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(f"{owner}/{c['name']}: the root file system must be read-only")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{owner}/{c['name']}: privilege escalation must be off")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                fail(f"{owner}/{c['name']}: every capability must be dropped")
            if not c.get("resources", {}).get("limits", {}).get("memory"):
                fail(f"{owner}/{c['name']}: no memory limit")
            env = {e["name"]: e for e in c.get("env", [])}
            for secret in ("DATABASE_URL", "WIZBRAND_SESSION_KEY", "WIZBRAND_SESSION_KEYS_PREVIOUS",
                           "WIZBRAND_OIDC_CLIENT_SECRET", "WIZBRAND_SYNC_CLIENT_SECRET"):
                ref = env.get(secret, {}).get("valueFrom", {}).get("secretKeyRef")
                if not ref or "value" in env.get(secret, {}):
                    fail(f"{owner}/{c['name']}: {secret} must come from a secretKeyRef")
            if env.get("WIZBRAND_MIGRATE_ON_START", {}).get("value") != "false":
                fail(f"{owner}/{c['name']}: migrations are the Job's or init container's, not serve's")

    server = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "wizbrand")
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    if set(ports) != {"http", "ops"}:
        fail(f"the server's ports are {sorted(ports)}, expected http and ops")
    env = {e["name"]: e.get("value") for e in server["env"]}
    if env.get("WIZBRAND_OPS_LISTEN", "").rsplit(":", 1)[-1] != str(ports.get("ops")):
        fail("WIZBRAND_OPS_LISTEN does not match the ops port")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = server.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") != "http":
            fail(f"{probe} must be {path} on the public port, got {get}")

    # Migrations before the new pods serve.
    jobs = by_kind(objects, "Job")
    inits = deployment["spec"]["template"]["spec"].get("initContainers", [])
    migrating_jobs = [j for j in jobs if j["spec"]["template"]["spec"]["containers"][0].get("args") == ["migrate"]]
    if migrating_jobs:
        hooks = migrating_jobs[0]["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        if not {"pre-install", "pre-upgrade"} <= set(hooks.split(",")):
            fail("the migration Job must be a pre-install and pre-upgrade hook")
        if selects(deployment["spec"]["selector"]["matchLabels"], migrating_jobs[0]["spec"]["template"]["metadata"]["labels"]):
            fail("the Deployment's selector also selects the migration Job's pod")
    elif not any(c.get("args") == ["migrate"] for c in inits):
        fail("migrations run neither in a hook Job nor in an init container")

    # Services: the public one has no ops port; each selects the server's pods.
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    public = services.get(deployment["metadata"]["name"])
    if not public:
        fail("no Service named like the Deployment")
    for name, service in services.items():
        if not selects(service["spec"]["selector"], pod_labels):
            fail(f"Service {name} selects no server pod")
        for port in service["spec"]["ports"]:
            if port["targetPort"] not in ports:
                fail(f"Service {name} targets an unknown port {port['targetPort']}")
    if public and any(p["targetPort"] == "ops" for p in public["spec"]["ports"]):
        fail("the public Service exposes the ops port")
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        if not selects(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            fail("the PodDisruptionBudget selects no server pod")
    for np in by_kind(objects, "NetworkPolicy"):
        if not selects(np["spec"]["podSelector"]["matchLabels"], pod_labels):
            fail("the NetworkPolicy does not cover the server pods")
        allowed = {p["port"] for rule in np["spec"].get("ingress", []) for p in rule.get("ports", [])}
        if not {"http", "ops"} <= allowed:
            fail(f"the NetworkPolicy admits ports {sorted(allowed)}, expected http and ops rules")

    # The gate's Middleware: every identity header, and the hardening settings.
    tested, design = identity_headers(repo)
    for mw in by_kind(objects, "Middleware"):
        forward = mw["spec"].get("forwardAuth")
        if not forward:
            continue
        listed = forward.get("authResponseHeaders", [])
        if listed != tested:
            fail(f"Middleware {mw['metadata']['name']}: authResponseHeaders {listed} differ from "
                 f"traefik/dynamic/wizbrand.yml's {tested}")
        missing = design - set(listed)
        if missing:
            fail(f"Middleware {mw['metadata']['name']} misses identity headers {sorted(missing)}")
        for key, wanted in (("trustForwardHeader", False), ("preserveLocationHeader", False)):
            if forward.get(key) is not wanted:
                fail(f"Middleware {mw['metadata']['name']}: {key} must be {wanted}")
        if not forward.get("address", "").startswith(f"http://{public['metadata']['name']}."):
            fail(f"Middleware {mw['metadata']['name']}: the address is not the public Service")
        if not forward["address"].endswith(f":{public['spec']['ports'][0]['port']}/forward-auth"):
            fail(f"Middleware {mw['metadata']['name']}: the address is not the public port's /forward-auth")

    # IngressRoute: only the public Service's http port; middlewares that exist.
    middlewares = {m["metadata"]["name"] for m in by_kind(objects, "Middleware")}
    for route in by_kind(objects, "IngressRoute"):
        for r in route["spec"]["routes"]:
            for s in r.get("services", []):
                if s["name"] != public["metadata"]["name"] or s["port"] != "http":
                    fail(f"IngressRoute routes to {s['name']}:{s['port']}, only the public Service's http port may be")
            for m in r.get("middlewares", []):
                if m["name"] not in middlewares:
                    fail(f"IngressRoute names a Middleware {m['name']} the release does not have")
    for monitor in by_kind(objects, "ServiceMonitor"):
        targets = [s for s in services.values() if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        if len(targets) != 1 or targets[0] is public:
            fail("the ServiceMonitor must select the ops Service alone")
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint["port"] != "ops" or endpoint.get("path") != "/metrics":
                fail("the ServiceMonitor must scrape /metrics on the ops port")


# ------------------------------------------------------------------ Traefik

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The header hygiene of traefik/traefik.yml, for the check's own API entry point (so a
# warning Traefik prints is about the configuration under test).
HYGIENE = {
    "aliasHeadersStrategy": "delete",
    "encodedCharacters": {k: False for k in (
        "allowEncodedSlash", "allowEncodedBackSlash", "allowEncodedNullCharacter",
        "allowEncodedSemicolon", "allowEncodedPercent", "allowEncodedQuestionMark",
        "allowEncodedHash")},
}


def load_in_traefik(traefik, work, dynamic, entry_points, expect):
    """Runs Traefik with `dynamic` (file provider) and `entry_points` (static, moved to
    free loopback ports) until `expect` (kind, name) objects are reported enabled by its
    API, or a warning or an error shows."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "dynamic").mkdir(exist_ok=True)
    (work / "dynamic" / "check.yml").write_text(yaml.safe_dump(dynamic))
    api = free_port()
    eps = {"traefik": {"address": f"127.0.0.1:{api}", "http": HYGIENE}}
    for ep, config in entry_points.items():
        eps[ep] = {**config, "address": f"127.0.0.1:{free_port()}"}
    log = work / "traefik.log"
    static = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": eps,
        "api": {"insecure": True},
        "providers": {"file": {"directory": str(work / "dynamic")}},
        "log": {"level": "INFO", "filePath": str(log)},
    }
    (work / "static.yml").write_text(yaml.safe_dump(static))
    proc = subprocess.Popen([traefik, f"--configFile={work / 'static.yml'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.3)
            text = log.read_text() if log.exists() else ""
            errors = [line for line in text.splitlines() if " ERR " in line or " WRN " in line]
            if errors:
                fail("Traefik: " + " | ".join(errors))
                return
            try:
                found = {}
                for kind in {k for k, _ in expect}:
                    with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/http/{kind}", timeout=2) as r:
                        found.update({(kind, o["name"]): o for o in json.load(r)})
            except OSError:
                continue
            if all((kind, f"{name}@file") in found for kind, name in expect):
                for kind, name in expect:
                    item = found[(kind, f"{name}@file")]
                    if item.get("status") != "enabled":
                        fail(f"Traefik: {kind} {name} is {item.get('status')}: {item.get('error')}")
                return
        fail(f"Traefik did not load {expect} within 20 s; its log: {log}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def check_traefik(middleware_file, traefik, work):
    mw = yaml.safe_load(Path(middleware_file).read_text())
    name = mw["metadata"]["name"]
    dynamic = {"http": {"middlewares": {name: mw["spec"]}}}
    load_in_traefik(traefik, work, dynamic, {}, [("middlewares", name)])


# ------------------------------------------------------------------ compose

def check_compose(compose_file, schema_file, repo, traefik, work):
    import jsonschema

    compose = yaml.safe_load(Path(compose_file).read_text())
    # The schema docker-compose 1.29.2 ships predates the top-level `name` (compose
    # spec, 2022): checked here instead.
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", compose.get("name", "")):
        fail("compose.yaml: the project name must be a lower-case word")
    doc = {k: v for k, v in compose.items() if k != "name"}
    schema = json.loads(Path(schema_file).read_text())
    for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
        fail(f"compose.yaml {'/'.join(map(str, error.path))}: {error.message[:300]}")

    services = compose["services"]
    for name, service in services.items():
        image = service.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            fail(f"compose.yaml: {name}'s image {image} is not pinned to a version")
        for dep in service.get("depends_on", {}):
            if dep not in services:
                fail(f"compose.yaml: {name} depends on {dep}, which is not a service")
        if "wizbrand" in image:
            env = service.get("environment", {})
            if not service.get("read_only") or not str(service.get("user", "")).startswith("65532"):
                fail(f"compose.yaml: {name} must run read-only as 65532")
            ops = env.get("WIZBRAND_OPS_LISTEN", "").rsplit(":", 1)[-1]
            if any(str(p).split(":")[-1] == ops for p in service.get("ports", [])):
                fail(f"compose.yaml: {name} publishes its ops port")
            for secret in ("DATABASE_URL", "WIZBRAND_SESSION_KEY", "WIZBRAND_OIDC_CLIENT_SECRET"):
                if secret in env:
                    fail(f"compose.yaml: {name} has {secret} inline; it belongs in secrets.env")
    replicas = [n for n, s in services.items() if s.get("command") == ["serve"]]
    if len(replicas) < 2:
        fail("compose.yaml: two wizbrand replicas expected")

    # Traefik's part: the same gate settings as the tested dev configuration, and loaded
    # by the real Traefik (certificates and upstreams stand aside: they are the operator's).
    compose_dir = Path(compose_file).parent
    dynamic = yaml.safe_load((compose_dir / "traefik-dynamic.yml").read_text())
    tested, design = identity_headers(repo)
    forward = dynamic["http"]["middlewares"]["wizbrand-auth"]["forwardAuth"]
    if forward["authResponseHeaders"] != tested or not design <= set(forward["authResponseHeaders"]):
        fail("compose traefik-dynamic.yml: authResponseHeaders differ from traefik/dynamic/wizbrand.yml")
    dynamic.pop("tls", None)
    static = yaml.safe_load((compose_dir / "traefik.yml").read_text())
    load_in_traefik(traefik, work, dynamic, static["entryPoints"],
                    [("middlewares", m) for m in dynamic["http"]["middlewares"]]
                    + [("routers", r) for r in dynamic["http"]["routers"]])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["chart", "traefik", "compose"])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--repo")
    parser.add_argument("--values-name", default="")
    parser.add_argument("--traefik")
    parser.add_argument("--work")
    parser.add_argument("--schema")
    args = parser.parse_args()
    if args.what == "chart":
        check_chart(Path(args.paths[0]), Path(args.paths[1]), Path(args.repo), args.values_name)
    elif args.what == "traefik":
        check_traefik(args.paths[0], args.traefik, Path(args.work))
    else:
        check_compose(args.paths[0], args.schema, Path(args.repo), args.traefik, Path(args.work))
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
