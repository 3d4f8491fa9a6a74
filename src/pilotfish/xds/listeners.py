"""LDS for sidecars (istio-reference.md §3): virtualOutbound (15001), virtualInbound (15006), the
per-port outbound listeners and, in the 1.3 profile, the per-port inbound listeners.

Connections reach these listeners through iptables: outbound traffic is redirected to 15001, whose
`use_original_dst` hands it to the listener matching the original destination (`0.0.0.0_9080` for
an HTTP service, `<vip>_<port>` for TCP); inbound traffic is redirected to 15006, whose
`original_dst` listener filter restores the destination so a filter chain can match its port.
"""

from __future__ import annotations

from typing import TypeAlias

from pilotfish.config.meshconfig import Profile
from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import scope_for
from pilotfish.model.service import Service
from pilotfish.xds.accesslog import access_logs
from pilotfish.xds.clusters import inbound_cluster_key
from pilotfish.xds.endpoints import InboundTarget, inbound_targets
from pilotfish.xds.hcm import Side, connection_manager, hcm_filter
from pilotfish.xds.outbound import WILDCARD, Kind, OutboundListener, outbound_plan
from pilotfish.xds.protos import (
    HTTP_INSPECTOR,
    ORIGINAL_DST,
    TCP_PROXY,
    TLS_INSPECTOR,
    ZERO,
    base_pb2,
    cidr,
    duration,
    http_inspector_pb2,
    listener_components_pb2,
    listener_filter,
    listener_pb2,
    network_filter,
    original_dst_pb2,
    route_pb2,
    socket_address,
    tcp_proxy_pb2,
    tls_inspector_pb2,
)
from pilotfish.xds.resources import Resource

Listener: TypeAlias = listener_pb2.Listener
FilterChain: TypeAlias = listener_components_pb2.FilterChain

SNIFFED_HTTP_ALPNS_13 = ("http/1.1", "http/1.0")


def sidecar_listeners(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    modern = mesh.profile is Profile.MODERN
    inbound = [] if modern else [build_inbound_listener(mesh, proxy, t) for t in _inbound_ports(mesh, proxy)]
    outbound = [build_outbound_listener(mesh, proxy, li) for li in outbound_plan(mesh, proxy)]
    listeners = [*inbound, *outbound, virtual_outbound(mesh, proxy), virtual_inbound(mesh, proxy, inbound)]
    return [Resource(li.name, li) for li in listeners]


def _tcp_proxy(cluster: str, mesh: Mesh, stat_prefix: str | None = None) -> listener_components_pb2.Filter:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix or cluster, cluster=cluster)
    proxy.access_log.extend(access_logs(mesh.mesh_config))
    return network_filter(TCP_PROXY, proxy)


def _own_ip_blackhole(proxy: Proxy) -> FilterChain:
    """1.3 `PILOT_RESTRICT_POD_UP_TRAFFIC_LOOP`: traffic to the pod's own IP must not loop through."""
    chain = FilterChain(filters=[network_filter(TCP_PROXY, _blackhole_proxy())])
    chain.filter_chain_match.prefix_ranges.append(cidr(proxy.ip))
    return chain


def _blackhole_proxy() -> tcp_proxy_pb2.TcpProxy:
    return tcp_proxy_pb2.TcpProxy(stat_prefix=names.BLACKHOLE_CLUSTER, cluster=names.BLACKHOLE_CLUSTER)


# --- virtualOutbound ----------------------------------------------------------------------------------


def virtual_outbound(mesh: Mesh, proxy: Proxy) -> Listener:
    modern = mesh.profile is Profile.MODERN
    listener = Listener(
        name=names.VIRTUAL_OUTBOUND_LISTENER,
        address=socket_address(WILDCARD, names.OUTBOUND_CAPTURE_PORT),
        traffic_direction=base_pb2.OUTBOUND,
    )
    listener.use_original_dst.value = True
    registry_only = scope_for(mesh, proxy).registry_only
    catch_all = names.BLACKHOLE_CLUSTER if registry_only else names.PASSTHROUGH_CLUSTER
    if modern:
        blackhole = FilterChain(
            name="virtualOutbound-blackhole", filters=[network_filter(TCP_PROXY, _blackhole_proxy())]
        )
        blackhole.filter_chain_match.destination_port.value = names.OUTBOUND_CAPTURE_PORT
        listener.filter_chains.append(blackhole)
        name = "virtualOutbound-catchall-tcp"
    else:
        listener.filter_chains.append(_own_ip_blackhole(proxy))
        name = ""
    logs = not registry_only
    listener.filter_chains.add(
        name=name,
        filters=[_tcp_proxy(catch_all, mesh) if logs else network_filter(TCP_PROXY, _blackhole_proxy())],
    )
    return listener


# --- outbound per-port listeners ------------------------------------------------------------------------


