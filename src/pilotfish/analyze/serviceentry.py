"""ServiceEntry analyzers: TCP entries need addresses, and one host:port has one protocol.

A TCP ServiceEntry without addresses cannot be told apart from other TCP traffic on its port (there
is no Host header), so sidecars cannot route it; two ServiceEntries giving one host and port different
protocols leave the listener's protocol to chance.
"""

from __future__ import annotations

from collections.abc import Iterator

from pilotfish.analyze import messages as msg
from pilotfish.analyze.analyzer import Analyzer, finding
from pilotfish.analyze.context import AnalysisContext
from pilotfish.analyze.messages import quoted
from pilotfish.analyze.resource import Resource, items, mapping, strings, text
from pilotfish.config.diagnostics import Diagnostic

DNS_CAPTURE = "ISTIO_META_DNS_CAPTURE"
DNS_AUTO_ALLOCATE = "ISTIO_META_DNS_AUTO_ALLOCATE"


def _addresses(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    metadata = ctx.mesh_config.default_config.proxy_metadata
    auto_allocated = metadata.get(DNS_CAPTURE) == "true" and metadata.get(DNS_AUTO_ALLOCATE) == "true"
    if auto_allocated:
        return
    for entry in ctx.of_kind("ServiceEntry"):
        if entry.spec.get("addresses") or items(mapping(entry.data.get("status")).get("addresses")):
            continue  # given, or allocated by the control plane (status.addresses)
        for i, port in enumerate(items(entry.spec.get("ports"))):
            protocol = text(mapping(port).get("protocol"))
            if protocol.upper() in ("", "TCP"):
                yield finding(
                    msg.SERVICE_ENTRY_ADDRESSES_REQUIRED,
                    entry,
                    path=("spec", "ports", i),
                    fix="add spec.addresses (a VIP or CIDR for the service), or use an HTTP/TLS protocol "
                    "so hosts are told apart by Host header or SNI",
                )


ADDRESSES = Analyzer(
    "serviceentry.Analyzer",
    "Checks that ServiceEntries with TCP (or unset) protocol ports have addresses",
    _addresses,
)


def _conflicting_protocols(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    entries: dict[tuple[str, int], list[tuple[Resource, str]]] = {}
    for entry in ctx.of_kind("ServiceEntry"):
        for port in items(entry.spec.get("ports")):
            number = mapping(port).get("number")
            if not isinstance(number, int):
                continue
            protocol = text(mapping(port).get("protocol")).upper() or "TCP"
            for host in strings(entry.spec.get("hosts")):
                entries.setdefault((ctx.inventory.fqdn(host, entry.namespace), number), []).append(
                    (entry, protocol)
                )
    for (host, number), group in entries.items():
        conflicting = [
            (entry, protocol)
            for entry, protocol in group
            if any(p != protocol and _overlap(entry, other) for other, p in group)
        ]
        if not conflicting:
            continue
        names = ", ".join(entry.full_name for entry, _ in conflicting)
        protocols = ", ".join(sorted({p for _, p in conflicting}))
        for entry, _ in conflicting:
            yield finding(
                msg.CONFLICTING_SERVICE_ENTRY_PROTOCOL,
                entry,
                names,
                quoted(host),
                number,
                protocols,
                path=("spec", "ports"),
                fix="use one protocol for this host and port in every ServiceEntry, or narrow their exportTo",
            )


def _overlap(a: Resource, b: Resource) -> bool:
    """Whether some namespace sees both ServiceEntries."""
    scope_a, scope_b = _scope(a), _scope(b)
    return scope_a is None or scope_b is None or bool(scope_a & scope_b)


def _scope(entry: Resource) -> set[str] | None:
    """Namespaces that see the entry; None for all."""
    export_to = strings(entry.spec.get("exportTo"))
    if not export_to or "*" in export_to:
        return None
    return {entry.namespace if e == "." else e for e in export_to}


CONFLICTING_PROTOCOL = Analyzer(
    "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
    "Checks that ServiceEntries visible together give each host and port one protocol",
    _conflicting_protocols,
)
