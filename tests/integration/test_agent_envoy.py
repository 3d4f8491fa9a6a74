"""`pilotfish agent` running a real Envoy against a fake ADS server, everything on loopback.

Each test gets its own directory under /tmp (short: unix socket paths are limited to 107 bytes), its own
ports and its own processes; fixtures remove all of them even when a test fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from google.protobuf import json_format

from pilotfish.model.names import PROXY_UID
from tests.integration.agent_harness import (
    SRC,
    Agent,
    alive,
    backend,
    eventually,
    free_port,
    http_get,
    run_agent,
    uid_of,
)
from tests.integration.fake_ads import CLUSTER, FakeAds, snapshot, start_server

pytestmark = pytest.mark.envoy

NAMESPACE = "istio-system"
BODY = "hello from the backend"


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"pfa{os.getpid()}-", dir="/tmp"))
    path.chmod(0o755)  # uid 1337 must reach the sockets inside
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Mesh:
    """A backend, a fake ADS server serving a listener in front of it, and the ports the agent gets."""

    def __init__(self, workdir: Path, fake: FakeAds, listen_port: int) -> None:
        self.workdir = workdir
        self.fake = fake
        self.listen_port = listen_port
        self.stats_port = free_port()
        self.ready_port = free_port()
        self.xds = f"unix:{workdir}/xds.sock"
        self.pod = f"gw-{os.getpid()}"

    def args(self, flavour: str = "delta", *extra: str, admin: str = "", drain: str = "0.1") -> list[str]:
        return [
            "router", "--discovery", self.xds, "--xds", flavour,
            "--pod", self.pod, "--namespace", NAMESPACE, "--ip", "127.0.0.1",
            "--label", "istio=ingressgateway", "--label", "app=istio-ingressgateway",
            "--admin", admin or f"unix:{self.workdir}/admin.sock",
            "--stats-port", str(self.stats_port), "--ready-port", str(self.ready_port),
            "--status-address", "127.0.0.1", "--concurrency", "1",
            "--run-dir", str(self.workdir / "run"), "--log-file", str(self.workdir / "envoy.log"),
            "--drain-duration", drain, *extra,
        ]  # fmt: skip

    def url(self, port: int, path: str = "/") -> str:
        return f"http://127.0.0.1:{port}{path}"


@pytest.fixture
async def mesh(workdir: Path) -> AsyncIterator[Mesh]:
    listen_port = free_port()
    async with backend(BODY) as backend_port:
        fake = FakeAds(snapshot(listen_port, backend_port))
        server = await start_server(fake, f"unix:{workdir}/xds.sock")
        (workdir / "xds.sock").chmod(0o666)  # connectable by a uid-1337 Envoy
        try:
            yield Mesh(workdir, fake, listen_port)
        finally:
            await server.stop(grace=None)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def wait_serving(mesh: Mesh, http: aiohttp.ClientSession) -> None:
    """Readiness says 200 LIVE, then a request through Envoy reaches the backend."""

    async def ready() -> tuple[int, str] | None:
        answer = await http_get(http, mesh.url(mesh.ready_port, "/healthz/ready"))
        return answer if answer and answer[0] == 200 else None

    assert (await eventually(ready, "readiness 200"))[1].strip() == "LIVE"

    async def proxied() -> tuple[int, str] | None:
        return await http_get(http, mesh.url(mesh.listen_port, "/any"))

    assert await eventually(proxied, "a proxied response") == (200, BODY)


async def envoy_pid(agent: Agent, not_this: int | None = None) -> int:
    async def found() -> int | None:
        pid = agent.envoy_pid()
        return pid if pid != not_this else None

    return await eventually(found, "the envoy child process")


@pytest.mark.parametrize("flavour", ["sotw", "delta"])
async def test_router_serves_traffic_and_drains_on_sigterm(
    mesh: Mesh, http: aiohttp.ClientSession, flavour: str
) -> None:
    async with run_agent(mesh.args(flavour, drain="60"), mesh.workdir) as agent:
        await wait_serving(mesh, http)
        envoy = await envoy_pid(agent)

        assert mesh.fake.flavours == [flavour]
        node = mesh.fake.nodes[0]
        assert node.id == f"router~127.0.0.1~{mesh.pod}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local"
        assert node.cluster == f"istio-ingressgateway.{NAMESPACE}"
        metadata = json_format.MessageToDict(node.metadata)
        assert metadata["LABELS"] == {"istio": "ingressgateway", "app": "istio-ingressgateway"}
        assert (metadata["NAMESPACE"], metadata["POD_NAME"], metadata["INSTANCE_IPS"]) == (
            NAMESPACE, mesh.pod, "127.0.0.1",
        )  # fmt: skip

        stats = await http_get(http, mesh.url(mesh.stats_port, "/stats/prometheus"))
        assert stats is not None and stats[0] == 200
        live = [line for line in stats[1].splitlines() if line.startswith("envoy_server_live")]
        assert live and live[0].endswith(" 1"), live

        # Envoy's stdout (the stdout access logger the control plane configures) goes to --log-file.
        log = mesh.workdir / "envoy.log"

        async def logged() -> bool:
            return f"access GET /any 200 - {CLUSTER}" in log.read_text()

        assert await eventually(logged, "the access log line in --log-file")
        assert "--file-flush-interval-msec\x00100" in Path(f"/proc/{envoy}/cmdline").read_text()

        agent.process.send_signal(signal.SIGTERM)

        async def draining() -> tuple[int, str] | None:
            answer = await http_get(http, mesh.url(mesh.ready_port, "/healthz/ready"))
            return answer if answer and answer[0] == 503 else None

        assert (await eventually(draining, "readiness 503 while draining"))[1].strip() == "DRAINING"
        assert agent.process.returncode is None, "the agent must wait out the drain duration"
        agent.process.send_signal(signal.SIGTERM)  # a second SIGTERM cuts the drain short

        assert await agent.wait() == 0, agent.stderr()
        assert not alive(envoy)
        assert not (mesh.workdir / "admin.sock").exists(), "the admin socket must be removed on exit"
        assert "draining envoy" in agent.stderr()


async def test_restarts_a_killed_envoy_and_stops_on_sigint(mesh: Mesh, http: aiohttp.ClientSession) -> None:
    async with run_agent(mesh.args("sotw"), mesh.workdir) as agent:
        await wait_serving(mesh, http)
        first = await envoy_pid(agent)

        os.kill(first, signal.SIGKILL)
        second = await envoy_pid(agent, not_this=first)
        await wait_serving(mesh, http)
        assert "restarting in" in agent.stderr()
        assert len(mesh.fake.nodes) == 2, "the restarted Envoy opens a new ADS stream"

        agent.process.send_signal(signal.SIGINT)
        assert await agent.wait() == 0, agent.stderr()
        assert not alive(second)


async def test_envoy_follows_an_agent_killed_with_sigkill(mesh: Mesh, http: aiohttp.ClientSession) -> None:
    async with run_agent(mesh.args(), mesh.workdir) as agent:
        await wait_serving(mesh, http)
        envoy = await envoy_pid(agent)
        agent.process.kill()
        await agent.wait()

        async def gone() -> bool:
            return not alive(envoy)

        assert await eventually(gone, "envoy to die with its agent (parent-death signal)")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching Envoy to uid 1337 needs root")
async def test_runs_envoy_as_uid_1337(mesh: Mesh, http: aiohttp.ClientSession) -> None:
    run_dir = mesh.workdir / "run1337"  # created by the agent, which hands it to uid 1337
    args = [
        *mesh.args(admin=f"unix:{run_dir}/admin.sock"),
        "--run-dir",
        str(run_dir),
        "--uid",
        str(PROXY_UID),
    ]
    async with run_agent(args, mesh.workdir) as agent:
        await wait_serving(mesh, http)
        envoy = await envoy_pid(agent)
        assert uid_of(envoy) == PROXY_UID
        assert run_dir.stat().st_uid == PROXY_UID
        agent.process.send_signal(signal.SIGTERM)
        assert await agent.wait() == 0, agent.stderr()
        assert not alive(envoy)


async def test_port_in_use_is_a_clear_start_failure(mesh: Mesh) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", mesh.stats_port))
        blocker.listen()
        async with run_agent(mesh.args(), mesh.workdir) as agent:
            status = await agent.wait()
    assert status != 0
    stderr = agent.stderr()
    assert "envoy could not start" in stderr
    assert f"127.0.0.1:{mesh.stats_port}" in stderr and "Address already in use" in stderr


def lonely_sidecar(workdir: Path, *extra: str) -> list[str]:
    """Agent args for a sidecar whose discovery server does not exist (Envoy never gets LIVE)."""
    return [
        "sidecar", "--discovery", f"unix:{workdir}/none.sock", "--pod", "p", "--namespace", "default",
        "--ip", "127.0.0.1", "--admin", f"unix:{workdir}/admin.sock",
        "--stats-port", "0", "--ready-port", "0", "--run-dir", str(workdir / "run"), *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("binary", "message"),
    [
        ("/nonexistent/envoy", "does not exist"),
        ("/bin/false", "envoy could not start (exit status 1)"),
    ],
)
async def test_bad_envoy_binary_fails_fast(workdir: Path, binary: str, message: str) -> None:
    args = lonely_sidecar(workdir, "--envoy-binary", binary)
    async with run_agent(args, workdir) as agent:
        status = await agent.wait()
    assert status != 0
    assert message in agent.stderr()
    assert "Traceback" not in agent.stderr()


async def test_sigterm_before_live_skips_the_drain(workdir: Path) -> None:
    """No discovery server: Envoy never gets LIVE, so there is nothing to drain and no reason to wait 60 s."""
    args = lonely_sidecar(workdir, "--drain-duration", "60")
    async with (
        run_agent(args, workdir) as agent,
        aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(workdir / "admin.sock"))) as admin,
    ):

        async def initializing() -> bool:
            answer = await http_get(admin, "http://envoy/ready")
            return answer is not None and answer[1].strip() in ("PRE_INITIALIZING", "INITIALIZING")

        assert await eventually(initializing, "envoy waiting for its first xDS config")
        agent.process.send_signal(signal.SIGTERM)
        assert await agent.wait() == 0, agent.stderr()
    assert "stopping without a drain" in agent.stderr()


def crashy_envoy(workdir: Path) -> str:
    """An executable that behaves like an Envoy that goes LIVE and then dies."""
    script = workdir / "crashy-envoy"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "crashy_envoy.py"} "$@"\n')
    script.chmod(0o755)
    return str(script)


def crashy_args(workdir: Path) -> list[str]:
    return lonely_sidecar(workdir, "--envoy-binary", crashy_envoy(workdir))


async def test_gives_up_after_repeated_quick_failures(workdir: Path) -> None:
    async with run_agent([*crashy_args(workdir), "--max-failures", "3"], workdir) as agent:
        status = await agent.wait()
    stderr = agent.stderr()
    assert status == 3, stderr
    assert stderr.count("started envoy (pid") == 3
    assert stderr.count("restarting in") == 2
    assert "envoy keeps failing (3 quick failures in a row" in stderr and "last exit status 3)" in stderr
    assert stderr.endswith("  | crashy envoy: exiting\n"), "the message quotes Envoy's last output"
    assert "Traceback" not in stderr


async def test_envoy_exiting_with_zero_ends_the_agent(workdir: Path) -> None:
    async with run_agent(crashy_args(workdir), workdir, env={"CRASHY_EXIT_STATUS": "0"}) as agent:
        status = await agent.wait()
    assert status == 0, agent.stderr()
    assert "envoy exited with status 0 by itself" in agent.stderr()


async def test_print_bootstrap_writes_json_and_runs_nothing(workdir: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pilotfish", "agent", "sidecar", "--discovery", "127.0.0.1:15010",
        "--pod", "reviews-v1-abc", "--namespace", "default", "--ip", "10.44.0.11", "--label", "app=reviews",
        "--run-dir", str(workdir / "unused"), "--print-bootstrap",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    bootstrap = json.loads(stdout)
    assert bootstrap["node"]["id"] == "sidecar~10.44.0.11~reviews-v1-abc.default~default.svc.cluster.local"
    assert bootstrap["node"]["cluster"] == "reviews.default"
    assert not (workdir / "unused").exists()
