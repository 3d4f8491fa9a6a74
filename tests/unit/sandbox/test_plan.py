"""The local mesh plan (pure): names, addresses, ip -batch lines, hosts files, processes, diffs."""

from __future__ import annotations

import dataclasses
import ipaddress
import textwrap
from pathlib import Path

import pytest

from pilotfish.iptables.options import INJECTOR_ARGS
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import ProxyType
from pilotfish.pipeline import load_mesh, mesh_from_texts
from pilotfish.sandbox.components import discovery_argv, missing_commands, proxy_process
from pilotfish.sandbox.plan import (
    EXTERNAL_HOST,
    EXTERNAL_IP,
    MARKER_ENV,
    MAX_IFNAME,
    PlanError,
    PodPlan,
    Settings,
    diff_pods,
    hosts_changes,
    hosts_file,
    node_setup_lines,
    node_veth_lines,
    plan_sandbox,
    pod_inside_lines,
    pod_netns,
    pod_sysctl_lines,
    run_dir_for,
    validate_prefix,
    veth_name,
)
from tests.paths import SAMPLES

BOOKINFO = SAMPLES / "bookinfo"
SETTINGS = Settings(prefix="pft-", run_dir="/run/pilotfish/pft-", python="/opt/py/bin/python3",
                    pythonpath="/src", ingress_port=18080, external_dir="/samples/external")


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    built, diagnostics = load_mesh([BOOKINFO.resolve()])
    assert built is not None, diagnostics
    return built


def test_every_pod_of_the_manifests_becomes_a_namespace_with_its_model_address(mesh: Mesh) -> None:
    plan = plan_sandbox(mesh, SETTINGS, "r1", proxy_process)
    assert {(p.name, p.namespace, p.ip) for p in plan.pods} == {
        (w.name, w.namespace, w.ip) for w in mesh.workloads
    }
    assert len(plan.pods) == 7
    for pod in plan.pods:
        assert pod.netns == f"pft-{pod.name}.{pod.namespace}"
        assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network("10.44.0.0/16")
    assert plan.node == "pft-node"
    assert plan.external is not None and plan.external.netns == "pft-external"
    assert plan.xds_socket == "/run/pilotfish/pft-/xds.sock"


def test_veth_names_fit_the_kernel_limit_and_are_unique(mesh: Mesh) -> None:
    plan = plan_sandbox(mesh, SETTINGS, "r1", proxy_process)
    names = [p.veth for p in plan.all_pods]
    assert len(set(names)) == len(names)
    assert all(len(n) <= MAX_IFNAME for n in names)
    assert veth_name("10.44.255.254") == "vp255-254"
    assert veth_name(EXTERNAL_IP) == "vp0-200"


def test_pod_networking_has_exactly_the_pod_and_service_routes_and_no_default() -> None:
    pod = dataclasses.replace(_any_pod(), ip="10.44.3.4")
    lines = pod_inside_lines(pod)
    assert lines == ["link set lo up", "addr add 10.44.3.4/16 dev eth0", "link set eth0 up",
                     "route add 10.96.0.0/16 via 10.44.0.1 dev eth0"]
    assert not any("default" in line for line in lines)
    assert node_setup_lines()[-1] == "route add local 10.96.0.0/16 dev lo"
    assert "addr add 10.44.0.1/16 dev br0" in node_setup_lines()


def test_veths_are_created_across_namespaces_never_in_the_root() -> None:
    pod = _any_pod()
    assert node_veth_lines([pod]) == [
        f"link add {pod.veth} type veth peer name eth0 netns {pod.netns}",
        f"link set {pod.veth} alias {pod.netns} master br0 up",
    ]


def test_pod_sysctls_disable_ipv6_by_default_only_and_open_low_ports() -> None:
    (line,) = pod_sysctl_lines(["pft-a.default"])
    assert line.startswith("netns exec pft-a.default sh -c '")
    assert "ipv6/conf/default/disable_ipv6" in line and "conf/all" not in line
    assert "ip_unprivileged_port_start" in line


