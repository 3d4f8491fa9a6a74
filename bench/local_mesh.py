"""Local mesh start-up: from nothing to a 200 from /productpage through the gateway (needs root).

    python -m bench.local_mesh [--runs 3] [DIR]

Runs `pilotfish up DIR` (default samples/bookinfo) as a user would, polls
`http://127.0.0.1:<port>/productpage` from the moment the command starts, and prints per run: seconds
until `up` reported all pods ready, until the first 200 through the gateway, and how long `up` took to
tear everything down after SIGTERM (Ctrl-C). Prints numbers only; nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/productpage")
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def one_run(directory: Path, timeout: float = 120.0) -> tuple[float, float, float, int]:
    """(seconds to 'all pods ready', seconds to the first 200, seconds to stop, pods)."""
    port = _free_port()
    prefix = f"pfb{secrets.token_hex(3)}-"
    with tempfile.TemporaryFile() as log:
        began = time.monotonic()
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pilotfish",
                "up",
                str(directory),
                "--prefix",
                prefix,
                "--ingress-port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )
        ready = first_200 = 0.0
        try:
            while time.monotonic() - began < timeout and up.poll() is None:
                if not ready:
                    log.seek(0)
                    if b"pods ready in" in log.read():
                        ready = time.monotonic() - began
                if not first_200 and _status(port) == 200:
                    first_200 = time.monotonic() - began
                if ready and first_200:
                    break
                time.sleep(0.005)
        finally:
            stopping = time.monotonic()
            up.send_signal(signal.SIGTERM)
            up.wait(60)
            stopped = time.monotonic() - stopping
            log.seek(0)
            text = log.read().decode(errors="replace")
        if not (ready and first_200):
            raise SystemExit(f"the mesh did not come up:\n{text}")
        pods = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("all ")), 0)
        return ready, first_200, stopped, pods


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", nargs="?", default=str(REPO / "samples" / "bookinfo"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    rows = []
    load = os.getloadavg()[0]
    print(f"pilotfish up {args.dir}: {args.runs} run(s), {os.cpu_count()} CPUs, load {load:.2f}")
    print(f"{'run':>4} {'pods':>5} {'all ready s':>12} {'first 200 s':>12} {'down s':>8}")
    for run in range(1, args.runs + 1):
        ready, first, stopped, pods = one_run(Path(args.dir))
        rows.append((ready, first, stopped))
        print(f"{run:>4} {pods:>5} {ready:>12.2f} {first:>12.2f} {stopped:>8.2f}", flush=True)
    if len(rows) > 1:
        medians = [statistics.median(column) for column in zip(*rows, strict=True)]
        print(f"{'med':>4} {'':>5} {medians[0]:>12.2f} {medians[1]:>12.2f} {medians[2]:>8.2f}")


if __name__ == "__main__":
    main()
