"""CDS: outbound, inbound and special clusters (istio-reference.md §5).

Outbound clusters (`outbound|<port>|<subset>|<fqdn>`) depend only on the service, the port, the
subset and the DestinationRule that applies, so each is built once per mesh snapshot and shared by
every proxy that sees it (memo key below). Inbound clusters point at the app inside the pod.
"""

from __future__ import annotations

from functools import partial

from pilotfish.config import istio
from pilotfish.config.meshconfig import Profile
from pilotfish.config.objects import ConfigObject
from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.protocol import Protocol
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import destination_rule, scope_for, shape_key
from pilotfish.model.service import Resolution, Service, ServicePort
from pilotfish.xds import policy, wire
from pilotfish.xds.endpoints import dns_load_assignment, inbound_targets, static_load_assignment
from pilotfish.xds.protos import (
    ADS_SOURCE,
    address_pb2,
    circuit_breaker_pb2,
    cluster_pb2,
    duration,
    istio_metadata,
    u32,
)
from pilotfish.xds.resources import Resource

_MAX = 4294967295


def outbound_clusters(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    """Default then subset clusters for every visible service port (1.3 `BuildClusters` order).
    The list is shared by every proxy of the same shape (do not mutate it)."""
    key = ("cds-outbound", *shape_key(mesh, proxy))
    return mesh.cached(key, lambda: _outbound_clusters(mesh, proxy))


def _outbound_clusters(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    result = []
    for service in scope_for(mesh, proxy).services:
        rule = destination_rule(mesh, proxy, service)
        for port in service.ports:
            if port.protocol is Protocol.UDP:
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
        if rule is None and service.resolution is Resolution.CLIENT_SIDE_LB:
            name = names.outbound_cluster_name(port.port, service.hostname, subset)
            encoded = _plain_eds_template(mesh, port).render(name)
            resource = Resource.encoded(name, cluster_pb2.Cluster, encoded)
        else:
            cluster = build_outbound_cluster(mesh, service, port, subset, rule)
            resource = Resource(cluster.name, cluster)
        mesh.memo[key] = resource
    return resource


def _plain_eds_template(mesh: Mesh, port: ServicePort) -> wire.Template:
    """An EDS cluster without DestinationRule differs from the next one (of the same protocol) only
    in its name, which is also its EDS service name: `build_outbound_cluster`'s result with a hole
    there, rendered per cluster (`xds.wire`; most clusters of a big mesh are such)."""

    def build() -> wire.Template:
        service = Service("template.invalid", "template", "", "", (port,))
        cluster = build_outbound_cluster(mesh, service, port, "", None)
        cluster.name = cluster.eds_cluster_config.service_name = wire.hole(0)
        return wire.Template(cluster)

    return mesh.cached(("cds-eds-template", port.protocol.is_http2), build)


def build_outbound_cluster(
    mesh: Mesh, service: Service, port: ServicePort, subset: str, rule: ConfigObject | None
) -> cluster_pb2.Cluster:
    modern = mesh.profile is Profile.MODERN
    cluster = cluster_pb2.Cluster()
    cluster.CopyFrom(_outbound_template(mesh))
    cluster.name = names.outbound_cluster_name(port.port, service.hostname, subset)
    _set_discovery(cluster, mesh, service, port, subset, rule)
    if modern:
        cluster.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST
    if port.protocol.is_http2:
        options = policy.http_protocol_options(cluster)
        options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value = 1073741824
        policy.set_http_protocol_options(cluster, options)
    if rule is not None:
        _apply_rule(cluster, rule, port, subset, modern)
    return cluster


def _apply_rule(
    cluster: cluster_pb2.Cluster, rule: ConfigObject, port: ServicePort, subset: str, modern: bool
) -> None:
    spec: istio.DestinationRuleSpec = rule.spec
    effective = policy.effective_policy(spec, port.port, subset)
    policy.apply_connection_pool(cluster, effective.connection_pool)
    policy.apply_outlier_detection(cluster, effective.outlier_detection, modern)
    policy.apply_load_balancer(cluster, effective.load_balancer)
    policy.apply_tls(cluster, effective.tls, port.protocol.is_http2)
    cluster.metadata.CopyFrom(istio_metadata(rule.config_path()))


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
        eds = cluster.eds_cluster_config
        eds.service_name = cluster.name
        eds.eds_config.CopyFrom(ADS_SOURCE)


def _outbound_template(mesh: Mesh) -> cluster_pb2.Cluster:
    """What every outbound cluster starts with (connect timeout, default circuit breakers): copied,
    which costs a third of building it field by field. Never mutated."""

    def build() -> cluster_pb2.Cluster:
        cluster = cluster_pb2.Cluster(connect_timeout=duration(mesh.mesh_config.connect_timeout))
        cluster.circuit_breakers.thresholds.append(_default_thresholds(mesh.profile is Profile.MODERN))
        return cluster

    return mesh.cached("cds-template", build)


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

    def build() -> list[Resource]:
        clusters = [_blackhole(mesh)]
        if not (proxy.is_router and mesh.profile is Profile.MODERN):
            clusters.append(_passthrough(mesh, names.PASSTHROUGH_CLUSTER, None))
        return [Resource(c.name, c) for c in clusters]

    return mesh.cached(("special", proxy.is_router), build)


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
    inbound passthrough cluster(s) that keep the original destination, bound to 127.0.0.6. They do
    not depend on the pod itself, so pods serving the same ports share them."""
    result: dict[str, Resource] = {}
    modern = mesh.profile is Profile.MODERN
    for target in inbound_targets(mesh, proxy):
        key = inbound_cluster_key(target.service, target.port, target.target_port, modern)
        if key.name not in result:
            memo_key = ("cds-inbound", key.name, target.target_port, proxy.ipv6)
            build = partial(_inbound_cluster, mesh, key.name, target.target_port, proxy.ipv6)
            result[key.name] = mesh.cached(memo_key, build)
    passthrough = mesh.cached(
        ("cds-inbound-passthrough", proxy.ipv6), lambda: _inbound_passthrough(mesh, proxy)
    )
    return [*result.values(), *passthrough]


def _inbound_cluster(mesh: Mesh, name: str, target_port: int, ipv6: bool) -> Resource:
    modern = mesh.profile is Profile.MODERN
    cluster = cluster_pb2.Cluster(
        name=name, type=cluster_pb2.Cluster.STATIC, connect_timeout=duration(mesh.mesh_config.connect_timeout)
    )
    localhost = "::1" if ipv6 else "127.0.0.1"
    cluster.load_assignment.CopyFrom(static_load_assignment(name, localhost, target_port))
    cluster.circuit_breakers.thresholds.append(_default_thresholds(modern) if modern else _empty_threshold())
    return Resource(name, cluster)


def _empty_threshold() -> circuit_breaker_pb2.CircuitBreakers.Thresholds:
    return circuit_breaker_pb2.CircuitBreakers.Thresholds()


def inbound_cluster_key(
    service: Service, port: ServicePort, target_port: int, modern: bool
) -> names.ClusterKey:
    """1.3: `inbound|<servicePort>|<portName>|<fqdn>`; modern: `inbound|<targetPort>||`."""
    if modern:
        return names.ClusterKey.inbound(target_port)
    return names.ClusterKey.inbound(port.port, port.name, service.hostname)


def _inbound_passthrough(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    if mesh.profile is Profile.MODERN:
        wanted = [(names.INBOUND_PASSTHROUGH_CLUSTER_MODERN, names.INBOUND_PASSTHROUGH_SOURCE_V4)]
    else:
        wanted = [(names.INBOUND_PASSTHROUGH_CLUSTER_V4, names.INBOUND_PASSTHROUGH_SOURCE_V4)]
        if proxy.ipv6:
            wanted.append((names.INBOUND_PASSTHROUGH_CLUSTER_V6, names.INBOUND_PASSTHROUGH_SOURCE_V6))
    return [Resource(name, _passthrough(mesh, name, source)) for name, source in wanted]
