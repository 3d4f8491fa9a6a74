"""`pilotfish discovery` and `pilotfish proxy-status` as commands: start, serve, stop cleanly, fail clearly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pilotfish.cli.main import cli

SRC = Path(__file__).resolve().parents[2] / "src"
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "bookinfo"


def run_discovery(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.Popen(
        [sys.executable, "-m", "pilotfish", "discovery", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def stopper() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def wait_for_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 20.0) -> re.Match[str]:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def test_discovery_serves_and_stops_cleanly_on_sigterm(
    stopper: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    sock = tmp_path / "xds.sock"
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "svc.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: default}\n"
        "spec: {ports: [{name: http, port: 80}], selector: {app: extra}}\n"
    )
    proc = run_discovery(
        "--manifests", str(SAMPLES), "--manifests", str(extra), "--grpc", f"unix:{sock}", "--http", "127.0.0.1:0"
    )
    stopper.append(proc)
    wait_for_line(proc, r"ADS listening on unix:")
    port = int(wait_for_line(proc, r"debug HTTP on http://127\.0\.0\.1:(\d+)").group(1))
    assert sock.is_socket()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/debug/registryz", timeout=5) as r:
        registry = json.loads(r.read())
    hostnames = {s["hostname"] for s in registry["services"]}
    assert {"productpage.default.svc.cluster.local", "extra.default.svc.cluster.local"} <= hostnames
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/debug/configz", timeout=5) as r:
        assert json.loads(r.read())["gateways"]
    result = CliRunner().invoke(cli, ["proxy-status", "--discovery-http", f"127.0.0.1:{port}"])
    assert result.exit_code == 0 and result.output.split() == [
        "NAME",
        "CDS",
        "LDS",
        "EDS",
        "RDS",
        "PILOT",
        "VERSION",
    ]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert "discovery: shutting down" in (proc.stderr.read() if proc.stderr else "")
    assert not sock.exists()


def test_discovery_reports_a_taken_address(stopper: list[subprocess.Popen[str]], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_discovery("--manifests", str(tmp_path), "--grpc", f"127.0.0.1:{port}", "--http", "off")
        stopper.append(proc)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("Error: cannot start:")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--debounce", "soon"], "is not a duration"),
        (["--http", "nowhere"], "must be host:port"),
    ],
)
def test_discovery_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["discovery", "--manifests", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_proxy_status_without_a_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(cli, ["proxy-status", "--discovery-http", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot read sync status from the discovery server: cannot reach")
