"""Verifies wizbrand's X-Wizbrand-Assertion as an app behind the gate would (PyJWT).

    python verify_assertion.py TOKEN JWKS_URL APP_HOST ISSUER

Prints the claims as JSON, or fails (non-zero exit) when the assertion is not valid
for this app. docs/gate.md shows the same lines; tests/it/assertion.rs runs this file.
"""
import json
import sys

import jwt  # PyJWT, with `cryptography` for ES256 and EdDSA

token, jwks_url, app_host, issuer = sys.argv[1:5]

jwks = jwt.PyJWKClient(jwks_url)  # caches the keys; fetches again on an unknown kid
key = jwks.get_signing_key_from_jwt(token)
claims = jwt.decode(
    token,
    key.key,
    algorithms=["ES256", "EdDSA"],
    audience=app_host,  # this app's own host: an assertion for another app is refused
    issuer=issuer,  # wizbrand's public URL
    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
)
print(json.dumps(claims))
