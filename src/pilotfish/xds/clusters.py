"""CDS: outbound, inbound and special clusters (istio-reference.md §5).

Outbound clusters (`outbound|<port>|<subset>|<fqdn>`) depend only on the service, the port, the
subset and the DestinationRule that applies, so each is built once per mesh snapshot and shared by
every proxy that sees it (memo key below). Inbound clusters point at the app inside the pod.
"""

from __future__ import annotations

from collections.abc import Iterator

from pilotfish.config import istio
from pilotfish.config.meshconfig import Profile
from pilotfish.config.objects import ConfigObject
from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import destination_rule, scope_for
from pilotfish.model.service import Resolution, Service, ServicePort
from pilotfish.xds import policy
from pilotfish.xds.endpoints import dns_load_assignment, inbound_targets, static_load_assignment
from pilotfish.xds.protos import (
    address_pb2,
    circuit_breaker_pb2,
    cluster_pb2,
    duration,
    istio_metadata,
    u32,
)
from pilotfish.xds.protos import ads_source as _ads_source
from pilotfish.xds.resources import Resource

_MAX = 4294967295


def outbound_clusters(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    """Default then subset clusters for every visible service port (1.3 `BuildClusters` order)."""
    result = []
    for service in scope_for(mesh, proxy).services:
        rule = destination_rule(mesh, proxy, service)
        for port in service.ports:
            if port.protocol.value == "UDP":
                continue
            result.append(_shared_outbound(mesh, service, port, "", rule))
            if rule is not None:
                result.extend(_shared_outbound(mesh, service, port, s.name, rule) for s in rule.spec.subsets)
    return result


def _shared_outbound(
    mesh: Mesh, service: Service, port: ServicePort, subset: str, rule: ConfigObject | None
) -> Resource:
    key = ("cds", service.hostname, port.port, subset, rule.key if rule is not None else None)
    resource = mesh.memo.get(key)
    if resource is None:
        cluster = build_outbound_cluster(mesh, service, port, subset, rule)
        resource = mesh.memo[key] = Resource(cluster.name, cluster)
    assert isinstance(resource, Resource)
    return resource


def build_outbound_cluster(
    mesh: Mesh, service: Service, port: ServicePort, subset: str, rule: ConfigObject | None
) -> cluster_pb2.Cluster:
    key = names.ClusterKey.outbound(port.port, service.hostname, subset)
    modern = mesh.profile is Profile.MODERN
    cluster = cluster_pb2.Cluster(name=key.name, connect_timeout=duration(mesh.mesh_config.connect_timeout))
    _set_discovery(cluster, mesh, service, port, subset, rule)
    cluster.circuit_breakers.thresholds.append(_default_thresholds(modern))
    if modern:
        cluster.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST
    if port.protocol.is_http2:
        options = policy.http_protocol_options(cluster)
        options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value = 1073741824
        policy.set_http_protocol_options(cluster, options)
    spec: istio.DestinationRuleSpec | None = rule.spec if rule is not None else None
    effective = policy.effective_policy(spec, port.port, subset)
    policy.apply_connection_pool(cluster, effective.connection_pool)
    policy.apply_outlier_detection(cluster, effective.outlier_detection, modern)
    policy.apply_load_balancer(cluster, effective.load_balancer)
    policy.apply_tls(cluster, effective.tls, port.protocol.is_http2)
    if rule is not None:
        cluster.metadata.CopyFrom(istio_metadata(rule.config_path()))
    return cluster


def _set_discovery(
    cluster: cluster_pb2.Cluster,
    mesh: Mesh,
    service: Service,
    port: ServicePort,
    subset: str,
    rule: ConfigObject | None,
) -> None:
    if service.resolution is Resolution.PASSTHROUGH:
        cluster.type = cluster_pb2.Cluster.ORIGINAL_DST
        cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    elif service.resolution is Resolution.DNS_LB:
        cluster.type = cluster_pb2.Cluster.STRICT_DNS
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
        cluster.respect_dns_ttl = True
        cluster.load_assignment.CopyFrom(dns_load_assignment(mesh, service, port, subset, rule))
    else:
        cluster.type = cluster_pb2.Cluster.EDS
        cluster.eds_cluster_config.service_name = cluster.name
        cluster.eds_cluster_config.eds_config.CopyFrom(_ads_source())


def _default_thresholds(modern: bool) -> circuit_breaker_pb2.CircuitBreakers.Thresholds:
    if not modern:
        return circuit_breaker_pb2.CircuitBreakers.Thresholds(max_retries=u32(1024))
    return circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=u32(_MAX),
        max_pending_requests=u32(_MAX),
        max_requests=u32(_MAX),
        max_retries=u32(_MAX),
        track_remaining=True,
    )


