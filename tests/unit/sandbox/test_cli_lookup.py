"""`pilotfish proxy-config <pod>` with no source flag reads the pod's admin socket from the running local
mesh's state file; `pilotfish logs` reads its log files the same way."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pilotfish.cli.main import cli
from pilotfish.sandbox.state import MeshState, PodState, run_dir, write_state
from tests.unit.proxyconfig.test_cli import GOOD_ADMIN, serve_admin

POD = "productpage-v1-8554d58bff-d7j8d"


@pytest.fixture
def mesh_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MeshState]:
    monkeypatch.setenv("PILOTFISH_RUN_ROOT", str(tmp_path))
    monkeypatch.setenv("PILOTFISH_PREFIX", "pfu-")
    directory = run_dir("pfu-")
    directory.mkdir(parents=True)
    log = directory / "productpage.log"
    log.write_text("productpage v1 listening on 0.0.0.0:9080\nGET /productpage 200\n")
    pod = PodState(POD, "default", f"pfu-{POD}.default", "10.44.1.1", "sidecar",
                   str(directory / f"admin-{os.getpid()}.sock"), {"productpage": str(log)}, "2/2")
    state = MeshState(prefix="pfu-", run_id="r", pid=1, dirs=[], run_dir=str(directory), ingress_url="",
                      discovery_grpc="", discovery_http="", node="pfu-node", pods=[pod])
    write_state(state)
    yield state


def test_proxy_config_finds_the_pod_of_the_running_mesh(mesh_state: MeshState) -> None:
    admin = Path(mesh_state.pods[0].admin)
    with serve_admin(GOOD_ADMIN, admin):
        result = CliRunner().invoke(cli, ["proxy-config", "listener", "productpage", "--port", "9080"])
    assert result.exit_code == 0, result.output
    assert result.output == "ADDRESS        PORT     TYPE\n10.0.15.34     9080     HTTP\n0.0.0.0        9080     TCP\n"


def test_proxy_config_says_when_nothing_runs(mesh_state: MeshState, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli, ["proxy-config", "listener", "ratings"])
    assert result.exit_code == 1 and "not in the running mesh" in result.output
    assert f"{POD}.default" in result.output
    monkeypatch.setenv("PILOTFISH_PREFIX", "pfnone-")
    result = CliRunner().invoke(cli, ["proxy-config", "listener", "productpage"])
    assert result.exit_code == 1 and "no local mesh is running" in result.output and "-f/--file" in result.output


def test_logs_print_a_containers_log(mesh_state: MeshState) -> None:
    result = CliRunner().invoke(cli, ["logs", "productpage"])
    assert result.exit_code == 0 and result.output.startswith("productpage v1 listening on")
    tail = CliRunner().invoke(cli, ["logs", POD, "-c", "productpage", "--tail", "1"])
    assert tail.output == "GET /productpage 200\n"
    missing = CliRunner().invoke(cli, ["logs", POD, "-c", "proxy"])
    assert missing.exit_code == 1 and "no container 'proxy'" in missing.output


def test_proxy_status_reads_the_running_meshs_discovery_server(mesh_state: MeshState) -> None:
    syncz = [{"proxy": f"{POD}.default", "cluster_sent": "1", "cluster_acked": "1", "listener_sent": "2",
              "listener_acked": "2", "route_sent": "3", "route_acked": "3", "endpoint_sent": "4",
              "endpoint_acked": "4", "istiod": "pilotfish", "istio_version": "0.1.0"}]
    with serve_admin({"/debug/syncz": json.dumps(syncz).encode()}) as address:
        mesh_state.discovery_http = address.removeprefix("http://")
        write_state(mesh_state)
        result = CliRunner().invoke(cli, ["proxy-status"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[:2] == [f"{POD}.default", "SYNCED"]
