"""A small httpbin: the request-inspection endpoints Istio's traffic-management tasks use.

    GET  /get                 {"args", "headers", "origin", "url"}
    GET  /headers             {"headers"}
    GET  /ip                  {"origin"}
    GET  /user-agent          {"user-agent"}
    ANY  /status/<codes>      that status with an empty body; "200,503" picks one at random per request
    ANY  /delay/<seconds>     waits (at most 10 s), then answers like /anything
    ANY  /anything[/...]      {"args", "data", "form", "headers", "json", "method", "origin", "url"}
    GET  /health              200 "ok"

Header names are shown in Title-Case, as httpbin does, whatever case the client or Envoy used.
Every request is logged as one line on stdout (with the Host header, so a mirrored request, whose
host Envoy suffixes with "-shadow", is recognisable).

Run: ``python3 httpbin.py [PORT]`` (PORT: argv, else env PORT, else 8080; env BIND_ADDRESS, default
0.0.0.0). The first stdout line is ``httpbin <version> listening on <address>:<port>``.
Standard library only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import parse_qs, urlsplit

DEFAULT_PORT = 8080
MAX_DELAY = 10.0
VERSION = os.environ.get("SERVICE_VERSION") or "v1"


def title_case(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _first_values(query: str) -> dict[str, str | list[str]]:
    """Query or form values: one value as a string, several as a list (httpbin's shape)."""
    return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(query, keep_blank_values=True).items()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = f"httpbin/{VERSION}"

    # -- request facts ----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            key = title_case(name)
            out[key] = f"{out[key]},{value}" if key in out else value
        return out

    def _origin(self) -> str:
        forwarded = self.headers.get("X-Forwarded-For")
        return forwarded.split(",")[0].strip() if forwarded else self.client_address[0]

    def _url(self) -> str:
        return f"http://{self.headers.get('Host', 'httpbin')}{self.path}"

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _anything(self, body: bytes) -> dict[str, object]:
        text = body.decode("utf-8", "replace")
        content_type = self.headers.get("Content-Type", "")
        form = _first_values(text) if content_type.startswith("application/x-www-form-urlencoded") else {}
        try:
            parsed = json.loads(text) if content_type.startswith("application/json") and text else None
        except ValueError:
            parsed = None
        return {
            "args": _first_values(urlsplit(self.path).query),
            "data": "" if form else text,
            "form": form,
            "headers": self._headers(),
            "json": parsed,
            "method": self.command,
            "origin": self._origin(),
            "url": self._url(),
        }

    # -- routing ----------------------------------------------------------------------------

    def _route(self, body: bytes) -> tuple[int, bytes, str]:
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        as_json = "application/json"
        if path == "/get":
            doc = {k: v for k, v in self._anything(body).items() if k in ("args", "headers", "origin", "url")}
            return 200, _dump(doc), as_json
        if path == "/headers":
            return 200, _dump({"headers": self._headers()}), as_json
        if path == "/ip":
            return 200, _dump({"origin": self._origin()}), as_json
        if path == "/user-agent":
            return 200, _dump({"user-agent": self.headers.get("User-Agent")}), as_json
        if path == "/health":
            return 200, b"ok\n", "text/plain"
        if parts[0] == "anything":
            return 200, _dump(self._anything(body)), as_json
        if parts[0] == "status" and len(parts) == 2:
            try:
                codes = [int(c) for c in parts[1].split(",")]
            except ValueError:
                return 400, _dump({"error": f"invalid status code list {parts[1]!r}"}), as_json
            if not all(100 <= c <= 599 for c in codes):
                return 400, _dump({"error": "status codes must be in [100, 599]"}), as_json
            return random.choice(codes), b"", "text/plain"
        if parts[0] == "delay" and len(parts) == 2:
            try:
                seconds = min(float(parts[1]), MAX_DELAY)
            except ValueError:
                return 400, _dump({"error": f"invalid delay {parts[1]!r}"}), as_json
            time.sleep(max(seconds, 0.0))
            return 200, _dump(self._anything(body)), as_json
        if path == "/":
            return 200, (__doc__ or "").encode(), "text/plain; charset=utf-8"
        return 404, _dump({"error": f"no route for {path}"}), as_json

    def _serve(self) -> None:
        started = time.monotonic()
        status, payload, content_type = self._route(self._body())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        print(
            f'{stamp} httpbin {self.client_address[0]} "{self.command} {self.path}" {status} {len(payload)} '
            f"{(time.monotonic() - started) * 1000:.1f}ms host={self.headers.get('Host', '-')}",
            flush=True,
        )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: `_serve` logs one line per request."""

    def log_message(self, format: str, *args: object) -> None:
        print(f"httpbin: {format % args}", file=sys.stderr, flush=True)


def _dump(doc: object) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


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
    print(f"httpbin {VERSION} listening on {host!s}:{bound}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv)
