"""Issue 4 acceptance: real manifests -> `pilotfish discovery` -> an agent-run router Envoy -> two backends.

A Gateway + VirtualService route a gateway Envoy (started by `pilotfish agent router`) to two local
HTTP backends (pods with IP 127.0.0.1). Editing the VirtualService (A -> B, 50/50, header match) must
take effect while a client loop sees zero failures, in SotW and in delta; invalid edits are reported
with file:line and change nothing; a rejected push shows up as a NACK everywhere.

The gateway listener binds 0.0.0.0:<free port> (Istio's gateway listener address); requests go to
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pilotfish.agent.admin import AdminClient
from pilotfish.agent.options import UnixAddress
from pilotfish.cli.main import cli
from pilotfish.server.backend import PipelineBackend
from pilotfish.server.discovery import DiscoveryServer
from tests.discovery_helper import Traffic, backends, discovery, free_port, get_once, http_json, http_text
from tests.envoy_helper import wait_until

pytestmark = pytest.mark.envoy

SRC = Path(__file__).resolve().parents[2] / "src"
GATEWAY = "ingressgateway.istio-system"


def pod(name: str, namespace: str, labels: dict[str, str], port: int, inject: bool = False) -> str:
    annotations = "" if inject else '\n  annotations: {sidecar.istio.io/inject: "false"}'
    label_text = ", ".join(f"{k}: {v}" for k, v in labels.items())
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{{label_text}}}{annotations}
spec:
  containers: [{{name: c, image: x, ports: [{{containerPort: {port}}}]}}]
status: {{podIP: 127.0.0.1}}
"""


def service(name: str, target: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: 8000, targetPort: {target}}}]
  selector: {{app: {name}}}
"""


def base_manifests(listen: int, ports: dict[str, int]) -> str:
    docs = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n",
        pod(
            "ingressgateway",
            "istio-system",
            {"app": "istio-ingressgateway", "istio": "ingressgateway"},
            listen,
        ),
        service("backend-a", ports["A"]),
        pod("backend-a", "default", {"app": "backend-a"}, ports["A"]),
        service("backend-b", ports["B"]),
        pod("backend-b", "default", {"app": "backend-b"}, ports["B"]),
        f"""apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {listen}, name: http, protocol: HTTP}}
    hosts: ["*"]