def build_outbound_listener(mesh: Mesh, proxy: Proxy, plan: OutboundListener) -> Listener:
    modern = mesh.profile is Profile.MODERN
    listener = Listener(
        name=plan.name,
        address=socket_address(plan.bind, plan.port),
        traffic_direction=base_pb2.OUTBOUND,
    )
    listener.bind_to_port.value = False
    stat_prefix = f"outbound_{plan.name}" if modern else plan.name
    if plan.kind is Kind.HTTP:
        _http_outbound(listener, mesh, proxy, plan, stat_prefix)
    elif plan.kind is Kind.TCP:
        _tcp_outbound(listener, mesh, proxy, plan)
    else:
        _sniffed_outbound(listener, mesh, proxy, plan, stat_prefix)
    return listener


def _http_outbound(
    listener: Listener, mesh: Mesh, proxy: Proxy, plan: OutboundListener, stat_prefix: str
) -> None:
    if plan.bind == WILDCARD and mesh.profile is not Profile.MODERN:
        listener.filter_chains.append(_own_ip_blackhole(proxy))
    manager = connection_manager(mesh.mesh_config, Side.OUTBOUND, stat_prefix, rds=plan.route_name)
    listener.filter_chains.add(filters=[hcm_filter(manager)])


def _tcp_outbound(listener: Listener, mesh: Mesh, proxy: Proxy, plan: OutboundListener) -> None:
    if plan.bind != WILDCARD:
        service = plan.services[0]
        cluster = names.ClusterKey.outbound(plan.port, service.hostname).name
        listener.filter_chains.add(filters=[_tcp_proxy(cluster, mesh)])
        return
    if mesh.profile is not Profile.MODERN:
        listener.filter_chains.append(_own_ip_blackhole(proxy))
    has_catch_all = False
    for service in plan.services:
        chain = _wildcard_tcp_chain(mesh, service, plan.port)
        if chain is None:
            continue
        if not chain.HasField("filter_chain_match"):
            if has_catch_all:
                continue
            has_catch_all = True
        listener.filter_chains.append(chain)
    if any(c.filter_chain_match.server_names for c in listener.filter_chains):
        listener.listener_filters.append(listener_filter(TLS_INSPECTOR, tls_inspector_pb2.TlsInspector()))
    if not has_catch_all:
        registry_only = scope_for(mesh, proxy).registry_only
        catch_all = names.BLACKHOLE_CLUSTER if registry_only else names.PASSTHROUGH_CLUSTER
        listener.filter_chains.add(filters=[_tcp_proxy(catch_all, mesh)])


def _wildcard_tcp_chain(mesh: Mesh, service: Service, port: int) -> FilterChain | None:
    """A TCP service without a VIP on a shared wildcard listener: matched by its CIDRs or by SNI."""
    cluster = names.ClusterKey.outbound(port, service.hostname).name
    chain = FilterChain(filters=[_tcp_proxy(cluster, mesh)])
    cidrs = [a for a in service.addresses if "/" in a]  # plain addresses have listeners of their own
    service_port = service.port(port)
    if cidrs:
        chain.filter_chain_match.prefix_ranges.extend(cidr(a) for a in cidrs)
    elif service_port is not None and service_port.protocol.is_tls:
        chain.filter_chain_match.server_names.append(service.hostname)
    return chain


def _sniffed_outbound(
    listener: Listener, mesh: Mesh, proxy: Proxy, plan: OutboundListener, stat_prefix: str
) -> None:
    """Unknown protocol: an HTTP chain chosen by the http_inspector's ALPN guess, else TCP."""
    listener.listener_filters.append(listener_filter(HTTP_INSPECTOR, http_inspector_pb2.HttpInspector()))
    listener.listener_filters_timeout.CopyFrom(duration(mesh.mesh_config.protocol_detection_timeout))
    listener.continue_on_listener_filters_timeout = True
    manager = connection_manager(mesh.mesh_config, Side.OUTBOUND, stat_prefix, rds=plan.route_name)
    http = FilterChain(filters=[hcm_filter(manager)])
    http.filter_chain_match.application_protocols.extend(SNIFFED_HTTP_ALPNS_13)
    listener.filter_chains.append(http)
    if plan.bind == WILDCARD:
        registry_only = scope_for(mesh, proxy).registry_only
        cluster = names.BLACKHOLE_CLUSTER if registry_only else names.PASSTHROUGH_CLUSTER
    else:
        cluster = names.ClusterKey.outbound(plan.port, plan.services[0].hostname).name
    listener.filter_chains.add(filters=[_tcp_proxy(cluster, mesh)])


# --- inbound ------------------------------------------------------------------------------------------


def _inbound_ports(mesh: Mesh, proxy: Proxy) -> list[InboundTarget]:
    """One target per pod port (the first service wins when several share a port, as in Istio)."""
    seen: dict[int, InboundTarget] = {}
    for target in inbound_targets(mesh, proxy):
        seen.setdefault(target.target_port, target)
    return list(seen.values())


