"""LDS and RDS for routers (ingress/egress gateways), from Istio Gateways and the VirtualServices
bound to them (istio-reference.md §7).

One listener `0.0.0.0_<port>` per server port. Plain HTTP servers share route `http.<port>`, whose
virtual hosts are the hosts where a server's hosts and a bound VirtualService's hosts intersect
(`*:80` with domains `*`, `*:80` for `hosts: ["*"]`, as in the seed). TLS-terminating servers get a
filter chain per server (SNI match) with route `https.<port>.<portName>.<gateway>.<namespace>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilotfish.config import istio
from pilotfish.config.meshconfig import Profile
from pilotfish.config.objects import ConfigObject
from pilotfish.model import hosts, names
from pilotfish.model.mesh import Mesh
from pilotfish.model.protocol import Protocol, parse_protocol
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import labels_match, visible, vs_gateways, vs_hosts
from pilotfish.xds.accesslog import access_logs
from pilotfish.xds.hcm import Side, connection_manager, hcm_filter
from pilotfish.xds.httproute import (
    RouteContext,
    destination_cluster,
    merge_catch_all_last,
    translate_virtual_service,
)
from pilotfish.xds.protos import (
    TCP_PROXY,
    TLS_INSPECTOR,
    TLS_TRANSPORT,
    base_pb2,
    listener_components_pb2,
    listener_filter,
    listener_pb2,
    network_filter,
    pack,
    route_components_pb2,
    route_pb2,
    socket_address,
    tcp_proxy_pb2,
    tls_inspector_pb2,
    tls_pb2,
)
from pilotfish.xds.resources import Resource

_TERMINATING = (istio.ServerTLSMode.SIMPLE, istio.ServerTLSMode.MUTUAL, istio.ServerTLSMode.OPTIONAL_MUTUAL)


@dataclass(frozen=True, slots=True)
class BoundServer:
    """A Gateway server as this router serves it."""

    gateway: ConfigObject
    server: istio.Server
    listen_port: int
    index: int = 0
    """The server's position in its Gateway (with the gateway's key: a memo key for the server)."""

    @property
    def gateway_ref(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"

    @property
    def protocol(self) -> Protocol:
        return parse_protocol(self.server.port.protocol)

    @property
    def terminates_tls(self) -> bool:
        tls = self.server.tls
        return (
            tls is not None and tls.mode in _TERMINATING and self.protocol in (Protocol.HTTPS, Protocol.TLS)
        )

    @property
    def serves_http(self) -> bool:
        return self.protocol.is_http or (self.protocol is Protocol.HTTPS and self.terminates_tls)

    @property
    def route_name(self) -> str:
        if self.terminates_tls and self.protocol is Protocol.HTTPS:
            port = self.server.port
            return names.gateway_https_route_name(
                self.listen_port, port.name, self.gateway.name, self.gateway.namespace
            )
        return names.gateway_http_route_name(self.listen_port)


def bound_servers(mesh: Mesh, proxy: Proxy) -> list[BoundServer]:
    """Servers of every Gateway whose selector matches this router's labels."""
    labels = proxy.label_map
    result = []
    for gateway in mesh.gateways:
        spec: istio.GatewaySpec = gateway.spec
        if not spec.selector or not labels_match(spec.selector, labels):
            continue
        for index, server in enumerate(spec.servers):
            result.append(BoundServer(gateway, server, _listen_port(mesh, proxy, server), index))
    return result


def _listen_port(mesh: Mesh, proxy: Proxy, server: istio.Server) -> int:
    """1.3 listens on the server port; modern Istio on the gateway Service's target port."""
    if mesh.profile is not Profile.MODERN:
        return server.port.number
    for service in mesh.services:
        if (
            service.namespace == proxy.namespace
            and service.selector
            and labels_match(service.selector, proxy.label_map)
        ):
            port = service.port(server.port.number)
            if port is not None and isinstance(port.target_port, int):
                return port.target_port
    return server.port.number


