#!/usr/bin/env python3
"""Keycloak helpers for bench/sync.sh (stdlib only).

  kc.py naive-replay DATABASE_URL ROOT   replay Postgres's state into Keycloak one call at a
                                          time, reading nothing first (the peer of the sync)
  kc.py activate EMAIL                     give a synced user a password and no pending actions
  kc.py wait-claim EMAIL SLUG ROLE         poll a fresh token until org_memberships[SLUG]
                                          holds ROLE; prints the seconds it took
  kc.py cleanup ROOT EMAIL_SUFFIX          delete the bench groups and users
  kc.py bench-user NAME                    create or reset a user that can sign in; prints its id
  kc.py token NAME                         a wizbrand-test access token for that user
  kc.py ensure-client ID SECRET            a code-flow client for a bench peer
  kc.py browser-login URL COOKIE NAME      sign in through Keycloak's form; prints COOKIE=value
  kc.py host-cookie BASE SESSION HOST       hand a wizbrand session (the auth host's cookie,
                                          `name=value`) over to app host HOST as a browser
                                          does (nonce, /auth/hand-off, /_wizbrand/session
                                          sent to BASE with that Host); prints its cookie
Environment: KEYCLOAK_URL, WIZBRAND_STACK_KC_ADMIN, WIZBRAND_STACK_KC_ADMIN_PASSWORD.
"""
import base64
import concurrent.futures
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

URL = os.environ["KEYCLOAK_URL"].rstrip("/")
REALM = "wizbrand"


def admin_token() -> str:
    form = urllib.parse.urlencode({
        "grant_type": "password", "client_id": "admin-cli",
        "username": os.environ["WIZBRAND_STACK_KC_ADMIN"],
        "password": os.environ["WIZBRAND_STACK_KC_ADMIN_PASSWORD"],
    }).encode()
    return json.load(urllib.request.urlopen(f"{URL}/realms/master/protocol/openid-connect/token", form))["access_token"]


class Admin:
    def __init__(self):
        self.token = admin_token()
        self.issued = time.time()
        self.calls = 0

    def call(self, method, path, body=None):
        if time.time() - self.issued > 45:
            self.token, self.issued = admin_token(), time.time()
        self.calls += 1
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{URL}/admin/realms/{REALM}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            text = r.read()
            loc = r.headers.get("Location")
            return (json.loads(text) if text else None), (loc.rsplit("/", 1)[-1] if loc else None)


def psql(database_url, sql):
    out = subprocess.run(["psql", database_url, "-AtF", "\t", "-c", sql], check=True, capture_output=True, text=True)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def naive_replay(database_url, root):
    a = Admin()
    started = time.time()
    _, root_id = a.call("POST", "/groups", {"name": root})
    orgs = psql(database_url, "SELECT id, slug, plan, array_to_json(features) FROM orgs")
    groups = {}
    # The role groups map the realm role of their name, as the sync makes them.
    role_reps = {r: a.call("GET", f"/roles/{r}")[0] for r in ("ORG_ADMIN", "ORG_MANAGER", "ORG_USER")}
    for org_id, slug, plan, features in orgs:
        _, gid = a.call("POST", f"/groups/{root_id}/children",
                        {"name": slug, "attributes": {"org_id": [org_id], "plan": [plan], "features": json.loads(features)}})
        groups[slug] = {"": gid}
        for role in ("ORG_ADMIN", "ORG_MANAGER", "ORG_USER"):
            _, rid = a.call("POST", f"/groups/{gid}/children", {"name": role})
            a.call("POST", f"/groups/{rid}/role-mappings/realm", [role_reps[role]])
            groups[slug][role] = rid
    rows = psql(database_url, "SELECT u.email, o.slug, array_to_json(m.roles) FROM memberships m "
                              "JOIN users u ON u.id = m.user_id JOIN orgs o ON o.id = m.org_id ORDER BY u.email")
    users = {}
    for email, slug, roles in rows:
        if email not in users:
            _, uid = a.call("POST", "/users", {"username": email, "email": email, "enabled": True,
                                               "requiredActions": ["UPDATE_PASSWORD", "VERIFY_EMAIL"]})
            users[email] = {"id": uid, "orgs": {}}
        u = users[email]
        u["orgs"][slug] = json.loads(roles)
        a.call("PUT", f"/users/{u['id']}/groups/{groups[slug]['']}")
        for role in json.loads(roles):
            a.call("PUT", f"/users/{u['id']}/groups/{groups[slug][role]}")
    for email, u in users.items():
        rep, _ = a.call("GET", f"/users/{u['id']}")
        rep.setdefault("attributes", {})["org_memberships"] = [json.dumps(u["orgs"], separators=(",", ":"))]
        a.call("PUT", f"/users/{u['id']}", rep)
    print(f"naive replay: {time.time() - started:.1f}s, {a.calls} Keycloak calls, one at a time")


