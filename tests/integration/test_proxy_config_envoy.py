"""`pilotfish proxy-config` against a real Envoy 1.40: live admin over a unix socket, then the saved dump.

Envoy runs a small static bootstrap (admin on a unix socket in a temp dir, listeners with
`bind_to_port: false` so no port is taken, static clusters whose hosts are never dialled) and the tables
printed from `--admin unix:...` must hold the expected rows and equal those printed from `-f` files
saved from the same admin API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import envoy
import pytest
from click.testing import CliRunner

from pilotfish.cli.dump_sources import CLUSTERS_PATH, CONFIG_DUMP_PATH, SourceError, admin_get
from pilotfish.cli.main import cli

pytestmark = pytest.mark.envoy

ENVOY = Path(envoy.__file__).parent / "_bin" / "envoy"
REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
TYPE = "type.googleapis.com/"


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _static_cluster(name: str, hosts: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket(ip, port)}} for ip, port in hosts]}
            ],
        },
    }


def bootstrap(admin_socket: Path) -> dict[str, Any]:
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": TYPE
            + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "outbound_0.0.0.0_9080",
            "route_config": {
                "name": "9080",
                "virtual_hosts": [
                    {
                        "name": "reviews.default.svc.cluster.local:9080",
                        "domains": ["reviews", "reviews:9080"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": REVIEWS}}],
                    }
                ],
            },
            "http_filters": [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"},
                }
            ],
        },
    }
    tcp = {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": TYPE + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "PassthroughCluster",
            "cluster": "PassthroughCluster",
        },
    }
    return {
        "node": {
            "id": f"sidecar~10.0.15.34~productpage-v1.default~default.svc.cluster.local-{os.getpid()}",
            "cluster": "productpage.default",
        },
        "admin": {"address": {"pipe": {"path": str(admin_socket), "mode": 0o600}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "0.0.0.0_9080",
                    "address": _socket("0.0.0.0", 9080),
                    "bind_to_port": False,
                    "filter_chains": [{"filters": [hcm]}],
                },
                {
                    "name": "virtualOutbound",
                    "address": _socket("0.0.0.0", 15001),
                    "bind_to_port": False,
                    "filter_chains": [{"filters": [tcp]}],
                },
            ],
            "clusters": [
                _static_cluster(REVIEWS, [("10.0.15.30", 9080), ("10.0.15.31", 9080), ("10.0.15.32", 9080)]),
                _static_cluster(
                    "inbound|9080|http|productpage.default.svc.cluster.local", [("127.0.0.1", 9080)]
                ),
                {
                    "name": "PassthroughCluster",
                    "type": "ORIGINAL_DST",
                    "connect_timeout": "1s",
                    "lb_policy": "CLUSTER_PROVIDED",
                },
            ],
        },
    }


def _wait_ready(admin: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"envoy exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if admin_get(admin, "/ready").strip() == b"LIVE":
                return
        except SourceError:
            pass
        time.sleep(0.02)
    pytest.fail(f"envoy admin {admin} not ready within 20s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def envoy_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Envoy; yields its `--admin unix:...` address, and always stops it."""
    workdir = tmp_path_factory.mktemp(f"pc-envoy-{os.getpid()}")
    admin_socket = workdir / "admin.sock"
    config = workdir / "bootstrap.json"
    config.write_text(json.dumps(bootstrap(admin_socket)))
    log = workdir / "envoy.log"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [str(ENVOY), "-c", str(config), "--disable-hot-restart", "--concurrency", "1", "-l", "warning"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    admin = f"unix:{admin_socket}"
    try:
        _wait_ready(admin, process, log)
        yield admin
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        admin_socket.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def saved(envoy_admin: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The live admin's /config_dump?include_eds and /clusters?format=json, saved to files."""
    directory = tmp_path_factory.mktemp("pc-saved")
    dump, clusters = directory / "config_dump.json", directory / "clusters.json"
    dump.write_bytes(admin_get(envoy_admin, CONFIG_DUMP_PATH))
    clusters.write_bytes(admin_get(envoy_admin, CLUSTERS_PATH))
    return dump, clusters


def pc(*args: str) -> str:
    result = CliRunner().invoke(cli, ["proxy-config", *args])
    assert result.exit_code == 0, result.output
    return result.output


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()[1:]]


def test_listener_rows(envoy_admin: str) -> None:
    assert rows(pc("listener", "--admin", envoy_admin)) == [
        ["0.0.0.0", "9080", "HTTP"],
        ["0.0.0.0", "15001", "TCP"],
    ]
    modern = rows(pc("listener", "--admin", envoy_admin, "--profile", "modern"))
    assert modern == [
        ["0.0.0.0", "9080", "ALL", "Inline", "Route:", "reviews/reviews:9080", "/*"],
        ["0.0.0.0", "15001", "ALL", "PassthroughCluster"],
    ]


def test_cluster_rows(envoy_admin: str) -> None:
    assert rows(pc("cluster", "--admin", envoy_admin)) == [
        ["PassthroughCluster", "-", "-", "-", "ORIGINAL_DST"],
        ["productpage.default.svc.cluster.local", "9080", "http", "inbound", "STATIC"],
        ["reviews.default.svc.cluster.local", "9080", "-", "outbound", "STATIC"],
    ]


def test_endpoint_rows(envoy_admin: str) -> None:
    assert rows(pc("endpoint", "--admin", envoy_admin)) == [
        ["10.0.15.30:9080", "HEALTHY", "OK", REVIEWS],
        ["10.0.15.31:9080", "HEALTHY", "OK", REVIEWS],
        ["10.0.15.32:9080", "HEALTHY", "OK", REVIEWS],
        ["127.0.0.1:9080", "HEALTHY", "OK", "inbound|9080|http|productpage.default.svc.cluster.local"],
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["listener"],
        ["listener", "--profile", "modern"],
        ["cluster"],
        ["cluster", "--profile", "modern", "-o", "json"],
        ["endpoint"],
        ["route"],
        ["bootstrap", "-o", "short"],
    ],
    ids=" ".join,
)
def test_saved_dump_prints_the_same(envoy_admin: str, saved: tuple[Path, Path], args: list[str]) -> None:
    dump, clusters = saved
    assert pc(*args, "-f", str(dump), "-f", str(clusters)) == pc(*args, "--admin", envoy_admin)


def test_saved_clusters_json(envoy_admin: str, saved: tuple[Path, Path]) -> None:
    """`endpoint -o json` keeps Envoy's /clusters order, which Envoy does not keep stable between calls."""
    dump, clusters = saved

    def by_name(text: str) -> list[Any]:
        return sorted(json.loads(text), key=lambda status: status["name"])

    live = by_name(pc("endpoint", "-o", "json", "--admin", envoy_admin))
    assert [status["name"] for status in live] == [
        "inbound|9080|http|productpage.default.svc.cluster.local",
        REVIEWS,
    ]
    assert by_name(pc("endpoint", "-o", "json", "-f", str(dump), "-f", str(clusters))) == live


def test_endpoint_from_the_dump_eds_alone(envoy_admin: str, saved: tuple[Path, Path]) -> None:
    dump, _ = saved
    assert pc("endpoint", "-f", str(dump)) == pc("endpoint", "--admin", envoy_admin)


def test_real_command_line(envoy_admin: str) -> None:
    """The installed entry point, as a user runs it."""
    src = Path(__file__).resolve().parents[2] / "src"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pilotfish",
            "proxy-config",
            "cluster",
            "--admin",
            envoy_admin,
            "--fqdn",
            "reviews",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == [["reviews.default.svc.cluster.local", "9080", "-", "outbound", "STATIC"]]
