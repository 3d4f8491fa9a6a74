"""What a trace returns: the hops a request takes, and how it ends. Data only; renderers read it.

Every hop says where it happened (which pod, which part of it), what matched (a listener, a filter
chain, a route, a cluster...) and why; the outcome says how Envoy would answer (status code and
response flags, as its access log would show them), which object would have to change when the
request fails, and what each Envoy on the path would log (for checking against real proxies later).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from pilotfish.simulate.request import IngressSource, Request


class Step(enum.StrEnum):
    """The kinds of hop, in the order a request meets them."""

    CLIENT = "client"
    DNS = "dns"
    IPTABLES = "iptables"
    LISTENER = "listener"
    FILTER_CHAIN = "filter-chain"
    NETWORK_FILTER = "filter"
    ROUTE_CONFIG = "route-config"
    VIRTUAL_HOST = "virtual-host"
    ROUTE = "route"
    FAULT = "fault"
    WEIGHTED = "weighted"
    CLUSTER = "cluster"
    ENDPOINTS = "endpoints"
    CONNECT = "connect"
    APP = "app"


class Component(enum.StrEnum):
    """The part of a pod (or of the host) where a hop happens."""

    HOST = "host"
    APP = "app"
    IPTABLES = "iptables"
    SIDECAR = "sidecar"
    GATEWAY = "gateway"
    NETWORK = "network"


class Status(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    NOTE = "note"
    """Informational: something that may happen (a partial fault) or is worth knowing."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One of several things the hop chose between (weighted clusters, endpoints)."""

    name: str
    detail: str = ""
    weight: int | None = None
    chosen: bool = False


@dataclass(frozen=True, slots=True)
class Hop:
    step: Step
    pod: str
    """`<pod>.<namespace>` of the pod (or `host`) where the hop happens."""
    component: Component
    name: str
    """The matched object: listener, filter chain, route configuration, cluster... or the address."""
    detail: str
    """Why it matched (or failed): the decisive criterion, the value compared."""
    status: Status = Status.OK
    origin: str = ""
    """The Istio object the matched config came from, with `file:line`, when known."""
    candidates: tuple[Candidate, ...] = ()
    to: str = ""
    """Where the connection goes next (`ip:port`), for hops that send it somewhere."""
    brief: str = ""
    """A short second line for pictures (the decisive rule, the matched domain, the route match)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step.value,
            "pod": self.pod,
            "component": self.component.value,
            "name": self.name,
            "detail": self.detail,
            "status": self.status.value,
        }
        if self.origin:
            out["origin"] = self.origin
        if self.to:
            out["to"] = self.to
        if self.candidates:
            out["candidates"] = [
                {"name": c.name, "detail": c.detail, "weight": c.weight, "chosen": c.chosen}
                for c in self.candidates
            ]
        return out


class End(enum.StrEnum):
    """How the request ends."""

    DELIVERED = "delivered"
    """It reached an application port inside the mesh (the app answers)."""
    LEFT_MESH = "left-mesh"
    """It left through Envoy to an address outside the mesh (PassthroughCluster, ServiceEntry)."""
    LOCAL_REPLY = "local-reply"
    """An Envoy answered by itself: no route, no cluster, no healthy host, fault, direct response."""
    CLOSED = "closed"
    """The connection was refused or closed before any HTTP answer (no listener, no filter chain,
    TCP to a cluster without hosts)."""
    BYPASS = "bypass"
    """iptables let it past the sidecar: it goes out without Envoy."""


@dataclass(frozen=True, slots=True)
class ProxyLog:
    """What one Envoy on the path would write in its access log for this request."""

    pod: str
    direction: str
    """`outbound` (sidecar client side), `inbound` (sidecar server side) or `gateway`."""
    listener: str
    upstream_cluster: str
    """`%UPSTREAM_CLUSTER%` (`-` when none was selected)."""
    response_flags: str
    """`%RESPONSE_FLAGS%` (`-` when none)."""
    response_code: int | None
    """The code this Envoy returns, when it answers by itself; None when the upstream decides."""
    logged: bool = True
    """False when the filter handling the request has no access log although the mesh turns access
    logging on (Istio 1.3's BlackHoleCluster catch-all): the real Envoy writes no line for it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "direction": self.direction,
            "listener": self.listener,
            "upstream_cluster": self.upstream_cluster,
            "response_flags": self.response_flags,
            "response_code": self.response_code,
            "logged": self.logged,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    end: End
    summary: str
    status_code: int | None = None
    """The HTTP status the client sees when an Envoy answers by itself; None when the app answers."""
    response_flags: str = "-"
    reached: str = ""
    """`<pod>.<namespace>:<port>` or `<address>:<port>` where the request was delivered."""
    fix: str = ""
    """Which object would have to change (when the request fails)."""
    logs: tuple[ProxyLog, ...] = ()

    @property
    def ok(self) -> bool:
        return self.end in (End.DELIVERED, End.LEFT_MESH) or (
            self.end is End.LOCAL_REPLY and self.status_code is not None and self.status_code < 400
        )

    @property
    def first_log(self) -> ProxyLog | None:
        """The log of the first Envoy on the path (the client's sidecar, or the gateway)."""
        return self.logs[0] if self.logs else None

    def to_json(self) -> dict[str, Any]:
        return {
            "end": self.end.value,
            "ok": self.ok,
            "summary": self.summary,
            "status_code": self.status_code,
            "response_flags": self.response_flags,
            "reached": self.reached,
            "fix": self.fix,
            "logs": [log.to_json() for log in self.logs],
        }


@dataclass(frozen=True, slots=True)
class Trace:
    request: Request
    hops: tuple[Hop, ...]
    outcome: Outcome
    notes: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        """`GET http://reviews:9080/ from <pod>` or `... via the ingress gateway <pod>`."""
        request = self.request
        if isinstance(request.source, IngressSource):
            return f"{request.line} via the ingress gateway {request.source.label}"
        return f"{request.line} from {request.source.label}"

    @property
    def failed_hop(self) -> Hop | None:
        return next((h for h in self.hops if h.status is Status.FAIL), None)

    def to_json(self) -> dict[str, Any]:
        request = self.request
        source = request.source
        return {
            "request": {
                "source": source.label,
                "source_kind": "ingress" if isinstance(source, IngressSource) else "pod",
                "method": request.method,
                "url": request.url,
                "authority": request.authority,
                "headers": [[k, v] for k, v in request.headers],
            },
            "hops": [hop.to_json() for hop in self.hops],
            "outcome": self.outcome.to_json(),
            "notes": list(self.notes),
        }
