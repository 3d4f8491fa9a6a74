"""The one list of analyzers, and running them.

Adding an analyzer means writing it in its family's module and adding it to `ALL` here (ARCHITECTURE.md
principle 5): nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pilotfish.analyze import (
    deprecation,
    destinationrule,
    gateway,
    schema,
    service,
    serviceentry,
    sidecar,
    virtualservice,
)
from pilotfish.analyze import messages as msg
from pilotfish.analyze.analyzer import Analyzer
from pilotfish.analyze.context import AnalysisContext
from pilotfish.config.diagnostics import Diagnostic

ALL: tuple[Analyzer, ...] = (
    schema.INPUT,
    *schema.VALIDATION,
    deprecation.DEPRECATION,
    destinationrule.CA_CERTIFICATE,
    destinationrule.SUBSET_SELECT_POD,
    destinationrule.CONFLICTING_DESTINATION_RULES,
    gateway.INGRESS_GATEWAY_PORT,
    gateway.CONFLICTING_GATEWAY,
    gateway.SECRET,
    gateway.CERTIFICATE,
    service.PORT_NAME,
    serviceentry.ADDRESSES,
    serviceentry.CONFLICTING_PROTOCOL,
    sidecar.SELECTOR,
    virtualservice.DESTINATION_HOST,
    virtualservice.DESTINATION_RULE,
    virtualservice.GATEWAY,
    virtualservice.CONFLICTING_MESH_GATEWAY_HOSTS,
    virtualservice.JWT_CLAIM_ROUTE,
    virtualservice.HOST_IN_REGISTRY,
)

BY_NAME: dict[str, Analyzer] = {a.name: a for a in ALL}


class UnknownAnalyzer(LookupError):
    """A name (or family prefix) that matches no analyzer."""


def select(names: Iterable[str]) -> tuple[Analyzer, ...]:
    """Analyzers by exact name, or by family (`virtualservice` selects `virtualservice.*`), in `ALL`
    order. Raises UnknownAnalyzer naming what did not match."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in BY_NAME and not any(a.name.startswith(f"{n}.") for a in ALL)]
    if unknown:
        raise UnknownAnalyzer(", ".join(unknown))
    return tuple(a for a in ALL if any(a.name == n or a.name.startswith(f"{n}.") for n in wanted))


def run(context: AnalysisContext, analyzers: Sequence[Analyzer] = ALL) -> list[Diagnostic]:
    """All findings of `analyzers`, deduplicated, in file and line order."""
    found: list[Diagnostic] = []
    for analyzer in analyzers:
        try:
            found.extend(analyzer.check(context))
        except Exception as exc:  # a bug in one analyzer must not hide the others' findings
            text = msg.INTERNAL_ERROR.format(f"analyzer {analyzer.name} failed: {exc!r}")
            found.append(Diagnostic(msg.INTERNAL_ERROR.level, msg.INTERNAL_ERROR.code, text))
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=_order)


def _order(d: Diagnostic) -> tuple[str, int, str, str, str]:
    origin = d.origin
    return (
        origin.file if origin else "",
        origin.line if origin else 0,
        str(d.resource) if d.resource else "",
        d.code,
        d.message,
    )
