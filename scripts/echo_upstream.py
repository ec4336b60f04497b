#!/usr/bin/env python3
"""A sidecar stand-in that echoes what it received, like traefik/whoami.

The Go module proxy refuses github.com/traefik/whoami here, so the dev stack and the
tests use this instead (docs/design.md allows "a few-line echo upstream of the project's own").
GET /api... answers JSON {"name","method","path","host","headers":{name:[values]}};
any other path answers whoami-style text.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            headers: dict[str, list[str]] = {}
            for key, value in self.headers.items():
                headers.setdefault(key, []).append(value)
            if self.path.startswith("/api"):
                body = json.dumps({
                    "name": args.name,
                    "method": self.command,
                    "path": self.path,
                    "host": self.headers.get("Host", ""),
                    "headers": headers,
                }).encode()
                content_type = "application/json"
            else:
                lines = [f"Name: {args.name}", f"{self.command} {self.path} {self.request_version}"]
                lines += [f"{k}: {v}" for k, vs in headers.items() for v in vs]
                body = ("\n".join(lines) + "\n").encode()
                content_type = "text/plain; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        def log_message(self, fmt: str, *fmt_args) -> None:  # one line per request on stderr
            super().log_message(fmt, *fmt_args)

    ThreadingHTTPServer(("127.0.0.1", args.port), Echo).serve_forever()


if __name__ == "__main__":
    main()
