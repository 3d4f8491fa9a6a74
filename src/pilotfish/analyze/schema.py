"""Schema analyzers: the loader's findings, reported per kind, plus input-level problems.

`schema.ValidationAnalyzer.<Kind>` reports why objects of that kind were rejected: Istio's schema
errors as IST0106, fields Istio accepts but pilotfish does not implement yet as PF0004. For
VirtualServices it adds the rule-reachability warnings Istio's validation gives (IST0130, IST0131).
`schema.InputAnalyzer` reports what belongs to no single kind: YAML syntax, documents that are not
objects, unknown or unsupported kinds, and contradictions found while building the mesh (duplicates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from pilotfish.analyze import messages as msg
from pilotfish.analyze.analyzer import Analyzer
from pilotfish.analyze.context import AnalysisContext
from pilotfish.analyze.resource import Resource
from pilotfish.analyze.virtualservice import unreachable_rules
from pilotfish.config.diagnostics import Diagnostic
from pilotfish.config.kinds import BY_GROUP_KIND, KINDS, KindInfo

_REFUSED = "pilotfish does not load the configuration until this is fixed"


def reported(diagnostic: Diagnostic, resource: Resource | None) -> Diagnostic:
    """A loader diagnostic as analyze prints it: the field path in the message, Istio's wording for
    schema errors, the object's resolved namespace, and what happens until it is fixed."""
    text = f"{diagnostic.path}: {diagnostic.message}" if diagnostic.path else diagnostic.message
    if diagnostic.code == msg.SCHEMA_VALIDATION_ERROR.code:
        text = msg.SCHEMA_VALIDATION_ERROR.format(text)
    if diagnostic.is_error:
        text = f"{text.rstrip('.')}. Fix: correct it; {_REFUSED}"
    ref = resource.ref if resource is not None else diagnostic.resource
    return dataclasses.replace(diagnostic, message=text, resource=ref)


def _validation(info: KindInfo) -> Analyzer:
    def check(ctx: AnalysisContext) -> Iterator[Diagnostic]:
        for resource in ctx.of_kind(info.kind, info.group):
            for diagnostic in resource.parsed.diagnostics:
                yield reported(diagnostic, resource)
            if info.kind == "VirtualService":
                yield from unreachable_rules(resource)

    extra = " and rules no request can reach" if info.kind == "VirtualService" else ""
    return Analyzer(
        f"schema.ValidationAnalyzer.{info.kind}",
        f"Checks {info.kind} objects against the schema{extra}",
        check,
    )


VALIDATION: tuple[Analyzer, ...] = tuple(_validation(info) for info in KINDS)


def _input(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    for diagnostic in ctx.input_diagnostics:
        yield reported(diagnostic, None)
    for resource in ctx.resources:
        if (resource.group, resource.kind) not in BY_GROUP_KIND:
            for diagnostic in resource.parsed.diagnostics:
                yield reported(diagnostic, resource)


INPUT = Analyzer(
    "schema.InputAnalyzer",
    "Reports unreadable input, unknown or unsupported kinds, and duplicate objects (pilotfish)",
    _input,
)