def test_hosts_file_names_services_like_cluster_dns(mesh: Mesh) -> None:
    plan = plan_sandbox(mesh, SETTINGS, "r1", proxy_process)
    page = next(p for p in plan.pods if p.name.startswith("productpage-"))
    lines = page.hosts.splitlines()
    assert "127.0.0.1 localhost" in lines and any(line.startswith("::1 localhost") for line in lines)
    reviews = mesh.service("reviews.default.svc.cluster.local")
    assert reviews is not None
    assert (f"{reviews.address} reviews.default.svc.cluster.local reviews.default.svc reviews.default reviews"
            in lines)
    gateway = next(line for line in lines if "istio-ingressgateway" in line)
    assert not gateway.endswith(" istio-ingressgateway"), "short names only within the pod's namespace"
    assert f"{EXTERNAL_IP} {EXTERNAL_HOST}" in lines
    assert f"{page.ip} {page.name}" in lines


def test_hosts_file_skips_services_without_an_address() -> None:
    text = hosts_file([], "p", "default", "10.44.1.1")
    assert text.splitlines()[1:] == ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback",
                                     "10.44.1.1 p"]


def test_sidecar_pods_run_init_then_app_then_proxy(mesh: Mesh) -> None:
    plan = plan_sandbox(mesh, SETTINGS, "r1", proxy_process)
    pod = next(p for p in plan.pods if p.name.startswith("reviews-v2-"))
    assert [p.kind for p in pod.processes] == ["init", "app", "proxy"]
    init, app, proxy = pod.processes
    assert init.argv == ("/opt/py/bin/python3", "-m", "pilotfish", "iptables", *INJECTOR_ARGS["1.3"])
    assert init.uid is None
    assert app.argv == ("/opt/py/bin/python3", "apps/reviews.py", "9080")
    assert app.cwd == str(BOOKINFO.resolve())
    assert app.uid == SETTINGS.app_uid and app.ready_line
    env = dict(app.env)
    assert env["SERVICE_VERSION"] == "v2" and env["STAR_COLOR"] == "black"
    assert (env["POD_NAME"], env["POD_NAMESPACE"], env["POD_IP"]) == (pod.name, "default", pod.ip)
    assert env[MARKER_ENV] == "pft-/r1"
    assert proxy.uid is None, "the agent runs as root in the pod and drops Envoy to --uid itself"
    argv = list(proxy.argv)
    assert argv[:5] == ["/opt/py/bin/python3", "-m", "pilotfish", "agent", "sidecar"]
    assert argv[argv.index("--uid") + 1] == "1337"
    assert argv[argv.index("--admin") + 1] == f"unix:{pod.admin}"
    assert argv[argv.index("--discovery") + 1] == f"unix:{plan.xds_socket}"
    assert argv[argv.index("--ip") + 1] == pod.ip
    assert "app=reviews" in argv and "version=v2" in argv
    assert dict(proxy.env)["PYTHONPATH"] == "/src"
    assert pod.admin == f"/run/pilotfish/pft-/pods/{pod.name}.default/admin.sock"


def test_gateway_runs_the_router_without_init_and_is_the_ingress(mesh: Mesh) -> None:
    plan = plan_sandbox(mesh, SETTINGS, "r1", proxy_process)
    gateway = next(p for p in plan.pods if p.namespace == "istio-system")
    assert gateway.proxy_type is ProxyType.ROUTER
    assert [p.kind for p in gateway.processes] == ["proxy"]
    assert gateway.processes[0].argv[4] == "router"
    assert plan.ingress is not None
    assert (plan.ingress.ip, plan.ingress.pod_port, plan.ingress.host_port) == (gateway.ip, 80, 18080)
    assert plan.ingress.url == "http://127.0.0.1:18080"


def test_without_proxies_pods_run_only_their_apps(mesh: Mesh) -> None:
    plan = plan_sandbox(mesh, dataclasses.replace(SETTINGS, with_proxies=False), "r1", proxy_process)
    assert all([p.kind for p in pod.processes] in (["app"], []) for pod in plan.pods)
    assert all(pod.admin == "" and pod.proxy_type is None for pod in plan.pods)


def test_external_host_is_outside_the_registry(mesh: Mesh) -> None:
    plan = plan_sandbox(mesh, SETTINGS, "r1", proxy_process)
    external = plan.external
    assert external is not None
    assert external.ip == EXTERNAL_IP and external.proxy_type is None
    (echo,) = external.processes
    assert echo.argv == ("/opt/py/bin/python3", "echo.py", "80") and echo.cwd == "/samples/external"
    assert all(s.address != EXTERNAL_IP for s in mesh.services)
    assert "external.example" not in external.hosts
    no_external = plan_sandbox(mesh, dataclasses.replace(SETTINGS, external_dir=""), "r1", proxy_process)
    assert no_external.external is None
    assert all(EXTERNAL_HOST not in p.hosts for p in no_external.pods)