# --- special clusters -------------------------------------------------------------------------------


def special_clusters(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    """BlackHoleCluster and PassthroughCluster (all proxies in 1.3; modern routers get BlackHole only)."""
    key = ("special", proxy.is_router)
    cached = mesh.memo.get(key)
    if cached is None:
        clusters = [_blackhole(mesh)]
        if not (proxy.is_router and mesh.profile is Profile.MODERN):
            clusters.append(_passthrough(mesh, names.PASSTHROUGH_CLUSTER, None))
        cached = mesh.memo[key] = [Resource(c.name, c) for c in clusters]
    assert isinstance(cached, list)
    return cached


def _blackhole(mesh: Mesh) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=names.BLACKHOLE_CLUSTER,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(mesh.mesh_config.connect_timeout),
    )


def _passthrough(mesh: Mesh, name: str, source: str | None) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration(mesh.mesh_config.connect_timeout),
    )
    if mesh.profile is Profile.MODERN:
        cluster.circuit_breakers.thresholds.append(_default_thresholds(True))
    else:
        cluster.circuit_breakers.thresholds.add(max_connections=u32(102400), max_retries=u32(1024))
    if source is not None:
        cluster.upstream_bind_config.source_address.CopyFrom(
            address_pb2.SocketAddress(address=source, port_value=0)
        )
    return cluster


# --- inbound ----------------------------------------------------------------------------------------


def inbound_clusters(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    """One STATIC cluster per service port this pod serves, to 127.0.0.1:<targetPort>; then the
    inbound passthrough cluster(s) that keep the original destination, bound to 127.0.0.6."""
    result: dict[str, Resource] = {}
    modern = mesh.profile is Profile.MODERN
    for target in inbound_targets(mesh, proxy):
        key = inbound_cluster_key(target.service, target.port, target.target_port, modern)
        if key.name in result:
            continue
        cluster = cluster_pb2.Cluster(
            name=key.name,
            type=cluster_pb2.Cluster.STATIC,
            connect_timeout=duration(mesh.mesh_config.connect_timeout),
        )
        localhost = "::1" if proxy.ipv6 else "127.0.0.1"
        cluster.load_assignment.CopyFrom(static_load_assignment(key.name, localhost, target.target_port))
        cluster.circuit_breakers.thresholds.append(
            _default_thresholds(modern) if modern else _empty_threshold()
        )
        result[key.name] = Resource(key.name, cluster)
    return [*result.values(), *_inbound_passthrough(mesh, proxy)]


def _empty_threshold() -> circuit_breaker_pb2.CircuitBreakers.Thresholds:
    return circuit_breaker_pb2.CircuitBreakers.Thresholds()


def inbound_cluster_key(
    service: Service, port: ServicePort, target_port: int, modern: bool
) -> names.ClusterKey:
    """1.3: `inbound|<servicePort>|<portName>|<fqdn>`; modern: `inbound|<targetPort>||`."""
    if modern:
        return names.ClusterKey.inbound(target_port)
    return names.ClusterKey.inbound(port.port, port.name, service.hostname)


def _inbound_passthrough(mesh: Mesh, proxy: Proxy) -> Iterator[Resource]:
    if mesh.profile is Profile.MODERN:
        cluster = _passthrough(
            mesh, names.INBOUND_PASSTHROUGH_CLUSTER_MODERN, names.INBOUND_PASSTHROUGH_SOURCE_V4
        )
        yield Resource(cluster.name, cluster)
        return
    cluster = _passthrough(mesh, names.INBOUND_PASSTHROUGH_CLUSTER_V4, names.INBOUND_PASSTHROUGH_SOURCE_V4)
    yield Resource(cluster.name, cluster)
    if proxy.ipv6:
        cluster = _passthrough(
            mesh, names.INBOUND_PASSTHROUGH_CLUSTER_V6, names.INBOUND_PASSTHROUGH_SOURCE_V6
        )
        yield Resource(cluster.name, cluster)