def activate(email):
    a = Admin()
    uid = a.call("GET", f"/users?email={urllib.parse.quote(email)}&exact=true")[0][0]["id"]
    a.call("PUT", f"/users/{uid}/reset-password", {"type": "password", "value": "bench-pw-1", "temporary": False})
    rep, _ = a.call("GET", f"/users/{uid}")
    rep.update({"requiredActions": [], "firstName": "Bench", "lastName": "User", "emailVerified": True})
    a.call("PUT", f"/users/{uid}", rep)


def token_claims(email):
    form = urllib.parse.urlencode({"grant_type": "password", "client_id": "wizbrand-test",
                                   "client_secret": "wizbrand-test-secret", "username": email,
                                   "password": "bench-pw-1"}).encode()
    tok = json.load(urllib.request.urlopen(f"{URL}/realms/{REALM}/protocol/openid-connect/token", form))["access_token"]
    payload = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def wait_claim(email, slug, role, since):
    cleared = False
    while True:
        try:
            claims = token_claims(email)
        except urllib.error.HTTPError as e:
            # A fresh user's first grant can meet a spurious brute-force lock-out
            # (keycloak/keycloak#36495): clear it once, as the tests' helper does.
            if e.code != 400 or cleared:
                raise
            a = Admin()
            found, _ = a.call("GET", f"/users?email={urllib.parse.quote(email)}&exact=true")
            a.call("DELETE", f"/attack-detection/brute-force/users/{found[0]['id']}")
            cleared = True
            continue
        if role in claims.get("org_memberships", {}).get(slug, []):
            print(f"{time.time() - float(since):.2f}")
            return
        if time.time() - float(since) > 60:
            sys.exit("the claim did not arrive within 60 s")
        time.sleep(0.05)


def bench_user(name):
    """Creates (or finds) a ready-to-sign-in user; prints its id."""
    a = Admin()
    found, _ = a.call("GET", f"/users?username={urllib.parse.quote(name)}&exact=true")
    if found:
        uid = found[0]["id"]
    else:
        _, uid = a.call("POST", "/users", {"username": name, "email": f"{name}@bench.example.com",
                                           "emailVerified": True, "enabled": True,
                                           "firstName": "Bench", "lastName": "User"})
    a.call("PUT", f"/users/{uid}/reset-password", {"type": "password", "value": "bench-pw-1", "temporary": False})
    print(uid)


def token(name):
    form = urllib.parse.urlencode({"grant_type": "password", "client_id": "wizbrand-test",
                                   "client_secret": "wizbrand-test-secret", "username": name,
                                   "password": "bench-pw-1"}).encode()
    print(json.load(urllib.request.urlopen(f"{URL}/realms/{REALM}/protocol/openid-connect/token", form))["access_token"])


def ensure_client(client_id, secret):
    """A confidential code-flow client for a bench peer (redirects to loopback only)."""
    a = Admin()
    rep = {"clientId": client_id, "enabled": True, "publicClient": False, "secret": secret,
           "standardFlowEnabled": True, "directAccessGrantsEnabled": False,
           "redirectUris": ["http://127.0.0.1/*"], "attributes": {"pkce.code.challenge.method": "S256"},
           "defaultClientScopes": ["basic", "profile", "email", "roles", "acr", "wizbrand-orgs"]}
    found, _ = a.call("GET", f"/clients?clientId={client_id}")
    if found:
        a.call("PUT", f"/clients/{found[0]['id']}", {**rep, "id": found[0]["id"]})
    else:
        a.call("POST", "/clients", rep)


