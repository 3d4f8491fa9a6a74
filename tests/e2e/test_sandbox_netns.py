"""The sandbox runtime in real network namespaces, without proxies: Bookinfo's pods as namespaces on a
bridge, per-pod hosts files, apps as an ordinary uid, the ingress relay, isolation, live pod changes,
restarts, the run lock, and teardown / crash leftovers leaving nothing behind.

(The full mesh with sidecars and the gateway is `test_local_mesh.py`.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotfish.config.parse import parse_manifests
from pilotfish.sandbox import netns
from pilotfish.sandbox.plan import EXTERNAL_HOST, EXTERNAL_IP, MARKER_ENV
from pilotfish.sandbox.runtime import Sandbox, SandboxError, default_settings
from pilotfish.sandbox.state import read_state
from tests.e2e.sandbox_helpers import (
    SRC,
    assert_isolated,
    assert_nothing_left,
    connect_from,
    free_port,
    in_pod,
    leftovers_of,
    mesh_copy,
    pilotfish,
    root_snapshot,
    routes,
    run,
    unique_prefix,
    wait_for,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]


class Mesh:
    """A running apps-only sandbox and the directory of its manifests."""

    def __init__(self, sandbox: Sandbox, directory: Path) -> None:
        self.sandbox, self.dir = sandbox, directory

    def pod(self, start: str):  # type: ignore[no-untyped-def]
        assert self.sandbox.plan is not None
        return next(p for p in self.sandbox.plan.all_pods if p.name.startswith(start))


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    prefix = unique_prefix("s")
    with mesh_copy() as directory:
        sandbox = Sandbox([directory], default_settings(prefix, free_port(), with_proxies=False))
        try:
            sandbox.up(timeout=30)
            yield Mesh(sandbox, directory)
        finally:
            sandbox.down()
            assert_nothing_left(prefix)


def test_each_pod_is_a_namespace_with_its_address_and_two_routes(mesh: Mesh) -> None:
    assert mesh.sandbox.plan is not None
    for pod in mesh.sandbox.plan.all_pods:
        addresses = run(["ip", "-n", pod.netns, "-br", "-4", "addr", "show", "eth0"]).stdout.split()
        assert addresses[2] == f"{pod.ip}/16"
        table = sorted((r["dst"], r.get("gateway", "")) for r in routes(pod.netns) if r.get("table") != "local")
        assert table == [("10.44.0.0/16", ""), ("10.96.0.0/16", "10.44.0.1")], pod.netns
        assert not [r for r in routes(pod.netns, 6) if r.get("table") != "local"], "eth0 has no IPv6"
        assert "::1/128" in run(["ip", "-n", pod.netns, "-br", "addr", "show", "lo"]).stdout


def test_apps_run_as_an_ordinary_uid_inside_their_pod_with_the_run_marker(mesh: Mesh) -> None:
    page = mesh.pod("productpage-")
    runtime = mesh.sandbox.pods[page.key]
    (app,) = runtime.running.values()
    pid = app.pid
    assert run(["ip", "netns", "identify", str(pid)]).stdout.strip() == page.netns
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(r"^Uid:\s+1000\s+1000\s+1000\s+1000$", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"{MARKER_ENV}={mesh.sandbox.settings.prefix}/{mesh.sandbox.run_id}".encode() in environ
    assert f"POD_NAME={page.name}".encode() in environ


def test_no_route_leads_out_of_the_sandbox(mesh: Mesh) -> None:
    checked = assert_isolated(mesh.sandbox.settings.prefix)
    assert len(checked) == len(mesh.sandbox.pods) + 1  # pods, external host, node
    assert mesh.sandbox.plan is not None
    # A connect to a non-mesh address fails at the route lookup: nothing is sent.
    page = mesh.pod("productpage-")
    for address in ("192.0.2.1", "8.8.8.8"):
        result = connect_from(page.netns, address, 80)
        assert result[:2] == ["OSError", "101"], result  # ENETUNREACH


def test_an_uncaptured_service_address_is_refused_by_the_node(mesh: Mesh) -> None:
    page = mesh.pod("productpage-")
    result = connect_from(page.netns, "details", 9080)
    assert result[:2] == ["ConnectionRefusedError", "111"], result


def test_names_resolve_through_the_pods_hosts_file(mesh: Mesh) -> None:
    page = mesh.pod("productpage-")
    script = ("import socket, sys\nfor n in sys.argv[1:]:\n"
              "    try: print(n, socket.gethostbyname(n))\n    except OSError: print(n, 'unknown')")
    names = ["details", "details.default", "details.default.svc.cluster.local", EXTERNAL_HOST,
             "istio-ingressgateway.istio-system", "nowhere.example.com"]
    out = dict(line.split() for line in in_pod(page.netns, [sys.executable, "-I", "-c", script, *names])
               .stdout.splitlines())
    details = next(line for line in page.hosts.splitlines() if line.endswith(" details")).split()[0]
    assert out["details"] == out["details.default"] == out["details.default.svc.cluster.local"] == details
    assert out[EXTERNAL_HOST] == EXTERNAL_IP
    assert out["istio-ingressgateway.istio-system"].startswith("10.96.")
    assert out["nowhere.example.com"] == "unknown"


def test_pods_reach_each_other_and_the_external_host(mesh: Mesh) -> None:
    page, details = mesh.pod("productpage-"), mesh.pod("details-")
    body = in_pod(page.netns, ["curl", "-sS", "-m", "5", f"http://{details.ip}:9080/details/0"]).stdout
    assert f'"podname": "{details.name}"' in body
    echo = in_pod(page.netns, ["curl", "-sS", "-m", "5", f"http://{EXTERNAL_HOST}/hello"]).stdout
    assert '"server": "external"' in echo and '"path": "/hello"' in echo


def test_the_ingress_relay_reaches_the_gateway_pod_from_127_0_0_1(mesh: Mesh) -> None:
    plan = mesh.sandbox.plan
    assert plan is not None and plan.ingress is not None
    server = subprocess.Popen(
        ["ip", "netns", "exec", plan.ingress.netns, sys.executable, "-m", "http.server", "--bind",
         plan.ingress.ip, str(plan.ingress.pod_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(mesh.dir))
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "Serving HTTP on ..."
        with urllib.request.urlopen(f"{plan.ingress.url}/bookinfo.yaml", timeout=10) as response:
            assert response.status == 200 and b"kind: Deployment" in response.read()
    finally:
        server.terminate()
        server.wait(10)
        assert server.stdout is not None
        server.stdout.close()
    listener = run(["ss", "-Hltnp", f"sport = :{plan.ingress.host_port}"]).stdout
    assert "127.0.0.1" in listener and f"pid={mesh.sandbox.relay.pid if mesh.sandbox.relay else 0}," in listener


def _reported_ready(mesh: Mesh, pod: str) -> bool | None:
    """The pod's readiness as the sandbox reports it to the discovery server (None: not reported)."""
    status = mesh.sandbox.status.path
    objects, problems = parse_manifests([(str(status), status.read_text())])
    assert not problems, problems
    return next((o.spec.status.ready for o in objects if o.name == pod), None)


