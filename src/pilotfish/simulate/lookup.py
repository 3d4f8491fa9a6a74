"""What the walk needs to know about the mesh besides Envoy config: names, addresses, pods.

Name resolution follows a pod's Kubernetes DNS (search path `<ns>.svc.<suffix>`, `svc.<suffix>`,
`<suffix>`): a Service name gives its cluster IP (a headless Service its first ready pod); a
ServiceEntry host gives its address when it has one. Anything else resolves outside the mesh; the
simulator then uses a stand-in address from a documentation range (nothing is ever sent to it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pilotfish.iptables.options import CaptureOptions, OptionErrors, Profile
from pilotfish.model import hosts
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import ProxyType
from pilotfish.model.service import Resolution, Service, Workload
from pilotfish.simulate.capture import pod_capture

EXTERNAL_STAND_IN = "198.51.100.1"
"""Stand-in address (TEST-NET-2) for names that resolve outside the mesh."""


@dataclass(frozen=True, slots=True)
class Resolved:
    address: str
    how: str
    service: Service | None = None
    external: bool = False


def resolve(mesh: Mesh, name: str, namespace: str) -> Resolved:
    """The address a pod in `namespace` gets for `name`."""
    if is_ip(name):
        workload = mesh.workloads_by_ip.get(name)
        how = f"pod {workload.proxy_id}" if workload is not None else "IP address"
        return Resolved(name, how, _service_by_vip(mesh, name))
    if name in ("localhost", "localhost.localdomain"):
        return Resolved("127.0.0.1", "localhost")
    bare = name.rstrip(".")
    search = (
        [bare]
        if name.endswith(".")
        else [
            f"{bare}.{namespace}.svc.{mesh.domain_suffix}",
            f"{bare}.svc.{mesh.domain_suffix}",
            f"{bare}.{mesh.domain_suffix}",
            bare,
        ]
    )
    for candidate in search:
        service = mesh.service(candidate)
        if service is not None and not service.from_service_entry:
            return _kubernetes(mesh, service)
    entry = _service_entry(mesh, bare)
    if entry is not None:
        if entry.has_vip and "/" not in entry.address:
            return Resolved(entry.address, f"ServiceEntry {entry.namespace} address", entry)
        return Resolved(
            EXTERNAL_STAND_IN,
            f"ServiceEntry host {entry.hostname}, resolved by DNS outside the mesh (stand-in address)",
            entry,
            external=True,
        )
    return Resolved(
        EXTERNAL_STAND_IN, "not in the mesh: resolved by DNS outside it (stand-in address)", external=True
    )


def _kubernetes(mesh: Mesh, service: Service) -> Resolved:
    ref = f"Service {service.namespace}/{service.name}"
    if service.has_vip:
        return Resolved(service.address, f"{ref}, cluster IP", service)
    if service.resolution is Resolution.PASSTHROUGH:
        for port in service.ports:
            ready = [e for e in mesh.endpoints_of(service.hostname, port.port) if e.ready]
            if ready:
                return Resolved(ready[0].address, f"{ref}, headless: first ready pod", service)
        return Resolved(EXTERNAL_STAND_IN, f"{ref}, headless with no ready pod (no address)", service, True)
    return Resolved(
        EXTERNAL_STAND_IN, f"{ref}, ExternalName: resolved outside the mesh (stand-in)", service, True
    )


def _service_entry(mesh: Mesh, name: str) -> Service | None:
    exact = mesh.service(name)
    if exact is not None:
        return exact
    wildcard = [s for s in mesh.services if s.from_service_entry and hosts.covers(s.hostname, name)]
    return min(wildcard, key=lambda s: hosts.specificity(s.hostname)) if wildcard else None


def _service_by_vip(mesh: Mesh, ip: str) -> Service | None:
    return next((s for s in mesh.services if s.has_vip and ip in s.addresses), None)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_loopback(ip: str) -> bool:
    return is_ip(ip) and ipaddress.ip_address(ip).is_loopback


def is_vip(mesh: Mesh, ip: str) -> bool:
    """A Kubernetes cluster IP (ServiceEntry addresses are real addresses outside the mesh)."""
    service = _service_by_vip(mesh, ip)
    return service is not None and not service.from_service_entry


def pod_at(mesh: Mesh, ip: str) -> Workload | None:
    return mesh.workloads_by_ip.get(ip)


def has_sidecar(workload: Workload) -> bool:
    return workload.proxy_type is ProxyType.SIDECAR


def is_router(workload: Workload) -> bool:
    return workload.proxy_type is ProxyType.ROUTER


def capture_of(mesh: Mesh, workload: Workload) -> CaptureOptions | OptionErrors | None:
    """The pod's iptables capture options; None when its traffic is not intercepted."""
    if not has_sidecar(workload):
        return None
    profile: Profile = "modern" if mesh.profile.value == "modern" else "1.3"
    return pod_capture(profile, workload.annotations)


def app_port_name(workload: Workload, port: int) -> str | None:
    """The declared container port name for `port` ("" when unnamed); None when not declared."""
    for name, number in workload.container_ports:
        if number == port:
            return name
    return None
