"""Test helpers around a real `DiscoveryServer`: start/stop in the test's loop, HTTP backends, traffic.

Everything binds to 127.0.0.1 (port 0 or a freshly probed free port) so tests can run in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from pilotfish.server.backend import Backend
from pilotfish.server.discovery import DiscoveryConfig, DiscoveryServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_discovery(
    manifests: Path | Sequence[Path], backend: Backend, grpc_address: str = "127.0.0.1:0", **options: Any
) -> DiscoveryServer:
    config = DiscoveryConfig(
        manifests=manifests,
        grpc_address=grpc_address,
        http_address="127.0.0.1:0",
        debounce=0.05,
        poll_interval=0.02,
        server_id="pilotfish-test",
        enable_test_hooks=True,
        **options,
    )
    server = DiscoveryServer(config, backend)
    try:
        await server.start()
    except BaseException:
        await server.stop(0)
        raise
    return server


@contextlib.asynccontextmanager
async def discovery(
    manifests: Path | Sequence[Path], backend: Backend, **options: Any
) -> AsyncIterator[DiscoveryServer]:
    server = await start_discovery(manifests, backend, **options)
    try:
        yield server
    finally:
        await server.stop(0)


async def http_json(port: int, path: str, method: str = "GET") -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://127.0.0.1:{port}{path}") as r,
    ):
        return json.loads(await r.text())


async def http_text(port: int, path: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as r:
        return await r.text()


@contextlib.asynccontextmanager
async def backends(*names: str) -> AsyncIterator[dict[str, int]]:
    """Tiny HTTP servers on 127.0.0.1 answering their own name; yields name -> port."""
    runners = []
    ports: dict[str, int] = {}
    try:
        for name in names:

            async def handler(_: web.Request, name: str = name) -> web.Response:
                return web.Response(text=name)

            app = web.Application()
            app.router.add_get("/{tail:.*}", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            site = web.SockSite(runner, sock)
            await site.start()
            ports[name] = sock.getsockname()[1]
        yield ports
    finally:
        for runner in runners:
            await runner.cleanup()


@dataclass
class Traffic:
    """A client sending requests in a loop through Envoy, counting answers and failures."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)
    sent: int = 0
    workers: int = 4
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _loop(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stop.is_set():
                self.sent += 1
                try:
                    async with session.get(self.url, headers=dict(self.headers)) as r:
                        body = await r.text()
                        if r.status != 200:
                            self.failures.append(
                                f"{r.status} {r.headers.get('x-envoy-response-flags', '')} {body!r}"
                            )
                        else:
                            self.answers[body] += 1
                            self.recent = [*self.recent[-49:], body]
                except (aiohttp.ClientError, TimeoutError) as err:
                    self.failures.append(repr(err))

    def start(self) -> Traffic:
        """`workers` concurrent loops, each on its own keep-alive connection."""
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.workers)]
        return self

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def wait_for(self, body: str, timeout: float = 10.0) -> float:
        """Wait until the last 10 answers are all `body`; returns how long it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if len(self.recent) >= 10 and all(b == body for b in self.recent[-10:]):
                return time.monotonic() - started
            await asyncio.sleep(0.01)
        raise AssertionError(
            f"traffic did not switch to {body!r}: recent={self.recent[-10:]} failures={self.failures[:3]}"
        )


async def get_once(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=dict(headers or {})) as r:
        return r.status, await r.text()
