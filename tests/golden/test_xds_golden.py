"""Golden files of the generated Envoy config, each also accepted by the real Envoy.

Cases: every proxy of our Bookinfo sample (both behaviour profiles), and for each of Istio's Bookinfo
networking samples the productpage sidecar and the ingress gateway, on Istio's own bookinfo.yaml.
Refresh with `--update-golden`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from google.protobuf import json_format

from pilotfish.model.mesh import Mesh
from pilotfish.pipeline import load_mesh, mesh_from_texts, offline_resources
from pilotfish.xds.resources import ProxyResources
from tests.envoy_validate import envoy_validate
from tests.golden import check_golden
from tests.paths import CONFORMANCE, SAMPLES

GOLDEN = Path(__file__).parent / "xds"
BOOKINFO = SAMPLES / "bookinfo"
ISTIO_BOOKINFO = CONFORMANCE / "istio-samples" / "bookinfo"
NETWORKING = ISTIO_BOOKINFO / "networking"
MODERN = (
    "apiVersion: pilotfish.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {profile: modern}\n"
)

# Samples that stand alone (no destination-rule-all.yaml beside them): the rules themselves, the
# gateways, the egress sample and the fault sample (which carries its own DestinationRule).
_STANDALONE = {
    "destination-rule-all.yaml",
    "destination-rule-all-mtls.yaml",
    "destination-rule-reviews.yaml",
    "bookinfo-gateway.yaml",
    "certmanager-gateway.yaml",
    "egress-rule-google-apis.yaml",
    "fault-injection-details-v1.yaml",
}
SAMPLE_FILES = sorted(p.name for p in NETWORKING.glob("*.yaml"))


def _load(paths: Sequence[Path], extra: str = "") -> Mesh:
    if extra:
        from pilotfish.sources.manifests import read_manifests

        texts, problems = read_manifests(paths)
        assert not problems
        mesh, diagnostics = mesh_from_texts([*texts, ("mesh.yaml", extra)])
    else:
        mesh, diagnostics = load_mesh(paths)
    assert mesh is not None, "\n".join(map(str, diagnostics))
    return mesh


def _sample_mesh(sample: str) -> Mesh:
    paths = [
        ISTIO_BOOKINFO / "platform/kube/bookinfo.yaml",
        BOOKINFO / "ingressgateway.yaml",
        NETWORKING / sample,
    ]
    if sample != "bookinfo-gateway.yaml":
        paths.append(BOOKINFO / "bookinfo-gateway.yaml")
    if sample not in _STANDALONE:
        paths.append(NETWORKING / "destination-rule-all.yaml")
    return _load(paths)


def render(resources: ProxyResources) -> str:
    """Deterministic JSON: one section per type, Envoy's camelCase field names."""
    sections = {
        "listeners": [json_format.MessageToDict(r.message) for r in resources.listeners],
        "routes": [json_format.MessageToDict(r.message) for r in resources.routes],
        "clusters": [json_format.MessageToDict(r.message) for r in resources.clusters],
        "endpoints": [json_format.MessageToDict(r.message) for r in resources.endpoints],
    }
    return json.dumps(sections, indent=1, sort_keys=True) + "\n"


def _proxy_file(mesh: Mesh, pod: str) -> str:
    workload = next(w for w in mesh.workloads if w.name == pod)
    return f"{workload.deployment or workload.name}.json"


def _cases() -> list[tuple[str, str, str]]:
    """(case, pod deployment, namespace)."""
    bookinfo = [
        ("bookinfo", d, ns)
        for d, ns in [
            ("productpage-v1", "default"),
            ("details-v1", "default"),
            ("ratings-v1", "default"),
            ("reviews-v1", "default"),
            ("reviews-v2", "default"),
            ("reviews-v3", "default"),
            ("istio-ingressgateway", "istio-system"),
        ]
    ]
    modern = [("bookinfo-modern", d, ns) for _, d, ns in bookinfo]
    samples = [
        (sample.removesuffix(".yaml"), d, ns)
        for sample in SAMPLE_FILES
        for d, ns in [("productpage-v1", "default"), ("istio-ingressgateway", "istio-system")]
    ]
    return bookinfo + modern + samples


_MESHES: dict[str, Mesh] = {}


def mesh_for(case: str) -> Mesh:
    if case not in _MESHES:
        if case == "bookinfo":
            _MESHES[case] = _load([BOOKINFO])
        elif case == "bookinfo-modern":
            _MESHES[case] = _load([BOOKINFO], MODERN)
        else:
            _MESHES[case] = _sample_mesh(case + ".yaml")
    return _MESHES[case]


def resources_for(case: str, deployment: str, namespace: str) -> ProxyResources:
    return offline_resources(mesh_for(case), f"deploy/{deployment}", namespace)


CASES = _cases()


@pytest.mark.parametrize(("case", "deployment", "namespace"), CASES, ids=[f"{c}/{d}" for c, d, _ in CASES])
def test_golden(request: pytest.FixtureRequest, case: str, deployment: str, namespace: str) -> None:
    resources = resources_for(case, deployment, namespace)
    check_golden(request, GOLDEN / case / f"{deployment}.json", render(resources))


@pytest.mark.envoy
@pytest.mark.parametrize(("case", "deployment", "namespace"), CASES, ids=[f"{c}/{d}" for c, d, _ in CASES])
def test_envoy_accepts_golden(case: str, deployment: str, namespace: str) -> None:
    accepted, output = envoy_validate(resources_for(case, deployment, namespace))
    assert accepted, output


def test_every_sample_has_goldens() -> None:
    on_disk = {p.name for p in GOLDEN.iterdir() if p.is_dir()}
    assert on_disk == {c for c, _, _ in CASES}, "stale or missing golden directories"
