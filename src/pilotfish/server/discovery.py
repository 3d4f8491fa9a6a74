"""The discovery server: files -> debounced rebuild -> mesh -> ADS pushes, plus the debug HTTP.

It serves one or more manifests directories as one input (`sources.files.DirectoryWatcher`): the
local mesh gives it the user's directories plus the pod status reports it writes as a kubelet would.

Wires the pieces together and owns their lifecycle (start, stop). Everything runs on one event loop;
only `load_mesh` (CPU-bound parsing) runs in a worker thread so streams keep being served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from pilotfish.server.ads import DEFAULT_MAX_SEND_BYTES, AdsServer, PushRequest, add_ads_service, grpc_options
from pilotfish.server.backend import Backend
from pilotfish.server.cache import XdsCache
from pilotfish.server.debug import make_app
from pilotfish.server.metrics import Metrics
from pilotfish.server.push import DEFAULT_MAX_DELAY, DEFAULT_QUIET, Burst, DebouncedTrigger
from pilotfish.sources.files import DEFAULT_INTERVAL, DirectoryWatcher

log = logging.getLogger("pilotfish.discovery")


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    manifests: Path | Sequence[Path]
    """The manifests directory, or several (read as one input, in this order)."""
    grpc_address: str = "127.0.0.1:15010"
    """`host:port` (port 0 picks a free one) or `unix:/path/to.sock`."""
    http_address: str | None = "127.0.0.1:15014"
    """`host:port` for /debug and /metrics, None to disable."""
    debounce: float = DEFAULT_QUIET
    debounce_max: float = DEFAULT_MAX_DELAY
    poll_interval: float = DEFAULT_INTERVAL
    max_send_bytes: int = DEFAULT_MAX_SEND_BYTES
    server_id: str = "pilotfish"
    enable_test_hooks: bool = False


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} must be host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


class DiscoveryServer:
    def __init__(self, config: DiscoveryConfig, backend: Backend) -> None:
        self.config = config
        self.metrics = Metrics()
        self.cache = XdsCache(backend)
        self.ads = AdsServer(self.cache, self.metrics, config.max_send_bytes, config.server_id)
        self.watcher = DirectoryWatcher(config.manifests, config.poll_interval)
        self.trigger = DebouncedTrigger(self._rebuild, config.debounce, config.debounce_max)
        self.grpc_port = 0
        self.http_port = 0
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._logged_diagnostics: tuple[str, ...] = ()
        self.loads = 0
        """How many rebuilds ran (tests wait on it)."""

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._load(time.monotonic(), initial=True)
        await self._start_grpc()
        if self.config.http_address is not None:
            await self._start_http(self.config.http_address)
        self._tasks = [
            asyncio.create_task(self.watcher.run(self._on_file_change), name="pilotfish-watch"),
            asyncio.create_task(self.trigger.run(), name="pilotfish-debounce"),
        ]

    async def stop(self, grace: float = 0.5) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.ads.close()
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        if self.config.grpc_address.startswith("unix:"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.config.grpc_address.removeprefix("unix:"))

    async def _start_grpc(self) -> None:
        server = grpc.aio.server(options=grpc_options(self.config.max_send_bytes))
        add_ads_service(self.ads, server)
        address = self.config.grpc_address
        if address.startswith("unix:"):
            path = address.removeprefix("unix:")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a stale socket file from a crashed run
        port = server.add_insecure_port(address)  # raises RuntimeError when the address is taken
        await server.start()
        if address.startswith("unix:"):
            os.chmod(address.removeprefix("unix:"), 0o666)  # sidecars run as uid 1337
        self.grpc_port = port
        self._grpc = server
        log.info(
            "discovery: ADS listening on %s",
            address if address.startswith("unix:") else f"{split_host_port(address)[0]}:{port}",
        )

    async def _start_http(self, address: str) -> None:
        host, port = split_host_port(address)
        hook = self._test_hook_push if self.config.enable_test_hooks else None
        runner = web.AppRunner(
            make_app(self.cache, self.metrics, self.config.server_id, hook), access_log=None
        )
        await runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((host, port))
        except OSError as err:
            sock.close()
            await runner.cleanup()
            raise RuntimeError(f"cannot listen for debug HTTP on {address}: {err.strerror}") from None
        site = web.SockSite(runner, sock)
        await site.start()
        self.http_port = sock.getsockname()[1]
        self._http = runner
        log.info("discovery: debug HTTP on http://%s:%d", host, self.http_port)
        if self.config.enable_test_hooks:
            log.warning("discovery: test hooks enabled (/debug/test/reject); never in production")

    # --- rebuilds ---------------------------------------------------------------------------------------

    def _on_file_change(self) -> None:
        self.metrics.inbound_updates.labels("config").inc()
        self.trigger.notify()

    def _test_hook_push(self) -> None:
        self.push(
            PushRequest(self.cache.mesh.version if self.cache.mesh else "", time.monotonic(), "test-hook")
        )

    def push(self, push: PushRequest) -> None:
        self.metrics.push_triggers.labels(push.reason).inc()
        count = self.ads.push_all(push)
        log.info("discovery: push mesh=%s reason=%s streams=%d", push.mesh_version, push.reason, count)

    async def _rebuild(self, burst: Burst) -> None:
        self.metrics.debounce_time.observe(burst.waited)
        await self._load(burst.first)

    async def _load(self, trigger_time: float, initial: bool = False) -> None:
        files = self.watcher.files()
        mesh, diagnostics = await asyncio.to_thread(self.cache.backend.load_mesh, files)
        self.loads += 1
        if not initial and not self.watcher.unchanged_since(files):
            log.info("discovery: manifests changed while loading; loading again")
            self.trigger.notify()
            return
        self.cache.diagnostics = diagnostics
        self._report(diagnostics, mesh is None)
        if mesh is None:
            if self.cache.mesh is None and initial:
                empty, _ = await asyncio.to_thread(self.cache.backend.load_mesh, [])
                if empty is not None:
                    self.cache.set_mesh(empty)
            return
        if self.cache.set_mesh(mesh):
            update = getattr(self.cache.backend, "last_update", "")  # PipelineBackend's; fakes have none
            log.info(
                "discovery: mesh version %s from %d files%s",
                mesh.version,
                len(files),
                f" (update: {update})" if update and not initial else "",
            )
            if not initial:
                self.push(PushRequest(mesh.version, trigger_time, "config"))

    def _report(self, diagnostics: list[Any], rejected: bool) -> None:
        """Log diagnostics once: the same set after another edit is not repeated."""
        lines = tuple(str(d) for d in diagnostics)
        if lines == self._logged_diagnostics:
            return
        self._logged_diagnostics = lines
        for diagnostic, line in zip(diagnostics, lines, strict=True):
            level = logging.ERROR if getattr(diagnostic, "level", "error") == "error" else logging.WARNING
            log.log(level, "config: %s", line)
        if rejected:
            kept = self.cache.mesh.version if self.cache.mesh else "none"
            log.error("config: input has errors; keeping the last good mesh (version %s)", kept)
