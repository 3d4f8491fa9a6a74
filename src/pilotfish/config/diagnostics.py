"""Errors as data: every problem with user input becomes a `Diagnostic`.

A diagnostic names the object (`Kind namespace/name`), the field path and where it came from
(`file:line`), so a user can fix the input without reading a traceback. The same type carries the
analyzers' coded findings (`IST0101`, ...), the loader's schema errors and the generators' warnings.

Rendering (one line)::

    samples/x.yaml:12: error: VirtualService default/reviews: spec.http[0].route[0].weight: ...
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """Where an object or field came from: a file and a 1-based line (0 when unknown)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """`Kind namespace/name` as istioctl prints it; namespace "" for cluster-scoped objects."""

    kind: str
    name: str
    namespace: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


# Codes of pilotfish's own loader diagnostics. Analyzer codes (ISTxxxx) live with the analyzers.
YAML_SYNTAX = "PF0001"
INVALID_DOCUMENT = "PF0002"
UNKNOWN_KIND = "PF0003"
SCHEMA = "IST0106"  # Istio's SchemaValidationError: same meaning, same code.
UNSUPPORTED = "PF0004"
DUPLICATE = "PF0005"
REFERENCE = "PF0006"
GENERATION = "PF0007"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about user input."""

    level: Level
    code: str
    message: str
    resource: ResourceRef | None = None
    origin: Origin | None = None
    path: str = ""
    """Field path inside the object, e.g. `spec.http[0].route[0].weight`."""

    @property
    def is_error(self) -> bool:
        return self.level is Level.ERROR

    def __str__(self) -> str:
        parts = []
        if self.origin is not None:
            parts.append(str(self.origin))
        parts.append(self.level.value)
        if self.resource is not None:
            parts.append(str(self.resource))
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


def error(
    code: str,
    message: str,
    resource: ResourceRef | None = None,
    origin: Origin | None = None,
    path: str = "",
) -> Diagnostic:
    return Diagnostic(Level.ERROR, code, message, resource, origin, path)


def warning(
    code: str,
    message: str,
    resource: ResourceRef | None = None,
    origin: Origin | None = None,
    path: str = "",
) -> Diagnostic:
    return Diagnostic(Level.WARNING, code, message, resource, origin, path)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
