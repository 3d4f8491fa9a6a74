"""`pilotfish proxy-config` as a command: sources (-f, --admin over TCP and unix socket, --manifests),
aliases, output formats, and one clear error line (exit code 1, no traceback) for every user mistake."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pilotfish.cli.main import cli
from tests.paths import SAMPLES
from tests.unit.proxyconfig import seed_dumps

REVIEWS = seed_dumps.fqdn("reviews")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["proxy-config", *args])


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str, message: str) -> None:
    result = run(*args)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert message in result.output, result.output


@pytest.fixture
def dump_file(tmp_path: Path) -> Path:
    path = tmp_path / "config_dump.json"
    path.write_text(json.dumps(seed_dumps.productpage_config_dump()))
    return path


@pytest.fixture
def clusters_file(tmp_path: Path) -> Path:
    path = tmp_path / "clusters.json"
    path.write_text(json.dumps(seed_dumps.productpage_clusters()))
    return path


# ---------------------------------------------------------------- files


def test_listener_from_file_matches_the_seed(dump_file: Path) -> None:
    out = ok("listener", "productpage-v1-8554d58bff-d7j8d", "-f", str(dump_file), "--port", "9080")
    assert out == "ADDRESS        PORT     TYPE\n10.0.15.34     9080     HTTP\n0.0.0.0        9080     TCP\n"


@pytest.mark.parametrize("alias", ["listener", "listeners", "l"])
def test_listener_aliases(alias: str, dump_file: Path) -> None:
    assert ok(alias, "-f", str(dump_file)).startswith("ADDRESS ")


@pytest.mark.parametrize(
    ("alias", "first_line"), [("r", "NOTE:"), ("routes", "NOTE:"), ("c", "SERVICE FQDN")]
)
def test_other_aliases(alias: str, first_line: str, dump_file: Path) -> None:
    assert ok(alias, "-f", str(dump_file)).startswith(first_line)


def test_endpoint_from_clusters_file(dump_file: Path, clusters_file: Path) -> None:
    out = ok("ep", "-f", str(clusters_file), "-f", str(dump_file), "--cluster", f"outbound|9080||{REVIEWS}")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [f"10.0.15.{n}:9080" for n in (30, 31, 32)]


def test_endpoint_from_dump_alone_uses_its_eds(dump_file: Path) -> None:
    out = ok("endpoints", "-f", str(dump_file), "--cluster", f"outbound|9080||{REVIEWS}")
    assert out.splitlines()[1].split() == ["10.0.15.30:9080", "HEALTHY", "OK", f"outbound|9080||{REVIEWS}"]


def test_profiles_and_formats(dump_file: Path) -> None:
    modern = ok("route", "-f", str(dump_file), "--profile", "modern", "--name", "9080")
    assert modern.splitlines()[0].split() == [
        "NAME",
        "VHOST",
        "NAME",
        "DOMAINS",
        "MATCH",
        "VIRTUAL",
        "SERVICE",
    ]
    not_verbose = ok("route", "-f", str(dump_file), "--profile", "modern", "--no-verbose")
    assert not_verbose.splitlines()[0].split() == ["NAME", "VIRTUAL", "HOSTS"]
    clusters = json.loads(ok("cluster", "-f", str(dump_file), "--fqdn", REVIEWS, "-o", "json"))
    assert [c["name"] for c in clusters] == [f"outbound|9080||{REVIEWS}"]
    yaml_text = ok("cluster", "-f", str(dump_file), "--fqdn", REVIEWS, "-o", "yaml")
    assert yaml_text.startswith("- circuitBreakers:\n") and yaml_text.endswith("\n\n")


def test_bootstrap_defaults_to_json(dump_file: Path) -> None:
    assert (
        json.loads(ok("b", "-f", str(dump_file)))["bootstrap"]["node"]["metadata"]["ISTIO_VERSION"] == "1.3.6"
    )
    assert ok("bootstrap", "-f", str(dump_file), "-o", "short").startswith("Istio Version:       1.3.6\n")


def test_all_and_eds(dump_file: Path) -> None:
    everything = ok("all", "-f", str(dump_file), "--with-headers")
    assert everything.startswith("------ BOOTSTRAP INFO ------\n")
    assert "listener/virtualOutbound" in everything and "endpoint/10.0.15.30:9080" in everything
    assert "No active or warming secrets found." in everything
    assert ok("eds", "-f", str(dump_file), "--port", "9080").startswith("NAME ")


def test_file_errors(tmp_path: Path, dump_file: Path) -> None:
    fails("listener", "-f", str(tmp_path / "missing.json"), message="cannot read")
    empty = tmp_path / "empty.json"
    empty.write_text("")
    fails("listener", "-f", str(empty), message="is empty")
    broken = tmp_path / "broken.json"
    broken.write_text('{"configs": [')
    fails("listener", "-f", str(broken), message="is not valid JSON")
    other = tmp_path / "other.json"
    other.write_text('{"kind": "Pod"}')
    fails("listener", "-f", str(other), message="neither an Envoy config dump")
    no_listeners = tmp_path / "no_listeners.json"
    no_listeners.write_text('{"configs": []}')
    fails("listener", "-f", str(no_listeners), message="no listeners found")
    clusters_only = tmp_path / "clusters_only.json"
    clusters_only.write_text(json.dumps(seed_dumps.productpage_clusters()))
    fails("listener", "-f", str(clusters_only), message="no config dump among")


def test_usage_errors(dump_file: Path) -> None:
    fails("bogus", "-f", str(dump_file), message="No such command 'bogus'")
    fails("listener", message="say where the proxy's config comes from")
    fails("listener", "-f", str(dump_file), "--admin", "127.0.0.1:1", message="use only one of")
    fails("listener", "-f", str(dump_file), "--profile", "1.9", message="Invalid value for '--profile'")
    fails("listener", "--admin", "ftp://x", message="expected http://host:port")
    fails("listener", "--manifests", "samples", message="--manifests needs the pod")


# ---------------------------------------------------------------- --manifests


def test_manifests_through_the_pipeline(tmp_path: Path) -> None:
    bookinfo = str(SAMPLES / "bookinfo")
    assert ok("l", "deploy/productpage-v1", "--manifests", bookinfo, "--port", "9080").startswith("ADDRESS ")
    out = ok("cluster", "deploy/productpage-v1", "--manifests", bookinfo, "--fqdn", REVIEWS)
    assert out.splitlines()[1].split()[0] == REVIEWS
    fails("l", "nope", "--manifests", bookinfo, message="pod nope.default not found in the manifests")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 0}]}\n")
    fails("l", "deploy/productpage-v1", "--manifests", str(bad), message="bad.yaml:4: error: Service default/x")


# ---------------------------------------------------------------- --admin (a stand-in admin API)

GOOD_ADMIN = {
    "/config_dump?include_eds": json.dumps(seed_dumps.productpage_config_dump()).encode(),
    "/clusters?format=json": json.dumps(seed_dumps.productpage_clusters()).encode(),
}


def _handler(documents: dict[str, bytes]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if body is not None else b"not found")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TCPHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@contextlib.contextmanager
def serve_admin(documents: dict[str, bytes], unix_path: Path | None = None) -> Iterator[str]:
    """A fake Envoy admin API on a unix socket or on 127.0.0.1 (port 0); yields its --admin address."""
    server: socketserver.BaseServer
    if unix_path is not None:
        server = _UnixHTTPServer(str(unix_path), _handler(documents))
        address = f"unix:{unix_path}"
    else:
        tcp = _TCPHTTPServer(("127.0.0.1", 0), _handler(documents))
        server, address = tcp, f"http://127.0.0.1:{tcp.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield address
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        if unix_path is not None:
            unix_path.unlink(missing_ok=True)


def test_admin_over_unix_socket(tmp_path: Path, dump_file: Path, clusters_file: Path) -> None:
    with serve_admin(GOOD_ADMIN, tmp_path / f"admin-{os.getpid()}.sock") as admin:
        for args in (["listener"], ["route", "--profile", "modern"], ["cluster", "-o", "json"], ["endpoint"]):
            assert ok(*args, "--admin", admin) == ok(*args, "-f", str(dump_file), "-f", str(clusters_file))


def test_admin_over_tcp() -> None:
    with serve_admin(GOOD_ADMIN) as admin:
        assert ok("listener", "--admin", admin.removeprefix("http://")) == ok("listener", "--admin", admin)
        assert "10.0.15.30:9080" in ok("ep", "--admin", admin)


def test_admin_errors(tmp_path: Path) -> None:
    fails(
        "listener", "--admin", f"unix:{tmp_path / 'absent.sock'}", message="cannot reach Envoy admin at unix:"
    )
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    fails("listener", "--admin", f"127.0.0.1:{port}", message="Connection refused")
    with serve_admin({"/config_dump?include_eds": b"<html>"}) as admin:
        fails("listener", "--admin", admin, message="is not valid JSON")
        fails("endpoint", "--admin", admin, message="answered 404 for /clusters?format=json")