# --- listeners ----------------------------------------------------------------------------------------


def router_listeners(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    """Shared by the routers of one namespace and label set (replicas of one gateway Deployment)."""
    key = ("router-lds", proxy.namespace, proxy.labels)
    return mesh.cached(key, lambda: _router_listeners(mesh, proxy))


def _router_listeners(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    by_port: dict[int, list[BoundServer]] = {}
    for bound in bound_servers(mesh, proxy):
        by_port.setdefault(bound.listen_port, []).append(bound)
    listeners = [_listener(mesh, proxy, port, servers) for port, servers in sorted(by_port.items())]
    return [Resource(li.name, li) for li in listeners if li.filter_chains]


def _listener(mesh: Mesh, proxy: Proxy, port: int, servers: list[BoundServer]) -> listener_pb2.Listener:
    name = names.listener_name("0.0.0.0", port)
    listener = listener_pb2.Listener(
        name=name, address=socket_address("0.0.0.0", port), traffic_direction=base_pb2.OUTBOUND
    )
    stat_prefix = f"outbound_{name}" if mesh.profile is Profile.MODERN else name
    plain_http_done = False
    for bound in servers:
        if bound.serves_http and not bound.terminates_tls:
            if not plain_http_done:
                manager = connection_manager(mesh, Side.GATEWAY, stat_prefix, rds=bound.route_name)
                listener.filter_chains.add(filters=[hcm_filter(manager)])
                plain_http_done = True
        elif bound.terminates_tls:
            listener.filter_chains.append(_terminating_chain(mesh, bound, stat_prefix))
        else:
            listener.filter_chains.extend(_tcp_chains(mesh, proxy, bound))
    if any(c.filter_chain_match.server_names for c in listener.filter_chains):
        listener.listener_filters.append(listener_filter(TLS_INSPECTOR, tls_inspector_pb2.TlsInspector()))
    return listener


def _server_names(server: istio.Server) -> list[str]:
    stripped = sorted({h.split("/", 1)[-1] for h in server.hosts})
    return [] if "*" in stripped else stripped


def _terminating_chain(
    mesh: Mesh, bound: BoundServer, stat_prefix: str
) -> listener_components_pb2.FilterChain:
    tls = bound.server.tls
    assert tls is not None
    context = tls_pb2.DownstreamTlsContext()
    context.common_tls_context.alpn_protocols.extend(["h2", "http/1.1"])
    certificate = context.common_tls_context.tls_certificates.add()
    certificate.certificate_chain.filename = tls.server_certificate
    certificate.private_key.filename = tls.private_key
    if tls.mode is istio.ServerTLSMode.MUTUAL:
        context.require_client_certificate.value = True
    if tls.ca_certificates:
        context.common_tls_context.validation_context.trusted_ca.filename = tls.ca_certificates
    chain = listener_components_pb2.FilterChain()
    chain.filter_chain_match.server_names.extend(_server_names(bound.server))
    chain.transport_socket.CopyFrom(base_pb2.TransportSocket(name=TLS_TRANSPORT, typed_config=pack(context)))
    if bound.protocol is Protocol.HTTPS:
        manager = connection_manager(mesh, Side.GATEWAY, stat_prefix, rds=bound.route_name)
        chain.filters.append(hcm_filter(manager))
    else:
        chain.filters.extend(_first_tcp_route_filters(mesh, bound))
    return chain


def _bound_virtual_services(mesh: Mesh, bound: BoundServer) -> list[ConfigObject]:
    """VirtualServices bound to this server's gateway that the server's hosts admit, by creation order."""
    return [vs for vs, _ in _bound_hosts(mesh, bound)]


def _bound_hosts(mesh: Mesh, bound: BoundServer) -> list[tuple[ConfigObject, list[str]]]:
    """Each bound VirtualService with the hosts where it meets the server (never empty). Cached per
    server: a gateway with many servers asks for each several times (listeners, every route)."""

    def build() -> list[tuple[ConfigObject, list[str]]]:
        result = []
        for vs in _virtual_services_by_gateway(mesh).get(bound.gateway_ref, []):
            if not visible(vs.spec.export_to, vs.namespace, bound.gateway.namespace):
                continue
            hosts_ = _intersect(mesh, bound, vs)
            if hosts_:
                result.append((vs, hosts_))
        return result

    return mesh.cached(("gateway-bound-hosts", bound.gateway.key, bound.index), build)


def _virtual_services_by_gateway(mesh: Mesh) -> dict[str, list[ConfigObject]]:
    """`<namespace>/<gateway>` -> the VirtualServices naming it, by creation order: an index, so a
    server does not scan every VirtualService of the mesh."""

    def build() -> dict[str, list[ConfigObject]]:
        index: dict[str, list[ConfigObject]] = {}
        for vs in sorted(mesh.virtual_services, key=lambda v: v.order):
            for ref in sorted(vs_gateways(vs)):
                index.setdefault(ref, []).append(vs)
        return index

    return mesh.cached("gateway-vs-index", build)


def _tcp_chains(mesh: Mesh, proxy: Proxy, bound: BoundServer) -> list[listener_components_pb2.FilterChain]:
    """TLS PASSTHROUGH: a chain per VirtualService `tls` match (by SNI); plain TCP: the first `tcp` route."""
    tls = bound.server.tls
    if tls is not None and tls.mode is istio.ServerTLSMode.PASSTHROUGH:
        return _passthrough_chains(mesh, proxy, bound)
    filters = _first_tcp_route_filters(mesh, bound)
    return [listener_components_pb2.FilterChain(filters=filters)] if filters else []


def _passthrough_chains(
    mesh: Mesh, proxy: Proxy, bound: BoundServer
) -> list[listener_components_pb2.FilterChain]:
    chains = []
    ctx = RouteContext(mesh, proxy, frozenset({bound.gateway_ref}), bound.listen_port)
    for vs in _bound_virtual_services(mesh, bound):
        for rule in vs.spec.tls:
            for match in rule.match:
                if match.port is not None and match.port != bound.server.port.number:
                    continue
                chain = listener_components_pb2.FilterChain(filters=[_tcp_route_filter(ctx, vs, rule.route)])
                chain.filter_chain_match.server_names.extend(match.sni_hosts)
                chains.append(chain)
    return chains


def _first_tcp_route_filters(mesh: Mesh, bound: BoundServer) -> list[listener_components_pb2.Filter]:
    ctx = RouteContext(mesh, _NO_PROXY, frozenset({bound.gateway_ref}), bound.listen_port)
    for vs in _bound_virtual_services(mesh, bound):
        for rule in vs.spec.tcp:
            if all(m.port is not None and m.port != bound.server.port.number for m in rule.match):
                continue
            return [_tcp_route_filter(ctx, vs, rule.route)]
    return []


def _tcp_route_filter(
    ctx: RouteContext, vs: ConfigObject, route: list[istio.RouteDestination]
) -> listener_components_pb2.Filter:
    """The gateway's tcp_proxy for a `tcp`/`tls` route; it logs like every other tcp_proxy (Istio 1.3
    sets the mesh's access log on all of them)."""
    if len(route) == 1:
        cluster = destination_cluster(ctx, vs, route[0].destination)
        proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=cluster, cluster=cluster)
    else:
        proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=f"{vs.name}.{vs.namespace}")
        for dest in route:
            if dest.weight:
                proxy.weighted_clusters.clusters.add(
                    name=destination_cluster(ctx, vs, dest.destination), weight=dest.weight
                )
    proxy.access_log.extend(access_logs(ctx.mesh.mesh_config))
    return network_filter(TCP_PROXY, proxy)


