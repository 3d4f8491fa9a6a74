"""The service registry's value types: services, their ports, endpoints and workloads.

Kubernetes Services and Istio ServiceEntries both become `Service`s (Istio's internal model), so the
generators never care where a service came from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pilotfish.config.diagnostics import Origin
from pilotfish.model.names import ProxyType
from pilotfish.model.protocol import Protocol


class Resolution(enum.StrEnum):
    """How a client finds the service's endpoints (Istio's `model.Resolution`)."""

    CLIENT_SIDE_LB = "ClientSideLB"
    """EDS: endpoints from the registry (ClusterIP services, ServiceEntry STATIC)."""
    PASSTHROUGH = "Passthrough"
    """ORIGINAL_DST: the client's own destination (headless services, ServiceEntry NONE)."""
    DNS_LB = "DNSLB"
    """STRICT_DNS: Envoy resolves the endpoints' hostnames (ServiceEntry DNS, ExternalName)."""


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    protocol: Protocol
    target_port: int | str | None = None


@dataclass(frozen=True, slots=True)
class Service:
    hostname: str
    name: str
    namespace: str
    address: str
    """The cluster IP (VIP); 0.0.0.0 when the service has none (headless, ServiceEntry without addresses)."""
    ports: tuple[ServicePort, ...]
    resolution: Resolution = Resolution.CLIENT_SIDE_LB
    mesh_external: bool = False
    export_to: frozenset[str] = frozenset()
    """Namespaces that may see the service: empty or `*` = all, `.` = own namespace."""
    selector: Mapping[str, str] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    addresses: tuple[str, ...] = ()
    """All addresses (ServiceEntry may give several, possibly CIDRs); `address` is the first."""
    from_service_entry: bool = False
    origin: Origin | None = None
    order: int = 0

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)

    def port_named(self, name: str) -> ServicePort | None:
        return next((p for p in self.ports if p.name == name), None)

    @property
    def has_vip(self) -> bool:
        return self.address not in ("", "0.0.0.0")

    @property
    def is_headless(self) -> bool:
        return self.resolution is Resolution.PASSTHROUGH and not self.from_service_entry


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address:port that serves one port of one service."""

    address: str
    port: int
    service_port_name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    workload: str = ""
    """`<pod>.<namespace>` when the endpoint is a known pod."""
    weight: int = 1
    locality: str = ""
    service_account: str = ""
    ready: bool = True


@dataclass(frozen=True, slots=True)
class Workload:
    """A pod: as given, or expanded from a Deployment."""

    name: str
    namespace: str
    ip: str
    labels: Mapping[str, str]
    service_account: str = "default"
    container_ports: tuple[tuple[str, int], ...] = ()
    """(name, containerPort) of every container port."""
    injected: bool = True
    """Whether the pod runs a sidecar (namespace label / pod annotation, as Istio's injector decides)."""
    proxy_type: ProxyType | None = ProxyType.SIDECAR
    """Router for gateway pods, sidecar when injected, None when the pod has no proxy."""
    deployment: str = ""
    containers: tuple[Any, ...] = ()
    """The pod's container specs (`config.k8s.Container`), for the local mesh to run."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    origin: Origin | None = None
    ready: bool = True
    """The pod's `Ready` condition (`config.podstatus`): a not-ready pod's endpoints are not sent."""

    @property
    def proxy_id(self) -> str:
        return f"{self.name}.{self.namespace}"

    def container_port(self, name: str) -> int | None:
        return next((port for port_name, port in self.container_ports if port_name == name), None)
