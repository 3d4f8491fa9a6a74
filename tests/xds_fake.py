"""A small fake of the config pipeline for server tests: a tiny YAML format -> real Envoy v3 resources.

The discovery server only needs `load_mesh`, `resolve_proxy` and `generate` (`server.backend`). This
fake implements them over a deliberately small input format, so the server's protocol, push order and
file handling can be tested with real Envoys and real traffic independently of the Istio pipeline:

    router:                       # what router (gateway) proxies get
      port: 18080                 # listener 127.0.0.1:<port>, RDS route "http.<port>"
      routes:                     # in order; first match wins
        - prefix: /
          headers: {x-user: jason}        # optional exact header matches
          weights: {a: 50, b: 50}         # cluster short name -> weight (one entry = plain route)
    clusters:                     # short name -> endpoints; every proxy gets every cluster (EDS)
      a: {endpoints: ["127.0.0.1:9001"], connect_timeout: 1s}

Sidecar proxies get clusters and endpoints only (no listeners or routes), so a route change must not
push anything to them. Pods whose name starts with `unknown` are not part of the mesh (`known=False`,
empty config). Every `Resource` is built once per mesh and shared by all proxies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import any_pb2

from pilotfish.model.names import ClusterKey, NodeId, listener_name
from pilotfish.model.proxy import Proxy
from pilotfish.xds.resources import ProxyResources, Resource, ResourceSet, TypeUrl


@dataclass(frozen=True)
class FakeDiagnostic:
    level: str
    text: str

    def __str__(self) -> str:
        return self.text


def cluster_name(short: str) -> str:
    return ClusterKey.outbound(80, f"{short}.default.svc.cluster.local").name


def route_name(port: int) -> str:
    return f"http.{port}"


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )


def _address(host: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=host, port_value=port))


def build_cluster(short: str, spec: Mapping[str, Any]) -> Resource:
    name = cluster_name(short)
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    cluster.eds_cluster_config.eds_config.CopyFrom(_ads())
    cluster.eds_cluster_config.service_name = name
    timeout = str(spec.get("connect_timeout", "1s"))
    cluster.connect_timeout.FromJsonString(timeout)
    return Resource(name, cluster)


def build_cla(short: str, spec: Mapping[str, Any]) -> Resource:
    name = cluster_name(short)
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    locality = cla.endpoints.add()
    for endpoint in spec.get("endpoints", []):
        host, _, port = str(endpoint).rpartition(":")
        lb = endpoint_components_pb2.LbEndpoint()
        lb.endpoint.address.CopyFrom(_address(host, int(port)))
        locality.lb_endpoints.append(lb)
    return Resource(name, cla)


def build_listener(port: int) -> Resource:
    router = any_pb2.Any()
    router.Pack(router_pb2.Router())
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix=f"fake_{port}")
    hcm.rds.route_config_name = route_name(port)
    hcm.rds.config_source.CopyFrom(_ads())
    hcm.http_filters.add(name="envoy.filters.http.router", typed_config=router)
    packed = any_pb2.Any()
    packed.Pack(hcm)
    name = listener_name("127.0.0.1", port)
    listener = listener_pb2.Listener(name=name, address=_address("127.0.0.1", port))
    chain = listener_components_pb2.FilterChain()
    chain.filters.add(name="envoy.filters.network.http_connection_manager", typed_config=packed)
    listener.filter_chains.append(chain)
    return Resource(name, listener)


def build_routes(port: int, routes: Sequence[Mapping[str, Any]]) -> Resource:
    config = route_pb2.RouteConfiguration(name=route_name(port))
    vhost = config.virtual_hosts.add(name="*:80", domains=["*"])
    for spec in routes:
        route = vhost.routes.add()
        route.match.prefix = str(spec.get("prefix", "/"))
        for header, value in dict(spec.get("headers", {})).items():
            matcher = route.match.headers.add(name=str(header))
            matcher.string_match.exact = str(value)
        weights = {str(k): int(v) for k, v in dict(spec.get("weights", {})).items()}
        if len(weights) == 1:
            route.route.cluster = cluster_name(next(iter(weights)))
        else:
            for short, weight in weights.items():
                route.route.weighted_clusters.clusters.add(name=cluster_name(short)).weight.value = weight
        route.route.timeout.FromJsonString("5s")
    return Resource(config.name, config)


@dataclass
class FakeMesh:
    spec: Mapping[str, Any]
    version: str = ""
    clusters: list[Resource] = field(default_factory=list)
    endpoints: list[Resource] = field(default_factory=list)
    listeners: list[Resource] = field(default_factory=list)
    routes: list[Resource] = field(default_factory=list)
    generated: int = 0

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> FakeMesh:
        version = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        mesh = cls(spec, version)
        for short, cluster in dict(spec.get("clusters", {})).items():
            mesh.clusters.append(build_cluster(short, cluster))
            mesh.endpoints.append(build_cla(short, cluster))
        router = spec.get("router")
        if router:
            port = int(router["port"])
            mesh.listeners.append(build_listener(port))
            mesh.routes.append(build_routes(port, router.get("routes", [])))
        return mesh

    @property
    def services(self) -> list[str]:
        return sorted(dict(self.spec.get("clusters", {})))


def _check(spec: Mapping[str, Any], path: str) -> list[FakeDiagnostic]:
    problems = []
    clusters = dict(spec.get("clusters", {}))
    for i, route in enumerate((spec.get("router") or {}).get("routes", [])):
        for short in dict(route.get("weights", {})):
            if short not in clusters:
                problems.append(
                    FakeDiagnostic("error", f"{path}: router.routes[{i}]: unknown cluster {short!r}")
                )
    return problems


class FakeBackend:
    def __init__(self) -> None:
        self.generate_calls = 0

    def load_mesh(self, paths: Sequence[Path]) -> tuple[FakeMesh | None, list[FakeDiagnostic]]:
        merged: dict[str, Any] = {}
        diagnostics: list[FakeDiagnostic] = []
        for path in paths:
            try:
                data = yaml.safe_load(Path(path).read_text()) or {}
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
                problem = getattr(err, "problem", None) or "invalid YAML"
                diagnostics.append(FakeDiagnostic("error", f"{where}: invalid YAML: {problem}"))
                continue
            if not isinstance(data, dict):
                diagnostics.append(FakeDiagnostic("error", f"{path}:1: expected a mapping"))
                continue
            for key, value in data.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            diagnostics += _check(merged, str(path))
        if any(d.level == "error" for d in diagnostics):
            return None, diagnostics
        return FakeMesh.of(merged), diagnostics

    def resolve_proxy(self, mesh: Any, node_id: str, metadata: Mapping[str, Any]) -> Proxy:
        node = NodeId.parse(node_id)
        return Proxy(
            node.proxy_type,
            node.ip,
            node.pod_name,
            node.namespace,
            known=not node.pod_name.startswith("unknown"),
        )

    def generate(self, mesh: Any, proxy: Proxy) -> ProxyResources:
        assert isinstance(mesh, FakeMesh)
        self.generate_calls += 1
        if not proxy.known:
            return resources_of([], [], [], [])
        if not proxy.is_router:
            return resources_of(mesh.clusters, mesh.endpoints, [], [])
        return resources_of(mesh.clusters, mesh.endpoints, mesh.listeners, mesh.routes)


def resources_of(
    clusters: Sequence[Resource],
    endpoints: Sequence[Resource],
    listeners: Sequence[Resource],
    routes: Sequence[Resource],
) -> ProxyResources:
    return ProxyResources(
        ResourceSet.of(TypeUrl.CLUSTER, clusters),
        ResourceSet.of(TypeUrl.ENDPOINT, endpoints),
        ResourceSet.of(TypeUrl.LISTENER, listeners),
        ResourceSet.of(TypeUrl.ROUTE, routes),
    )


def write_spec(path: Path, spec: Mapping[str, Any]) -> None:
    """Write atomically (temp file + rename) so a watcher never sees a half-written file by accident."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(dict(spec), sort_keys=False))
    tmp.replace(path)
