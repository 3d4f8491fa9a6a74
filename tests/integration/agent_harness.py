"""Helpers for running `pilotfish agent` as a real subprocess next to a fake ADS server (loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiohttp
from aiohttp import web

import pilotfish

T = TypeVar("T")
SRC = Path(pilotfish.__file__).resolve().parents[1]
WAIT_S = 15.0
"""Upper bound for anything to happen: a hang guard, not a performance assertion."""


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (Envoy binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """Direct children of `pid` (Envoy, since setpriv execs)."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


async def eventually(check: Callable[[], Awaitable[T]], what: str, timeout: float = WAIT_S) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last value: {last!r})")


async def http_get(session: aiohttp.ClientSession, url: str) -> tuple[int, str] | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


@contextlib.asynccontextmanager
async def backend(body: str) -> AsyncIterator[int]:
    """A local HTTP server on 127.0.0.1 answering `body`; yields its port."""
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=body)

    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        assert site._server is not None
        yield int(site._server.sockets[0].getsockname()[1])
    finally:
        await runner.cleanup()


@dataclass
class Agent:
    process: asyncio.subprocess.Process
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def envoy_pid(self) -> int | None:
        pids = children(self.pid)
        return pids[0] if pids else None

    async def wait(self, timeout: float = WAIT_S) -> int:
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"agent did not exit within {timeout}s; stderr:\n{self.stderr()}") from None


@contextlib.asynccontextmanager
async def run_agent(
    args: list[str], workdir: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Agent]:
    """Start `pilotfish agent ARGS`; on the way out kill whatever is still running (agent and Envoy)."""
    stderr_path = workdir / f"agent-{len(list(workdir.glob('agent-*')))}.stderr"
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pilotfish", "agent", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            env={**os.environ, **(env or {}), "PYTHONPATH": str(SRC)},
        )  # fmt: skip
    agent = Agent(process, stderr_path)
    try:
        yield agent
    finally:
        if process.returncode is None:
            for child in children(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            process.kill()
            await process.wait()
