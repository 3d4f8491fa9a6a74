"""The identity of one Envoy as generation sees it: the only proxy facts a generator may read.

A `Proxy` is frozen and hashable, so generated config can be cached by `(mesh.version, proxy)`
(style-anchors.md principle 4). It is built from the node id and node metadata Envoy sends on its
first xDS request, completed from the mesh's workload registry when the pod is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pilotfish.model.names import DEFAULT_DOMAIN_SUFFIX, NodeId, ProxyType, namespace_dns_domain

Labels = tuple[tuple[str, str], ...]
"""Labels as a sorted tuple of pairs: hashable, so a `Proxy` can be a cache key."""


def freeze_labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class Proxy:
    """One sidecar or router (gateway) Envoy."""

    proxy_type: ProxyType
    ip: str
    pod_name: str
    namespace: str
    labels: Labels = ()
    service_account: str = "default"
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    ipv6: bool = False
    known: bool = True
    """False when the node id names no workload of the mesh (Istio then sends a minimal config)."""
    container_ports: tuple[int, ...] = field(default=())

    @property
    def node_id(self) -> NodeId:
        return NodeId.for_pod(self.proxy_type, self.ip, self.pod_name, self.namespace, self.domain_suffix)

    @property
    def proxy_id(self) -> str:
        return f"{self.pod_name}.{self.namespace}"

    @property
    def dns_domain(self) -> str:
        return namespace_dns_domain(self.namespace, self.domain_suffix)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def is_router(self) -> bool:
        return self.proxy_type is ProxyType.ROUTER
