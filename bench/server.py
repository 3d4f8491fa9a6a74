"""`pilotfish discovery` as its own process, for the convergence and memory tiers (loopback only).

The server watches a manifests directory of its own, serves ADS on a unix socket next to it and its
debug HTTP on 127.0.0.1 at a port the OS picks (found through /proc: the port is logged only at
info). `Server` then reads what the tiers measure: the process's RSS and CPU time, `/debug/syncz`
(who ACKed what, when) and the pods of the mesh (`/debug/registryz`), whose node ids the simulated
and real proxies take. Manifests are changed by atomic writes that return the time of the change.

`BENCH_SERVER_PREFIX` runs the server under another command instead of this Python (a profiler,
say: `BENCH_SERVER_PREFIX="py-spy record -o server.svg -- python"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from pilotfish.model.names import NodeId, ProxyType

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def write(path: Path, text: str) -> float:
    """Atomic write (the server never reads half a file); returns the wall-clock time of the change."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    now = time.time()
    tmp.replace(path)
    return now


def timestamp(text: str) -> float:
    """A syncz time (ISO 8601, `Z` for UTC) as epoch seconds; 0 for never."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0


def node_id(workload: Mapping[str, Any]) -> str:
    """The node id the proxy of a `/debug/registryz` workload connects with."""
    kind = ProxyType(workload.get("proxy_type") or ProxyType.SIDECAR.value)
    return str(NodeId.for_pod(kind, workload["ip"], workload["name"], workload["namespace"]))


@dataclass(frozen=True, slots=True)
class Server:
    """A running `pilotfish discovery` and an HTTP session to its debug port."""

    pid: int
    port: int
    """Debug HTTP on 127.0.0.1."""
    sock: Path
    """ADS (unix socket)."""
    manifests: Path
    session: aiohttp.ClientSession

    @property
    def work(self) -> Path:
        """A private directory for anything else the run needs (sockets, logs); removed at the end."""
        return self.sock.parent

    def write(self, name: str, text: str) -> float:
        """Change (or create) one manifest file; returns the time of the change."""
        return write(self.manifests / name, text)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """utime + stime of the server process."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S

    async def get_json(self, path: str) -> Any:
        async with self.session.get(f"http://127.0.0.1:{self.port}{path}") as response:
            return json.loads(await response.text())

    async def workloads(self) -> list[dict[str, Any]]:
        workloads: list[dict[str, Any]] = (await self.get_json("/debug/registryz"))["workloads"]
        return workloads

    async def node_ids(self) -> list[str]:
        """Node ids of the mesh's pods, in registry order: the identities the proxies take."""
        return [node_id(w) for w in await self.workloads()]

    async def syncz(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self.get_json("/debug/syncz")
        return entries

    async def synced(self, count: int, timeout: float = 120.0) -> list[dict[str, Any]]:
        """syncz once every 0.5 s (it costs the server CPU) until `count` streams are SYNCED at one
        mesh version."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = await self.syncz()
            versions = {e["mesh_version"] for e in entries}
            statuses = [d["status"] for e in entries for d in e["types"].values()]
            if len(entries) >= count and len(versions) == 1 and all(s == "SYNCED" for s in statuses):
                return entries
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{count} streams not synced after {timeout} s")


@contextlib.asynccontextmanager
async def serving(
    prefix: str, manifests: Mapping[str, str], options: Sequence[str] = ()
) -> AsyncIterator[Server]:
    """`pilotfish discovery [options]` on a fresh directory holding `manifests` (file name -> text),
    in a temporary directory named `prefix*`; stopped and removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        directory = work / "manifests"
        directory.mkdir()
        for name, text in manifests.items():
            write(directory / name, text)
        sock = work / "xds.sock"
        with _discovery(directory, sock, options) as (pid, port):
            async with aiohttp.ClientSession() as session:
                yield Server(pid, port, sock, directory, session)


@contextlib.contextmanager
def _discovery(manifests: Path, sock: Path, options: Sequence[str]) -> Iterator[tuple[int, int]]:
    """The server process: (pid, debug port) once it listens; SIGTERM (then SIGKILL) at the end."""
    command = os.environ.get("BENCH_SERVER_PREFIX", sys.executable).split()
    proc = subprocess.Popen(
        [
            *command,
            *("-m", "pilotfish", "discovery", "--manifests", str(manifests), "--grpc", f"unix:{sock}"),
            *("--http", "127.0.0.1:0", "--log-level", "warning", *options),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )
    try:
        yield proc.pid, _wait_listening(proc)
    finally:
        stop([proc])


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM all, wait for them together, SIGKILL whatever is left, and reap."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pilotfish discovery exited with status {proc.returncode}")
        if port := _listening_port(proc.pid):
            return port
        time.sleep(0.05)
    raise TimeoutError(f"pilotfish discovery did not open its debug port in {START_TIMEOUT_S} s")


def _listening_port(pid: int) -> int:
    """The port of the (only) TCP socket `pid` listens on, or 0."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
            return int(fields[1].split(":")[1], 16)
    return 0
