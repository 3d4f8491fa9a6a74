from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pilotfish.cli.main import cli

BASE = ["agent", "sidecar", "--discovery", "127.0.0.1:15010", "--pod", "p1", "--namespace", "default", "--ip",
        "10.44.0.11"]  # fmt: skip


def test_agent_is_listed() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "agent" in result.output


def test_print_bootstrap() -> None:
    args = [*BASE, "--label", "app=reviews", "--xds", "sotw", "--meta", "HOOK=1", "--print-bootstrap"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    bootstrap = json.loads(result.output)
    assert bootstrap["node"]["id"] == "sidecar~10.44.0.11~p1.default~default.svc.cluster.local"
    assert bootstrap["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"
    assert bootstrap["admin"]["address"]["socket_address"]["port_value"] == 15000
    assert bootstrap["node"]["metadata"]["HOOK"] == "1"


def test_relative_unix_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [*BASE, "--admin", "unix:admin.sock", "--print-bootstrap"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["admin"]["address"]["pipe"]["path"] == f"{tmp_path}/admin.sock"


def test_bad_options_are_usage_errors_listing_every_problem() -> None:
    args = ["agent", "router", "--discovery", "nowhere", "--pod", "P", "--namespace", "default", "--ip", "x",
            "--label", "oops", "--meta", "LABELS=x", "--print-bootstrap"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    for problem in ("--discovery 'nowhere'", "--label 'oops'", "--meta 'LABELS=x'", "--pod 'P'", "--ip 'x'"):
        assert problem in result.output
    assert "Traceback" not in result.output


def test_unknown_proxy_type_is_rejected() -> None:
    result = CliRunner().invoke(cli, ["agent", "waypoint", "--discovery", "127.0.0.1:1"])
    assert result.exit_code == 2
