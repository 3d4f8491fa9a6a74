"""RDS for sidecars: one RouteConfiguration per outbound HTTP route name (istio-reference.md §4.1-4.3).

Route `"9080"` holds a virtual host per service (and per VirtualService host) on port 9080, named
`<fqdn>:<port>`, whose domains are every name a client in this proxy's namespace may use for it
(the seed's twelve entries for reviews), then the catch-all `allow_any` (or `block_all` under
REGISTRY_ONLY).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

from pilotfish.config.meshconfig import Profile
from pilotfish.config.objects import ConfigObject
from pilotfish.model import hosts, names
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import scope_for, vs_hosts
from pilotfish.model.service import Service
from pilotfish.xds.httproute import RouteContext, default_route, translate_virtual_service
from pilotfish.xds.outbound import Kind, OutboundListener, outbound_plan
from pilotfish.xds.protos import ZERO, route_components_pb2, route_pb2
from pilotfish.xds.resources import Resource

VirtualHost: TypeAlias = route_components_pb2.VirtualHost


def sidecar_routes(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    result: dict[str, Resource] = {}
    for listener in outbound_plan(mesh, proxy):
        if listener.kind is Kind.TCP or listener.route_name in result:
            continue
        key = ("rds", listener.route_name, proxy.namespace, proxy.labels, _sidecar_key(mesh, proxy))
        resource = mesh.memo.get(key)
        if resource is None:
            config = build_route_config(mesh, proxy, listener)
            resource = mesh.memo[key] = Resource(config.name, config)
        result[listener.route_name] = resource
    return list(result.values())


def _sidecar_key(mesh: Mesh, proxy: Proxy) -> object:
    scope = scope_for(mesh, proxy)
    return scope.sidecar.key if scope.sidecar is not None else None


def build_route_config(mesh: Mesh, proxy: Proxy, listener: OutboundListener) -> route_pb2.RouteConfiguration:
    config = route_pb2.RouteConfiguration(name=listener.route_name)
    config.validate_clusters.value = False
    if mesh.profile is Profile.MODERN:
        # Modern domains carry no port; Envoy must drop the Host header's port to match them.
        config.ignore_port_in_host_matching = True
    ctx = RouteContext(mesh, proxy, frozenset({names.MESH_GATEWAY}), listener.port)
    vhosts = _virtual_hosts(ctx, listener)
    sniffed = listener.route_name != names.outbound_http_route_name(listener.port)
    if sniffed:
        wanted = listener.services[0].hostname
        vhosts = [v for v in vhosts if wanted in v.domains] or vhosts
    else:
        vhosts.append(_catch_all(mesh, proxy))
    config.virtual_hosts.extend(vhosts)
    return config


def _virtual_hosts(ctx: RouteContext, listener: OutboundListener) -> list[VirtualHost]:
    port = listener.port
    services = [s for s in _http_services(ctx.mesh, listener)]
    covered: set[str] = set()
    vhosts: dict[str, VirtualHost] = {}
    egress = listener.egress
    virtual_services = egress.virtual_services if egress is not None else ()
    for vs in sorted(virtual_services, key=lambda v: v.order):
        matched, others = _split_hosts(ctx.mesh, vs, services)
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
        if service.hostname not in covered:
            route = default_route(ctx, service.hostname, port)
            _add(
                vhosts, names.vhost_name(service.hostname, port), service_domains(ctx, service, port), [route]
            )
    return [vhosts[name] for name in sorted(vhosts)]


def _http_services(mesh: Mesh, listener: OutboundListener) -> Iterable[Service]:
    """Services of this listener whose port speaks HTTP (or is sniffed)."""
    for service in listener.services:
        port = service.port(listener.port)
        if port is not None and (port.protocol.is_http or listener.kind is Kind.AUTO):
            yield service


def _split_hosts(mesh: Mesh, vs: ConfigObject, services: list[Service]) -> tuple[list[Service], list[str]]:
    """The VS hosts that name services on this port, and the other hosts."""
    matched: dict[str, Service] = {}
    others: list[str] = []
    for host in vs_hosts(vs, mesh.domain_suffix):
        found = [s for s in services if hosts.matches(host, s.hostname)]
        if found:
            for service in found:
                matched.setdefault(service.hostname, service)
        elif mesh.service(host) is None:
            others.append(host)
    return list(matched.values()), others


def _add(
    vhosts: dict[str, VirtualHost], name: str, domains: list[str], routes: list[route_components_pb2.Route]
) -> None:
    if name in vhosts:  # Istio drops duplicate virtual hosts (pilot_vservice_dup_domain)
        return
    vhost = VirtualHost(name=name, domains=domains)
    vhost.routes.extend(routes)
    vhosts[name] = vhost


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
    names_ = [host, *alt_hosts_13(host, dns_domain)]
    domains = [d for name in names_ for d in (name, f"{name}:{port}")]
    if service.is_headless:
        domains += [f"*.{d}" for d in domains]
    if service.has_vip and "/" not in service.address:
        domains += [service.address, f"{service.address}:{port}"]
    return domains


def alt_hosts_13(host: str, dns_domain: str) -> list[str]:
    """`reviews.default.svc.cluster.local` from `default.svc.cluster.local` ->
    `reviews`, `reviews.default.svc.cluster`, `reviews.default.svc`, `reviews.default`."""
    host_labels, domain_labels = host.split("."), dns_domain.split(".")
    shared_count = 0
    while (
        shared_count < min(len(host_labels), len(domain_labels))
        and host_labels[-1 - shared_count] == domain_labels[-1 - shared_count]
    ):
        shared_count += 1
    if shared_count == 0 or shared_count >= len(host_labels):
        return []
    uniq = ".".join(host_labels[: len(host_labels) - shared_count])
    shared = host_labels[len(host_labels) - shared_count :]
    result = [uniq]
    for end in range(len(shared) - 1, 0, -1):
        result.append(uniq + "." + ".".join(shared[:end]))
    return result


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