def test_a_dead_app_is_reported_not_ready_restarted_and_ready_again(mesh: Mesh) -> None:
    ratings = mesh.pod("ratings-")
    runtime = mesh.sandbox.pods[ratings.key]
    before = runtime.running["ratings"].pid
    assert mesh.sandbox.status.path.parent == Path(mesh.sandbox.settings.run_dir) / "status"
    assert all(_reported_ready(mesh, p.name) for p in mesh.sandbox.plan.pods) if mesh.sandbox.plan else False
    os.kill(before, signal.SIGKILL)

    def reported_dead() -> bool:
        mesh.sandbox.poll()
        return _reported_ready(mesh, ratings.name) is False and runtime.running["ratings"].pid == before

    wait_for("ratings to be reported not ready before its restart", reported_dead)
    assert "containers with unready status: [ratings]" in mesh.sandbox.status.path.read_text()

    def restarted() -> bool:
        mesh.sandbox.poll()
        current = runtime.running["ratings"]
        return current.pid != before and bool(_reported_ready(mesh, ratings.name))

    wait_for("ratings to be restarted and reported ready again", restarted)
    assert runtime.restarts >= 1 and runtime.ready


def test_workload_edits_add_and_remove_pods_live(mesh: Mesh) -> None:
    manifest = mesh.dir / "bookinfo.yaml"
    original = manifest.read_text()
    page = mesh.pod("productpage-")
    hosts = netns.ETC_NETNS / page.netns / "hosts"
    inode = hosts.stat().st_ino
    extra = mesh.dir / "extra-service.yaml"
    grown = original.replace("name: reviews-v1\n  namespace: default\n  labels:\n    app: reviews\n"
                             "    version: v1\nspec:\n  replicas: 1", "name: reviews-v1\n  namespace: default\n"
                             "  labels:\n    app: reviews\n    version: v1\nspec:\n  replicas: 2")
    assert grown != original
    try:
        manifest.write_text(grown)
        extra.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: default}\n"
                         "spec:\n  selector: {app: extra}\n  ports: [{port: 80, name: http}]\n")

        def two_reviews_v1() -> list[str]:
            mesh.sandbox.poll()
            names = [k[0] for k, p in mesh.sandbox.pods.items() if k[0].startswith("reviews-v1-") and p.ready]
            return names if len(names) == 2 else []

        added = wait_for("a second reviews-v1 pod", two_reviews_v1)
        new = next(p.plan for k, p in mesh.sandbox.pods.items() if k[0] in added and p.plan.key != page.key
                   and p.plan.name != mesh.pod("reviews-v1-").name)
        assert new.netns in netns.list_netns()
        assert "extra.default.svc.cluster.local" in hosts.read_text()
        assert hosts.stat().st_ino == inode, "hosts files are rewritten in place"
        state = read_state(mesh.sandbox.settings.prefix)
        assert state is not None and any(p.name == new.name for p in state.pods)
    finally:
        manifest.write_text(original)
        extra.unlink(missing_ok=True)

    def one_reviews_v1() -> bool:
        mesh.sandbox.poll()
        return len([k for k in mesh.sandbox.pods if k[0].startswith("reviews-v1-")]) == 1

    wait_for("the extra reviews-v1 pod to go", one_reviews_v1)
    assert new.netns not in netns.list_netns()
    node_links = run(["ip", "-n", mesh.sandbox.plan.node if mesh.sandbox.plan else "", "-o", "link"]).stdout
    assert f"{new.veth}@" not in node_links
    assert "extra.default" not in hosts.read_text()


