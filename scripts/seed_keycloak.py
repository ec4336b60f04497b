#!/usr/bin/env python3
"""Dev/test seed of the wizbrand realm (never for production): the demo users and
two test-only clients. Idempotent: creates what is missing, puts back what drifted.

  python3 scripts/seed_keycloak.py --url http://localhost:8180 --admin admin --admin-password admin

Org groups and memberships are not made here: the wizbrand sync does that from Postgres.
"""
import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

REALM = "wizbrand"
DEMO_USERS = ["alice", "bob", "carol", "dana"]
PLATFORM_ADMINS = {"dana"}
# Test-only clients: a password grant is never part of the realm export.
TEST_CLIENTS = {
    "wizbrand-test": {"secret": "wizbrand-test-secret", "orgs": True},
    "wizbrand-noaud": {"secret": "wizbrand-noaud-secret", "orgs": False},
}


class Admin:
    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url.rstrip("/")
        form = urllib.parse.urlencode({
            "grant_type": "password", "client_id": "admin-cli",
            "username": user, "password": password,
        }).encode()
        try:
            token = json.load(urllib.request.urlopen(
                f"{self.url}/realms/master/protocol/openid-connect/token", form, timeout=10))
        except (urllib.error.URLError, OSError) as e:
            sys.exit(f"seed: cannot sign in to Keycloak at {self.url} as {user}: {e}")
        self.token = token["access_token"]

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/admin/realms/{REALM}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            sys.exit(f"seed: {method} {path} failed: {e.code} {e.read().decode(errors='replace')}")


def ensure_client(admin: Admin, client_id: str, secret: str, orgs: bool) -> None:
    scopes = ["basic", "profile", "email", "roles", "acr"] + (["wizbrand-orgs"] if orgs else [])
    rep = {
        "clientId": client_id, "enabled": True, "protocol": "openid-connect",
        "publicClient": False, "secret": secret, "standardFlowEnabled": False,
        "directAccessGrantsEnabled": True, "serviceAccountsEnabled": False,
        "fullScopeAllowed": True, "defaultClientScopes": scopes, "optionalClientScopes": [],
    }
    found = admin.call("GET", f"/clients?clientId={client_id}")
    if found:
        rep["id"] = found[0]["id"]
        admin.call("PUT", f"/clients/{rep['id']}", rep)
        print(f"client {client_id}: updated")
    else:
        admin.call("POST", "/clients", rep)
        print(f"client {client_id}: created")


def ensure_user(admin: Admin, name: str) -> None:
    rep = {
        "username": name, "email": f"{name}@example.com", "emailVerified": True,
        "enabled": True, "firstName": name.capitalize(), "lastName": "Demo", "requiredActions": [],
    }
    found = admin.call("GET", f"/users?username={name}&exact=true")
    if found:
        user_id = found[0]["id"]
        current = admin.call("GET", f"/users/{user_id}")
        current.update(rep)  # keep attributes the sync wrote
        admin.call("PUT", f"/users/{user_id}", current)
        state = "updated"
    else:
        admin.call("POST", "/users", rep)
        user_id = admin.call("GET", f"/users?username={name}&exact=true")[0]["id"]
        state = "created"
    admin.call("PUT", f"/users/{user_id}/reset-password",
               {"type": "password", "value": name, "temporary": False})
    if name in PLATFORM_ADMINS:
        role = admin.call("GET", "/roles/wizbrand-admin")
        admin.call("POST", f"/users/{user_id}/role-mappings/realm", [role])
    print(f"user {name}: {state}" + (" (wizbrand-admin)" if name in PLATFORM_ADMINS else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--admin-password", required=True)
    args = parser.parse_args()
    admin = Admin(args.url, args.admin, args.admin_password)
    for client_id, spec in TEST_CLIENTS.items():
        ensure_client(admin, client_id, spec["secret"], spec["orgs"])
    for name in DEMO_USERS:
        ensure_user(admin, name)


if __name__ == "__main__":
    main()
