#!/usr/bin/env python3
"""Dev/test seed of the wizbrand realm: the demo users and two test-only clients.

Never run this against production: it sets well-known passwords and adds clients that
allow the password grant, which the realm export (keycloak-realm/) deliberately lacks.

  python3 scripts/seed_keycloak.py --url http://localhost:8180 --admin admin --admin-password admin

Idempotent: creates what is missing and puts back what drifted (client settings, client
scopes, user profile fields, passwords, the wizbrand-admin role of dana, the realm's SMTP
settings pointing at the stack's mail server), and adds the
org realm roles ORG_ADMIN/ORG_MANAGER/ORG_USER to a realm imported before the export had them. Attributes and
group memberships of users are left alone: org groups, memberships and claim attributes
belong to the wizbrand sync. Python 3 standard library only.
"""
import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REALM = "wizbrand"
REALM_FILE = Path(__file__).resolve().parent.parent / "keycloak-realm" / "wizbrand-realm.json"
ORG_ROLES = ["ORG_ADMIN", "ORG_MANAGER", "ORG_USER"]  # realm roles the sync maps to role groups
DEMO_USERS = ["alice", "bob", "carol", "dana"]
PLATFORM_ADMINS = {"dana"}  # realm role wizbrand-admin
PLATFORM_ADMIN_ROLE = "wizbrand-admin"

# Test-only confidential clients with the password grant (never in the realm export).
# wizbrand-test gets the org claims and `aud wizbrand-api` through the wizbrand-orgs scope;
# wizbrand-noaud is the same client without that scope, for tokens the API must refuse.
BASE_SCOPES = ["basic", "profile", "email", "roles", "acr"]
TEST_CLIENTS = {
    "wizbrand-test": {"secret": "wizbrand-test-secret", "scopes": BASE_SCOPES + ["wizbrand-orgs"]},
    "wizbrand-noaud": {"secret": "wizbrand-noaud-secret", "scopes": BASE_SCOPES},
}


def fail(message: str):
    sys.exit(f"seed_keycloak: {message}")


class Admin:
    """A tiny client of Keycloak's admin REST API for one realm."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url.rstrip("/")
        form = urllib.parse.urlencode({
            "grant_type": "password", "client_id": "admin-cli",
            "username": user, "password": password,
        }).encode()
        token_url = f"{self.url}/realms/master/protocol/openid-connect/token"
        try:
            with urllib.request.urlopen(token_url, form, timeout=15) as response:
                self.token = json.load(response)["access_token"]
        except urllib.error.HTTPError as e:
            if e.code in (400, 401):
                fail(f"Keycloak at {self.url} refused the admin login of '{user}' "
                     f"({e.code}); check --admin and --admin-password")
            fail(f"Keycloak at {self.url} answered {e.code} to the admin login; is it ready?")
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            fail(f"cannot reach Keycloak at {self.url} ({reason}); is it running?")

    def call(self, method: str, path: str, body=None, ok_missing: bool = False):
        """Sends one request to /admin/realms/wizbrand<path>; returns the parsed JSON
        body (or None). With ok_missing, a 404 returns None instead of failing."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/admin/realms/{REALM}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                text = response.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            if ok_missing and e.code == 404:
                return None
            detail = e.read().decode(errors="replace")[:500]
            fail(f"{method} /admin/realms/{REALM}{path} failed: {e.code} {detail}")
        except (urllib.error.URLError, OSError) as e:
            fail(f"{method} /admin/realms/{REALM}{path}: Keycloak unreachable "
                 f"({getattr(e, 'reason', e)})")


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def ensure_org_roles(admin: Admin) -> None:
    """A realm imported before the org roles were in the export gets them here: the sync
    maps them to the role groups but may not create roles (no manage-realm)."""
    exported = {r["name"]: r for r in json.loads(REALM_FILE.read_text())["roles"]["realm"]}
    for name in ORG_ROLES:
        description = exported[name]["description"]
        held = admin.call("GET", f"/roles/{q(name)}", ok_missing=True)
        if held is None:
            admin.call("POST", "/roles", {"name": name, "description": description})
            print(f"realm role {name}: created")
        elif held.get("description") != description:
            admin.call("PUT", f"/roles/{q(name)}", {"name": name, "description": description})
            print(f"realm role {name}: description updated")


