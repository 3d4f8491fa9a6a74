"""Service analyzer: port names that tell Istio the protocol.

Istio (and pilotfish) pick a port's protocol from `appProtocol` or the name prefix (`http`,
`http-web`, `grpc`, `tcp`...). A port named `web` or left unnamed gets protocol sniffing in modern
Istio and is plain TCP in Istio 1.3: no HTTP routing, retries or metrics for it.
"""

from __future__ import annotations

from collections.abc import Iterator

from pilotfish.analyze import messages as msg
from pilotfish.analyze.analyzer import Analyzer, finding
from pilotfish.analyze.context import AnalysisContext
from pilotfish.analyze.resource import CORE, Resource
from pilotfish.config.diagnostics import Diagnostic
from pilotfish.model.protocol import Protocol, protocol_of_port

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
MANAGED_GATEWAY_LABEL = "gateway.istio.io/managed"


def _port_names(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    for service in ctx.of_kind("Service", CORE):
        if service.namespace in SYSTEM_NAMESPACES or _control_plane(service):
            continue
        external_name = service.spec.get("type") == "ExternalName"
        ports = [port for host in ctx.inventory.hosts_of(service) for port in host.ports]
        for i, port in enumerate(ports):
            protocol = protocol_of_port(port.name, port.app_protocol, port.protocol, port.number)
            if not (protocol is Protocol.UNSUPPORTED or (external_name and port.name == "tcp")):
                continue
            path = ("spec", "ports", i)
            if external_name:
                yield finding(
                    msg.EXTERNAL_NAME_INVALID_PORT_NAME,
                    service,
                    path=path,
                    fix="name the port after its protocol (e.g. https, http-web); not 'tcp'",
                )
                continue
            target = "0" if port.target_port is None else str(port.target_port)
            yield finding(
                msg.PORT_NAME_NOT_UNDER_CONVENTION,
                service,
                port.name,
                port.number,
                target,
                path=path,
                fix=f"name it <protocol>[-<suffix>] (e.g. http-{port.name or 'web'}, grpc, tcp) "
                "or set appProtocol",
            )


def _control_plane(service: Resource) -> bool:
    """Istio's own services (its installers label them) keep their names."""
    service_labels = service.labels
    return (
        "istio" in service_labels
        or service_labels.get("release") == "istio"
        or (MANAGED_GATEWAY_LABEL in service_labels)
    )


PORT_NAME = Analyzer(
    "service.PortNameAnalyzer",
    "Checks that Service port names (or appProtocol) follow Istio's <protocol>[-<suffix>] convention",
    _port_names,
)
