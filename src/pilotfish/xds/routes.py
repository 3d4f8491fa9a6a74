"""RDS for sidecars: one RouteConfiguration per outbound HTTP route name (istio-reference.md §4.1-4.3).

Route `"9080"` holds a virtual host per service (and per VirtualService host) on port 9080, named
`<fqdn>:<port>`, whose domains are every name a client in this proxy's namespace may use for it
(the seed's twelve entries for reviews), then the catch-all `allow_any` (or `block_all` under
REGISTRY_ONLY).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache, partial
from typing import NamedTuple, TypeAlias

from pilotfish.config.meshconfig import Profile
from pilotfish.config.objects import ConfigObject
from pilotfish.model import hosts, names
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import scope_for, shape_key, vs_hosts
from pilotfish.model.service import Service
from pilotfish.xds import wire
from pilotfish.xds.httproute import (
    RouteContext,
    default_route,
    has_plain_default_route,
    plain_default_route,
    translate_virtual_service,
)
from pilotfish.xds.outbound import Kind, OutboundListener, outbound_plan
from pilotfish.xds.protos import ZERO, route_components_pb2, route_pb2
from pilotfish.xds.resources import Resource

VirtualHost: TypeAlias = route_components_pb2.VirtualHost


class _VHost(NamedTuple):
    """A virtual host before it is encoded into its RouteConfiguration: VirtualService routes
    (shared, encoded once), or none and the service's default route (most of a sidecar's virtual
    hosts; a tuple: a thousand are made per route configuration)."""

    name: str
    domains: list[str]
    routes: list[route_components_pb2.Route]
    default_for: str = ""


def sidecar_routes(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    result: dict[str, Resource] = {}
    for listener in outbound_plan(mesh, proxy):
        if listener.kind is Kind.TCP or listener.route_name in result:
            continue
        key = ("rds", listener.route_name, *shape_key(mesh, proxy))
        result[listener.route_name] = mesh.cached(key, partial(_resource, mesh, proxy, listener))
    return list(result.values())


def _resource(mesh: Mesh, proxy: Proxy, listener: OutboundListener) -> Resource:
    encoded = route_config_bytes(mesh, proxy, listener)
    return Resource.encoded(listener.route_name, route_pb2.RouteConfiguration, encoded)


def build_route_config(mesh: Mesh, proxy: Proxy, listener: OutboundListener) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration.FromString(route_config_bytes(mesh, proxy, listener))


def route_config_bytes(mesh: Mesh, proxy: Proxy, listener: OutboundListener) -> bytes:
    """The route configuration's canonical encoding, assembled from encoded virtual hosts
    (`xds.wire`): a sidecar's biggest resource, a virtual host per service of the port, and most of
    them a default route from a template; a VirtualService's routes are serialized once."""
    modern = mesh.profile is Profile.MODERN
    ctx = RouteContext(mesh, proxy, frozenset({names.MESH_GATEWAY}), listener.port)
    vhosts = _virtual_hosts(ctx, listener)
    sniffed = listener.route_name != names.outbound_http_route_name(listener.port)
    if sniffed:
        wanted = listener.services[0].hostname
        vhosts = [v for v in vhosts if wanted in v.domains] or vhosts
    parts = [wire.field(_CONFIG.NAME_FIELD_NUMBER, listener.route_name.encode())]
    encoded_routes: dict[int, bytes] = {}  # a VirtualService's routes, by list: one per VS, many hosts
    port = listener.port
    for vhost in vhosts:
        hostname = vhost.default_for
        if hostname and has_plain_default_route(ctx, hostname):
            cluster, operation = names.outbound_cluster_name(port, hostname), f"{hostname}:{port}/*"
            parts.append(_DEFAULT_VHOSTS[modern].render(vhost.name, vhost.domains, cluster, operation))
        else:
            if hostname:
                routes = _encoded_routes([default_route(ctx, hostname, port)])
            else:
                routes = encoded_routes.get(id(vhost.routes), b"")
                if not routes:
                    routes = encoded_routes[id(vhost.routes)] = _encoded_routes(vhost.routes)
            encoded = _VHOST_HEAD.render(vhost.name, vhost.domains) + routes
            parts.append(wire.field(_CONFIG.VIRTUAL_HOSTS_FIELD_NUMBER, encoded))
    if not sniffed:
        catch_all = _catch_all(mesh, proxy).SerializeToString(deterministic=True)
        parts.append(wire.field(_CONFIG.VIRTUAL_HOSTS_FIELD_NUMBER, catch_all))
    parts.append(_CONFIG_TAIL[modern])
    return b"".join(parts)