_NO_PROXY = Proxy(names.ProxyType.ROUTER, "0.0.0.0", "-", "-")


# --- routes -------------------------------------------------------------------------------------------


def router_routes(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    """Shared by the routers of one namespace and label set (replicas of one gateway Deployment)."""
    key = ("router-rds", proxy.namespace, proxy.labels)
    return mesh.cached(key, lambda: _router_routes(mesh, proxy))


def _router_routes(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    by_route: dict[str, list[BoundServer]] = {}
    for bound in bound_servers(mesh, proxy):
        if bound.serves_http:
            by_route.setdefault(bound.route_name, []).append(bound)
    configs = [_route_config(mesh, proxy, name, servers) for name, servers in by_route.items()]
    return [Resource(c.name, c) for c in configs]


@dataclass(slots=True)
class _VHost:
    """A virtual host being assembled: routes collected as a list and added to the message once."""

    domains: list[str]
    require_tls: bool
    routes: list[route_components_pb2.Route]


def _route_config(
    mesh: Mesh, proxy: Proxy, name: str, servers: list[BoundServer]
) -> route_pb2.RouteConfiguration:
    config = route_pb2.RouteConfiguration(name=name)
    config.validate_clusters.value = False
    if mesh.profile is Profile.MODERN:
        # Modern domains carry no port; Envoy must drop the Host header's port to match them.
        config.ignore_port_in_host_matching = True
    vhosts: dict[str, _VHost] = {}
    for bound in servers:
        ctx = RouteContext(mesh, proxy, frozenset({bound.gateway_ref}), bound.listen_port)
        for vs, hosts_ in _bound_hosts(mesh, bound):
            routes = translate_virtual_service(ctx, vs)
            for host in hosts_:
                _merge_vhost(vhosts, mesh, host, bound, routes)
    if not vhosts:
        config.virtual_hosts.append(_blackhole_vhost(mesh, servers[0].listen_port))
    for key in sorted(vhosts):
        vhost = vhosts[key]
        added = config.virtual_hosts.add(name=key, domains=vhost.domains)
        if vhost.require_tls:
            added.require_tls = route_components_pb2.VirtualHost.ALL
        added.routes.extend(merge_catch_all_last(vhost.routes))
    return config


def _merge_vhost(
    vhosts: dict[str, _VHost],
    mesh: Mesh,
    host: str,
    bound: BoundServer,
    routes: list[route_components_pb2.Route],
) -> None:
    port = bound.listen_port
    name = names.vhost_name(host, port)
    vhost = vhosts.get(name)
    if vhost is None:
        domains = [host] if mesh.profile is Profile.MODERN else [host, f"{host}:{port}"]
        tls = bound.server.tls
        vhost = vhosts[name] = _VHost(domains, tls is not None and tls.https_redirect, [])
    vhost.routes.extend(routes)


def _blackhole_vhost(mesh: Mesh, port: int) -> route_components_pb2.VirtualHost:
    vhost = route_components_pb2.VirtualHost(name=f"blackhole:{port}", domains=["*"])
    if mesh.profile is not Profile.MODERN:
        route = vhost.routes.add(name=names.DEFAULT_ROUTE_NAME)
        route.match.prefix = "/"
        route.direct_response.status = 404
    return vhost


def _intersect(mesh: Mesh, bound: BoundServer, vs: ConfigObject) -> list[str]:
    """Hosts where this server and the VirtualService overlap (the more specific name of each pair)."""
    result: list[str] = []
    for server_host in bound.server.hosts:
        namespace, slash, host = server_host.rpartition("/")
        if (
            slash
            and namespace not in ("*", vs.namespace)
            and not (namespace == "." and vs.namespace == bound.gateway.namespace)
        ):
            continue
        for vs_host in vs_hosts(vs, mesh.domain_suffix):
            picked = _pick(host, vs_host)
            if picked is not None and picked not in result:
                result.append(picked)
    return result


def _pick(server_host: str, vs_host: str) -> str | None:
    if hosts.covers(server_host, vs_host):
        return vs_host
    if hosts.covers(vs_host, server_host):
        return server_host
    return None
