"""An HTTP echo server standing in for a host outside the mesh (egress tasks).

Any method, any path: 200 with a JSON echo of the request,

    {"server": "external", "pod": <POD_NAME or host name>, "method", "path", "host", "headers", "body"}

except ``/status/<code>``, which answers that status (with the same echo as body), and ``/health``.
The echo lets a test see what arrived: e.g. that the request came through Envoy's PassthroughCluster
(`x-envoy-*` headers are absent for a TCP passthrough, present when routed as HTTP).

Run: ``python3 echo.py [PORT]`` (PORT: argv, else env PORT, else 80; env BIND_ADDRESS, default
0.0.0.0). The first stdout line is ``external listening on <address>:<port>``; then one line per
request. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import urlsplit

DEFAULT_PORT = 80
MAX_ECHOED_BODY = 4096
POD = os.environ.get("POD_NAME") or socket.gethostname()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "external-echo/1"

    def _serve(self) -> None:
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path = urlsplit(self.path).path
        status = 200
        parts = path.strip("/").split("/")
        if parts[0] == "status" and len(parts) == 2 and parts[1].isdigit() and 200 <= int(parts[1]) <= 599:
            status = int(parts[1])
        doc = {
            "server": "external",
            "pod": POD,
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body[:MAX_ECHOED_BODY].decode("utf-8", "replace"),
        }
        payload = b"ok\n" if path == "/health" else (json.dumps(doc, indent=2) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if path == "/health" else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        print(
            f'{stamp} external {self.client_address[0]} "{self.command} {self.path}" {status} {len(payload)} '
            f"{(time.monotonic() - started) * 1000:.1f}ms host={doc['host'] or '-'}",
            flush=True,
        )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: `_serve` logs one line per request."""

    def log_message(self, format: str, *args: object) -> None:
        print(f"external: {format % args}", file=sys.stderr, flush=True)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> None:
    port_text = argv[1] if len(argv) > 1 else os.environ.get("PORT") or str(DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        sys.exit(f"usage: {argv[0]} [PORT]  (got {port_text!r})")
    server = Server((os.environ.get("BIND_ADDRESS") or "0.0.0.0", port), Handler)
    signal.signal(signal.SIGTERM, _stop)
    host, bound = server.server_address[:2]
    print(f"external listening on {host!s}:{bound}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv)
