"""The sample manifests: they parse, use only the Kubernetes fields the config loader must accept, and
carry Istio's names, namespaces, ports, port names, labels and service accounts.

Istio's own sample YAML (the vendored conformance data) is the reference: every
Service, ServiceAccount and Deployment there must exist in ours with the same identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import CONFORMANCE
from tests.unit.samples.conftest import SAMPLES

BOOKINFO = SAMPLES / "bookinfo"

# The field contract with the config loader: everything our manifests use, nothing more.
ALLOWED: dict[str, set[str]] = {
    "document": {"apiVersion", "kind", "metadata", "spec"},
    "metadata": {"name", "namespace", "labels", "annotations"},
    "Service.spec": {"ports", "selector"},
    "Service.port": {"name", "port", "targetPort"},
    "Deployment.spec": {"replicas", "selector", "template"},
    "template.spec": {"serviceAccountName", "containers"},
    "container": {"name", "image", "command", "args", "env", "ports"},
    "containerPort": {"containerPort", "name", "protocol"},
    "env": {"name", "value"},
}
KUBE_KINDS = {
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("v1", "ConfigMap"),  # only Istio's mesh config: `istio` in istio-system, key `mesh`
}
ISTIO_KINDS = {("networking.istio.io/v1", "Gateway"), ("networking.istio.io/v1", "VirtualService")}

Doc = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*.yaml"))


def load_docs(path: Path) -> list[Doc]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def index(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    """(kind, name) -> document; names are unique per kind in every file we compare."""
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.fixture(scope="module")
def istio_samples() -> Path:
    return CONFORMANCE / "istio-samples"


def containers(doc: Doc) -> Iterator[Doc]:
    yield from doc["spec"]["template"]["spec"]["containers"]


# ---------------------------------------------------------------------------------------------
# Every manifest


def test_the_expected_manifest_files_exist() -> None:
    names = {str(p.relative_to(SAMPLES)) for p in manifest_files()}
    assert names == {
        "bookinfo/bookinfo.yaml",
        "bookinfo/bookinfo-gateway.yaml",
        "bookinfo/ingressgateway.yaml",
        "bookinfo/mesh.yaml",
        "bookinfo/namespace.yaml",
        "httpbin/httpbin.yaml",
        "httpbin/versions/httpbin-v2.yaml",
        "loadclient/fortio-deploy.yaml",
        "sleep/sleep.yaml",
    }


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(SAMPLES)))
def test_manifest_uses_only_the_agreed_fields(path: Path) -> None:
    docs = load_docs(path)
    assert docs, path
    for doc in docs:
        kind = (doc["apiVersion"], doc["kind"])
        assert kind in KUBE_KINDS | ISTIO_KINDS, kind
        if doc["kind"] == "ConfigMap":
            assert (doc["metadata"]["namespace"], doc["metadata"]["name"]) == ("istio-system", "istio")
            assert set(doc) == {"apiVersion", "kind", "metadata", "data"} and set(doc["data"]) == {"mesh"}
            continue
        assert set(doc) <= ALLOWED["document"]
        assert set(doc["metadata"]) <= ALLOWED["metadata"]
        assert doc["metadata"]["name"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] in ("default", "istio-system")
        for value in (
            *doc["metadata"].get("labels", {}).values(),
            *doc["metadata"].get("annotations", {}).values(),
        ):
            assert isinstance(value, str), (
                f"{doc['metadata']['name']}: label/annotation values must be strings"
            )
        if doc["kind"] == "Service":
            assert set(doc["spec"]) <= ALLOWED["Service.spec"]
            for port in doc["spec"]["ports"]:
                assert set(port) <= ALLOWED["Service.port"] and isinstance(port["port"], int) and port["name"]
        if doc["kind"] == "Deployment":
            check_deployment(path, doc)


def check_deployment(path: Path, doc: Doc) -> None:
    spec = doc["spec"]
    assert set(spec) <= ALLOWED["Deployment.spec"]
    assert spec["replicas"] == 1
    template = spec["template"]
    assert set(template) == {"metadata", "spec"} and set(template["metadata"]) <= {"labels", "annotations"}
    match = spec["selector"]["matchLabels"]
    assert match.items() <= template["metadata"]["labels"].items()
    assert set(template["spec"]) <= ALLOWED["template.spec"]
    for c in containers(doc):
        assert set(c) <= ALLOWED["container"], c["name"]
        for port in c.get("ports", []):
            assert set(port) <= ALLOWED["containerPort"] and isinstance(port["containerPort"], int)
        for env in c.get("env", []):
            assert set(env) == ALLOWED["env"] and isinstance(env["value"], str)
        command = c.get("command")
        if command and command[0] == "python3":
            script = path.parent / command[1]
            assert script.is_file(), f"{path.name}: {c['name']} runs missing {command[1]}"
            # The app listens on args[-1], which must be the container's port.
            assert c["args"][-1] == str(c["ports"][0]["containerPort"])


# ---------------------------------------------------------------------------------------------
# Bookinfo


def test_bookinfo_objects_labels_and_ports() -> None:
    objects = index(load_docs(BOOKINFO / "bookinfo.yaml"))
    services = {"details", "ratings", "reviews", "productpage"}
    deployments = {
        "details-v1": ("details", "v1"),
        "ratings-v1": ("ratings", "v1"),
        "reviews-v1": ("reviews", "v1"),
        "reviews-v2": ("reviews", "v2"),
        "reviews-v3": ("reviews", "v3"),
        "productpage-v1": ("productpage", "v1"),
    }
    assert set(objects) == (
        {("Service", s) for s in services}
        | {("ServiceAccount", f"bookinfo-{s}") for s in services}
        | {("Deployment", d) for d in deployments}
    )
    for name in services:
        svc = objects[("Service", name)]
        assert svc["metadata"]["namespace"] == "default"
        assert svc["spec"]["ports"] == [{"port": 9080, "name": "http"}]
        assert svc["spec"]["selector"] == {"app": name}
    for name, (app, version) in deployments.items():
        dep = objects[("Deployment", name)]
        labels = {"app": app, "version": version}
        assert dep["metadata"]["labels"] == labels == dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] == f"bookinfo-{app}"
        (container,) = containers(dep)
        assert container["name"] == app
        assert container["command"] == ["python3", f"apps/{app}.py"]
        assert container["args"] == ["9080"]
        assert container["ports"] == [{"containerPort": 9080}]
        assert container["image"].endswith(f"examples-bookinfo-{app}-{version}:1.20.3")


@pytest.mark.parametrize(
    ("version", "env"),
    [
        ("v1", {"SERVICE_VERSION": "v1", "ENABLE_RATINGS": "false"}),
        ("v2", {"SERVICE_VERSION": "v2", "ENABLE_RATINGS": "true", "STAR_COLOR": "black"}),
        ("v3", {"SERVICE_VERSION": "v3", "ENABLE_RATINGS": "true", "STAR_COLOR": "red"}),
    ],
)
def test_reviews_versions_are_configured_like_istios_images(version: str, env: dict[str, str]) -> None:
    dep = index(load_docs(BOOKINFO / "bookinfo.yaml"))[("Deployment", f"reviews-{version}")]
    (container,) = containers(dep)
    assert {e["name"]: e["value"] for e in container["env"]} == env


def test_bookinfo_matches_istios_sample(istio_samples: Path) -> None:
    ours = index(load_docs(BOOKINFO / "bookinfo.yaml"))
    istio = index(load_docs(istio_samples / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"))
    assert set(ours) == set(istio)
    for key, theirs in istio.items():
        mine = ours[key]
        assert mine["metadata"].get("labels") == theirs["metadata"].get("labels"), key
        if key[0] == "Service":
            assert mine["spec"] == theirs["spec"], key
        if key[0] == "Deployment":
            assert mine["spec"]["selector"] == theirs["spec"]["selector"], key
            assert (
                mine["spec"]["template"]["metadata"]["labels"]
                == theirs["spec"]["template"]["metadata"]["labels"]
            )
            t_spec, m_spec = theirs["spec"]["template"]["spec"], mine["spec"]["template"]["spec"]
            assert m_spec["serviceAccountName"] == t_spec["serviceAccountName"], key
            for m, t in zip(m_spec["containers"], t_spec["containers"], strict=True):
                assert (m["name"], m["image"], m["ports"]) == (t["name"], t["image"], t["ports"]), key


def test_namespace_is_marked_for_injection() -> None:
    (ns,) = load_docs(BOOKINFO / "namespace.yaml")
    assert ns["kind"] == "Namespace" and ns["metadata"] == {
        "name": "default",
        "labels": {"istio-injection": "enabled"},
    }


def test_gateway_objects() -> None:
    objects = index(load_docs(BOOKINFO / "ingressgateway.yaml") + load_docs(BOOKINFO / "bookinfo-gateway.yaml"))
    assert objects[("Namespace", "istio-system")]["metadata"] == {"name": "istio-system"}
    labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    svc = objects[("Service", "istio-ingressgateway")]
    assert svc["metadata"]["namespace"] == "istio-system" and svc["metadata"]["labels"] == labels
    assert svc["spec"]["ports"] == [{"name": "http2", "port": 80, "targetPort": 80}]
    assert svc["spec"]["selector"] == labels
    dep = objects[("Deployment", "istio-ingressgateway")]
    assert dep["metadata"]["namespace"] == "istio-system"
    assert dep["metadata"]["labels"] == labels == dep["spec"]["template"]["metadata"]["labels"]
    (proxy,) = containers(dep)
    assert proxy["name"] == "istio-proxy" and proxy["image"] == "docker.io/istio/proxyv2:1.3.6"
    assert "command" not in proxy and "args" not in proxy
    assert {"containerPort": 80, "protocol": "TCP"} in proxy["ports"]
    gateway = objects[("Gateway", "bookinfo-gateway")]
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gateway["spec"]["servers"] == [
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
    ]
    vs = objects[("VirtualService", "bookinfo")]
    assert vs["spec"]["hosts"] == ["*"] and vs["spec"]["gateways"] == ["bookinfo-gateway"]
    (rule,) = vs["spec"]["http"]
    assert rule["match"] == [
        {"uri": {"exact": "/productpage"}},
        {"uri": {"prefix": "/static"}},
        {"uri": {"exact": "/login"}},
        {"uri": {"exact": "/logout"}},
        {"uri": {"prefix": "/api/v1/products"}},
    ]
    assert rule["route"] == [{"destination": {"host": "productpage", "port": {"number": 9080}}}]


def test_gateway_config_is_istios_on_port_80(istio_samples: Path) -> None:
    ours = index(load_docs(BOOKINFO / "bookinfo-gateway.yaml"))
    istio = index(load_docs(istio_samples / "bookinfo" / "networking" / "bookinfo-gateway.yaml"))
    assert ours[("VirtualService", "bookinfo")]["spec"] == istio[("VirtualService", "bookinfo")]["spec"]
    theirs = istio[("Gateway", "bookinfo-gateway")]["spec"]
    theirs["servers"][0]["port"]["number"] = 80
    assert ours[("Gateway", "bookinfo-gateway")]["spec"] == theirs


def test_no_reviews_routing_in_the_bookinfo_folder() -> None:
    """Tests apply Istio's own DestinationRules/VirtualServices; ours would conflict with them."""
    for path in BOOKINFO.rglob("*.y*ml"):
        for doc in load_docs(path):
            assert doc["kind"] not in ("DestinationRule", "ServiceEntry", "Sidecar"), path
            if doc["kind"] == "VirtualService":
                assert doc["metadata"]["name"] == "bookinfo", path


