"""Run real Envoy 1.40 processes against an xDS server, for integration tests.

A stand-in for `pilotfish agent` until it lands: a minimal ADS bootstrap (envoy-runtime-notes §1),
`--disable-hot-restart` so many Envoys can run at once, admin on 127.0.0.1 port 0 with the chosen
address written to a file. Every process is stopped by its pid when the fixture ends, even on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sysconfig
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ENVOY_BIN = Path(sysconfig.get_paths()["purelib"]) / "envoy" / "_bin" / "envoy"


def node_id(pod: str, namespace: str = "default", kind: str = "router", ip: str = "127.0.0.1") -> str:
    return f"{kind}~{ip}~{pod}.{namespace}~{namespace}.svc.cluster.local"


def bootstrap(node: str, xds: str, delta: bool, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """`xds` is `host:port` or `unix:/path`."""
    if xds.startswith("unix:"):
        address: dict[str, Any] = {"pipe": {"path": xds.removeprefix("unix:")}}
    else:
        host, _, port = xds.rpartition(":")
        address = {"socket_address": {"address": host, "port_value": int(port)}}
    return {
        "node": {"id": node, "cluster": "test", "metadata": metadata or {}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds-grpc",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds-grpc",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
                    },
                }
            ]
        },
    }


class Envoy:
    def __init__(self, workdir: Path, node: str, xds: str, delta: bool = False) -> None:
        self.workdir = workdir
        self.node = node
        self.xds = xds
        self.delta = delta
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = ""
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "bootstrap.json"
        self.admin_path = workdir / "admin-address"
        self.log_path = workdir / "envoy.log"

    def start(self) -> Envoy:
        self.config_path.write_text(json.dumps(bootstrap(self.node, self.xds, self.delta)))
        with contextlib.suppress(FileNotFoundError):
            self.admin_path.unlink()
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [
                    str(ENVOY_BIN),
                    "-c",
                    str(self.config_path),
                    "--disable-hot-restart",
                    "--concurrency",
                    "1",
                    "--admin-address-path",
                    str(self.admin_path),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        return self

    async def wait_admin(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"envoy exited: {self.log_tail()}"
            if self.admin_path.exists() and (text := self.admin_path.read_text().strip()):
                self.admin = f"http://{text}"
                return self.admin
            await asyncio.sleep(0.01)
        raise AssertionError(f"envoy admin not up after {timeout}s: {self.log_tail()}")

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.admin + path) as response:
            return response.status, await response.text()

    async def json(self, path: str) -> Any:
        status, text = await self.get(path)
        assert status == 200, text
        return json.loads(text)

    async def stats(self, pattern: str) -> dict[str, str]:
        _, text = await self.get(f"/stats?filter={pattern}")
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def envoys(tmp_path: Path) -> Iterator[Callable[..., Envoy]]:
    """Factory of started Envoys; all are stopped (by pid) at the end of the test, pass or fail."""
    started: list[Envoy] = []

    def start(node: str, xds: str, delta: bool = False) -> Envoy:
        envoy = Envoy(tmp_path / f"envoy-{len(started)}-{os.getpid()}", node, xds, delta).start()
        started.append(envoy)
        return envoy

    try:
        yield start
    finally:
        for envoy in started:
            envoy.stop()


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll `check` until it is true; fail with `what` after `timeout` (a liveness bound, not a timing test)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
