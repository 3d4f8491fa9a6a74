"""Where a proxy's Envoy configuration comes from, for the walk: pluggable.

The walk only reads `ProxyConfig` (listeners, route configurations, clusters and endpoints by name,
as Envoy v3 messages). Offline, `OfflineSource` generates them from the mesh the way the discovery
server would serve them; `DumpedSource` builds the same `ProxyConfig` from what a running Envoy
reports (`/config_dump?include_eds`), so the walk follows exactly what that proxy would do, including
config the discovery server has not pushed yet or a proxy that NACKed an update. Fetching the dumps
is IO and stays with the caller (`pilotfish trace` reads the admin sockets of the local mesh).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message

from pilotfish.inspect.configdump import ConfigDump, ConfigDumpError
from pilotfish.model.mesh import Mesh
from pilotfish.model.service import Workload
from pilotfish.pipeline import proxy_for_workload
from pilotfish.xds.generate import generate
from pilotfish.xds.protos import cluster_pb2, endpoint_pb2, listener_pb2, route_pb2
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

    @classmethod
    def from_config_dump(cls, dump: ConfigDump) -> ProxyConfig:
        """What an Envoy's `/config_dump?include_eds` shows as active: dynamic listeners (active state)
        and static ones, route configurations, clusters and endpoints. ConfigDumpError when a resource
        does not parse as its Envoy v3 message (a newer Envoy with types pilotfish does not know)."""
        listeners = [e.listener for e in dump.listener_entries() if e.state == "active"]
        return cls(
            listeners=_by_name(listeners, listener_pb2.Listener, "name"),
            routes=_by_name(dump.route_configs(), route_pb2.RouteConfiguration, "name"),
            clusters=_by_name(dump.clusters(), cluster_pb2.Cluster, "name"),
            endpoints=_by_name(dump.endpoint_configs(), endpoint_pb2.ClusterLoadAssignment, "cluster_name"),
        )


def _by_name(items: Iterable[Mapping[str, Any]], kind: Callable[[], Message], key: str) -> dict[str, Any]:
    """JSON resources of a dump as messages by name; the first of a name wins (dynamic before static)."""
    result: dict[str, Any] = {}
    for item in items:
        message = kind()
        body = {k: v for k, v in item.items() if k != "@type"}
        try:
            json_format.ParseDict(body, message, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            what = message.DESCRIPTOR.name
            raise ConfigDumpError(f"{what} {item.get('name') or item.get(key, '?')}: {exc}") from exc
        result.setdefault(str(getattr(message, key)), message)
    return result


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


class DumpedSource:
    """The configuration running Envoys report: `fetch(workload)` returns a proxy's config dump
    (`/config_dump?include_eds`) and may raise; each pod is asked once per trace."""

    def __init__(self, fetch: Callable[[Workload], ConfigDump], description: str) -> None:
        self._fetch = fetch
        self.description = description
        self._cache: dict[tuple[str, str], ProxyConfig] = {}

    def proxy_config(self, workload: Workload) -> ProxyConfig:
        key = (workload.namespace, workload.name)
        config = self._cache.get(key)
        if config is None:
            config = self._cache[key] = ProxyConfig.from_config_dump(self._fetch(workload))
        return config


class MixedSource:
    """Live config for the pods `live` knows, offline generation for the others (`--admin` for a few
    pods with `--manifests` for the rest)."""

    def __init__(
        self, live: DumpedSource, live_pods: frozenset[tuple[str, str]], offline: OfflineSource
    ) -> None:
        self._live, self._live_pods, self._offline = live, live_pods, offline
        self.description = f"{live.description}; other pods: {offline.description}"

    def proxy_config(self, workload: Workload) -> ProxyConfig:
        if (workload.namespace, workload.name) in self._live_pods:
            return self._live.proxy_config(workload)
        return self._offline.proxy_config(workload)
