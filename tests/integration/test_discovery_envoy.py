"""`DiscoveryServer` against real Envoy 1.40 processes (config from the fake pipeline in tests/xds_fake.py).

Loopback only: Envoy listeners, the ADS server, the debug HTTP and the two HTTP backends bind 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import pilotfish
from pilotfish.cli.main import cli
from pilotfish.server.discovery import DiscoveryServer
from tests.discovery_helper import Traffic, backends, discovery, free_port, get_once, http_json, http_text
from tests.envoy_helper import Envoy, envoys, node_id, wait_until
from tests.xds_fake import FakeBackend, cluster_name, write_spec

__all__ = ["envoys"]  # the fixture

pytestmark = pytest.mark.envoy

GW = node_id("gw-1", "istio-system")
TYPES = ("CDS", "LDS", "EDS", "RDS")


def make_spec(
    listen: int, ports: dict[str, int], routes: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    clusters = {name.lower(): {"endpoints": [f"127.0.0.1:{port}"]} for name, port in ports.items()}
    clusters.update(extra.pop("clusters", {}))
    return {"router": {"port": listen, "routes": routes}, "clusters": clusters, **extra}


def to(*weights: tuple[str, int], headers: dict[str, str] | None = None) -> dict[str, Any]:
    route: dict[str, Any] = {"prefix": "/", "weights": dict(weights)}
    if headers:
        route["headers"] = headers
    return route


async def synced(server: DiscoveryServer, proxy: str | None = None, count: int = 1) -> bool:
    entries = await http_json(server.http_port, "/debug/syncz")
    chosen = [e for e in entries if proxy is None or e["proxy"] == proxy]
    return len(chosen) >= count and all(
        all(e["types"].get(t, {}).get("status") == "SYNCED" for t in TYPES) for e in chosen
    )


async def proxy_status(server: DiscoveryServer, *args: str) -> tuple[int, str]:
    """Run the CLI in a thread: it does blocking HTTP against the server running on this loop."""
    argv = ["proxy-status", "--discovery-http", f"127.0.0.1:{server.http_port}", *args]
    result = await asyncio.to_thread(CliRunner().invoke, cli, argv)
    return result.exit_code, result.output


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    path = tmp_path / "manifests"
    path.mkdir()
    return path


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_sync_changes_without_failures(
    manifests: Path, envoys: Callable[..., Envoy], delta: bool
) -> None:
    """Initial sync; A -> B, 50/50, header match, new cluster, removed cluster: zero failed requests."""
    listen = free_port()
    async with backends("A", "B", "C") as ports:
        mesh = manifests / "mesh.yaml"
        two = {"A": ports["A"], "B": ports["B"]}
        write_spec(mesh, make_spec(listen, two, [to(("a", 100))]))
        async with discovery(manifests, FakeBackend()) as server:
            envoy = envoys(GW, f"127.0.0.1:{server.grpc_port}", delta)
            await envoy.wait_admin()
            url = f"http://127.0.0.1:{listen}/"
            await wait_until(lambda: _answers(url, "A"), what="first request through Envoy")
            await wait_until(lambda: synced(server, "gw-1.istio-system"), what="all types SYNCED")

            traffic = Traffic(url).start()
            try:
                await traffic.wait_for("A")
                write_spec(mesh, make_spec(listen, two, [to(("b", 100))]))
                await traffic.wait_for("B")

                write_spec(mesh, make_spec(listen, two, [to(("a", 50), ("b", 50))]))
                await wait_until(lambda: _both_seen(traffic), what="50/50 split serving A and B")

                # a new cluster and the route that uses it arrive in the same push (make before break)
                write_spec(mesh, make_spec(listen, ports, [to(("c", 100))]))
                await traffic.wait_for("C")
                # the cluster in use is removed while the route moves away from it (removal goes last)
                write_spec(mesh, make_spec(listen, two, [to(("a", 100))]))
                await traffic.wait_for("A")
            finally:
                await traffic.stop()
            assert traffic.failures == [], traffic.failures[:5]
            assert traffic.sent > 100

            write_spec(
                mesh, make_spec(listen, two, [to(("b", 100), headers={"x-user": "jason"}), to(("a", 100))])
            )
            await wait_until(lambda: _answers(url, "B", {"x-user": "jason"}), what="header match to B")
            assert await get_once(url) == (200, "A")

            await wait_until(lambda: synced(server, "gw-1.istio-system"), what="SYNCED after the changes")
            warming = await envoy.json("/config_dump?resource=dynamic_warming_clusters")
            assert warming.get("configs", []) == []
            code, table = await proxy_status(server)
            assert code == 0, table
            header, row = table.splitlines()
            assert header.split() == ["NAME", "CDS", "LDS", "EDS", "RDS", "PILOT", "VERSION"]
            assert row.split() == [
                "gw-1.istio-system",
                "SYNCED",
                "SYNCED",
                "SYNCED",
                "SYNCED",
                "pilotfish-test",
                pilotfish.__version__,  # the agent's bootstrap sets ISTIO_VERSION (else: Envoy's, starred)
            ]
            code, diff = await proxy_status(server, "gw-1.istio-system", "--admin", envoy.admin)
            assert code == 0, diff
            assert diff.splitlines()[:2] == ["Clusters Match", "Listeners Match"]
            assert diff.splitlines()[2].startswith("Routes Match (RDS last loaded at ")


async def test_cluster_change_does_not_leave_cluster_warming(
    manifests: Path, envoys: Callable[..., Envoy]
) -> None:
    """A CDS change to an EDS cluster is followed by a fresh EDS: no 15 s warming (both flavours)."""
    listen = free_port()
    async with backends("A") as ports:
        mesh = manifests / "mesh.yaml"
        write_spec(mesh, make_spec(listen, ports, [to(("a", 100))]))
        async with discovery(manifests, FakeBackend()) as server:
            sotw = envoys(node_id("gw-1", "istio-system"), f"127.0.0.1:{server.grpc_port}", False)
            delta = envoys(node_id("gw-2", "istio-system"), f"127.0.0.1:{server.grpc_port}", True)
            for envoy in (sotw, delta):
                await envoy.wait_admin()
            await wait_until(lambda: synced(server, count=2), what="both SYNCED")
            write_spec(
                mesh,
                make_spec(
                    listen,
                    ports,
                    [to(("a", 100))],
                    clusters={"a": {"endpoints": [f"127.0.0.1:{ports['A']}"], "connect_timeout": "2s"}},
                ),
            )
            for envoy in (sotw, delta):
                await wait_until(
                    lambda e=envoy: _connect_timeout_is(e, "2s"), timeout=5, what="new cluster active"
                )
                warming = await envoy.json("/config_dump?resource=dynamic_warming_clusters")
                assert warming.get("configs", []) == []


async def test_nack_shows_in_syncz_metrics_and_proxy_status(
    manifests: Path, envoys: Callable[..., Envoy]
) -> None:
    listen = free_port()
    async with backends("A") as ports:
        write_spec(manifests / "mesh.yaml", make_spec(listen, ports, [to(("a", 100))]))
        async with discovery(manifests, FakeBackend()) as server:
            envoy = envoys(GW, f"127.0.0.1:{server.grpc_port}")
            await envoy.wait_admin()
            await wait_until(lambda: synced(server, "gw-1.istio-system"), what="SYNCED")
            await http_json(server.http_port, "/debug/test/reject?proxyID=gw-1.istio-system", "POST")

            async def nacked() -> bool:
                (entry,) = await http_json(server.http_port, "/debug/syncz")
                return bool(entry["types"]["CDS"]["status"] == "NACK")

            await wait_until(nacked, what="CDS NACK")
            (entry,) = await http_json(server.http_port, "/debug/syncz")
            nack = entry["types"]["CDS"]["last_nack"]
            assert "pilotfish-test-reject" in nack["message"] or "duration" in nack["message"].lower()
            metrics = await http_text(server.http_port, "/metrics")
            assert 'pilot_total_xds_rejects{type="cds"} 1' in metrics.splitlines()
            code, table = await proxy_status(server)
            assert table.splitlines()[1].split()[1] == "NACK"
            code, table = await proxy_status(server, "--profile", "modern")
            assert table.splitlines()[1].split()[2] == "ERROR"
            code, detail = await proxy_status(server, "gw-1")
            assert "CDS NACK" in detail
            code, diff = await proxy_status(server, "gw-1.istio-system", "--admin", envoy.admin)
            assert code == 1 and "--- Pilot Clusters" in diff and "pilotfish-test-reject" in diff
            assert await get_once(f"http://127.0.0.1:{listen}/") == (
                200,
                "A",
            )  # still serving the good config
            stats = await envoy.stats("cluster_manager.cds.update_rejected")
            assert stats["cluster_manager.cds.update_rejected"] == "1"

            await http_json(server.http_port, "/debug/test/reject", "DELETE")
            await wait_until(lambda: synced(server, "gw-1.istio-system"), what="SYNCED again after the fix")


async def test_invalid_edits_keep_the_last_good_config(
    manifests: Path, envoys: Callable[..., Envoy], caplog: pytest.LogCaptureFixture
) -> None:
    listen = free_port()
    caplog.set_level("INFO", "pilotfish")
    async with backends("A", "B") as ports:
        mesh = manifests / "mesh.yaml"
        write_spec(mesh, make_spec(listen, ports, [to(("a", 100))]))
        async with discovery(manifests, FakeBackend()) as server:
            envoy = envoys(GW, f"127.0.0.1:{server.grpc_port}")
            await envoy.wait_admin()
            url = f"http://127.0.0.1:{listen}/"
            await wait_until(lambda: _answers(url, "A"), what="traffic to A")
            traffic = Traffic(url).start()
            try:
                loads = server.loads
                mesh.write_text("router:\n  port: [unclosed\n")  # bad YAML, written in place
                await wait_until(lambda: _errors(server, "invalid YAML"), what="YAML error reported")
                errors = (await http_json(server.http_port, "/debug/config_errors"))["errors"]
                assert errors == [
                    f"{mesh}:3: invalid YAML: expected ',' or ']', but got '<stream end>'"
                ] or errors[0].startswith(f"{mesh}:")
                # touching the broken file again does not report it again
                mesh.write_text("router:\n  port: [unclosed\n")
                await wait_until(lambda: _loaded_more_than(server, loads + 1), what="second load")
                bad_field = make_spec(listen, ports, [to(("nope", 100))])
                write_spec(mesh, bad_field)
                await wait_until(lambda: _errors(server, "unknown cluster 'nope'"), what="bad field reported")
                assert traffic.recent[-1] == "A"
                write_spec(mesh, make_spec(listen, ports, [to(("b", 100))]))
                await traffic.wait_for("B")
            finally:
                await traffic.stop()
            assert traffic.failures == []
            reported = [r.getMessage() for r in caplog.records if "invalid YAML" in r.getMessage()]
            assert len(reported) == 1, reported
            assert reported[0].startswith(f"config: {mesh}:")
            assert (await http_json(server.http_port, "/debug/config_errors"))["errors"] == []


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_server_restart_resyncs_without_envoy_restart(
    manifests: Path, envoys: Callable[..., Envoy], tmp_path: Path, delta: bool
) -> None:
    listen = free_port()
    sock = f"unix:{tmp_path}/xds-{listen}.sock"
    async with backends("A", "B") as ports:
        mesh = manifests / "mesh.yaml"
        write_spec(mesh, make_spec(listen, ports, [to(("a", 100))]))
        backend = FakeBackend()
        async with discovery(manifests, backend, grpc_address=sock) as first:
            envoy = envoys(GW, sock, delta)
            await envoy.wait_admin()
            await wait_until(lambda: synced(first, "gw-1.istio-system"), what="SYNCED")
            pid = envoy.proc.pid if envoy.proc else 0
        # the server is gone: traffic keeps flowing on the last config
        url = f"http://127.0.0.1:{listen}/"
        assert await get_once(url) == (200, "A")
        write_spec(mesh, make_spec(listen, ports, [to(("b", 100))]))
        async with discovery(manifests, backend, grpc_address=sock) as second:
            await wait_until(
                lambda: synced(second, "gw-1.istio-system"), timeout=15, what="re-sync after restart"
            )
            await wait_until(lambda: _answers(url, "B"), what="config from the new server")
            assert envoy.proc is not None and envoy.proc.pid == pid and envoy.proc.poll() is None
            stats = await envoy.stats("control_plane.connected_state")
            assert stats["control_plane.connected_state"] == "1"


async def test_twenty_envoys_all_synced_after_a_change(manifests: Path, envoys: Callable[..., Envoy]) -> None:
    async with backends("A", "B") as ports:
        mesh = manifests / "mesh.yaml"
        listen = free_port()
        write_spec(mesh, make_spec(listen, ports, [to(("a", 100))]))
        async with discovery(manifests, FakeBackend()) as server:
            started = []
            for i in range(20):
                # sidecars: clusters and endpoints only; one router, which owns the listener port
                kind = "router" if i == 0 else "sidecar"
                started.append(
                    envoys(
                        node_id(f"pod-{i:02d}", "default", kind), f"127.0.0.1:{server.grpc_port}", i % 2 == 1
                    )
                )
            await asyncio.gather(*(e.wait_admin() for e in started))
            await wait_until(lambda: _all_sent(server, 20), timeout=20, what="20 proxies connected and sent")
            write_spec(
                mesh,
                make_spec(
                    listen,
                    ports,
                    [to(("b", 100))],
                    clusters={"b": {"endpoints": [f"127.0.0.1:{ports['B']}", f"127.0.0.1:{ports['A']}"]}},
                ),
            )
            await wait_until(lambda: _all_synced_after(server, 20), timeout=20, what="all 20 SYNCED")
            code, table = await proxy_status(server)
            rows = table.splitlines()[1:]
            assert code == 0 and len(rows) == 20
            assert rows[0].split()[:5] == ["pod-00.default", "SYNCED", "SYNCED", "SYNCED", "SYNCED"]
            # sidecars get no listeners or routes in the fake pipeline
            assert all(r.split()[1] == "SYNCED" and r.split()[3] == "SYNCED" for r in rows[1:])


# --- small checks -----------------------------------------------------------------------------------------


async def _answers(url: str, body: str, headers: dict[str, str] | None = None) -> bool:
    try:
        return await get_once(url, headers) == (200, body)
    except OSError:
        return False


async def _both_seen(traffic: Traffic) -> bool:
    recent = traffic.recent[-40:]
    return "A" in recent and "B" in recent


async def _errors(server: DiscoveryServer, text: str) -> bool:
    errors = (await http_json(server.http_port, "/debug/config_errors"))["errors"]
    return any(text in e for e in errors)


async def _loaded_more_than(server: DiscoveryServer, count: int) -> bool:
    return server.loads > count


async def _connect_timeout_is(envoy: Envoy, value: str) -> bool:
    dump = await envoy.json("/config_dump?resource=dynamic_active_clusters")
    timeouts = {c["cluster"]["name"]: c["cluster"].get("connect_timeout") for c in dump["configs"]}
    return timeouts.get(cluster_name("a")) == value


async def _all_sent(server: DiscoveryServer, count: int) -> bool:
    entries = await http_json(server.http_port, "/debug/syncz")
    return len(entries) == count and all(e["types"].get("CDS", {}).get("status") == "SYNCED" for e in entries)


async def _all_synced_after(server: DiscoveryServer, count: int) -> bool:
    entries = await http_json(server.http_port, "/debug/syncz")
    mesh = server.cache.mesh.version if server.cache.mesh else ""
    return len(entries) == count and all(
        e["mesh_version"] == mesh and all(d["status"] == "SYNCED" for d in e["types"].values())
        for e in entries
    )
