"""Per-proxy xDS generation: `generate(mesh, proxy)` -> every resource that proxy should have.

Pure and cached: results live in `mesh.memo` keyed by the frozen `Proxy`, and the resources inside
are shared between proxies wherever they do not depend on the proxy (clusters, endpoints, most
routes), so the Nth proxy of a shape costs little and each shared resource is serialized once.

The generators per resource type are listed once, here (ARCHITECTURE.md principle 5).
"""

from __future__ import annotations

from collections.abc import Callable

from pilotfish.model.build import EndpointUpdate
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


ENDPOINT_INDEPENDENT = frozenset(
    {
        "scope",
        "dr",
        "selects-by-labels",
        "outbound-plan",
        "special",
        "cds-template",
        "cds-inbound",
        "cds-inbound-passthrough",
        "rds",
        "vs-routes",
        "lds-outbound",
        "lds-virtual-outbound",
        "access-logs",
        "hcm-template",
        "router-lds",
        "router-rds",
        "gateway-bound-hosts",
        "gateway-vs-index",
    }
)
"""Memo entries (by their first element, see `Mesh.cached`) that depend only on config objects and
services, so an endpoint update keeps them. `cds`/`eds` entries are kept unless their port's
endpoints changed. Anything else is rebuilt (forgetting is always safe): the ones below, and any
entry added later and not listed here."""
REBUILT_ON_ENDPOINT_CHANGE = frozenset({"proxy", "inbound-index", "cds-outbound", "eds-list"})
"""Per-proxy results, the inbound index, and the per-shape lists that hold `cds`/`eds` entries."""


def carry_over(previous: Mesh, update: EndpointUpdate) -> Mesh:
    """The updated snapshot with what `previous` generated that the endpoint change cannot affect:
    after a rollout every proxy's clusters, listeners and routes are the same objects as before
    (serialized once, same versions, so only endpoints are pushed)."""
    memo = update.mesh.memo
    for key, value in previous.memo.items():
        tag = key if isinstance(key, str) else key[0]
        if tag in ENDPOINT_INDEPENDENT or (tag in ("cds", "eds") and _unaffected(key, value, update)):
            memo[key] = value
    return update.mesh


def _unaffected(key: tuple[object, ...], resource: Resource, update: EndpointUpdate) -> bool:
    """Outbound clusters and load assignments are keyed `(tag, hostname, port, ...)`: a load
    assignment, or a cluster with its endpoints inline (STRICT_DNS), of a port whose endpoints
    changed is rebuilt; every other one is kept."""
    if (key[1], key[2]) not in update.changed:
        return True
    return key[0] == "cds" and not resource.message.HasField("load_assignment")


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
