"""Run real Envoy 1.40 processes against an xDS server, for integration tests.

Each Envoy starts the way `pilotfish agent` starts it - the agent's bootstrap (`build_bootstrap` of
`AgentOptions`) and command line (`envoy_argv`) - without the agent's supervision, so a test can run
many cheaply: one worker, no stats or readiness listener (many Envoys share the test's network
namespace), admin on a unix socket in the test's directory. Every process is stopped by its pid when
the fixture ends, even on failure (and dies with the test process: setpriv's death signal).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pilotfish.agent.admin import AdminClient
from pilotfish.agent.bootstrap import bootstrap_json
from pilotfish.agent.envoy import RunOptions, envoy_argv, locate_envoy, privilege_prefix, write_bootstrap
from pilotfish.agent.options import AgentOptions, UnixAddress, XdsFlavour, parse_address
from pilotfish.model.names import NodeId, ProxyType

RUN = RunOptions(concurrency=1, log_level="warning", drain_duration=0)
ADMIN_TIMEOUT_S = 5.0


def node_id(pod: str, namespace: str = "default", kind: str = "router", ip: str = "127.0.0.1") -> NodeId:
    return NodeId.for_pod(ProxyType(kind), ip, pod, namespace)


def agent_options(node: NodeId, xds: str, delta: bool, admin: Path) -> AgentOptions:
    """What `pilotfish agent` would be told for this proxy; `xds` is `host:port` or `unix:/path`."""
    return AgentOptions(
        proxy_type=node.proxy_type,
        pod_name=node.pod_name,
        namespace=node.namespace,
        ip=node.ip,
        discovery=parse_address(xds, "--discovery"),
        admin=UnixAddress(str(admin)),
        xds=XdsFlavour.DELTA if delta else XdsFlavour.SOTW,
        stats_port=0,
        ready_port=0,
    )


class Envoy:
    def __init__(self, workdir: Path, node: NodeId, xds: str, delta: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.options = agent_options(node, xds, delta, workdir / "admin.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = f"unix:{workdir / 'admin.sock'}"
        """The admin address as `proxy-status --admin` takes it."""
        self.config_path = workdir / "bootstrap.json"
        self.log_path = workdir / "envoy.log"

    def start(self) -> Envoy:
        write_bootstrap(self.config_path, bootstrap_json(self.options))
        argv = envoy_argv(privilege_prefix(RUN), locate_envoy(None), self.config_path, RUN)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    async def wait_admin(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        async with AdminClient(self.options.admin) as admin:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, f"envoy exited: {self.log_tail()}"
                if await admin.ready_state() is not None:
                    return self.admin
                await asyncio.sleep(0.01)
        raise AssertionError(f"envoy admin not up after {timeout}s: {self.log_tail()}")

    async def get(self, path: str) -> tuple[int, str]:
        async with AdminClient(self.options.admin, timeout=ADMIN_TIMEOUT_S) as admin:
            answer = await admin.request("GET", path)
        assert answer is not None, f"envoy admin {self.admin} did not answer GET {path}"
        return answer

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

    def start(node: NodeId, xds: str, delta: bool = False) -> Envoy:
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