def ensure_email_admin_only(admin: Admin) -> None:
    """A person must not choose their own email or username: wizbrand links a member to
    an account by a verified address, so only administrators (and the sync) set them
    (docs/threat-model.md). A realm imported before the export said so gets it here."""
    profile = admin.call("GET", "/users/profile")
    changed = False
    for attribute in profile.get("attributes", []):
        if attribute.get("name") in ("email", "username"):
            permissions = attribute.setdefault("permissions", {})
            if permissions.get("edit") != ["admin"]:
                permissions["edit"] = ["admin"]
                changed = True
    exported = json.loads(json.loads(REALM_FILE.read_text())["components"][
        "org.keycloak.userprofile.UserProfileProvider"][0]["config"]["kc.user.profile.config"][0])
    marker = next(a for a in exported["attributes"] if a["name"] == "wizbrand_user")
    if not any(a.get("name") == "wizbrand_user" for a in profile.get("attributes", [])):
        profile.setdefault("attributes", []).append(marker)
        changed = True
    if changed:
        admin.call("PUT", "/users/profile", profile)
        print("realm: email and username editable by administrators only; attribute wizbrand_user")


def ensure_admin_event_log(admin: Admin) -> None:
    """The sync trusts Keycloak's admin event log between full reads: the log on (without
    representations), and the sync's service account allowed to read it (view-events)."""
    events = admin.call("GET", "/events/config")
    if not events.get("adminEventsEnabled") or events.get("adminEventsDetailsEnabled"):
        admin.call("PUT", "/events/config",
                   {**events, "adminEventsEnabled": True, "adminEventsDetailsEnabled": False})
        print("realm: admin events recorded (without representations)")
    sync = admin.call("GET", "/clients?clientId=wizbrand-sync")
    management = admin.call("GET", "/clients?clientId=realm-management")
    if not sync or not management:
        fail("client wizbrand-sync or realm-management is missing; was the realm imported from keycloak-realm/?")
    account = admin.call("GET", f"/clients/{sync[0]['id']}/service-account-user")
    mapped = admin.call("GET", f"/users/{account['id']}/role-mappings/clients/{management[0]['id']}")
    if not any(r["name"] == "view-events" for r in mapped):
        role = admin.call("GET", f"/clients/{management[0]['id']}/roles/view-events")
        admin.call("POST", f"/users/{account['id']}/role-mappings/clients/{management[0]['id']}", [role])
        print("service account of wizbrand-sync: view-events granted")


def smtp_settings(port: int) -> dict:
    """The realm's mail settings: the stack's SMTP server (scripts/mail_store.py)."""
    exported = json.loads(REALM_FILE.read_text())["smtpServer"]
    return {**exported, "port": str(port)}


def ensure_smtp(admin: Admin, port: int) -> None:
    """Keycloak's own mails (set a password, verify an email) go to the stack's SMTP
    server; a realm imported before the export had SMTP settings gets them here."""
    realm = admin.call("GET", "")
    wanted = smtp_settings(port)
    if realm.get("smtpServer") != wanted:
        admin.call("PUT", "", {"smtpServer": wanted})
        print(f"realm: mail through SMTP 127.0.0.1:{port}")


def ensure_web_redirects(admin: Admin) -> None:
    """wizbrand-web's redirect URIs as exported: the invitation page is where Keycloak's
    set-a-password mail sends an invited person back to."""
    exported = next(c for c in json.loads(REALM_FILE.read_text())["clients"]
                    if c["clientId"] == "wizbrand-web")
    found = admin.call("GET", "/clients?clientId=wizbrand-web")
    if not found:
        fail("client wizbrand-web is missing; was the realm imported from keycloak-realm/?")
    client = found[0]
    missing = [u for u in exported["redirectUris"] if u not in client.get("redirectUris", [])]
    if missing:
        client["redirectUris"] = client.get("redirectUris", []) + missing
        admin.call("PUT", f"/clients/{client['id']}", client)
        print(f"client wizbrand-web: redirect URIs {' '.join(missing)} added")


