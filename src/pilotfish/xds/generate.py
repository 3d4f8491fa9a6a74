"""Per-proxy xDS generation: `generate(mesh, proxy)` -> every resource that proxy should have.

Pure and cached in `mesh.memo`. Each type's resources come in two parts: a shared part that
depends only on the proxy's shape (its scope and, where config selects by them, its labels; for
routers also the labels that pick Gateways), built once per shape as one `ResourceSet` that every
proxy of the shape gets; and the proxy's own part (inbound clusters, listeners), added on top. So
the Nth proxy of a shape costs its own few resources, and each shared resource, set version and
name -> version map is computed once per snapshot.

The generators per resource type are listed once, here (ARCHITECTURE.md principle 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pilotfish.model.build import MeshUpdate
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import shape_key
from pilotfish.xds import clusters, endpoints, gateway, listeners, routes
from pilotfish.xds.resources import PUSH_ORDER, ProxyResources, Resource, ResourceSet, TypeUrl

Build = Callable[[Mesh, Proxy], list[Resource]]


@dataclass(frozen=True, slots=True)
class Generator:
    """How one type is generated: `shared` depends only on the proxy's shape, `own` on the proxy."""

    shared: Build | None = None
    own: Build | None = None


def _shared_clusters(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    return [*clusters.outbound_clusters(mesh, proxy), *clusters.special_clusters(mesh, proxy)]


SIDECAR_GENERATORS: dict[TypeUrl, Generator] = {
    TypeUrl.CLUSTER: Generator(shared=_shared_clusters, own=clusters.inbound_clusters),
    TypeUrl.ENDPOINT: Generator(shared=endpoints.endpoint_resources),
    TypeUrl.LISTENER: Generator(own=listeners.sidecar_listeners),
    TypeUrl.ROUTE: Generator(shared=routes.sidecar_routes),
}

ROUTER_GENERATORS: dict[TypeUrl, Generator] = {
    TypeUrl.CLUSTER: Generator(shared=_shared_clusters),
    TypeUrl.ENDPOINT: Generator(shared=endpoints.endpoint_resources),
    TypeUrl.LISTENER: Generator(shared=gateway.router_listeners),
    TypeUrl.ROUTE: Generator(shared=gateway.router_routes),
}


def generate(mesh: Mesh, proxy: Proxy) -> ProxyResources:
    """Everything for one proxy, in push order. Cached per (snapshot, proxy)."""
    key = ("proxy", proxy)
    cached = mesh.memo.get(key)
    if cached is None:
        sets = [generate_type(mesh, proxy, type_url) for type_url in PUSH_ORDER]
        cached = mesh.memo[key] = ProxyResources(*sets)
    assert isinstance(cached, ProxyResources)
    return cached


def generate_type(mesh: Mesh, proxy: Proxy, type_url: TypeUrl) -> ResourceSet:
    """One type's resources for one proxy: the shape's shared set, plus the proxy's own."""
    generator = (ROUTER_GENERATORS if proxy.is_router else SIDECAR_GENERATORS)[type_url]
    base = None
    if generator.shared is not None:
        build = generator.shared
        key = (f"set-{type_url.short}", proxy.is_router, *_shape(mesh, proxy))
        base = mesh.cached(key, lambda: ResourceSet.of(type_url, build(mesh, proxy)))
    if generator.own is None:
        assert base is not None
        return base
    return ResourceSet.of(type_url, generator.own(mesh, proxy), base=base)


def _shape(mesh: Mesh, proxy: Proxy) -> tuple[object, ...]:
    """What shared sets depend on: `shape_key`, and for routers the labels Gateways select on."""
    return (*shape_key(mesh, proxy), proxy.labels if proxy.is_router else ())


_ENDPOINTS = frozenset({"endpoints"})
_ROUTING = frozenset({"routing"})
_BOTH = _ENDPOINTS | _ROUTING
INVALIDATED_BY: dict[str, frozenset[str]] = {
    "scope": _ROUTING,  # holds the VirtualServices each egress listener imports
    "outbound-plan": _ROUTING,  # holds the scope's egress listeners
    "selects-by-labels": _ROUTING,
    "dr": frozenset(),
    "special": frozenset(),
    "cds-template": frozenset(),
    "hcm-template": frozenset(),
    "access-logs": frozenset(),
    "cds-inbound": frozenset(),
    "cds-inbound-passthrough": frozenset(),
    "lds-outbound": frozenset(),
    "lds-virtual-outbound": frozenset(),
    "cds": frozenset(),  # and per port, see `_unaffected`
    "eds": frozenset(),  # and per port, see `_unaffected`
    "cds-outbound": _ENDPOINTS,
    "eds-list": _ENDPOINTS,
    "set-CDS": _ENDPOINTS,
    "set-EDS": _ENDPOINTS,
    "inbound-index": _ENDPOINTS,
    "rds": _ROUTING,
    "vs-routes": _ROUTING,
    "set-RDS": _ROUTING,
    "set-LDS": _ROUTING,
    "router-lds": _ROUTING,
    "router-rds": _ROUTING,
    "gateway-bound-hosts": _ROUTING,
    "gateway-vs-index": _ROUTING,
    "proxy": _BOTH,
}
"""Memo entries (by their first element, see `Mesh.cached`) and the groups of input whose change
makes them stale (`model.build.update_mesh`). `cds`/`eds` entries are also dropped for ports whose
endpoints changed. An entry not listed here is never carried over: forgetting is always safe."""


def carry_over(previous: Mesh, update: MeshUpdate) -> Mesh:
    """The updated snapshot with what `previous` generated that the change cannot affect: after a
    rollout every proxy's clusters, listeners and routes are the same objects as before, after a
    route edit its clusters, endpoints and listeners are (serialized once, same versions, so only
    what changed is pushed)."""
    memo = update.mesh.memo
    for key, value in previous.memo.items():
        tag = key if isinstance(key, str) else key[0]
        stale = INVALIDATED_BY.get(tag)
        if stale is None or stale & update.groups:
            continue
        if tag in ("cds", "eds") and not _unaffected(key, value, update):
            continue
        memo[key] = value
    return update.mesh


def _unaffected(key: tuple[object, ...], resource: Resource, update: MeshUpdate) -> bool:
    """Outbound clusters and load assignments are keyed `(tag, hostname, port, ...)`: a load
    assignment, or a cluster with its endpoints inline (STRICT_DNS), of a port whose endpoints
    changed is rebuilt; every other one is kept."""
    if (key[1], key[2]) not in update.changed_endpoints:
        return True
    return key[0] == "cds" and not resource.message.HasField("load_assignment")
