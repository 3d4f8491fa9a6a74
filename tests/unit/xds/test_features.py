"""VirtualService, DestinationRule, ServiceEntry and Sidecar features, checked in the generated config
(and the whole kitchen-sink mesh accepted by the real Envoy)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from google.protobuf import json_format

from pilotfish.model.mesh import Mesh
from pilotfish.pipeline import mesh_from_texts, offline_resources
from pilotfish.xds.resources import ProxyResources
from tests.envoy_validate import envoy_validate

BASE = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: db}
  ports: [{name: tcp-db, port: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: default}
spec:
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: app, ports: [{containerPort: 9080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: default}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec: {containers: [{name: app, ports: [{containerPort: 9080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: default}
spec:
  template:
    metadata: {labels: {app: client, role: tester}}
    spec: {containers: [{name: app}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: default}
spec:
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: app, ports: [{containerPort: 5432}]}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: LEAST_CONN}
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1, maxRetries: 3}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user}
"""

VS = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: {end-user: {exact: jason}}
      queryParams: {debug: {exact: "1"}}
      method: {exact: GET}
    route:
    - destination: {host: reviews, subset: v2}
    fault:
      abort: {httpStatus: 500, percentage: {value: 50}}
      delay: {fixedDelay: 7s, percentage: {value: 100}}
  - match:
    - uri: {prefix: /old}
    redirect: {uri: /new, authority: reviews.example.com, redirectCode: 302}
  - match:
    - sourceLabels: {role: tester}
    route:
    - destination: {host: reviews, subset: v2}
  - match:
    - uri: {regex: "^/api/v[0-9]+/.*"}
      ignoreUriCase: true
    rewrite: {uri: /api/, authority: internal}
    route:
    - destination: {host: reviews, subset: v1}
    timeout: 0.5s
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,503"}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
      headers: {request: {set: {x-canary: "no"}}}
    - destination: {host: reviews, subset: v2}
      weight: 20
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 25}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}]
      allowMethods: [GET, POST]
      maxAge: 24h
    headers:
      response: {add: {x-served-by: mesh}, remove: [x-internal]}
  - route:
    - destination: {host: reviews, subset: v1}
"""

SE = """\
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: default}
spec:
  hosts: [legacy.internal]
  addresses: [192.0.2.10/32]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.44.9.9}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: external, namespace: default}
spec:
  host: api.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, sni: api.example.com}