""",
    ]
    return "---\n".join(docs)


def virtual_service(http: str) -> str:
    return f"""apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: route
  namespace: default
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
{http}"""


TO_A = "  - route:\n    - destination: {host: backend-a, port: {number: 8000}}\n"
TO_B = "  - route:\n    - destination: {host: backend-b, port: {number: 8000}}\n"
SPLIT = (
    "  - route:\n"
    "    - destination: {host: backend-a, port: {number: 8000}}\n      weight: 50\n"
    "    - destination: {host: backend-b, port: {number: 8000}}\n      weight: 50\n"
)
HEADER = (
    "  - match:\n    - headers:\n        end-user: {exact: jason}\n"
    "    route:\n    - destination: {host: backend-b, port: {number: 8000}}\n" + TO_A
)


def write(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@contextlib.contextmanager
def agent(workdir: Path, xds: str, flavour: str) -> Iterator[UnixAddress]:
    """`pilotfish agent router` for the gateway pod, stopped by pid at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    admin = workdir / "admin.sock"
    argv = [
        sys.executable,
        "-m",
        "pilotfish",
        "agent",
        "router",
        "--discovery",
        xds,
        "--pod",
        "ingressgateway",
        "--namespace",
        "istio-system",
        "--ip",
        "127.0.0.1",
        "--label",
        "istio=ingressgateway",
        "--label",
        "app=istio-ingressgateway",
        "--admin",
        f"unix:{admin}",
        "--xds",
        flavour,
        "--stats-port",
        "0",
        "--ready-port",
        "0",
        "--concurrency",
        "1",
        "--drain-duration",
        "0",
        "--run-dir",
        str(workdir / "run"),
        "--log-file",
        str(workdir / "envoy.log"),
    ]
    env = dict(os.environ, PYTHONPATH=str(SRC))
    with (workdir / "agent.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        yield UnixAddress(str(admin))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def admin_get(admin: UnixAddress, path: str) -> tuple[int, str] | None:
    async with AdminClient(admin, timeout=3) as client:
        return await client.request("GET", path)


async def proxy_status(server: DiscoveryServer, *args: str) -> tuple[int, str]:
    argv = ["proxy-status", "--discovery-http", f"127.0.0.1:{server.http_port}", *args]
    result = await asyncio.to_thread(CliRunner().invoke, cli, argv)
    return result.exit_code, result.output


async def gateway_synced(server: DiscoveryServer) -> bool:
    entries = await http_json(server.http_port, "/debug/syncz")
    return any(
        e["proxy"] == GATEWAY
        and all(e["types"].get(t, {}).get("status") == "SYNCED" for t in ("CDS", "LDS", "EDS", "RDS"))
        and e["mesh_version"] == (server.cache.mesh.version if server.cache.mesh else "")
        for e in entries
    )


@contextlib.asynccontextmanager
async def mesh_with_gateway(tmp_path: Path, flavour: str) -> AsyncIterator[dict[str, Any]]:
    listen = free_port()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    async with backends("A", "B") as ports:
        write(manifests / "mesh.yaml", base_manifests(listen, ports))
        vs = manifests / "route.yaml"
        write(vs, virtual_service(TO_A))
        async with discovery(manifests, PipelineBackend()) as server:
            with agent(tmp_path / "gw", f"127.0.0.1:{server.grpc_port}", flavour) as admin:
                url = f"http://127.0.0.1:{listen}/"
                await wait_until(
                    lambda: _answers(url, "A"), timeout=20, what="first request through the gateway"
                )
                await wait_until(lambda: gateway_synced(server), what="gateway SYNCED")
                yield {"server": server, "admin": admin, "url": url, "vs": vs, "ports": ports}


@pytest.mark.parametrize("flavour", ["sotw", "delta"])
async def test_virtual_service_edits_apply_live_without_failures(tmp_path: Path, flavour: str) -> None:
    async with mesh_with_gateway(tmp_path, flavour) as m:
        server, vs, url = m["server"], m["vs"], m["url"]
        traffic = Traffic(url).start()
        timings = {}
        try:
            await traffic.wait_for("A")
            write(vs, virtual_service(TO_B))
            timings["A->B"] = await traffic.wait_for("B")
            write(vs, virtual_service(SPLIT))
            await wait_until(lambda: _both_seen(traffic), what="50/50 split serving A and B")
            write(vs, virtual_service(HEADER))
            timings["header"] = await traffic.wait_for("A")  # no header: A
        finally:
            await traffic.stop()
        assert traffic.failures == [], traffic.failures[:5]
        assert await get_once(url, {"end-user": "jason"}) == (200, "B")
        print(
            f"\n{flavour}: change -> traffic switched: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
        )
        await wait_until(lambda: gateway_synced(server), what="gateway SYNCED after the edits")
        code, table = await proxy_status(server)
        assert code == 0
        assert table.splitlines()[1].split() == [
            GATEWAY,
            "SYNCED",
            "SYNCED",
            "SYNCED",
            "SYNCED",
            "pilotfish-test",
            "0.1.0",
        ]
        code, diff = await proxy_status(server, GATEWAY, "--admin", f"unix:{m['admin'].path}")
        assert code == 0, diff
        assert diff.splitlines()[:2] == ["Clusters Match", "Listeners Match"]
        assert diff.splitlines()[2].startswith("Routes Match (RDS last loaded at ")


async def test_invalid_edits_are_reported_and_nacks_are_visible(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", "pilotfish")
    async with mesh_with_gateway(tmp_path, "delta") as m:
        server, vs, url = m["server"], m["vs"], m["url"]
        traffic = Traffic(url).start()
        try:
            await traffic.wait_for("A")
            write(vs, virtual_service(TO_B).replace("  http:\n", "  http: [\n"))  # bad YAML
            await wait_until(lambda: _errors(server, str(vs)), what="YAML error with the file name")
            write(vs, virtual_service(TO_B).replace("number: 8000", "number: eighty"))  # bad field
            await wait_until(lambda: _errors(server, "destination.port.number"), what="field error")
            errors = (await http_json(server.http_port, "/debug/config_errors"))["errors"]
            assert any(e.startswith(f"{vs}:") and "VirtualService default/route" in e for e in errors), errors
            assert traffic.recent[-1] == "A"  # the last good config keeps serving
            write(vs, virtual_service(TO_B))
            await traffic.wait_for("B")
        finally:
            await traffic.stop()
        assert traffic.failures == []
        logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("config: ")]
        assert any("destination.port.number" in line for line in logged)

        # a resource Envoy rejects (test hook): NACK in syncz, metrics and proxy-status, traffic unaffected
        await http_json(server.http_port, f"/debug/test/reject?proxyID={GATEWAY}", "POST")

        async def nacked() -> bool:
            entries = await http_json(server.http_port, "/debug/syncz")
            return any(e["types"]["CDS"]["status"] == "NACK" for e in entries if e["proxy"] == GATEWAY)

        await wait_until(nacked, what="CDS NACK from the gateway Envoy")
        (entry,) = [e for e in await http_json(server.http_port, "/debug/syncz") if e["proxy"] == GATEWAY]
        message = entry["types"]["CDS"]["last_nack"]["message"]
        assert "pilotfish-test-reject" in message or "duration" in message.lower(), message
        assert (
            'pilot_total_xds_rejects{type="cds"} 1'
            in (await http_text(server.http_port, "/metrics")).splitlines()
        )
        _, table = await proxy_status(server)
        assert table.splitlines()[1].split()[1] == "NACK"
        _, detail = await proxy_status(server, "ingressgateway")
        assert "CDS NACK" in detail
        assert await get_once(url) == (200, "B")
        await http_json(server.http_port, "/debug/test/reject", "DELETE")
        await wait_until(lambda: gateway_synced(server), what="SYNCED after the hook is cleared")


async def test_discovery_restart_resyncs_the_gateway(tmp_path: Path) -> None:
    listen = free_port()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    port = free_port()
    async with backends("A", "B") as ports:
        write(manifests / "mesh.yaml", base_manifests(listen, ports))
        vs = manifests / "route.yaml"
        write(vs, virtual_service(TO_A))
        backend = PipelineBackend()
        url = f"http://127.0.0.1:{listen}/"
        with agent(tmp_path / "gw", f"127.0.0.1:{port}", "sotw") as admin:
            async with discovery(manifests, backend, grpc_address=f"127.0.0.1:{port}") as first:
                await wait_until(lambda: _answers(url, "A"), timeout=20, what="traffic through the gateway")
                await wait_until(lambda: gateway_synced(first), what="SYNCED")
            assert await get_once(url) == (200, "A")  # no control plane: still serving
            write(vs, virtual_service(TO_B))
            async with discovery(manifests, backend, grpc_address=f"127.0.0.1:{port}") as second:
                await wait_until(
                    lambda: gateway_synced(second), timeout=15, what="re-sync with the new server"
                )
                await wait_until(lambda: _answers(url, "B"), what="the new server's config")
                code, table = await proxy_status(second)
                assert code == 0
                assert table.splitlines()[1].split()[:5] == [GATEWAY, "SYNCED", "SYNCED", "SYNCED", "SYNCED"]
                answer = await admin_get(admin, "/stats?filter=control_plane.connected_state")
                assert answer is not None and "control_plane.connected_state: 1" in answer[1]


async def _answers(url: str, body: str) -> bool:
    try:
        return await get_once(url) == (200, body)
    except OSError:
        return False


async def _both_seen(traffic: Traffic) -> bool:
    recent = traffic.recent[-40:]
    return "A" in recent and "B" in recent


async def _errors(server: DiscoveryServer, text: str) -> bool:
    errors = (await http_json(server.http_port, "/debug/config_errors"))["errors"]
    return any(text in e for e in errors)


async def test_live_and_offline_proxy_config_print_the_same_tables(tmp_path: Path) -> None:
    """`proxy-config` read from the running gateway Envoy equals `proxy-config --manifests` for the same
    pod, for everything the control plane sends. (The agent here runs without the 15090/15021
    listeners and with another discovery address, so bootstrap-only rows are filtered out.)"""
    async with mesh_with_gateway(tmp_path, "delta") as m:
        manifests = str(m["vs"].parent)
        listen = m["url"].rsplit(":", 1)[1].strip("/")
        views = [
            ["listener", "--port", listen],
            ["route"],
            ["cluster", "--direction", "outbound"],
            ["cluster", "--fqdn", "BlackHoleCluster"],
            ["endpoint", "--cluster", "outbound|8000||backend-a.default.svc.cluster.local"],
            ["endpoint", "--cluster", "outbound|8000||backend-b.default.svc.cluster.local"],
        ]
        for profile in ("1.3", "modern"):
            for view in views:
                common = ["proxy-config", *view, GATEWAY, "--profile", profile]
                live = await asyncio.to_thread(
                    CliRunner().invoke, cli, [*common, "--admin", f"unix:{m['admin'].path}"]
                )
                offline = await asyncio.to_thread(CliRunner().invoke, cli, [*common, "--manifests", manifests])
                assert live.exit_code == offline.exit_code == 0, (live.output, offline.output)
                assert len(live.output.splitlines()) > 1, view
                assert live.output == offline.output, f"{view} ({profile})"
