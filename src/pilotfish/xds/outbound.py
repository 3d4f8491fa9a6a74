"""The sidecar's outbound plan: which listener each visible service port lands on (pure, shared by
listeners.py and routes.py so both agree on listener and route names).

Rules (istio-reference.md §3.5): HTTP-class ports share the wildcard listener `0.0.0.0_<port>` whose
RDS is named after the port; TCP-class ports get a listener on the service VIP (`<vip>_<port>`), or
on the wildcard address when the service has none (matched by CIDR or SNI); ports of unknown
protocol are sniffed on the VIP (1.3 outbound sniffing is on by default) with RDS `<fqdn>:<port>`.
A Sidecar egress listener with an explicit port claims that port for its own services.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.protocol import Protocol, parse_protocol
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import EgressListener, scope_for
from pilotfish.model.service import Service

WILDCARD = "0.0.0.0"


class Kind(enum.StrEnum):
    HTTP = "HTTP"
    TCP = "TCP"
    AUTO = "AUTO"


def listener_kind(protocol: Protocol) -> Kind | None:
    if protocol.is_http:
        return Kind.HTTP
    if protocol.is_tcp:
        return Kind.TCP
    if protocol is Protocol.UNSUPPORTED:
        return Kind.AUTO
    return None  # UDP: no listener


@dataclass(slots=True)
class OutboundListener:
    """One outbound listener: its bind address, port, protocol class and the services behind it."""

    bind: str
    port: int
    kind: Kind
    services: list[Service] = field(default_factory=list)
    egress: EgressListener | None = None

    @property
    def name(self) -> str:
        return names.listener_name(self.bind, self.port)

    @property
    def route_name(self) -> str:
        """RDS name: the port for wildcard HTTP listeners, `<fqdn>:<port>` for sniffed VIP listeners."""
        if self.kind is Kind.AUTO and self.bind != WILDCARD and self.services:
            return names.sniffed_route_name(self.services[0].hostname, self.port)
        return names.outbound_http_route_name(self.port)


def outbound_plan(mesh: Mesh, proxy: Proxy) -> list[OutboundListener]:
    """Outbound listeners in 1.3's LDS order: TCP-class listeners first, then HTTP ones, each by name."""
    scope = scope_for(mesh, proxy)
    key = ("outbound-plan", scope.namespace, scope.sidecar.key if scope.sidecar else None)
    cached = mesh.memo.get(key)
    if cached is None:
        cached = mesh.memo[key] = _plan(scope.egress)
    assert isinstance(cached, list)
    return cached


def _plan(egress_listeners: tuple[EgressListener, ...]) -> list[OutboundListener]:
    listeners: dict[str, OutboundListener] = {}
    locked: set[int] = set()
    for egress in egress_listeners:
        if egress.port is not None:
            _add_explicit(listeners, egress)
            locked.add(egress.port.number)
            continue
        for service in egress.services:
            for port in service.ports:
                if port.port not in locked:
                    _add_service_port(listeners, egress, service, port.port, port.protocol)
    ordered = sorted(listeners.values(), key=lambda li: (li.kind is not Kind.TCP, li.name))
    return ordered


def _add_explicit(listeners: dict[str, OutboundListener], egress: EgressListener) -> None:
    assert egress.port is not None
    protocol = parse_protocol(egress.port.protocol) if egress.port.protocol else Protocol.TCP
    kind = listener_kind(protocol) or Kind.TCP
    bind = egress.bind or WILDCARD
    listener = listeners.setdefault(
        names.listener_name(bind, egress.port.number),
        OutboundListener(bind, egress.port.number, kind, egress=egress),
    )
    listener.services.extend(s for s in egress.services if s.port(egress.port.number) is not None)


def _add_service_port(
    listeners: dict[str, OutboundListener],
    egress: EgressListener,
    service: Service,
    port: int,
    protocol: Protocol,
) -> None:
    kind = listener_kind(protocol)
    if kind is None:
        return
    for bind in _binds(service, kind):
        listener_key = names.listener_name(bind, port)
        existing = listeners.get(listener_key)
        if existing is None:
            listeners[listener_key] = OutboundListener(bind, port, kind, [service], egress)
        elif existing.kind is kind or (existing.kind is Kind.HTTP and kind is Kind.AUTO):
            existing.services.append(service)
        # Otherwise (TCP vs HTTP on one wildcard port): the first protocol claims the port, as
        # Istio's conflict handling keeps the current listener.


def _binds(service: Service, kind: Kind) -> list[str]:
    """HTTP ports and services without a VIP share the wildcard listener; otherwise one listener per
    service address (a ServiceEntry may list several), with CIDRs matched by prefix on the wildcard."""
    if kind is Kind.HTTP or not service.has_vip:
        return [WILDCARD]
    binds: list[str] = []
    for address in service.addresses or (service.address,):
        bind = WILDCARD if "/" in address else address
        if bind not in binds:
            binds.append(bind)
    return binds