"""


def build(text: str) -> Mesh:
    mesh, diagnostics = mesh_from_texts([("mesh.yaml", textwrap.dedent(text))])
    assert mesh is not None, "\n".join(map(str, diagnostics))
    return mesh


def as_json(items: Any) -> dict[str, dict[str, Any]]:
    return {r.name: json_format.MessageToDict(r.message) for r in items}


@pytest.fixture(scope="module")
def client() -> ProxyResources:
    return offline_resources(build(BASE + VS + SE), "deploy/client", "default")


def reviews_routes(resources: ProxyResources) -> list[dict[str, Any]]:
    routes = as_json(resources.routes)["9080"]
    vhost = next(v for v in routes["virtualHosts"] if v["name"] == "reviews.default.svc.cluster.local:9080")
    return list(vhost["routes"])


def test_header_query_method_match_and_fault(client: ProxyResources) -> None:
    first = reviews_routes(client)[0]
    assert first["name"] == "jason"
    assert first["match"]["headers"] == [
        {"name": "end-user", "stringMatch": {"exact": "jason"}},
        {"name": ":method", "stringMatch": {"exact": "GET"}},
    ]
    assert first["match"]["queryParameters"] == [{"name": "debug", "stringMatch": {"exact": "1"}}]
    fault = first["typedPerFilterConfig"]["envoy.filters.http.fault"]
    assert fault["abort"] == {
        "httpStatus": 500,
        "percentage": {"numerator": 500000, "denominator": "MILLION"},
    }
    assert fault["delay"]["fixedDelay"] == "7s"


def test_redirect(client: ProxyResources) -> None:
    redirect = reviews_routes(client)[1]["redirect"]
    assert redirect == {
        "hostRedirect": "reviews.example.com",
        "pathRedirect": "/new",
        "responseCode": "FOUND",
    }


def test_source_labels_apply_to_matching_proxies_only(client: ProxyResources) -> None:
    assert (
        reviews_routes(client)[2]["route"]["cluster"] == "outbound|9080|v2|reviews.default.svc.cluster.local"
    )
    other = offline_resources(build(BASE + VS), "deploy/reviews-v1", "default")
    clusters = [r.get("route", {}).get("cluster") for r in reviews_routes(other)]
    assert clusters.count("outbound|9080|v2|reviews.default.svc.cluster.local") == 1  # only the jason route


def test_regex_rewrite_timeout_retries(client: ProxyResources) -> None:
    route = reviews_routes(client)[3]
    assert route["match"] == {"safeRegex": {"regex": "^/api/v[0-9]+/.*"}, "caseSensitive": False}
    action = route["route"]
    assert action["prefixRewrite"] == "/api/" and action["hostRewriteLiteral"] == "internal"
    assert action["timeout"] == "0.500s"
    # With max_stream_duration present Envoy ignores `timeout` for HTTP: the stream limit must carry it too.
    assert action["maxStreamDuration"] == {"maxStreamDuration": "0.500s", "grpcTimeoutHeaderMax": "0.500s"}
    assert action["retryPolicy"]["numRetries"] == 3
    assert action["retryPolicy"]["retryOn"] == "gateway-error"
    assert action["retryPolicy"]["retriableStatusCodes"] == [503]
    assert action["retryPolicy"]["perTryTimeout"] == "2s"


def test_weights_mirror_cors_headers(client: ProxyResources) -> None:
    route = reviews_routes(client)[4]
    weighted = route["route"]["weightedClusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in weighted] == [
        ("outbound|9080|v1|reviews.default.svc.cluster.local", 80),
        ("outbound|9080|v2|reviews.default.svc.cluster.local", 20),
    ]
    assert weighted[0]["requestHeadersToAdd"][0]["header"] == {"key": "x-canary", "value": "no"}
    (mirror,) = route["route"]["requestMirrorPolicies"]
    assert mirror["cluster"] == "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert mirror["runtimeFraction"]["defaultValue"] == {"numerator": 250000, "denominator": "MILLION"}
    cors = route["typedPerFilterConfig"]["envoy.filters.http.cors"]
    assert cors["allowOriginStringMatch"] == [{"exact": "https://example.com"}]
    assert cors["allowMethods"] == "GET,POST" and cors["maxAge"] == "86400"
    added = route["responseHeadersToAdd"][0]
    assert (
        added["header"] == {"key": "x-served-by", "value": "mesh"} and "appendAction" not in added
    )  # default: append
    assert route["responseHeadersToRemove"] == ["x-internal"]


def test_catch_all_stops_translation(client: ProxyResources) -> None:
    assert len(reviews_routes(client)) == 5  # the sixth rule is shadowed by the catch-all fifth


def test_destination_rule_policies(client: ProxyResources) -> None:
    clusters = as_json(client.clusters)
    default = clusters["outbound|9080||reviews.default.svc.cluster.local"]
    assert default["lbPolicy"] == "LEAST_REQUEST" and default["connectTimeout"] == "2s"
    thresholds = default["circuitBreakers"]["thresholds"][0]
    assert thresholds == {"maxConnections": 1, "maxPendingRequests": 1, "maxRetries": 3}
    assert default["outlierDetection"]["consecutive5xx"] == 1
    assert default["outlierDetection"]["baseEjectionTime"] == "180s"
    options = default["typedExtensionProtocolOptions"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert options["commonHttpProtocolOptions"]["maxRequestsPerConnection"] == 1
    v2 = clusters["outbound|9080|v2|reviews.default.svc.cluster.local"]
    assert v2["lbPolicy"] == "RING_HASH" and v2["ringHashLbConfig"]["minimumRingSize"] == "1024"
    assert "config" in v2["metadata"]["filterMetadata"]["istio"]


def test_subset_endpoints(client: ProxyResources) -> None:
    endpoints = as_json(client.endpoints)

    def count(name: str) -> int:
        groups = endpoints[name].get("endpoints", [])
        return sum(len(g["lbEndpoints"]) for g in groups)

    assert count("outbound|9080||reviews.default.svc.cluster.local") == 3
    assert count("outbound|9080|v1|reviews.default.svc.cluster.local") == 1
    assert count("outbound|9080|v2|reviews.default.svc.cluster.local") == 2


def test_hash_policy_for_consistent_hash_subset(client: ProxyResources) -> None:
    route = reviews_routes(client)[0]
    assert route["route"]["hashPolicy"] == [{"header": {"headerName": "x-user"}}]


def test_tcp_service_listener_on_vip(client: ProxyResources) -> None:
    listeners = as_json(client.listeners)
    name = next(n for n in listeners if n.endswith("_5432"))
    assert not name.startswith("0.0.0.0")
    proxy = listeners[name]["filterChains"][0]["filters"][0]["typedConfig"]
    assert proxy["cluster"] == "outbound|5432||db.default.svc.cluster.local"


def test_service_entries(client: ProxyResources) -> None:
    clusters = as_json(client.clusters)
    dns = clusters["outbound|443||api.example.com"]
    assert dns["type"] == "STRICT_DNS"
    assert dns["transportSocket"]["typedConfig"]["sni"] == "api.example.com"
    assert "transportSocket" not in clusters["outbound|80||api.example.com"]
    assert clusters["outbound|8080||legacy.internal"]["type"] == "EDS"
    listeners = as_json(client.listeners)
    chains = listeners["0.0.0.0_443"]["filterChains"]
    assert any(c.get("filterChainMatch", {}).get("serverNames") == ["api.example.com"] for c in chains)
    routes = as_json(client.routes)["8080"]
    legacy = next(v for v in routes["virtualHosts"] if v["name"] == "legacy.internal:8080")
    assert "192.0.2.10" in legacy["domains"]


def test_registry_only_and_sidecar_scope() -> None:
    text = (
        BASE
        + """\
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./reviews.default.svc.cluster.local"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
    )
    resources = offline_resources(build(text), "deploy/client", "default")
    clusters = as_json(resources.clusters)
    assert "outbound|9080||reviews.default.svc.cluster.local" in clusters
    assert not any("db.default" in name for name in clusters)
    catch_all = as_json(resources.routes)["9080"]["virtualHosts"][-1]
    assert catch_all["name"] == "block_all" and catch_all["routes"][0]["directResponse"]["status"] == 502
    outbound = as_json(resources.listeners)["virtualOutbound"]
    assert outbound["filterChains"][-1]["filters"][0]["typedConfig"]["cluster"] == "BlackHoleCluster"


@pytest.mark.envoy
def test_envoy_accepts_kitchen_sink(client: ProxyResources) -> None:
    accepted, output = envoy_validate(client)
    assert accepted, output


def test_service_entry_with_many_addresses_gets_a_listener_per_address() -> None:
    """Istio 1.3 covers every address of a TCP ServiceEntry: /32s get `<ip>_<port>`, wider CIDRs
    a prefix-matched chain on the wildcard listener (github.yaml: 18 addresses on port 22)."""
    from tests.paths import CONFORMANCE

    text = BASE + "---\n" + (CONFORMANCE / "istio-samples/external/github.yaml").read_text()
    listeners = as_json(offline_resources(build(text), "deploy/client", "default").listeners)
    assert "192.30.252.153_22" in listeners and "54.87.5.173_22" in listeners
    chains = listeners["0.0.0.0_22"]["filterChains"]
    prefixes = [r["addressPrefix"] for c in chains for r in c.get("filterChainMatch", {}).get("prefixRanges", [])]
    assert "192.30.252.0" in prefixes and "192.30.252.153" not in prefixes