def _texts(replicas: int = 1, extra: str = "") -> list[tuple[str, str]]:
    deployment = textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: web, namespace: default}}
        spec:
          selector: {{app: web}}
          ports: [{{port: 80, name: http}}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: web, namespace: default}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: web}}}}
          template:
            metadata: {{labels: {{app: web}}}}
            spec:
              containers:
              - name: web
                command: ["python3", "web.py"]
                args: ["80"]
                ports: [{{containerPort: 80}}]
        """)
    return [("/m/web.yaml", deployment + extra)]


def _plan(texts: list[tuple[str, str]]) -> list[PodPlan]:
    built, diagnostics = mesh_from_texts(texts)
    assert built is not None, diagnostics
    return list(plan_sandbox(built, SETTINGS, "r1", proxy_process).pods)


def _any_pod() -> PodPlan:
    return _plan(_texts())[0]


def test_diff_adds_and_removes_replicas_and_keeps_the_rest() -> None:
    one, two = _plan(_texts(1)), _plan(_texts(2))
    grown = diff_pods(one, two)
    assert len(grown.added) == 1 and not grown.removed and [p.key for p in grown.kept] == [one[0].key]
    shrunk = diff_pods(two, one)
    assert len(shrunk.removed) == 1 and not shrunk.added
    assert diff_pods(one, one).empty


def test_a_changed_pod_is_recreated() -> None:
    before = _plan(_texts())
    changed = [dataclasses.replace(before[0], signature="other")]
    diff = diff_pods(before, changed)
    assert [p.key for p in diff.removed] == [p.key for p in diff.added] == [before[0].key]


def test_a_new_service_rewrites_hosts_files_of_kept_pods() -> None:
    other = textwrap.dedent("""\
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: other, namespace: default}
        spec:
          selector: {app: other}
          ports: [{port: 81, name: http}]
        """)
    before, after = _plan(_texts()), _plan(_texts(extra=other))
    assert diff_pods(before, after).empty
    (changed,) = hosts_changes(before, after)
    assert "other.default.svc.cluster.local" in changed.hosts


def test_relative_commands_run_in_the_manifest_directory() -> None:
    (pod,) = _plan(_texts())
    (app,) = pod.process("app")
    assert app.cwd == "/m" and app.argv == ("/opt/py/bin/python3", "web.py", "80")


def test_prefix_rules() -> None:
    assert validate_prefix("pf-") is None and validate_prefix("pft123ab-") is None
    for bad in ("", "-x", "Pf-", "a b", "a/b", "x" * 21):
        assert validate_prefix(bad), bad
    assert run_dir_for("/run/pilotfish", "pf-") == "/run/pilotfish/pf-"
    assert pod_netns("pf-", "a", "b") == "pf-a.b"


def test_pods_outside_the_pod_range_are_refused() -> None:
    texts = [("/m/p.yaml", textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: odd, namespace: default}
        spec:
          containers: [{name: c, command: ["/bin/true"]}]
        status: {podIP: 192.168.1.5}
        """))]
    built, _ = mesh_from_texts(texts)
    assert built is not None
    with pytest.raises(PlanError, match=r"odd\.default.*192\.168\.1\.5"):
        plan_sandbox(built, SETTINGS, "r1", proxy_process)


def test_component_commands() -> None:
    argv = discovery_argv(SETTINGS, ["/m"], "/run/x/xds.sock", "127.0.0.1:5")
    assert argv[3:] == ("discovery", "--manifests", "/m", "--grpc", "unix:/run/x/xds.sock", "--http",
                        "127.0.0.1:5")
    assert missing_commands(["iptables", "agent"]) == ["discovery"]
    assert missing_commands(["discovery", "agent"]) == []


def test_paths_are_absolute_in_the_real_samples(mesh: Mesh) -> None:
    for workload in mesh.workloads:
        assert workload.origin is not None and Path(workload.origin.file).is_absolute()
