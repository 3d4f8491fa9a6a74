"""`Mesh`: one immutable snapshot of everything the generators read, with its indexes.

Built once per config change by `model.build.build_mesh`; never mutated afterwards, so any number
of proxies can be generated from it concurrently and results can be cached per snapshot (the
`memo` dict is the only mutable part: a cache whose entries are pure functions of the snapshot).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pilotfish.config.diagnostics import Diagnostic
from pilotfish.config.meshconfig import MeshConfig, Profile
from pilotfish.config.objects import ConfigObject
from pilotfish.model.service import Endpoint, Service, Workload


@dataclass(frozen=True, slots=True, eq=False)
class Mesh:
    version: str
    mesh_config: MeshConfig
    services: tuple[Service, ...]
    """Sorted by hostname; one per hostname."""
    endpoints: Mapping[tuple[str, int], tuple[Endpoint, ...]]
    """(hostname, service port number) -> endpoints serving that port."""
    workloads: tuple[Workload, ...]
    namespaces: Mapping[str, Mapping[str, str]]
    """Namespace name -> labels (namespaces named by any object are present)."""
    virtual_services: tuple[ConfigObject, ...] = ()
    destination_rules: tuple[ConfigObject, ...] = ()
    gateways: tuple[ConfigObject, ...] = ()
    sidecars: tuple[ConfigObject, ...] = ()
    service_entries: tuple[ConfigObject, ...] = ()
    objects: tuple[ConfigObject, ...] = ()
    """Every valid input object, in input order (for analyzers and debug views)."""
    diagnostics: tuple[Diagnostic, ...] = ()
    """Warnings found while building (errors prevent a Mesh from being built at all)."""
    by_host: Mapping[str, Service] = field(default_factory=dict)
    workloads_by_name: Mapping[tuple[str, str], Workload] = field(default_factory=dict)
    workloads_by_ip: Mapping[str, Workload] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    """Generation cache for this snapshot (see `xds.generate`). Entries are pure functions of the snapshot."""

    @property
    def profile(self) -> Profile:
        return self.mesh_config.profile

    @property
    def domain_suffix(self) -> str:
        return self.mesh_config.domain_suffix

    def service(self, hostname: str) -> Service | None:
        return self.by_host.get(hostname)

    def workload(self, name: str, namespace: str) -> Workload | None:
        return self.workloads_by_name.get((namespace, name))

    def endpoints_of(self, hostname: str, port: int) -> tuple[Endpoint, ...]:
        return self.endpoints.get((hostname, port), ())

    def proxies(self) -> list[Workload]:
        """Workloads that run an Envoy (sidecar or router), in name order."""
        return [w for w in self.workloads if w.proxy_type is not None]
