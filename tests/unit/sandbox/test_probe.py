"""The IO helpers of `trace --verify` that need no namespace: reading the proxies' logs from a mark,
the client's request, and the live-trace lookups of the state file (`--admin`, hosts files, relay)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pilotfish.cli import trace_live
from pilotfish.sandbox.probe import CLIENT, ClientSpec, LogCursor
from pilotfish.sandbox.state import MeshState, PodState
from tests.unit.simulate.conftest import scenario_mesh


def _state(tmp_path: Path) -> MeshState:
    pods = [PodState("pp", "default", "pf-pp.default", "10.44.0.5", "sidecar", "/x/admin.sock",
                     {"proxy": str(tmp_path / "pp.log")}),
            PodState("external", "", "pf-external", "10.44.0.200", None, "", {})]
    return MeshState("pf-", "r", 1, [], str(tmp_path), "http://127.0.0.1:18080", "", "", "pf-node", pods)


def test_the_cursor_reads_complete_lines_written_after_the_mark(tmp_path: Path) -> None:
    log = tmp_path / "pp.log"
    log.write_text("old line\n")
    cursor = LogCursor(_state(tmp_path))
    cursor.mark()
    with log.open("a") as out:
        out.write("new line\nhalf a li")
    assert cursor.read() == {"pp.default": ["new line"]}
    with log.open("a") as out:
        out.write("ne\n")
    assert cursor.settle(lambda lines: len(lines["pp.default"]) == 2, timeout=2, quiet=0.1) == {
        "pp.default": ["new line", "half a line"]}


def test_the_client_reports_a_refused_connection_with_its_address() -> None:
    with socket.socket() as bound:  # bound, not listening: a connection to it is refused
        bound.bind(("127.0.0.1", 0))
        spec = ClientSpec("http", "localhost", bound.getsockname()[1], connect="127.0.0.1")
        done = subprocess.run([sys.executable, "-I", "-S", "-c", CLIENT, spec.to_json()],
                              capture_output=True, text=True, timeout=30, check=True)
    answer = json.loads(done.stdout)
    assert answer["status"] is None and answer["error"].startswith("ConnectionRefusedError")


def test_admin_flags_and_lookups(tmp_path: Path) -> None:
    assert trace_live.parse_admins(["pp=unix:/a.sock", "gw.istio-system=127.0.0.1:15000"]) == {
        "pp": "unix:/a.sock", "gw.istio-system": "127.0.0.1:15000"}
    with pytest.raises(trace_live.LiveError, match="expected POD=ADDRESS"):
        trace_live.parse_admins(["pp"])
    mesh = scenario_mesh("bookinfo")
    assert trace_live.relay(_state(tmp_path), mesh) == (18080, 80)
    page = next(w for w in mesh.workloads if w.deployment == "productpage-v1")
    with pytest.raises(trace_live.LiveError, match="not \\(yet\\) in the running mesh"):
        trace_live.state_pod(_state(tmp_path), page)