def test_a_second_run_with_the_same_prefix_is_refused(mesh: Mesh) -> None:
    other = Sandbox([mesh.dir], default_settings(mesh.sandbox.settings.prefix, free_port(), with_proxies=False))
    with pytest.raises(SandboxError, match="already running"):
        other.up()
    assert mesh.sandbox.pods and all(p.ready for p in mesh.sandbox.pods.values())


def test_down_leaves_nothing_and_the_root_namespace_unchanged() -> None:
    prefix = unique_prefix("d")
    before = root_snapshot()
    with mesh_copy() as directory:
        sandbox = Sandbox([directory], default_settings(prefix, free_port(), with_proxies=False))
        try:
            sandbox.up(timeout=30)
            assert leftovers_of(prefix)["namespaces"]
            assert root_snapshot() == before, "a running sandbox does not change the root namespace"
        finally:
            sandbox.down()
    assert_nothing_left(prefix)
    assert root_snapshot() == before


def test_a_crashed_run_is_cleaned_by_the_next_up_and_by_down() -> None:
    prefix = unique_prefix("c")
    env = {**os.environ, "PYTHONPATH": SRC}
    with mesh_copy() as directory:
        for cleaner in ("up", "down"):
            up = subprocess.Popen([sys.executable, "-m", "pilotfish", "up", str(directory), "--apps-only",
                                   "--prefix", prefix, "--ingress-port", str(free_port())],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
            try:
                assert up.stdout is not None
                for line in up.stdout:
                    if "pods ready" in line or line.startswith("Error"):
                        break
                assert "pods ready" in line, line
                up.send_signal(signal.SIGKILL)  # a crash: no teardown at all
                up.wait(10)
            finally:
                if up.poll() is None:
                    up.kill()
                    up.wait(10)
                assert up.stdout is not None
                up.stdout.close()
            left = leftovers_of(prefix)
            assert left["namespaces"] and left["processes"] and left["etc_netns"] and left["run_dir"], left
            if cleaner == "up":
                messages: list[str] = []
                sandbox = Sandbox([directory], default_settings(prefix, free_port(), with_proxies=False),
                                  progress=messages.append)
                try:
                    sandbox.up(timeout=30)
                    assert any(m.startswith("removing leftovers of an earlier run") for m in messages)
                    assert set(leftovers_of(prefix)["processes"]) == {  # type: ignore[arg-type]
                        r.pid for p in sandbox.pods.values() for r in p.all_running()} | (
                        {sandbox.relay.pid} if sandbox.relay else set())
                finally:
                    sandbox.down()
            else:
                done = pilotfish("down", "--prefix", prefix)
                assert "removed leftovers" in done.stdout
            assert_nothing_left(prefix)
