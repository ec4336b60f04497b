#!/usr/bin/env python3
"""Runs scim2-tester (pinned in scripts/versions.sh, installed by scripts/install-deps.sh)
against a running wizbrand SCIM endpoint and prints one JSON object per check:
{"status", "title", "resource_type", "reason"}.

Usage: scim_conformance.py BASE_URL TOKEN   (BASE_URL ends in /scim/v2)
tests/it/scim.rs runs it and compares the failures with the list in docs/scim.md.
"""
import json
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    for result in check_server(client, raise_exceptions=False):
        print(
            json.dumps(
                {
                    "status": result.status.name,
                    "title": result.title,
                    "resource_type": result.resource_type,
                    "reason": (result.reason or "")[:500],
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