def _encoded_routes(routes: list[route_components_pb2.Route]) -> bytes:
    tag = _VHOST.ROUTES_FIELD_NUMBER
    return b"".join(wire.field(tag, route.SerializeToString(deterministic=True)) for route in routes)


def _config_tail(modern: bool) -> bytes:
    """What a route configuration has after its virtual hosts (clusters not validated: a route may
    name a cluster before CDS has it; modern domains carry no port, so Envoy must drop the Host
    header's port to match them)."""
    config = route_pb2.RouteConfiguration()
    config.validate_clusters.value = False
    if modern:
        config.ignore_port_in_host_matching = True
    head, tail = wire.around(config, _CONFIG.VIRTUAL_HOSTS_FIELD_NUMBER)
    assert not head, "a route configuration's name is its only field before its virtual hosts"
    return tail


_CONFIG = route_pb2.RouteConfiguration
_VHOST = route_components_pb2.VirtualHost
_CONFIG_TAIL = {modern: _config_tail(modern) for modern in (False, True)}
_VHOST_HEAD = wire.Template(_VHOST(name=wire.hole(0), domains=[wire.hole(1)]))
"""A virtual host's name and domains: its routes (field 3, the last it has) follow."""
_DEFAULT_VHOSTS = {
    modern: wire.Template(
        _CONFIG(
            virtual_hosts=[
                _VHOST(
                    name=wire.hole(0),
                    domains=[wire.hole(1)],
                    routes=[plain_default_route(modern, wire.hole(2), wire.hole(3))],
                )
            ]
        )
    )
    for modern in (False, True)
}
"""Most virtual hosts of a sidecar: a service's name and domains, and its plain default route
(cluster, decorator); as the `virtual_hosts` field element of a route configuration (a message
with one element of a repeated field encodes as that element)."""


def _virtual_hosts(ctx: RouteContext, listener: OutboundListener) -> list[_VHost]:
    port = listener.port
    services = list(_http_services(ctx.mesh, listener))
    covered: set[str] = set()
    vhosts: dict[str, _VHost] = {}
    egress = listener.egress
    virtual_services = egress.virtual_services if egress is not None else ()
    index = _HostIndex(services) if virtual_services else None
    for vs in sorted(virtual_services, key=lambda v: v.order):
        assert index is not None
        matched, others = _split_hosts(ctx.mesh, vs, index)
        if not matched and port != 80:
            continue
        routes = translate_virtual_service(ctx, vs)
        for service in matched:
            covered.add(service.hostname)
            _add(
                vhosts, names.vhost_name(service.hostname, port), service_domains(ctx, service, port), routes
            )
        for host in others:
            _add(vhosts, names.vhost_name(host, port), _host_domains(ctx, host, port), routes)
    for service in services:
        hostname = service.hostname
        if hostname not in covered:
            name = names.vhost_name(hostname, port)
            if name not in vhosts:
                vhosts[name] = _VHost(name, service_domains(ctx, service, port), [], hostname)
    return [vhosts[name] for name in sorted(vhosts)]


def _http_services(mesh: Mesh, listener: OutboundListener) -> Iterable[Service]:
    """Services of this listener whose port speaks HTTP (or is sniffed)."""
    for service in listener.services:
        port = service.port(listener.port)
        if port is not None and (port.protocol.is_http or listener.kind is Kind.AUTO):
            yield service


class _HostIndex:
    """The services of a listener by exact hostname, plus the wildcard ones: finding the services a
    VirtualService host names without testing every service (a mesh with a VirtualService per
    service would otherwise be quadratic)."""

    def __init__(self, services: list[Service]) -> None:
        self.services = services
        self.exact = {s.hostname: (i, s) for i, s in enumerate(services)}
        self.wildcards = [(i, s) for i, s in enumerate(services) if hosts.is_wildcard(s.hostname)]

    def matching(self, host: str) -> list[Service]:
        """The services `host` matches (`hosts.matches`), in the services' order (by hostname, each
        once: callers keep one service per hostname)."""
        if hosts.is_wildcard(host):
            return [s for s in self.services if hosts.matches(host, s.hostname)]
        found = [(i, s) for i, s in self.wildcards if hosts.covers(s.hostname, host)]
        if host in self.exact:
            found.append(self.exact[host])
        return [s for _, s in sorted(found, key=lambda pair: pair[0])]


def _split_hosts(mesh: Mesh, vs: ConfigObject, index: _HostIndex) -> tuple[list[Service], list[str]]:
    """The VS hosts that name services on this port, and the other hosts."""
    matched: dict[str, Service] = {}
    others: list[str] = []
    for host in vs_hosts(vs, mesh.domain_suffix):
        found = index.matching(host)
        if found:
            for service in found:
                matched.setdefault(service.hostname, service)
        elif mesh.service(host) is None:
            others.append(host)
    return list(matched.values()), others


