"""`MeshLoader`: re-parse only changed files, endpoint-only changes built from the last snapshot.

The incremental path must give exactly what a from-scratch build gives: every proxy's resources are
compared by name and serialized bytes against `mesh_from_texts` on the same texts.
"""

from __future__ import annotations

import dataclasses
import gc

from pilotfish.gcpause import gc_paused
from pilotfish.model.mesh import Mesh
from pilotfish.pipeline import MeshLoader, generate, mesh_from_texts, proxy_for_workload
from pilotfish.xds.generate import INVALIDATED_BY
from pilotfish.xds.resources import ProxyResources
from tests.paths import CONFORMANCE, SAMPLES

ISTIO_BOOKINFO = CONFORMANCE / "istio-samples" / "bookinfo"
FILES = [
    ISTIO_BOOKINFO / "platform/kube/bookinfo.yaml",
    SAMPLES / "bookinfo/ingressgateway.yaml",
    SAMPLES / "bookinfo/bookinfo-gateway.yaml",
    ISTIO_BOOKINFO / "networking/destination-rule-all.yaml",
    ISTIO_BOOKINFO / "networking/virtual-service-reviews-80-20.yaml",
]
EXTRA_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: reviews-extra
  namespace: default
  labels: {app: reviews, version: v2}
spec: {containers: [{name: reviews, ports: [{containerPort: 9080}]}]}
"""


def _texts() -> list[tuple[str, str]]:
    return [(str(path), path.read_text()) for path in FILES]


def _snapshot(resources: ProxyResources) -> dict[str, list[tuple[str, bytes]]]:
    return {s.type_url.short: [(r.name, r.any.value) for r in s] for s in resources}


def _all_config(mesh: Mesh) -> dict[str, dict[str, list[tuple[str, bytes]]]]:
    return {w.proxy_id: _snapshot(generate(mesh, proxy_for_workload(mesh, w))) for w in mesh.proxies()}


def _from_scratch(texts: list[tuple[str, str]]) -> Mesh:
    mesh, diagnostics = mesh_from_texts(texts)
    assert mesh is not None, diagnostics
    return mesh


def _load(loader: MeshLoader, texts: list[tuple[str, str]]) -> Mesh:
    mesh, diagnostics = loader.from_texts(texts)
    assert mesh is not None, diagnostics
    return mesh


def test_endpoint_change_is_incremental_and_equal_to_a_full_build() -> None:
    loader = MeshLoader()
    texts = _texts()
    first = _load(loader, texts)
    before = _all_config(first)
    changed = [*texts, ("zz-extra-pod.yaml", EXTRA_POD)]
    second = _load(loader, changed)
    assert loader.incremental == {"endpoints"}
    assert second.version != first.version
    assert _all_config(second) == _all_config(_from_scratch(changed))
    assert "reviews-extra.default" in _all_config(second)
    productpage = next(w for w in second.proxies() if w.name.startswith("productpage"))
    old = generate(first, proxy_for_workload(first, productpage))
    new = generate(second, proxy_for_workload(second, productpage))
    # What the new reviews pod cannot reach is carried over as the same objects: serialized and
    # hashed once, and the server sees equal versions (nothing to push but endpoints).
    assert new.clusters is old.clusters and new.listeners is old.listeners and new.routes is old.routes
    assert _snapshot(new)["EDS"] != before[productpage.proxy_id]["EDS"]
    reviews = next(w for w in second.proxies() if w.name.startswith("reviews-v2"))
    assert (
        generate(second, proxy_for_workload(second, reviews)).listeners
        is generate(first, proxy_for_workload(first, reviews)).listeners
    )  # its service's endpoints changed, but its inbound side gained nothing: carried over


def _status(name: str, ready: str) -> str:
    return (
        "apiVersion: pilotfish.io/v1alpha1\nkind: PodStatus\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        f"status:\n  phase: Running\n  conditions: [{{type: Ready, status: {ready!r}}}]\n"
    )


def test_a_readiness_change_is_endpoint_only_and_equal_to_a_full_build() -> None:
    """A pod reported not ready (a status file, e.g. in another directory) changes EDS only: every
    proxy's clusters, listeners and routes stay the same objects, and the result is byte-identical to
    building the mesh from scratch; so is the way back."""
    loader = MeshLoader()
    texts = _texts()
    first = _load(loader, texts)
    before = _all_config(first)
    victim = next(w for w in first.workloads if w.deployment == "reviews-v1")
    steps = [
        [*texts, ("status/pods.yaml", _status(victim.name, "True"))],
        [*texts, ("status/pods.yaml", _status(victim.name, "False"))],
        [*texts, ("status/pods.yaml", _status(victim.name, "True"))],
    ]
    previous = first
    for changed in steps:
        mesh = _load(loader, changed)
        assert loader.incremental == {"endpoints"}
        assert _all_config(mesh) == _all_config(_from_scratch(changed))
        for proxy in mesh.proxies():
            old = generate(previous, proxy_for_workload(previous, proxy))
            new = generate(mesh, proxy_for_workload(mesh, proxy))
            # the same objects, even for the reviews pods (whose own inbound side ignores readiness):
            # nothing regenerated or serialized again, equal versions, nothing but EDS to push
            assert new.clusters is old.clusters and new.listeners is old.listeners, proxy.proxy_id
            assert new.routes is old.routes, proxy.proxy_id
        previous = mesh
    unready = _load(loader, steps[1])
    page = next(w for w in unready.proxies() if w.deployment == "productpage-v1")
    eds = dict(_snapshot(generate(unready, proxy_for_workload(unready, page)))["EDS"])
    reviews, reviews_v1 = (f"outbound|9080|{s}|reviews.default.svc.cluster.local" for s in ("", "v1"))
    assert eds[reviews_v1] != dict(before[page.proxy_id]["EDS"])[reviews_v1]
    assert victim.ip.encode() not in eds[reviews_v1] and victim.ip.encode() not in eds[reviews]
    assert _all_config(_load(loader, steps[2])) == before


def test_new_file_sorted_first_shifts_orders_and_stays_incremental() -> None:
    loader = MeshLoader()
    texts = _texts()
    _load(loader, texts)
    changed = [("/0-extra-pod.yaml", EXTRA_POD), *texts]
    mesh = _load(loader, changed)
    assert loader.incremental
    assert _all_config(mesh) == _all_config(_from_scratch(changed))


def test_scaling_a_deployment_down_removes_its_endpoints() -> None:
    loader = MeshLoader()
    texts = _texts()
    _load(loader, texts)
    name, text = texts[0]
    scaled = _set_replicas(text, "reviews-v3", 0)
    changed = [(name, scaled), *texts[1:]]
    mesh = _load(loader, changed)
    assert loader.incremental
    assert not any(w.deployment == "reviews-v3" for w in mesh.workloads)
    assert _all_config(mesh) == _all_config(_from_scratch(changed))


def _set_replicas(text: str, deployment: str, replicas: int) -> str:
    at = text.index(f"name: {deployment}\n", text.index("kind: Deployment"))
    head, tail = text[:at], text[at:]
    return head + tail.replace("replicas: 1", f"replicas: {replicas}", 1)


def test_route_edit_is_incremental_and_keeps_clusters_and_endpoints() -> None:
    loader = MeshLoader()
    texts = _texts()
    first = _load(loader, texts)
    _all_config(first)
    vs_file = texts[-1]
    edited = vs_file[1].replace("weight: 80", "weight: 70").replace("weight: 20", "weight: 30")
    changed = [*texts[:-1], (vs_file[0], edited)]
    mesh = _load(loader, changed)
    assert loader.incremental == {"routing"}
    assert _all_config(mesh) == _all_config(_from_scratch(changed))
    productpage = next(w for w in mesh.proxies() if w.name.startswith("productpage"))
    old = generate(first, proxy_for_workload(first, productpage))
    new = generate(mesh, proxy_for_workload(mesh, productpage))
    assert [id(r) for r in new.endpoints] == [id(r) for r in old.endpoints]
    assert [id(r) for r in new.clusters] == [id(r) for r in old.clusters]
    assert _snapshot(new)["RDS"] != _snapshot(old)["RDS"]


def test_gateway_and_pod_edits_together_are_incremental() -> None:
    loader = MeshLoader()
    texts = _texts()
    _load(loader, texts)
    gateway = texts[2]
    changed = [
        texts[0],
        texts[1],
        (gateway[0], gateway[1].replace('- "*"', "- bookinfo.example")),
        *texts[3:],
    ]
    changed.append(("zz-extra-pod.yaml", EXTRA_POD))
    mesh = _load(loader, changed)
    assert loader.incremental == {"endpoints", "routing"}
    assert _all_config(mesh) == _all_config(_from_scratch(changed))


def test_destination_rule_change_builds_a_new_snapshot() -> None:
    loader = MeshLoader()
    texts = _texts()
    _load(loader, texts)
    rule_file = texts[3]
    changed = [*texts[:3], (rule_file[0], rule_file[1].replace("version: v3", "version: v9")), texts[4]]
    mesh = _load(loader, changed)
    assert not loader.incremental
    assert _all_config(mesh) == _all_config(_from_scratch(changed))


def test_unchanged_files_are_not_parsed_again() -> None:
    loader = MeshLoader()
    texts = _texts()
    first = _load(loader, texts)
    second = _load(loader, [*texts, ("zz-extra-pod.yaml", EXTRA_POD)])
    kept = {obj.key: obj for obj in first.objects}
    assert all(kept[obj.key] is obj for obj in second.objects if obj.key in kept)


def test_same_texts_give_the_same_snapshot() -> None:
    loader = MeshLoader()
    texts = _texts()
    assert _load(loader, texts) is _load(loader, list(texts))


def test_errors_keep_the_last_good_snapshot_for_the_next_update() -> None:
    loader = MeshLoader()
    texts = _texts()
    _load(loader, texts)
    broken = [*texts, ("zz-broken.yaml", "kind: Pod\napiVersion: v1\nmetadata: {name: x\n")]
    mesh, diagnostics = loader.from_texts(broken)
    assert mesh is None and any(d.is_error for d in diagnostics)
    changed = [*texts, ("zz-extra-pod.yaml", EXTRA_POD)]
    assert _all_config(_load(loader, changed)) == _all_config(_from_scratch(changed))
    assert loader.incremental


def test_every_memo_entry_is_classified_for_updates() -> None:
    """A new kind of memo entry must say what makes it stale (or it is silently rebuilt on every
    rollout and route edit)."""
    known = set(INVALIDATED_BY)
    modern = (
        "apiVersion: pilotfish.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {profile: modern}\n"
    )
    for texts in (_texts(), [*_texts(), ("mesh.yaml", modern)]):
        mesh = _from_scratch(texts)
        _all_config(mesh)
        tags = {key if isinstance(key, str) else key[0] for key in mesh.memo}
        assert tags <= known, tags - known


def test_a_generated_snapshot_has_no_reference_cycles() -> None:
    """`freeze_snapshot` relies on it: frozen objects are freed by reference counting only."""
    gc.collect()
    with gc_paused():
        mesh = _from_scratch(_texts())
        _all_config(mesh)
        del mesh
        assert gc.collect() == 0


def test_renumbering_keeps_everything_but_the_order() -> None:
    obj = _from_scratch(_texts()).objects[3]
    assert [f.name for f in dataclasses.fields(obj)] == [
        "group",
        "version",
        "kind",
        "name",
        "namespace",
        "spec",
        "origin",
        "order",
        "labels",
        "annotations",
        "namespace_given",
        "document",
    ]  # a new field must be copied by `with_order` and compared by `same_but_order`
    moved = obj.with_order(obj.order + 7)
    assert moved == dataclasses.replace(obj, order=obj.order + 7) and moved.document is obj.document
    assert obj.same_but_order(moved) and moved != obj
    assert not obj.same_but_order(dataclasses.replace(moved, labels={"x": "y"}))


def test_gc_pause_nests_and_restores() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
