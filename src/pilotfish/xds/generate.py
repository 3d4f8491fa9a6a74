"""Per-proxy xDS generation: `generate(mesh, proxy)` -> every resource that proxy should have.

Pure and cached: results live in `mesh.memo` keyed by the frozen `Proxy`, and the resources inside
are shared between proxies wherever they do not depend on the proxy (clusters, endpoints, most
routes), so the Nth proxy of a shape costs little and each shared resource is serialized once.

The generators per resource type are listed once, here (ARCHITECTURE.md principle 5).
"""

from __future__ import annotations

from collections.abc import Callable

from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.xds import clusters, endpoints, gateway, listeners, routes
from pilotfish.xds.resources import ProxyResources, Resource, ResourceSet, TypeUrl

Generator = Callable[[Mesh, Proxy], list[Resource]]


def _sidecar_clusters(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    return [
        *clusters.outbound_clusters(mesh, proxy),
        *clusters.special_clusters(mesh, proxy),
        *clusters.inbound_clusters(mesh, proxy),
    ]


def _router_clusters(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    return [*clusters.outbound_clusters(mesh, proxy), *clusters.special_clusters(mesh, proxy)]


SIDECAR_GENERATORS: dict[TypeUrl, Generator] = {
    TypeUrl.CLUSTER: _sidecar_clusters,
    TypeUrl.ENDPOINT: endpoints.endpoint_resources,
    TypeUrl.LISTENER: listeners.sidecar_listeners,
    TypeUrl.ROUTE: routes.sidecar_routes,
}

ROUTER_GENERATORS: dict[TypeUrl, Generator] = {
    TypeUrl.CLUSTER: _router_clusters,
    TypeUrl.ENDPOINT: endpoints.endpoint_resources,
    TypeUrl.LISTENER: gateway.router_listeners,
    TypeUrl.ROUTE: gateway.router_routes,
}


def generate(mesh: Mesh, proxy: Proxy) -> ProxyResources:
    """Everything for one proxy, in push order. Cached per (snapshot, proxy)."""
    key = ("proxy", proxy)
    cached = mesh.memo.get(key)
    if cached is None:
        generators = ROUTER_GENERATORS if proxy.is_router else SIDECAR_GENERATORS
        sets = {url: ResourceSet.of(url, build(mesh, proxy)) for url, build in generators.items()}
        cached = mesh.memo[key] = ProxyResources(
            clusters=sets[TypeUrl.CLUSTER],
            endpoints=sets[TypeUrl.ENDPOINT],
            listeners=sets[TypeUrl.LISTENER],
            routes=sets[TypeUrl.ROUTE],
        )
    assert isinstance(cached, ProxyResources)
    return cached
