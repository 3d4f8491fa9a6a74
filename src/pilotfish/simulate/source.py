"""Where a proxy's Envoy configuration comes from, for the walk: pluggable.

The walk only reads `ProxyConfig` (listeners, route configurations, clusters and endpoints by name,
as Envoy v3 messages). Offline, `OfflineSource` generates them from the mesh the way the discovery
server would serve them; a live source (a running Envoy's `/config_dump` and `/clusters`, for
`pilotfish trace --verify`) only has to build the same `ProxyConfig` from what the proxy reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pilotfish.model.mesh import Mesh
from pilotfish.model.service import Workload
from pilotfish.pipeline import proxy_for_workload
from pilotfish.xds.generate import generate
from pilotfish.xds.resources import ProxyResources, ResourceSet


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """One Envoy's configuration, by resource name (listeners in LDS order)."""

    listeners: Mapping[str, Any]
    routes: Mapping[str, Any]
    clusters: Mapping[str, Any]
    endpoints: Mapping[str, Any]
    """ClusterLoadAssignments by cluster (EDS service) name."""

    @classmethod
    def from_resources(cls, resources: ProxyResources) -> ProxyConfig:
        def messages(resource_set: ResourceSet) -> dict[str, Any]:
            return {name: r.message for name, r in resource_set.by_name.items()}

        return cls(
            listeners=messages(resources.listeners),
            routes=messages(resources.routes),
            clusters=messages(resources.clusters),
            endpoints=messages(resources.endpoints),
        )


class ConfigSource(Protocol):
    """Gives the Envoy configuration of a pod's proxy."""

    @property
    def description(self) -> str:
        """Shown in the trace (e.g. `generated offline from the manifests`)."""
        ...

    def proxy_config(self, workload: Workload) -> ProxyConfig: ...


class OfflineSource:
    """The configuration pilotfish would serve each proxy, generated from the mesh."""

    description = "config generated offline from the manifests"

    def __init__(self, mesh: Mesh) -> None:
        self._mesh = mesh
        self._cache: dict[tuple[str, str], ProxyConfig] = {}

    def proxy_config(self, workload: Workload) -> ProxyConfig:
        key = (workload.namespace, workload.name)
        config = self._cache.get(key)
        if config is None:
            resources = generate(self._mesh, proxy_for_workload(self._mesh, workload))
            config = self._cache[key] = ProxyConfig.from_resources(resources)
        return config