def browser_login(start_url, cookie_name, username):
    """Signs in as a browser would (Keycloak's login form); prints `name=value` of the
    session cookie the app set."""
    import html
    import http.cookiejar
    import re
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(start_url).read().decode()
    action = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', page)
    if not action:
        sys.exit("no Keycloak login form at the end of " + start_url)
    # Keycloak marks its cookies Secure; browsers send them to http://localhost (a
    # secure context), Python's cookie jar does not unless told.
    for cookie in jar:
        cookie.secure = False
    form = urllib.parse.urlencode({"username": username, "password": "bench-pw-1", "credentialId": ""}).encode()
    try:
        opener.open(html.unescape(action.group(1)), form)
    except urllib.error.HTTPError as e:
        # The app's landing page after sign-in may well be a 404; Keycloak's refusals
        # are 400s on its own host.
        if e.code >= 500 or "/login-actions/" in (e.url or ""):
            sys.exit(f"sign-in failed: {e.code} at {e.url}")
    # Large sessions come split in parts (`name_0`, `name_1`, …).
    parts = [f"{c.name}={c.value}" for c in jar
             if c.name == cookie_name or (c.name.startswith(cookie_name + "_") and c.name[len(cookie_name) + 1:].isdigit())]
    if parts:
        print("; ".join(parts))
        return
    sys.exit(f"no {cookie_name} cookie after signing in; cookies: {[c.name for c in jar]}")


def host_cookie(base, session, host):
    """The app-host cookie (`name=value`) of `session` for `host` (docs/cookies.md)."""
    import hashlib
    import secrets

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def location_and_cookies(req):
        try:
            opener.open(req)
        except urllib.error.HTTPError as e:
            if e.code in (302, 303):
                return e.headers["Location"], e.headers.get_all("Set-Cookie") or []
            sys.exit(f"{req.full_url}: {e.code}")
        sys.exit(f"{req.full_url}: no redirect")

    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    nonce = b64(secrets.token_bytes(32))
    bind = b64(hashlib.sha256(nonce.encode()).digest())
    port = urllib.parse.urlsplit(base).port
    query = urllib.parse.urlencode({"rd": f"http://{host}:{port}/", "bind": bind})
    to, _ = location_and_cookies(urllib.request.Request(
        f"{base}/auth/hand-off?{query}", headers={"Cookie": session}))
    parts = urllib.parse.urlsplit(to)
    if parts.path != "/_wizbrand/session":
        sys.exit(f"the hand-off did not issue a ticket: {to}")
    _, cookies = location_and_cookies(urllib.request.Request(
        f"{base}{parts.path}?{parts.query}",
        headers={"Host": parts.netloc, "Cookie": f"__Host-wizbrand_bind={nonce}"}))
    for cookie in cookies:
        if cookie.startswith("__Host-wizbrand_app="):
            print(cookie.split(";")[0])
            return
    sys.exit(f"no app-host cookie from the exchange: {cookies}")


def delete_user(a, user_id):
    try:
        a.call("DELETE", f"/users/{user_id}")
    except urllib.error.HTTPError as e:
        if e.code not in (404, 409):  # gone already, or being deleted by another call
            raise


def cleanup(root, suffix):
    a = Admin()
    for r in [root, root + "-naive"]:
        try:
            group, _ = a.call("GET", f"/group-by-path/{r}")
            a.call("DELETE", f"/groups/{group['id']}")
        except urllib.error.HTTPError:
            pass
    while True:
        found, _ = a.call("GET", f"/users?search={urllib.parse.quote('*' + suffix + '*')}&max=500&briefRepresentation=true")
        found = [u for u in found if u.get("email", "").endswith(suffix)]
        if not found:
            break
        # Side by side: one at a time took over 10 minutes for 10,000 users.
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda u: delete_user(a, u["id"]), found))
    print("bench groups and users removed")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"naive-replay": naive_replay, "activate": activate, "wait-claim": wait_claim,
     "cleanup": cleanup, "bench-user": bench_user, "token": token,
     "ensure-client": ensure_client, "browser-login": browser_login,
     "host-cookie": host_cookie}[cmd](*args)
