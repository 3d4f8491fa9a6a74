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
from typing import Any

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
        shape = _shape(mesh, proxy)
        sets = [generate_type(mesh, proxy, type_url, shape) for type_url in PUSH_ORDER]
        cached = mesh.memo[key] = ProxyResources(*sets)
    assert isinstance(cached, ProxyResources)
    return cached


def generate_type(
    mesh: Mesh, proxy: Proxy, type_url: TypeUrl, shape: tuple[object, ...] | None = None
) -> ResourceSet:
    """One type's resources for one proxy: the shape's shared set, plus the proxy's own (cached per
    proxy too, so an update that cannot affect them keeps the whole set, see `carry_over`).
    `shape`: `_shape(mesh, proxy)` when the caller has it already."""
    generator = (ROUTER_GENERATORS if proxy.is_router else SIDECAR_GENERATORS)[type_url]
    own = generator.own
    key_shape = shape if shape is not None else _shape(mesh, proxy)
    if own is None:
        return _shared_set(mesh, proxy, type_url, generator, key_shape)
    return mesh.cached(
        (f"own-{type_url.short}", proxy),
        lambda: ResourceSet.of(
            type_url, own(mesh, proxy), base=_shared_set(mesh, proxy, type_url, generator, key_shape)
        ),
    )


def _shared_set(
    mesh: Mesh, proxy: Proxy, type_url: TypeUrl, generator: Generator, shape: tuple[object, ...]
) -> ResourceSet:
    build = generator.shared
    if build is None:
        return ResourceSet(type_url)
    key = (f"set-{type_url.short}", proxy.is_router, *shape)
    return mesh.cached(key, lambda: ResourceSet.of(type_url, build(mesh, proxy)))


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
    "cds-eds-template": frozenset(),
    "hcm-template": frozenset(),
    "access-logs": frozenset(),
    "cds-inbound": frozenset(),
    "cds-inbound-passthrough": frozenset(),
    "lds-outbound": frozenset(),
    "lds-virtual-outbound": frozenset(),
    "cds": _ENDPOINTS,  # only for the ports whose endpoints changed, see `_Staleness`
    "eds": _ENDPOINTS,  # likewise
    "cds-outbound": _ENDPOINTS,  # only when a cluster changed
    "eds-list": _ENDPOINTS,
    "set-CDS": _ENDPOINTS,  # only when a cluster changed
    "set-EDS": _ENDPOINTS,
    "inbound-index": _ENDPOINTS,
    "own-CDS": _ENDPOINTS,  # on set-CDS, plus inbound clusters: only for pods whose endpoints changed
    "own-LDS": _ENDPOINTS,  # inbound listeners (likewise); the outbound ones depend on services only
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
makes them stale (`model.build.update_mesh`); for endpoint changes some are refined to what the
changed endpoints reach (`_Staleness`). An entry not listed here is never carried over:
forgetting is always safe."""


def carry_over(previous: Mesh, update: MeshUpdate) -> Mesh:
    """The updated snapshot with what `previous` generated that the change cannot affect: after a
    route edit every proxy's clusters, endpoints and listeners are the same objects as before, after
    a rollout its clusters, listeners and routes are, except where the changed endpoints reach
    (serialized once, same versions, so only what changed is pushed)."""
    entries = list(previous.memo.items())  # one step (the server may still generate for `previous`)
    staleness = _Staleness(previous, update, entries)
    memo = update.mesh.memo
    for key, value in entries:
        if staleness.keeps(key, value):
            memo[key] = value
    return update.mesh


class _Staleness:
    """Decides, entry by entry, what an update leaves valid (`INVALIDATED_BY`, refined for
    endpoint changes: only the ports whose endpoints changed, and the pods serving them)."""

    def __init__(self, previous: Mesh, update: MeshUpdate, entries: list[tuple[Any, Any]]) -> None:
        self.groups = update.groups
        self.changed = update.changed_endpoints
        before, after = previous.endpoints, update.mesh.endpoints
        self.affected_pods: set[str] = set()
        """Pods whose inbound side differs: they gained or lost a (service port, target port) to serve
        (`endpoints.inbound_targets` reads nothing else), so a pod becoming ready or not ready, or a
        replica added next to them, leaves the other pods' inbound clusters and listeners as they were."""
        for key in self.changed:
            old = {(ep.workload, ep.port) for ep in before.get(key, ()) if ep.workload}
            new = {(ep.workload, ep.port) for ep in after.get(key, ()) if ep.workload}
            self.affected_pods.update(workload for workload, _ in old ^ new)
        self.clusters_changed = bool(self.changed) and any(
            _tag(key) == "cds" and not self._port_unaffected(key, value) for key, value in entries
        )
        """Whether a cluster carries changed endpoints inline (then cluster lists and sets go too)."""

    def keeps(self, key: Any, value: object) -> bool:
        tag = _tag(key)
        stale = INVALIDATED_BY.get(tag)
        if stale is None or (stale - _ENDPOINTS) & self.groups:
            return False
        if "endpoints" not in self.groups:
            return True
        if tag in ("cds", "eds"):
            return self._port_unaffected(key, value)
        if tag in ("set-CDS", "cds-outbound"):
            return not self.clusters_changed
        if tag == "own-CDS":
            return not self.clusters_changed and key[1].proxy_id not in self.affected_pods
        if tag == "own-LDS":
            return key[1].proxy_id not in self.affected_pods
        return "endpoints" not in stale

    def _port_unaffected(self, key: Any, value: Any) -> bool:
        """Outbound clusters and load assignments are keyed `(tag, hostname, port, ...)`: a load
        assignment, or a cluster with its endpoints inline (STRICT_DNS), of a port whose endpoints
        changed is stale; every other one is kept."""
        if (key[1], key[2]) not in self.changed:
            return True
        assert isinstance(value, Resource)
        return key[0] == "cds" and not value.message.HasField("load_assignment")


def _tag(key: Any) -> str:
    """A memo key's tag: the key itself, or its first element."""
    return key if isinstance(key, str) else str(key[0])
