"""What the server knows: the current mesh, generated resources per proxy, and every stream's status.

* Generated `ProxyResources` are cached per (mesh version, proxy): all streams of the same proxy, and
  all proxies with the same identity, share one generation; the `Resource` objects inside are
  serialized once (their `Any` and version are cached on the object), so a ClusterLoadAssignment
  shared by a hundred proxies is encoded once per mesh version.
* SotW responses need one version per type; it is derived from the resource versions (a hash of the
  names and content versions actually sent), so equal content gives equal versions, even across
  server restarts, and a push is skipped when a proxy's content did not change.
* `StreamStatus` is the bookkeeping `/debug/syncz` and `proxy-status` read: per type the last sent
  version and nonce, the last ACK, the last NACK with Envoy's message, and the subscribed names.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from envoy.config.cluster.v3 import cluster_pb2

from pilotfish.model.proxy import Proxy
from pilotfish.server.backend import Backend, MeshLike
from pilotfish.server.protocol import DeltaWatch, SotwWatch, SyncStatus, sync_status
from pilotfish.xds.resources import ProxyResources, Resource, ResourceSet, TypeUrl

TEST_REJECT_CLUSTER = "pilotfish-test-reject"
"""Name of the cluster the test hook adds; its negative connect timeout makes Envoy NACK the CDS."""


class Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


def type_content(resources: Iterable[Named]) -> str:
    """Content hash of a list of resources: what SotW uses as `version_info`."""
    digest = hashlib.blake2b(digest_size=8)
    for resource in resources:
        digest.update(resource.name.encode())
        digest.update(b"\0")
        digest.update(resource.version.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def eds_service_names(clusters: Iterable[Resource]) -> list[str]:
    """The EDS names Envoy subscribes to for these clusters (`service_name`, else the cluster name)."""
    names: list[str] = []
    for resource in clusters:
        cluster = resource.message
        if isinstance(cluster, cluster_pb2.Cluster) and cluster.type == cluster_pb2.Cluster.EDS:
            names.append(cluster.eds_cluster_config.service_name or cluster.name)
    return names


def reject_cluster() -> Resource:
    """A cluster Envoy rejects (`connect_timeout: -1s`): the test hook's way to provoke a real NACK."""
    cluster = cluster_pb2.Cluster(name=TEST_REJECT_CLUSTER, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.seconds = -1
    return Resource(TEST_REJECT_CLUSTER, cluster)


def with_rejected_cluster(resources: ProxyResources) -> ProxyResources:
    clusters = ResourceSet.of(TypeUrl.CLUSTER, [*resources.clusters, reject_cluster()])
    return ProxyResources(clusters, resources.endpoints, resources.listeners, resources.routes)


@dataclass
class StreamStatus:
    """One ADS stream (one connected Envoy) as syncz reports it. Mutated only by its stream task."""

    conn_id: str
    node_id: str
    proxy: Proxy
    flavor: str
    """"sotw" or "delta"."""
    connected_at: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    envoy_version: str = ""
    watches: dict[str, SotwWatch | DeltaWatch] = field(default_factory=dict)
    mesh_version: str = ""
    """Mesh version of the resources this stream was last pushed."""
    last_error: str = ""
    """Last problem the server had with this stream (e.g. a response over the send limit)."""

    @property
    def proxy_id(self) -> str:
        return self.proxy.proxy_id

    def status(self, type_url: str) -> SyncStatus:
        watch = self.watches.get(type_url)
        if watch is None:
            return SyncStatus.NOT_SENT
        return sync_status(watch.nonce_sent, watch.nonce_acked, watch.last_nack)

    def all_synced(self) -> bool:
        return all(
            self.status(type_url) is SyncStatus.SYNCED
            for type_url, watch in self.watches.items()
            if watch.nonce_sent
        )

    @property
    def istio_version(self) -> str:
        version = self.metadata.get("ISTIO_VERSION", "")
        return version if isinstance(version, str) else ""


class XdsCache:
    """The current mesh, per-proxy resources for it, and the status of every stream."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.mesh: MeshLike | None = None
        self.mesh_loaded_at = 0.0
        self.diagnostics: list[Any] = []
        """Diagnostics of the latest load (errors there mean the mesh above is an older good one)."""
        self.streams: dict[str, StreamStatus] = {}
        self.reject_next: set[str] = set()
        """Test hook: proxy ids (or "*") whose generated clusters get a cluster Envoy rejects."""
        self._proxies: dict[tuple[str, str], Proxy] = {}
        self._resources: dict[Proxy, ProxyResources] = {}

    # --- mesh ---------------------------------------------------------------------------------------

    def set_mesh(self, mesh: MeshLike) -> bool:
        """Install a new mesh; False (and nothing changes) when its version is the current one."""
        if self.mesh is not None and mesh.version == self.mesh.version:
            return False
        self.mesh = mesh
        self.mesh_loaded_at = time.time()
        self._proxies.clear()
        self._resources.clear()
        return True

    def invalidate(self) -> None:
        """Forget generated resources (the test hook changed what some proxies should get)."""
        self._resources.clear()

    # --- proxies and their resources ----------------------------------------------------------------

    def proxy_for(self, node_id: str, metadata: Mapping[str, Any]) -> Proxy:
        """Resolve a node id against the current mesh (cached per mesh); ValueError when malformed."""
        assert self.mesh is not None
        key = (node_id, repr(sorted(metadata.items())))
        proxy = self._proxies.get(key)
        if proxy is None:
            proxy = self.backend.resolve_proxy(self.mesh, node_id, metadata)
            self._proxies[key] = proxy
        return proxy

    def resources_for(self, proxy: Proxy) -> ProxyResources:
        """Everything `proxy` should have under the current mesh; generated once per mesh version."""
        assert self.mesh is not None
        resources = self._resources.get(proxy)
        if resources is None:
            resources = self.backend.generate(self.mesh, proxy)
            if "*" in self.reject_next or proxy.proxy_id in self.reject_next:
                resources = with_rejected_cluster(resources)
            self._resources[proxy] = resources
        return resources

    # --- streams ------------------------------------------------------------------------------------

    def add_stream(self, status: StreamStatus) -> None:
        self.streams[status.conn_id] = status

    def remove_stream(self, conn_id: str) -> None:
        self.streams.pop(conn_id, None)

    def streams_of(self, proxy_id: str) -> list[StreamStatus]:
        return [s for s in self.streams.values() if s.proxy_id == proxy_id]
