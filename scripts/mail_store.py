#!/usr/bin/env python3
"""The stack's mail server: a real SMTP server (aiosmtpd, pinned in scripts/versions.sh)
that delivers every message it accepts into a folder, where people and tests read it.

  mail_store.py --port 2525 --dir .stack/mail

Each message becomes three files named by the time it arrived and a random id:
  <stamp>.eml    the message exactly as received (headers and MIME body)
  <stamp>.html   its HTML part, if any (to open in a browser)
  <stamp>.json   {"mail_from", "rcpt_tos", "subject", "from", "to", "text", "html",
                  "received_at"}: what a test needs, the MIME decoding done here
The .json file is written last (through a rename), so a reader that sees it sees the
others complete. Nothing is ever relayed anywhere: every recipient is accepted and kept.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Store:
    """aiosmtpd handler: keeps every message (handle_DATA), relays none."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        text_part = message.get_body(preferencelist=("plain",))
        html_part = message.get_body(preferencelist=("html",))
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000_000:09d}-{uuid.uuid4().hex[:8]}"
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": [r.lower() for r in envelope.rcpt_tos],
            "subject": str(message.get("subject", "")),
            "from": str(message.get("from", "")),
            "to": str(message.get("to", "")),
            "text": text_part.get_content() if text_part is not None else "",
            "html": html_part.get_content() if html_part is not None else "",
            "received_at": time.time(),
        }
        write_atomically(self.folder / f"{stamp}.eml", raw)
        if summary["html"]:
            write_atomically(self.folder / f"{stamp}.html", summary["html"].encode())
        write_atomically(self.folder / f"{stamp}.json", json.dumps(summary, indent=1).encode())
        print(f"stored {stamp} from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}: "
              f"{summary['subject']}", flush=True)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description="SMTP server that keeps every message in a folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="where messages are written")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    # Messages of a few MB at most; 8-bit bodies as lettre and Keycloak send them.
    controller = Controller(Store(folder), hostname=args.host, port=args.port,
                            data_size_limit=10 * 1024 * 1024, decode_data=False)
    try:
        controller.start()
    except Exception as e:  # the port is taken, most likely
        sys.exit(f"mail_store: cannot listen on {args.host}:{args.port}: {e}")
    print(f"mail_store: SMTP on {args.host}:{args.port}, messages in {folder}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