# ---------------------------------------------------------------------------------------------
# httpbin, load client, sleep


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("httpbin/httpbin.yaml", "httpbin/httpbin.yaml"),
        ("loadclient/fortio-deploy.yaml", "httpbin/sample-client/fortio-deploy.yaml"),
        ("sleep/sleep.yaml", "sleep/sleep.yaml"),
    ],
)
def test_helper_manifests_match_istios(istio_samples: Path, ours: str, theirs: str) -> None:
    mine = index(load_docs(SAMPLES / ours))
    istio = index(load_docs(istio_samples / theirs))
    assert set(mine) == set(istio)
    for key, t in istio.items():
        m = mine[key]
        assert m["metadata"].get("labels") == t["metadata"].get("labels"), key
        if key[0] == "Service":
            assert m["spec"] == t["spec"], key
        if key[0] == "Deployment":
            assert m["spec"]["selector"] == t["spec"]["selector"], key
            assert m["spec"]["template"]["metadata"]["labels"] == t["spec"]["template"]["metadata"]["labels"]
            assert m["spec"]["template"]["spec"].get("serviceAccountName") == t["spec"]["template"][
                "spec"
            ].get("serviceAccountName")
            for mc, tc in zip(containers(m), containers(t), strict=True):
                assert (mc["name"], mc["image"]) == (tc["name"], tc["image"]), key
                if "ports" in tc:  # our app listens on the first port Istio's container declares
                    assert mc["ports"][0] == tc["ports"][0], key


def test_httpbin_v2_is_a_second_version_of_the_same_app() -> None:
    v1 = index(load_docs(SAMPLES / "httpbin" / "httpbin.yaml"))[("Deployment", "httpbin")]
    (v2,) = load_docs(SAMPLES / "httpbin" / "versions" / "httpbin-v2.yaml")
    assert v2["spec"]["template"]["metadata"]["labels"] == {"app": "httpbin", "version": "v2"}
    assert v1["spec"]["template"]["metadata"]["labels"] == {"app": "httpbin", "version": "v1"}
    (c,) = containers(v2)
    assert c["command"] == ["python3", "../httpbin.py"]
    assert {e["name"]: e["value"] for e in c["env"]} == {"SERVICE_VERSION": "v2"}
