"""Pod readiness as a model input (`config.podstatus`): a pod whose `Ready` condition is not "True" keeps
its place in the registry but its address is not sent in EDS (Istio 1.3 sends only Endpoints
`addresses`, not `notReadyAddresses`), and it is sent again once the pod is ready."""

from __future__ import annotations

from pilotfish.model.mesh import Mesh
from pilotfish.pipeline import generate, mesh_from_texts, proxy_for_workload
from tests.paths import CONFORMANCE, SAMPLES

BOOKINFO = [
    CONFORMANCE / "istio-samples/bookinfo/platform/kube/bookinfo.yaml",
    SAMPLES / "bookinfo/ingressgateway.yaml",
    CONFORMANCE / "istio-samples/bookinfo/networking/destination-rule-all.yaml",
]
REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
REVIEWS_V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"


def _mesh(*extra: str) -> Mesh:
    texts = [(str(p), p.read_text()) for p in BOOKINFO]
    texts += [(f"status-{i}.yaml", text) for i, text in enumerate(extra)]
    mesh, diagnostics = mesh_from_texts(texts)
    assert mesh is not None, [str(d) for d in diagnostics]
    return mesh


def _pod(mesh: Mesh, deployment: str) -> tuple[str, str]:
    workload = next(w for w in mesh.workloads if w.deployment == deployment)
    return workload.name, workload.ip


def report(name: str, ready: str | None, phase: str = "Running", namespace: str = "default") -> str:
    conditions = f"\n  conditions:\n  - {{type: Ready, status: {ready!r}}}" if ready is not None else ""
    return (
        "apiVersion: pilotfish.io/v1alpha1\nkind: PodStatus\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nstatus:\n  phase: {phase}{conditions}\n"
    )


def _eds(mesh: Mesh, cluster: str) -> set[str]:
    """The addresses productpage's Envoy gets for `cluster`."""
    page = next(w for w in mesh.proxies() if w.deployment == "productpage-v1")
    resources = generate(mesh, proxy_for_workload(mesh, page))
    (cla,) = [r.message for r in resources.endpoints if r.name == cluster]
    return {lb.endpoint.address.socket_address.address for group in cla.endpoints for lb in group.lb_endpoints}


def test_a_not_ready_pod_is_left_out_of_eds_and_comes_back_when_ready() -> None:
    mesh = _mesh()
    name, ip = _pod(mesh, "reviews-v1")
    assert ip in _eds(mesh, REVIEWS) and _eds(mesh, REVIEWS_V1) == {ip}

    unready = _mesh(report(name, "False"))
    assert ip not in _eds(unready, REVIEWS) and len(_eds(unready, REVIEWS)) == 2
    assert _eds(unready, REVIEWS_V1) == set()
    reviews = unready.endpoints_of("reviews.default.svc.cluster.local", 9080)
    (endpoint,) = [e for e in reviews if e.address == ip]
    assert not endpoint.ready, "kept in the registry as a not-ready address"
    assert unready.workload(name, "default") is not None

    ready = _mesh(report(name, "True"))
    assert _eds(ready, REVIEWS) == _eds(mesh, REVIEWS) and _eds(ready, REVIEWS_V1) == {ip}


def test_only_a_true_ready_condition_of_a_running_pod_is_ready() -> None:
    mesh = _mesh()
    name, ip = _pod(mesh, "reviews-v1")
    for text in (
        report(name, "Unknown"),
        report(name, "True", phase="Pending"),
        report(name, "True", phase="Failed"),
    ):
        assert ip not in _eds(_mesh(text), REVIEWS), text
    scheduled = "  conditions:\n  - {type: PodScheduled, status: 'True'}\n"
    no_ready_condition = report(name, None).replace("  phase: Running\n", scheduled)
    assert ip not in _eds(_mesh(no_ready_condition), REVIEWS)
    assert ip in _eds(_mesh(report(name, None)), REVIEWS), "a Running pod that reports no condition"


def test_a_pods_own_status_counts_and_a_report_overrides_it() -> None:
    pod = """\
apiVersion: v1
kind: Pod
metadata: {name: reviews-extra, namespace: default, labels: {app: reviews, version: v1}}
spec: {containers: [{name: reviews, ports: [{containerPort: 9080}]}]}
status:
  podIP: 10.44.9.9
  conditions: [{type: Ready, status: "False"}]
"""
    assert "10.44.9.9" not in _eds(_mesh(pod), REVIEWS)
    assert "10.44.9.9" in _eds(_mesh(pod, report("reviews-extra", "True")), REVIEWS)
    assert "10.44.9.9" in _eds(_mesh(pod.replace('"False"', '"True"')), REVIEWS)


def test_a_report_for_a_pod_that_is_gone_changes_nothing() -> None:
    mesh = _mesh()
    other = _mesh(report("reviews-v9-gone", "False"), report("x", "False", namespace="elsewhere"))
    assert _eds(other, REVIEWS) == _eds(mesh, REVIEWS)
    assert "elsewhere" not in other.namespaces, "a status report makes no namespace"
    assert not other.diagnostics


def test_explicit_endpoints_are_used_as_written() -> None:
    endpoints = """\
apiVersion: v1
kind: Endpoints
metadata: {name: reviews, namespace: default}
subsets:
- addresses: [{ip: 10.44.7.1}]
  notReadyAddresses: [{ip: 10.44.7.2}]
  ports: [{name: http, port: 9080}]
"""
    mesh = _mesh(endpoints)
    assert _eds(mesh, REVIEWS) == {"10.44.7.1"}
    name, _ = _pod(mesh, "reviews-v1")
    assert _eds(_mesh(endpoints, report(name, "False")), REVIEWS) == {"10.44.7.1"}
