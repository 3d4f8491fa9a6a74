"""A fortio-like HTTP load client, standard library only (for circuit-breaking, mirroring, shifting tasks).

    python3 load.py [load] [-c CONNS] [-n REQUESTS] [-qps QPS] [-H 'Name: value']... [-timeout S]
                    [-X METHOD] [--json] URL
    python3 load.py curl [-H 'Name: value']... URL      one request; prints status, headers and body
    python3 load.py serve [PORT]                        keep a pod alive (like `fortio server`):
                                                        answers /health, default port 8080

`load` runs REQUESTS requests (default 100) in total over CONNS connections (default 4), each
connection a thread with its own keep-alive socket, reconnecting after an error or a
``Connection: close``. QPS (default 0 = as fast as possible) is the total target rate, split evenly
over the connections. The output mirrors fortio's: ``Sockets used: N``, one ``Code <status> :
<count> (<pct> %)`` line per status (``-1`` = no HTTP response: refused, reset, timeout), latency
percentiles as ``# target <p>% <seconds>``, and ``All done ...``. ``--json`` prints one JSON object
instead::

    {"url", "connections", "requests", "qps_requested", "actual_qps", "duration_seconds",
     "sockets_used", "codes": {"200": 17, "503": 3}, "errors": 0,
     "latency_seconds": {"min", "avg", "max", "p50", "p75", "p90", "p99", "p99.9"}}

The exit status is 0 whatever the response codes (as fortio); 2 for bad arguments. fortio's
``load`` word and its ``-loglevel X`` flag are accepted and ignored, so Istio's task commands work.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import urlsplit

PERCENTILES = (50.0, 75.0, 90.0, 99.0, 99.9)
NO_RESPONSE = -1


# ---------------------------------------------------------------------------------------------
# Target and connections


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    method: str
    headers: dict[str, str]
    timeout: float

    @classmethod
    def parse(cls, url: str, method: str, header_args: list[str], timeout: float) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host[:port]/path URLs are supported, got {url!r}")
        headers: dict[str, str] = {}
        for raw in header_args:
            name, sep, value = raw.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"header must look like 'Name: value', got {raw!r}")
            headers[name.strip()] = value.strip()
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname, parts.port or 80, path, method, headers, timeout)


class CountingConnection(http.client.HTTPConnection):
    """An HTTPConnection that counts every socket it opens (fortio's "Sockets used")."""

    opened = 0
    _lock = threading.Lock()

    def connect(self) -> None:
        super().connect()
        with CountingConnection._lock:
            CountingConnection.opened += 1


def one_request(conn: http.client.HTTPConnection, target: Target) -> tuple[int, bytes, list[tuple[str, str]]]:
    """(status, body, headers) of one request on ``conn``; status -1 when no response came back."""
    try:
        conn.request(target.method, target.path, headers=target.headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.will_close:
            conn.close()
        return resp.status, body, resp.getheaders()
    except (OSError, http.client.HTTPException):
        conn.close()
        return NO_RESPONSE, b"", []


# ---------------------------------------------------------------------------------------------
# The load run


@dataclass
class Results:
    codes: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, code: int, seconds: float) -> None:
        with self.lock:
            self.codes[code] = self.codes.get(code, 0) + 1
            self.latencies.append(seconds)


def worker(target: Target, count: int, interval: float, start: float, results: Results) -> None:
    """``count`` requests on one keep-alive connection, the k-th not before ``start + k*interval``."""
    conn = CountingConnection(target.host, target.port, timeout=target.timeout)
    try:
        for k in range(count):
            if interval > 0:
                wait = start + k * interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            began = time.monotonic()
            code, _, _ = one_request(conn, target)
            results.add(code, time.monotonic() - began)
    finally:
        conn.close()


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-pct * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def run_load(target: Target, connections: int, requests: int, qps: float) -> dict[str, object]:
    """Run the load and return the summary (the ``--json`` document)."""
    CountingConnection.opened = 0
    results = Results()
    per_conn = [
        requests // connections + (1 if i < requests % connections else 0) for i in range(connections)
    ]
    interval = connections / qps if qps > 0 else 0.0
    start = time.monotonic()
    threads = [
        threading.Thread(target=worker, args=(target, n, interval, start, results), daemon=True)
        for n in per_conn
        if n > 0
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    duration = time.monotonic() - start
    lat = sorted(results.latencies)
    latency = {
        "min": lat[0] if lat else 0.0,
        "avg": sum(lat) / len(lat) if lat else 0.0,
        "max": lat[-1] if lat else 0.0,
        **{f"p{p:g}": percentile(lat, p) for p in PERCENTILES},
    }
    return {
        "url": f"http://{target.host}:{target.port}{target.path}",
        "connections": connections,
        "requests": requests,
        "qps_requested": qps,
        "actual_qps": len(lat) / duration if duration > 0 else 0.0,
        "duration_seconds": duration,
        "sockets_used": CountingConnection.opened,
        "codes": {str(code): n for code, n in sorted(results.codes.items())},
        "errors": results.codes.get(NO_RESPONSE, 0),
        "latency_seconds": latency,
    }


def format_text(summary: dict[str, object]) -> str:
    """fortio's text report, in the parts the Istio tasks read."""
    codes = summary["codes"]
    latency = summary["latency_seconds"]
    assert isinstance(codes, dict) and isinstance(latency, dict)
    total = sum(codes.values())
    qps = summary["qps_requested"]
    lines = [
        f"Fortio-like load: {summary['requests']} calls over {summary['connections']} connection(s) "
        f"at {qps or 'max'} qps to {summary['url']}",
        f"Sockets used: {summary['sockets_used']} (for perfect keepalive, would be {summary['connections']})",
    ]
    for code, n in codes.items():
        lines.append(f"Code {code} : {n} ({100.0 * n / total if total else 0:.1f} %)")
    lines.append(
        f"Aggregated Function Time : count {total} avg {latency['avg']:.6f} min {latency['min']:.6f} "
        f"max {latency['max']:.6f}"
    )
    for p in PERCENTILES:
        lines.append(f"# target {p:g}% {latency[f'p{p:g}']:.6f}")
    lines.append(
        f"All done {total} calls (plus 0 warmup) {1000 * latency['avg']:.3f} ms avg, "
        f"{summary['actual_qps']:.1f} qps"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# curl and serve


def curl(target: Target) -> int:
    conn = http.client.HTTPConnection(target.host, target.port, timeout=target.timeout)
    try:
        code, body, headers = one_request(conn, target)
    finally:
        conn.close()
    if code == NO_RESPONSE:
        print(f"error: no response from {target.host}:{target.port}", file=sys.stderr)
        return 1
    print(f"HTTP/1.1 {code}")
    for name, value in headers:
        print(f"{name}: {value}")
    print()
    sys.stdout.write(body.decode("utf-8", "replace"))
    sys.stdout.flush()
    return 0


class _IdleHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b"ok\n" if self.path == "/health" else (__doc__ or "").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"loadclient: {format % args}", flush=True)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(argv: list[str]) -> int:
    port = int(argv[0]) if argv else int(os.environ.get("PORT") or 8080)
    server = ThreadingHTTPServer((os.environ.get("BIND_ADDRESS") or "0.0.0.0", port), _IdleHandler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, _stop)
    host, bound = server.server_address[:2]
    print(f"loadclient listening on {host!s}:{bound}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# ---------------------------------------------------------------------------------------------
# Command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="load.py", description="fortio-like HTTP load client")
    p.add_argument("-c", type=int, default=4, metavar="CONNS", help="connections (threads), default 4")
    p.add_argument("-n", type=int, default=100, metavar="REQUESTS", help="requests in total, default 100")
    p.add_argument("-qps", type=float, default=0.0, help="total target rate; 0 = max (default)")
    p.add_argument("-H", action="append", default=[], metavar="'Name: value'", help="extra header")
    p.add_argument("-timeout", type=float, default=3.0, help="per-request socket timeout in s, default 3")
    p.add_argument("-X", default="GET", metavar="METHOD", help="HTTP method, default GET")
    p.add_argument("-loglevel", default="", help=argparse.SUPPRESS)
    p.add_argument("--json", "-json", action="store_true", help="print a JSON summary instead of text")
    p.add_argument("url")
    return p


def main(argv: list[str]) -> int:
    mode = "load"
    if argv and argv[0] in ("load", "curl", "serve"):
        mode, argv = argv[0], argv[1:]
    if mode == "serve":
        return serve(argv)
    p = parser()
    args = p.parse_args(argv)
    if args.c < 1 or args.n < 0 or args.qps < 0 or args.timeout <= 0:
        p.error("-c must be >= 1, -n >= 0, -qps >= 0, -timeout > 0")
    try:
        target = Target.parse(args.url, args.X.upper(), args.H, args.timeout)
    except ValueError as exc:
        p.error(str(exc))
    if mode == "curl":
        return curl(target)
    summary = run_load(target, args.c, args.n, args.qps)
    print(json.dumps(summary, indent=2) if args.json else format_text(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
