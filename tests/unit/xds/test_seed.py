"""The seed's walk (ingress gateway -> productpage -> reviews), reproduced offline on samples/bookinfo
plus Istio's Bookinfo destination rules: the names and structure the seed's istioctl shows."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from pilotfish.model.mesh import Mesh
from pilotfish.pipeline import load_mesh, offline_dumps, offline_resources
from tests.paths import CONFORMANCE, SAMPLES

SEED_RETRY = {
    "retryOn": "connect-failure,refused-stream,unavailable,cancelled,resource-exhausted,retriable-status-codes",
    "numRetries": 2,
    "retryHostPredicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typedConfig": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "hostSelectionRetryMaxAttempts": "5",
    "retriableStatusCodes": [503],
}


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    paths = [
        SAMPLES / "bookinfo",
        CONFORMANCE / "istio-samples/bookinfo/networking/destination-rule-all.yaml",
    ]
    loaded, diagnostics = load_mesh(paths)
    assert loaded is not None, diagnostics
    return loaded


def as_json(resources: Any) -> dict[str, dict[str, Any]]:
    return {r.name: json_format.MessageToDict(r.message) for r in resources}


def test_pod_names_look_like_the_seed(mesh: Mesh) -> None:
    names = {w.deployment: w.name for w in mesh.workloads}
    gateway, productpage = names["istio-ingressgateway"], names["productpage-v1"]
    assert gateway.startswith("istio-ingressgateway-") and len(gateway.split("-")[-1]) == 5
    assert productpage.startswith("productpage-v1-") and len(productpage.split("-")[-2]) == 10


def test_gateway_listener_route_cluster(mesh: Mesh) -> None:
    resources = offline_resources(mesh, "deploy/istio-ingressgateway", "istio-system")
    listeners, routes, clusters = (
        as_json(resources.listeners),
        as_json(resources.routes),
        as_json(resources.clusters),
    )
    assert list(listeners) == ["0.0.0.0_80"]
    hcm = listeners["0.0.0.0_80"]["filterChains"][0]["filters"][0]
    assert hcm["name"] == "envoy.filters.network.http_connection_manager"
    assert hcm["typedConfig"]["rds"]["routeConfigName"] == "http.80"
    assert listeners["0.0.0.0_80"]["trafficDirection"] == "OUTBOUND"
    (vhost,) = routes["http.80"]["virtualHosts"]
    assert vhost["name"] == "*:80" and vhost["domains"] == ["*", "*:80"]
    first = vhost["routes"][0]
    assert first["match"] == {"path": "/productpage", "caseSensitive": True}
    assert first["route"]["cluster"] == "outbound|9080||productpage.default.svc.cluster.local"
    assert routes["http.80"]["validateClusters"] is False
    cluster = clusters["outbound|9080||productpage.default.svc.cluster.local"]
    assert cluster["type"] == "EDS"
    assert cluster["edsClusterConfig"]["serviceName"] == cluster["name"]
    assert cluster["edsClusterConfig"]["edsConfig"]["ads"] == {}
    assert cluster["edsClusterConfig"]["edsConfig"]["initialFetchTimeout"] == "0s"
    assert cluster["connectTimeout"] == "10s"
    assert cluster["circuitBreakers"] == {"thresholds": [{"maxRetries": 1024}]}


def test_productpage_inbound(mesh: Mesh) -> None:
    resources = offline_resources(mesh, "deploy/productpage-v1", "default")
    pod_ip = mesh.workloads_by_name[("default", _pod(mesh, "productpage-v1"))].ip
    listeners, clusters = as_json(resources.listeners), as_json(resources.clusters)
    inbound = listeners["virtualInbound"]
    assert inbound["address"]["socketAddress"] == {"address": "0.0.0.0", "portValue": 15006}
    chain = next(c for c in inbound["filterChains"] if c["filterChainMatch"].get("destinationPort") == 9080)
    hcm = chain["filters"][0]["typedConfig"]
    assert hcm["statPrefix"] == f"{pod_ip}_9080"
    route_config = hcm["routeConfig"]
    assert route_config["name"] == "inbound|9080|http|productpage.default.svc.cluster.local"
    (vhost,) = route_config["virtualHosts"]
    assert vhost["name"] == "inbound|http|9080" and vhost["domains"] == ["*"]
    (route,) = vhost["routes"]
    assert route["name"] == "default" and route["match"] == {"prefix": "/"}
    assert route["route"]["cluster"] == "inbound|9080|http|productpage.default.svc.cluster.local"
    assert route["decorator"]["operation"] == "productpage.default.svc.cluster.local:9080/*"
    cluster = clusters["inbound|9080|http|productpage.default.svc.cluster.local"]
    assert cluster["type"] == "STATIC"
    address = cluster["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]
    assert address == {"socketAddress": {"address": "127.0.0.1", "portValue": 9080}}
    assert f"{pod_ip}_9080" in listeners


def test_productpage_outbound_to_reviews(mesh: Mesh) -> None:
    resources = offline_resources(mesh, "deploy/productpage-v1", "default")
    pod_ip = mesh.workloads_by_name[("default", _pod(mesh, "productpage-v1"))].ip
    listeners, routes = as_json(resources.listeners), as_json(resources.routes)
    outbound = listeners["virtualOutbound"]
    assert outbound["address"]["socketAddress"] == {"address": "0.0.0.0", "portValue": 15001}
    assert outbound["useOriginalDst"] is True
    blackhole, passthrough = outbound["filterChains"]
    assert blackhole["filterChainMatch"] == {"prefixRanges": [{"addressPrefix": pod_ip, "prefixLen": 32}]}
    assert blackhole["filters"][0]["typedConfig"]["cluster"] == "BlackHoleCluster"
    assert passthrough["filters"][0]["typedConfig"]["cluster"] == "PassthroughCluster"
    hcm = listeners["0.0.0.0_9080"]["filterChains"][-1]["filters"][0]["typedConfig"]
    assert hcm["statPrefix"] == "0.0.0.0_9080" and hcm["rds"]["routeConfigName"] == "9080"
    vip = mesh.service("reviews.default.svc.cluster.local").address  # type: ignore[union-attr]
    vhost = next(
        v for v in routes["9080"]["virtualHosts"] if v["name"] == "reviews.default.svc.cluster.local:9080"
    )
    assert vhost["domains"] == [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local:9080",
        "reviews",
        "reviews:9080",
        "reviews.default.svc.cluster",
        "reviews.default.svc.cluster:9080",
        "reviews.default.svc",
        "reviews.default.svc:9080",
        "reviews.default",
        "reviews.default:9080",
        vip,
        f"{vip}:9080",
    ]
    (route,) = vhost["routes"]
    assert route["name"] == "default" and route["match"] == {"prefix": "/"}
    assert route["route"]["cluster"] == "outbound|9080||reviews.default.svc.cluster.local"
    assert route["route"]["timeout"] == "0s"
    assert route["route"]["retryPolicy"] == SEED_RETRY


def test_reviews_endpoints_are_three_healthy_pods(mesh: Mesh) -> None:
    _, clusters = offline_dumps(mesh, "deploy/productpage-v1", "default")
    (status,) = [
        c
        for c in clusters["clusterStatuses"]
        if c["name"] == "outbound|9080||reviews.default.svc.cluster.local"
    ]
    reviews_ips = sorted(w.ip for w in mesh.workloads if w.labels.get("app") == "reviews")
    hosts = status["hostStatuses"]
    assert sorted(h["address"]["socketAddress"]["address"] for h in hosts) == reviews_ips
    assert all(h["address"]["socketAddress"]["portValue"] == 9080 for h in hosts)
    assert all(h["healthStatus"]["edsHealthStatus"] == "HEALTHY" for h in hosts)


def _pod(mesh: Mesh, deployment: str) -> str:
    return next(w.name for w in mesh.workloads if w.deployment == deployment)