def ensure_client(admin: Admin, client_id: str, secret: str, scopes: list) -> None:
    rep = {
        "clientId": client_id,
        "name": f"{client_id} (dev/test only, seeded)",
        "description": "Created by scripts/seed_keycloak.py for tests; not part of the realm export",
        "enabled": True, "protocol": "openid-connect",
        "publicClient": False, "bearerOnly": False,
        "clientAuthenticatorType": "client-secret", "secret": secret,
        "standardFlowEnabled": False, "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": True, "serviceAccountsEnabled": False,
        "frontchannelLogout": False, "consentRequired": False, "fullScopeAllowed": True,
        "redirectUris": [], "webOrigins": [],
    }
    found = admin.call("GET", f"/clients?clientId={q(client_id)}")
    if found:
        internal_id = found[0]["id"]
        admin.call("PUT", f"/clients/{internal_id}", {**found[0], **rep})
        state = "updated"
    else:
        admin.call("POST", "/clients", {**rep, "defaultClientScopes": scopes,
                                         "optionalClientScopes": []})
        internal_id = admin.call("GET", f"/clients?clientId={q(client_id)}")[0]["id"]
        state = "created"
    # PUT /clients/{id} ignores the scope lists, so converge them through their own endpoints.
    by_name = {s["name"]: s["id"] for s in admin.call("GET", "/client-scopes")}
    missing = [s for s in scopes if s not in by_name]
    if missing:
        fail(f"client scopes {missing} do not exist; was the realm imported from keycloak-realm/?")
    current = {s["name"] for s in admin.call("GET", f"/clients/{internal_id}/default-client-scopes")}
    optional = {s["name"] for s in admin.call("GET", f"/clients/{internal_id}/optional-client-scopes")}
    for name in sorted(current - set(scopes)):
        admin.call("DELETE", f"/clients/{internal_id}/default-client-scopes/{by_name[name]}")
    for name in sorted(optional):
        admin.call("DELETE", f"/clients/{internal_id}/optional-client-scopes/{by_name[name]}")
    for name in scopes:
        if name not in current:
            admin.call("PUT", f"/clients/{internal_id}/default-client-scopes/{by_name[name]}")
    print(f"client {client_id}: {state} (password grant, scopes: {' '.join(scopes)})")


def ensure_user(admin: Admin, name: str, admin_role) -> None:
    rep = {
        "username": name, "email": f"{name}@example.com", "emailVerified": True,
        "enabled": True, "firstName": name.capitalize(), "lastName": "Demo",
        "requiredActions": [],
    }
    found = admin.call("GET", f"/users?username={q(name)}&exact=true&briefRepresentation=false")
    if found:
        user_id = found[0]["id"]
        # PUT replaces the whole user: start from what is stored so the attributes and
        # anything else the sync wrote survive.
        current = admin.call("GET", f"/users/{user_id}")
        current.update(rep)
        admin.call("PUT", f"/users/{user_id}", current)
        state = "updated"
    else:
        admin.call("POST", "/users", rep)
        user_id = admin.call("GET", f"/users?username={q(name)}&exact=true")[0]["id"]
        state = "created"
    admin.call("PUT", f"/users/{user_id}/reset-password",
               {"type": "password", "value": name, "temporary": False})
    extra = ""
    if name in PLATFORM_ADMINS:
        held = {r["name"] for r in admin.call("GET", f"/users/{user_id}/role-mappings/realm")}
        if PLATFORM_ADMIN_ROLE not in held:
            admin.call("POST", f"/users/{user_id}/role-mappings/realm", [admin_role])
        extra = f", realm role {PLATFORM_ADMIN_ROLE}"
    print(f"user {name}: {state} (email {name}@example.com, password '{name}'{extra})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Seed the wizbrand realm with demo users and test clients (dev/test only).")
    parser.add_argument("--url", required=True, help="Keycloak base URL, e.g. http://localhost:8180")
    parser.add_argument("--admin", required=True, help="master-realm admin user name")
    parser.add_argument("--admin-password", required=True, help="its password")
    parser.add_argument("--smtp-port", type=int, default=2525,
                        help="port of the stack's SMTP server on 127.0.0.1 (Keycloak's mail)")
    args = parser.parse_args()

    admin = Admin(args.url, args.admin, args.admin_password)
    if admin.call("GET", "", ok_missing=True) is None:
        fail(f"realm '{REALM}' does not exist at {admin.url}; start Keycloak with --import-realm "
             "and keycloak-realm/wizbrand-realm.json in data/import/")
    admin_role = admin.call("GET", f"/roles/{PLATFORM_ADMIN_ROLE}", ok_missing=True)
    if admin_role is None:
        fail(f"realm role '{PLATFORM_ADMIN_ROLE}' is missing; the realm is not the wizbrand export")

    # A realm imported before these settings were in the export gets them here too.
    realm = admin.call("GET", "")
    wanted = {"revokeRefreshToken": True, "refreshTokenMaxReuse": 0}
    if any(realm.get(k) != v for k, v in wanted.items()):
        admin.call("PUT", "", wanted)
        print("realm: refresh tokens are single-use (revokeRefreshToken)")

    ensure_org_roles(admin)
    ensure_admin_event_log(admin)
    ensure_email_admin_only(admin)
    ensure_smtp(admin, args.smtp_port)
    ensure_web_redirects(admin)
    for client_id, spec in TEST_CLIENTS.items():
        ensure_client(admin, client_id, spec["secret"], spec["scopes"])
    for name in DEMO_USERS:
        ensure_user(admin, name, admin_role)


if __name__ == "__main__":
    main()
