"""Data-path tier: start-up time of the local mesh, then requests/s and p50/p99 latency of Bookinfo's
productpage on it.

`pilotfish up samples/bookinfo` runs under a prefix of its own (pods as network namespaces, sidecars,
the ingress gateway on a free 127.0.0.1 port); `wrk` (Debian's) then measures, for the same time and
connections:

- `gateway`: 127.0.0.1:<ingress port>/productpage from the host, the seed's path: gateway Envoy ->
  productpage's sidecar -> productpage, which calls details and reviews (-> ratings) through the
  sidecars;
- `direct`: productpage's pod IP:9080 from the sandbox's node namespace (no gateway hop). Traffic
  stays inside namespaces the sandbox created, never the root namespace to a pod IP.

A baseline without any sidecar is not possible in the sandbox: service VIPs work only through the
sidecars' capture (there is no kube-proxy; sandbox-networking.md), so without sidecars productpage
could not reach its backends. The difference of the two paths is the gateway hop.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.figures import Figure, unavailable

ROOT = Path(__file__).resolve().parents[1]
BOOKINFO = ROOT / "samples" / "bookinfo"
CONNECTIONS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def local_mesh(prefix: str, port: int, times: dict[str, float]) -> Iterator[subprocess.Popen[str]]:
    """`pilotfish up` under `prefix`, until the block ends; always torn down (`pilotfish down`).
    `times` receives seconds from the start to "all pods ready" (`ready`) and the teardown (`down`)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    command = [sys.executable, "-m", "pilotfish"]
    began = time.monotonic()
    times["began"] = began
    up = subprocess.Popen(
        [*command, "up", str(BOOKINFO), "--prefix", prefix, "--ingress-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        assert up.stdout is not None
        for line in up.stdout:
            if re.match(r"all \d+ pods ready", line.strip()):
                times["ready"] = time.monotonic() - began
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the local mesh did not become ready in 120 s")
        else:
            raise RuntimeError(f"pilotfish up exited ({up.wait()})")
        yield up
    finally:
        stopping = time.monotonic()
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        times["down"] = time.monotonic() - stopping
        subprocess.run([*command, "down", "--prefix", prefix], env=env, capture_output=True, check=False)


def _until_ok(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def wrk(url: str, seconds: int, netns: str | None = None) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of `wrk --latency`, optionally inside a network namespace."""
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps, _latency(out, "50%"), _latency(out, "99%")


def _latency(out: str, quantile: str) -> float:
    value, unit = re.search(rf"{quantile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure(seconds: int) -> list[Figure]:
    from pilotfish.sandbox.state import read_state

    prefix, port = f"pfb{os.getpid() % 100000}-", _free_port()
    times: dict[str, float] = {}
    with local_mesh(prefix, port, times):
        state = read_state(prefix)
        assert state is not None, "the local mesh wrote no state"
        productpage = next(p for p in state.pods if p.name.startswith("productpage"))
        gateway_url = f"http://127.0.0.1:{port}/productpage"
        _until_ok(gateway_url)
        times["first_200"] = time.monotonic() - times["began"]
        paths = {
            "gateway": wrk(gateway_url, seconds),
            "direct": wrk(f"http://{productpage.ip}:9080/productpage", seconds, netns=state.node),
        }
    figures = [
        Figure(
            "datapath.startup.all_pods_ready",
            times["ready"],
            "s",
            target=15.0,
            note="pilotfish up samples/bookinfo, from nothing (issue 5 target: < 15 s)",
        ),
        Figure("datapath.startup.first_200", times["first_200"], "s"),
        Figure("datapath.down", times["down"], "s", note="SIGTERM to everything removed"),
    ]
    note = f"wrk -t1 -c{CONNECTIONS} -d{seconds}s, Bookinfo productpage"
    for path, (rps, p50, p99) in paths.items():
        figures += [
            Figure(f"datapath.{path}.requests_per_s", rps, "req/s", note=note if path == "gateway" else ""),
            Figure(f"datapath.{path}.p50", p50, "ms"),
            Figure(f"datapath.{path}.p99", p99, "ms"),
        ]
    return figures


def run(quick: bool, only: str = "") -> list[Figure]:
    if os.geteuid() != 0:
        return [unavailable("datapath", "needs root (the local mesh uses network namespaces)")]
    if shutil.which("wrk") is None:
        return [unavailable("datapath", "needs wrk (apt-get install wrk)")]
    return measure(3 if quick else 10)
