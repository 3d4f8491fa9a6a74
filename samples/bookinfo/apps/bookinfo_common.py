"""Plumbing shared by the four Bookinfo sample apps (productpage, details, reviews, ratings).

Why one module: every app needs the same five things, and the mesh tests depend on them behaving
identically in each app:

* an HTTP/1.1 keep-alive server that binds ``0.0.0.0`` (pods are reached on their pod IP or from the
  sidecar on 127.0.0.1) with Nagle disabled (Python's ``http.server`` otherwise takes ~44 ms per
  keep-alive request: headers and body are two writes, and Nagle meets delayed ACK);
* one access-log line per request on stdout, so a test can see which pod served a request;
* the list of headers an app must copy from its inbound request to its outbound calls (Istio's
  apps do this so that tracing and ``end-user`` routing work across hops);
* upstream addresses found by environment variable, like Istio's apps (``<NAME>_HOSTNAME``,
  ``<NAME>_SERVICE_PORT``, ``SERVICES_DOMAIN``), defaulting to the short service name and 9080;
* a fault knob for tests (``FAIL_RATE``/``FAIL_STATUS``/``RESPONSE_DELAY`` env, ``/fault`` endpoint).

Standard library only: the apps run under any ``python3`` >= 3.11, as an ordinary uid, inside a pod's
network namespace, without the project's virtualenv. The apps import this module by name, which
works because Python puts the script's directory first on ``sys.path``.

Command line of every app: ``python3 apps/<app>.py [PORT]``; PORT falls back to env ``PORT`` and then
to 9080. Env ``BIND_ADDRESS`` (default ``0.0.0.0``) exists for tests that run the apps on loopback.
The first stdout line is ``<app> <version> listening on <address>:<port>`` (the real port, so a
test may pass port 0).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import parse_qs, urlsplit

DEFAULT_PORT = 9080

# Headers copied from the inbound request to every outbound call (lower case). The union of what
# Istio's Bookinfo apps forward: request id, B3 (single and multi header), Lightstep, W3C trace
# context, the user identity that routing rules match on, and the client's user agent / session.
PROPAGATED_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
    "traceparent",
    "tracestate",
    "end-user",
    "user-agent",
    "cookie",
    "authorization",
)

# Paths that the fault knob never touches: readiness must keep working, and the knob itself must
# stay reachable to be turned off again.
_FAULT_EXEMPT = ("/health", "/fault")


@dataclass(frozen=True)
class Request:
    """One inbound HTTP request, already read in full."""

    method: str
    target: str
    """The request target as sent (path plus query string)."""
    headers: Mapping[str, str]
    """Header names in lower case; repeated headers are joined with ``", "``."""
    body: bytes
    client: str

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """The query string, first value of each key."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body merged over the query string."""
        values = self.query
        values.update({k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()})
        return values

    def propagated(self) -> dict[str, str]:
        """The inbound headers an app must copy to its outbound calls."""
        return {name: self.headers[name] for name in PROPAGATED_HEADERS if name in self.headers}


@dataclass
class Response:
    """What a route handler returns."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(value: object, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode(), "application/json")


def text_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8")


def html_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode(), "text/html; charset=utf-8")


def redirect(location: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(302, b"", "text/plain; charset=utf-8", [("Location", location), *headers])


# ---------------------------------------------------------------------------------------------
# Identity and configuration from the environment


def env_float(name: str, default: float) -> float:
    """A float from the environment; a malformed value is a startup error with the variable's name."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        sys.exit(f"environment variable {name}={raw!r} is not a number")


def pod_name() -> str:
    """The pod name as Kubernetes' downward API would give it, else the host name.

    POD_NAME comes first: the sandbox sets it, while HOSTNAME may be inherited from the machine.
    """
    return os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or socket.gethostname()


