"""What an analyzer is, and how its findings become `Diagnostic`s.

An analyzer is a name (Istio's, e.g. `virtualservice.DestinationHostAnalyzer`, so one conformance case
can run exactly one of them), a one-line description, and a pure function from the context to
findings. They are listed explicitly in `pilotfish.analyze.analyzers.ALL`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pilotfish.analyze.context import AnalysisContext
from pilotfish.analyze.messages import MessageType, quoted
from pilotfish.analyze.resource import Resource
from pilotfish.config.diagnostics import Diagnostic
from pilotfish.config.parse import format_path
from pilotfish.config.yamltext import Path


@dataclass(frozen=True, slots=True)
class Analyzer:
    name: str
    description: str
    check: Callable[[AnalysisContext], Iterable[Diagnostic]]


def finding(
    message: MessageType, resource: Resource, *args: object, path: Path = (), fix: str = ""
) -> Diagnostic:
    """A coded finding about `resource`, at the line of `path` (the object's line when empty).

    `fix` says what to change; it follows the catalogue text so the Istio part stays greppable.
    """
    text = message.format(*args)
    if fix:
        text = f"{text.rstrip('.')}. Fix: {fix}"
    origin = resource.origin_of(path) if path else resource.origin
    return Diagnostic(message.level, message.code, text, resource.ref, origin, format_path(path))


def did_you_mean(value: str, candidates: Iterable[str]) -> str:
    """`did you mean "x"? ` when a candidate is close to `value` (typos are the usual cause), else "".

    Hostnames are compared without their `.svc.<domain>` tail, which every Kubernetes host shares.
    """
    by_short: dict[str, str] = {}
    for candidate in sorted(set(candidates)):
        by_short.setdefault(_short(candidate), candidate)
    close = difflib.get_close_matches(_short(value), list(by_short), n=1, cutoff=0.75)
    if not close or by_short[close[0]] == value:
        return ""
    return f"did you mean {quoted(by_short[close[0]])}? "


def _short(name: str) -> str:
    return name.split(".svc.", 1)[0]
