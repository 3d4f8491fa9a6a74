"""`pilotfish discovery` over two manifests directories, one of them pod status reports, with a real
gateway Envoy: a pod reported not ready leaves the gateway's endpoints (an EDS-only push: clusters,
listeners and routes keep their versions) while a client loop sees no failure, and comes back when it
is reported ready again.

One Service `backend` selects two pods (both 127.0.0.1, each with its own named container port: two
local HTTP servers answering A and B); the second directory holds what a kubelet would report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotfish.server.backend import PipelineBackend
from pilotfish.server.discovery import DiscoveryServer
from tests.discovery_helper import Traffic, backends, discovery, free_port, http_json
from tests.envoy_helper import wait_until
from tests.integration.test_discovery_acceptance import GATEWAY, admin_get, agent, gateway_synced, write

pytestmark = pytest.mark.envoy

CLUSTER = "outbound|8000||backend.default.svc.cluster.local"


def _pod(name: str, labels: str, port: int, inject: bool = False) -> str:
    annotations = "" if inject else "\n  annotations: {sidecar.istio.io/inject: \"false\"}"
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {"istio-system" if "ingressgateway" in labels else "default"}
  labels: {{{labels}}}{annotations}
spec:
  containers: [{{name: c, image: x, ports: [{{name: http, containerPort: {port}}}]}}]
status: {{podIP: 127.0.0.1}}
"""


def manifests(listen: int, ports: dict[str, int]) -> str:
    return "---\n".join([
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n",
        _pod("ingressgateway", "app: istio-ingressgateway, istio: ingressgateway", listen),
        _pod("backend-a", "app: backend", ports["A"]),
        _pod("backend-b", "app: backend", ports["B"]),
        """apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec:
  ports: [{name: http, port: 8000, targetPort: http}]
  selector: {app: backend}
""",
        f"""apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {listen}, name: http, protocol: HTTP}}
    hosts: ["*"]
""",
        """apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: route, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route:
    - destination: {host: backend, port: {number: 8000}}
""",
    ])


def pod_status(name: str, ready: bool) -> str:
    condition = "True" if ready else "False"
    return (
        f"apiVersion: pilotfish.io/v1alpha1\nkind: PodStatus\nmetadata: {{name: {name}, namespace: default}}\n"
        f'status:\n  phase: Running\n  conditions: [{{type: Ready, status: "{condition}"}}]\n'
    )


async def _sent_versions(server: DiscoveryServer) -> dict[str, str]:
    (entry,) = [e for e in await http_json(server.http_port, "/debug/syncz") if e["proxy"] == GATEWAY]
    return {t: entry["types"][t]["version_sent"] for t in ("CDS", "EDS", "LDS", "RDS")}


async def _endpoints(admin: object) -> set[int]:
    answer = await admin_get(admin, "/clusters?format=json")  # type: ignore[arg-type]
    assert answer is not None
    (cluster,) = [c for c in json.loads(answer[1])["cluster_statuses"] if c["name"] == CLUSTER]
    return {h["address"]["socket_address"]["port_value"] for h in cluster.get("host_statuses", [])}


async def _both(traffic: Traffic) -> bool:
    recent = traffic.recent[-40:]
    return "A" in recent and "B" in recent


@pytest.mark.parametrize("flavour", ["sotw", "delta"])
async def test_a_pod_reported_not_ready_leaves_eds_only(tmp_path: Path, flavour: str) -> None:
    listen = free_port()
    user, status = tmp_path / "manifests", tmp_path / "status"
    user.mkdir()
    status.mkdir()
    report = status / "pods.yaml"
    async with backends("A", "B") as ports:
        write(user / "mesh.yaml", manifests(listen, ports))
        backend = PipelineBackend()
        async with discovery([user, status], backend) as server:
            with agent(tmp_path / "gw", f"127.0.0.1:{server.grpc_port}", flavour) as admin:
                traffic = Traffic(f"http://127.0.0.1:{listen}/", workers=2)
                await wait_until(lambda: gateway_synced(server), timeout=20, what="gateway SYNCED")
                traffic.start()
                try:
                    await wait_until(lambda: _both(traffic), what="traffic to both pods")
                    before = await _sent_versions(server)

                    write(report, pod_status("backend-a", True) + "---\n" + pod_status("backend-b", False))
                    await traffic.wait_for("A")
                    assert backend.last_update == "endpoints"
                    await wait_until(lambda: gateway_synced(server), what="gateway SYNCED, b not ready")
                    assert await _endpoints(admin) == {ports["A"]}
                    after = await _sent_versions(server)
                    assert after["EDS"] != before["EDS"]
                    assert {t: after[t] for t in ("CDS", "LDS", "RDS")} == {
                        t: before[t] for t in ("CDS", "LDS", "RDS")
                    }, "nothing but endpoints was pushed"

                    traffic.recent = []
                    write(report, pod_status("backend-a", True) + "---\n" + pod_status("backend-b", True))
                    await wait_until(lambda: _both(traffic), what="b back in the traffic")
                    assert await _endpoints(admin) == {ports["A"], ports["B"]}
                    await wait_until(lambda: gateway_synced(server), what="gateway SYNCED, b ready")
                    assert (await _sent_versions(server))["EDS"] == before["EDS"], "the same endpoints again"
                finally:
                    await traffic.stop()
                assert traffic.failures == [], traffic.failures[:5]