@dataclass(frozen=True)
class Upstream:
    """Where an app finds another Bookinfo service."""

    host: str
    port: int

    @classmethod
    def from_env(cls, service: str) -> Upstream:
        """``<SERVICE>_HOSTNAME`` (default: the service name) plus ``SERVICES_DOMAIN`` if set, and
        ``<SERVICE>_SERVICE_PORT`` (default 9080), as Istio's Bookinfo apps read them."""
        prefix = service.upper()
        host = os.environ.get(f"{prefix}_HOSTNAME") or service
        domain = os.environ.get("SERVICES_DOMAIN")
        if domain:
            host = f"{host}.{domain}"
        port_text = os.environ.get(f"{prefix}_SERVICE_PORT") or str(DEFAULT_PORT)
        try:
            port = int(port_text)
        except ValueError:
            sys.exit(f"environment variable {prefix}_SERVICE_PORT={port_text!r} is not a port number")
        return cls(host, port)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


@dataclass(frozen=True)
class UpstreamResult:
    """The outcome of one outbound call: ``status`` is None when no HTTP response came back."""

    status: int | None
    body: bytes
    error: str = ""

    def json(self) -> object:
        return json.loads(self.body)


def http_get(upstream: Upstream, path: str, headers: Mapping[str, str], timeout: float) -> UpstreamResult:
    """GET on a new connection (as the originals do, no pooling); connect and each read are bounded
    by ``timeout`` seconds. Errors become a result with ``status=None``, never an exception."""
    conn = http.client.HTTPConnection(upstream.host, upstream.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers))
        resp = conn.getresponse()
        return UpstreamResult(resp.status, resp.read())
    except (OSError, http.client.HTTPException) as exc:
        return UpstreamResult(None, b"", f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Fault knob


class FaultKnob:
    """Makes an app fail on purpose, for retry and outlier-detection tests.

    ``fail_rate`` (0..1) is the fraction of requests answered with ``fail_status`` (default 503).
    It is deterministic, not random: a running credit adds ``fail_rate`` per request and a request
    fails whenever the credit reaches 1, so 0.5 fails every second request and 1 fails all.
    ``response_delay`` (seconds) delays every answer, failed or not. ``/health`` and ``/fault``
    are never affected.

    Set at start with env ``FAIL_RATE``, ``FAIL_STATUS``, ``RESPONSE_DELAY``; change at run time
    with ``POST /fault?fail_rate=1&fail_status=503&response_delay=0`` (form body works too),
    read with ``GET /fault``, reset with ``DELETE /fault``.
    """

    def __init__(self, fail_rate: float = 0.0, fail_status: int = 503, response_delay: float = 0.0):
        self._lock = threading.Lock()
        self._credit = 0.0
        self.fail_rate = fail_rate
        self.fail_status = fail_status
        self.response_delay = response_delay

    @classmethod
    def from_env(cls) -> FaultKnob:
        return cls(
            env_float("FAIL_RATE", 0.0), int(env_float("FAIL_STATUS", 503)), env_float("RESPONSE_DELAY", 0.0)
        )

    def state(self) -> dict[str, float | int]:
        return {
            "fail_rate": self.fail_rate,
            "fail_status": self.fail_status,
            "response_delay": self.response_delay,
        }

    def update(self, values: Mapping[str, str]) -> str | None:
        """Apply the given settings; returns an error text for a bad value and changes nothing then."""
        try:
            rate = float(values.get("fail_rate", self.fail_rate))
            status = int(values.get("fail_status", self.fail_status))
            delay = float(values.get("response_delay", self.response_delay))
        except ValueError as exc:
            return f"bad fault setting: {exc}"
        if not 0.0 <= rate <= 1.0 or not 100 <= status <= 599 or delay < 0:
            return "fail_rate must be in [0, 1], fail_status in [100, 599], response_delay >= 0"
        with self._lock:
            self.fail_rate, self.fail_status, self.response_delay = rate, status, delay
            self._credit = 0.0
        return None

    def apply(self) -> int | None:
        """Called once per request before the route runs: sleeps the delay, returns a status to fail
        with, or None to serve normally."""
        with self._lock:
            delay = self.response_delay
            self._credit += self.fail_rate
            fail = self._credit >= 1.0 - 1e-9
            if fail:
                self._credit -= 1.0
        if delay > 0:
            time.sleep(delay)
        return self.fail_status if fail else None

    def handle(self, req: Request) -> Response:
        """The ``/fault`` admin endpoint."""
        if req.method == "DELETE":
            self.update({"fail_rate": "0", "fail_status": "503", "response_delay": "0"})
        elif req.method in ("POST", "PUT"):
            error = self.update(req.form())
            if error:
                return json_response({"error": error}, 400)
        elif req.method != "GET":
            return json_response({"error": "use GET, POST or DELETE"}, 405)
        return json_response(self.state())


# ---------------------------------------------------------------------------------------------
# The server

Route = Callable[[Request], Response]


@dataclass
class App:
    """A named app: its route function plus the shared fault knob and access log."""

    name: str
    version: str
    route: Route
    fault: FaultKnob = field(default_factory=FaultKnob.from_env)
    log_headers: tuple[str, ...] = ("x-request-id", "x-b3-traceid", "end-user")
    """Inbound headers echoed on the access-log line when present."""

    def dispatch(self, req: Request) -> Response:
        if req.path == "/fault":
            return self.fault.handle(req)
        if req.path not in _FAULT_EXEMPT:
            status = self.fault.apply()
            if status is not None:
                return json_response({"error": f"fault injected by {self.name} ({pod_name()})"}, status)
        try:
            return self.route(req)
        except Exception as exc:  # a bug in a sample app must answer 500, not kill the connection
            print(
                f"{self.name}: error serving {req.method} {req.target}: {exc!r}", file=sys.stderr, flush=True
            )
            return json_response({"error": f"internal error: {type(exc).__name__}"}, 500)

    def log(self, req: Request, resp: Response, seconds: float) -> None:
        extra = "".join(f" {h}={req.headers[h]}" for h in self.log_headers if h in req.headers)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        print(
            f'{stamp} {self.name} {req.client} "{req.method} {req.target}" {resp.status} '
            f"{len(resp.body)} {seconds * 1000:.1f}ms host={req.headers.get('host', '-')}{extra}",
            flush=True,
        )


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, by Content-Length or chunked transfer coding."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    """A request-handler class bound to ``app`` (``http.server`` wants a class, not an object)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = f"bookinfo-{app.name}/{app.version}"

        def _serve(self) -> None:
            started = time.monotonic()
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            req = Request(self.command, self.path, headers, _read_body(self), self.client_address[0])
            resp = app.dispatch(req)
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for name, value in resp.headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)
            app.log(req, resp, time.monotonic() - started)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Silenced: `App.log` writes one line per request with more detail."""

        def log_message(self, format: str, *args: object) -> None:
            print(f"{app.name}: {format % args}", file=sys.stderr, flush=True)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def listen_address(argv: list[str]) -> tuple[str, int]:
    """``(BIND_ADDRESS or 0.0.0.0, argv[1] or PORT or 9080)``."""
    port_text = argv[1] if len(argv) > 1 else os.environ.get("PORT") or str(DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        sys.exit(f"usage: {argv[0]} [PORT]  (got {port_text!r})")
    return os.environ.get("BIND_ADDRESS") or "0.0.0.0", port


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(app: App, argv: list[str]) -> None:
    """Serve ``app`` until SIGTERM/SIGINT. Prints the listening line first (with the real port)."""
    host, port = listen_address(argv)
    server = _Server((host, port), make_handler(app))
    signal.signal(signal.SIGTERM, _stop)
    bound_host, bound_port = server.server_address[:2]
    print(f"{app.name} {app.version} listening on {bound_host!s}:{bound_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