def _add(
    vhosts: dict[str, _VHost], name: str, domains: list[str], routes: list[route_components_pb2.Route]
) -> None:
    if name not in vhosts:  # Istio drops duplicate virtual hosts (pilot_vservice_dup_domain)
        vhosts[name] = _VHost(name, domains, routes)


def _catch_all(mesh: Mesh, proxy: Proxy) -> VirtualHost:
    if scope_for(mesh, proxy).registry_only:
        vhost = VirtualHost(name=names.BLOCK_ALL_VHOST, domains=["*"])
        route = vhost.routes.add()
        if mesh.profile is Profile.MODERN:
            route.name = names.BLOCK_ALL_VHOST
        route.match.prefix = "/"
        route.direct_response.status = 502
        return vhost
    vhost = VirtualHost(name=names.ALLOW_ANY_VHOST, domains=["*"])
    route = vhost.routes.add()
    if mesh.profile is Profile.MODERN:
        route.name = names.ALLOW_ANY_VHOST
    route.match.prefix = "/"
    route.route.cluster = names.PASSTHROUGH_CLUSTER
    route.route.timeout.CopyFrom(ZERO)
    route.route.max_stream_duration.grpc_timeout_header_max.CopyFrom(ZERO)
    return vhost


# --- domains ----------------------------------------------------------------------------------------


def service_domains(ctx: RouteContext, service: Service, port: int) -> list[str]:
    if ctx.modern:
        return _modern_domains(service, ctx.proxy.dns_domain)
    return _domains_13(service, port, ctx.proxy.dns_domain)


def _host_domains(ctx: RouteContext, host: str, port: int) -> list[str]:
    return [host] if ctx.modern else [host, f"{host}:{port}"]


def _domains_13(service: Service, port: int, dns_domain: str) -> list[str]:
    """Istio 1.3 `generateVirtualHostDomains`: the host, its short forms relative to the proxy's
    domain (shared label suffix), each with and without the port, then the cluster IP."""
    host = service.hostname
    suffix = f":{port}"
    domains = [host, host + suffix]
    for name in alt_hosts_13(host, dns_domain):
        domains += (name, name + suffix)
    if service.is_headless:
        domains += [f"*.{d}" for d in domains]
    if service.has_vip and "/" not in service.address:
        domains += [service.address, f"{service.address}:{port}"]
    return domains


def alt_hosts_13(host: str, dns_domain: str) -> list[str]:
    """`reviews.default.svc.cluster.local` from `default.svc.cluster.local` ->
    `reviews`, `reviews.default.svc.cluster`, `reviews.default.svc`, `reviews.default`: the labels
    the host shares with the proxy's domain (its longest common label suffix) are dropped one by
    one from the end. Called per service per route configuration, hence the per-domain table."""
    host_labels = host.count(".") + 1
    for count, suffix, prefixes in _domain_suffixes(dns_domain):
        if count > host_labels:
            continue
        if count == host_labels:
            if host == suffix[1:]:
                return []
            continue
        if host.endswith(suffix):
            uniq = host[: -len(suffix)]
            return [uniq, *[uniq + prefix for prefix in prefixes]]
    return []


@lru_cache(maxsize=256)
def _domain_suffixes(dns_domain: str) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """For each label count k, longest first: k, the domain's last k labels with a leading dot,
    and those labels' joined prefixes (k-1 labels down to 1), each with a leading dot."""
    labels = dns_domain.split(".")
    table = []
    for count in range(len(labels), 0, -1):
        shared = labels[-count:]
        prefixes = tuple("." + ".".join(shared[:end]) for end in range(count - 1, 0, -1))
        table.append((count, "." + ".".join(shared), prefixes))
    return tuple(table)


def _modern_domains(service: Service, dns_domain: str) -> list[str]:
    """Modern Istio: no ports, the absolute FQDN, and short names only for Kubernetes services."""
    host = service.hostname
    domains = [host, host + "."]
    svc_at = dns_domain.find(".svc.")
    if svc_at >= 0 and host.endswith(dns_domain[svc_at:]):
        name, namespace = host.split(".")[:2]
        own = dns_domain.split(".")[0]
        domains += (
            [name, f"{name}.{namespace}.svc", f"{name}.{namespace}"]
            if own == namespace
            else [f"{name}.{namespace}", f"{name}.{namespace}.svc"]
        )
    if service.has_vip and "/" not in service.address:
        domains.append(service.address)
    return domains