def _inbound_chain(mesh: Mesh, proxy: Proxy, target: InboundTarget, stat_prefix: str) -> FilterChain:
    modern = mesh.profile is Profile.MODERN
    cluster = inbound_cluster_key(target.service, target.port, target.target_port, modern).name
    if not target.port.protocol.is_http:
        return FilterChain(filters=[_tcp_proxy(cluster, mesh)])
    config = route_pb2.RouteConfiguration(name=f"inbound|{target.target_port}||" if modern else cluster)
    config.validate_clusters.value = False
    vhost = config.virtual_hosts.add(
        name=names.inbound_vhost_name(target.port.name, target.port.port), domains=["*"]
    )
    route = vhost.routes.add(name=names.DEFAULT_ROUTE_NAME)
    route.match.prefix = "/"
    route.route.cluster = cluster
    route.route.timeout.CopyFrom(ZERO)
    route.route.max_stream_duration.grpc_timeout_header_max.CopyFrom(ZERO)
    route.decorator.operation = f"{target.service.hostname}:{target.port.port}/*"
    manager = connection_manager(
        mesh.mesh_config, Side.INBOUND, stat_prefix, route_config=config, http2=target.port.protocol.is_http2
    )
    return FilterChain(filters=[hcm_filter(manager)])


def build_inbound_listener(mesh: Mesh, proxy: Proxy, target: InboundTarget) -> Listener:
    """1.3's per-port inbound listener `<podIP>_<port>` (not bound; virtualInbound holds a copy)."""
    name = names.listener_name(proxy.ip, target.target_port)
    listener = Listener(
        name=name, address=socket_address(proxy.ip, target.target_port), traffic_direction=base_pb2.INBOUND
    )
    listener.bind_to_port.value = False
    listener.filter_chains.append(_inbound_chain(mesh, proxy, target, name))
    return listener


def virtual_inbound(mesh: Mesh, proxy: Proxy, inbound: list[Listener]) -> Listener:
    listener = Listener(
        name=names.VIRTUAL_INBOUND_LISTENER,
        address=socket_address(WILDCARD, names.INBOUND_CAPTURE_PORT),
        traffic_direction=base_pb2.INBOUND,
    )
    listener.listener_filters.append(listener_filter(ORIGINAL_DST, original_dst_pb2.OriginalDst()))
    listener.listener_filters_timeout.CopyFrom(duration(1))
    listener.continue_on_listener_filters_timeout = True
    if mesh.profile is Profile.MODERN:
        _modern_inbound_chains(listener, mesh, proxy)
    else:
        _inbound_chains_13(listener, mesh, proxy, inbound)
    return listener


def _inbound_chains_13(listener: Listener, mesh: Mesh, proxy: Proxy, inbound: list[Listener]) -> None:
    passthrough = [(names.INBOUND_PASSTHROUGH_CLUSTER_V4, "0.0.0.0/0")]
    if proxy.ipv6:
        passthrough.append((names.INBOUND_PASSTHROUGH_CLUSTER_V6, "::0/0"))
    for cluster, prefix in passthrough:
        chain = FilterChain(filters=[_tcp_proxy(cluster, mesh)], metadata=_original_listener(listener.name))
        chain.filter_chain_match.prefix_ranges.append(cidr(prefix))
        listener.filter_chains.append(chain)
    copies = []
    for per_port in inbound:
        for original in per_port.filter_chains:
            chain = FilterChain()
            chain.CopyFrom(original)
            chain.filter_chain_match.destination_port.value = per_port.address.socket_address.port_value
            chain.filter_chain_match.prefix_ranges.append(cidr(per_port.address.socket_address.address))
            chain.metadata.CopyFrom(_original_listener(per_port.name))
            copies.append(chain)
    listener.filter_chains.extend(sorted(copies, key=lambda c: _original_name(c)))


def _modern_inbound_chains(listener: Listener, mesh: Mesh, proxy: Proxy) -> None:
    blackhole = FilterChain(
        name="virtualInbound-blackhole", filters=[network_filter(TCP_PROXY, _blackhole_proxy())]
    )
    blackhole.filter_chain_match.destination_port.value = names.INBOUND_CAPTURE_PORT
    listener.filter_chains.append(blackhole)
    for target in _inbound_ports(mesh, proxy):
        stat_prefix = f"inbound_0.0.0.0_{target.target_port}"
        chain = _inbound_chain(mesh, proxy, target, stat_prefix)
        chain.name = names.listener_name(WILDCARD, target.target_port)
        chain.filter_chain_match.destination_port.value = target.target_port
        listener.filter_chains.append(chain)
    cluster = names.INBOUND_PASSTHROUGH_CLUSTER_MODERN
    listener.filter_chains.add(name=names.VIRTUAL_INBOUND_LISTENER, filters=[_tcp_proxy(cluster, mesh)])


def _original_listener(name: str) -> base_pb2.Metadata:
    metadata = base_pb2.Metadata()
    metadata.filter_metadata["pilot_meta"].update({"original_listener_name": name})
    return metadata


def _original_name(chain: FilterChain) -> str:
    return str(chain.metadata.filter_metadata["pilot_meta"]["original_listener_name"])
